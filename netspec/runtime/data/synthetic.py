"""Generated data: the textbook's linear-regression set."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from netspec.runtime.data.splits import Splits

__all__ = ["synthetic_regression"]


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
