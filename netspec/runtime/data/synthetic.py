"""Generated data: the textbook's linear-regression set and its sine-wave time series."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from netspec.runtime.data.splits import Splits

__all__ = ["sine_wave", "synthetic_regression"]


def synthetic_regression(
    w: Sequence[float] | torch.Tensor,
    b: float,
    n: int = 1000,
    noise: float = 0.01,
    seed: int = 0,
    n_test: int | None = None,
) -> Splits:
    """Linear data as in Dive into Deep Learning: X ~ N(0, 1), y = Xw + b + N(0, noise²).

    `n` training and `n_test` (default `n`) test examples; targets are float32 N×1.
    """
    w = torch.as_tensor(w, dtype=torch.float32).reshape(-1, 1)
    n_test = n if n_test is None else n_test
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n + n_test, len(w), generator=g)
    y = x @ w + b + noise * torch.randn(n + n_test, 1, generator=g)
    return Splits("synthetic_regression", "regression", x[:n], y[:n], x[n:], y[n:])


def sine_wave(T: int = 1000, tau: int = 4, noise: float = 0.2, n_train: int = 600, seed: int = 0) -> Splits:
    """Dive into Deep Learning 9.1 (0.17: 8.1): x_t = sin(0.01·t) + N(0, noise²) for t = 1..T.

    Example i holds the tau values x[i] … x[i+tau-1] (float32, N×tau, oldest first) and its
    target is the next value x[i+tau] (N×1), as the book's `features`/`labels`; the first
    `n_train` examples are the training split and the remaining T - tau - n_train the test
    split (the book's one-step-ahead predictions past `n_train + tau`).
    """
    if not 0 < tau < T or not 0 < n_train < T - tau:
        raise ValueError(f"sine_wave needs 0 < tau < T and 0 < n_train < T - tau, got T={T}, tau={tau}, n_train={n_train}")
    g = torch.Generator().manual_seed(seed)
    time = torch.arange(1, T + 1, dtype=torch.float32)
    x = torch.sin(0.01 * time) + noise * torch.randn(T, generator=g)
    features = torch.stack([x[i : T - tau + i] for i in range(tau)], dim=1)
    labels = x[tau:].reshape(-1, 1)
    return Splits("sine_wave", "regression", features[:n_train], labels[:n_train], features[n_train:], labels[n_train:])
