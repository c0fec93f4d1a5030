"""Pictures of an attack: originals beside their adversarial versions (as in the textbook's
figure), and accuracy against ε.

Drawn on a bare matplotlib `Figure` with the Agg canvas, so no pyplot state or GUI backend
is touched (safe in tests, servers and notebooks alike).
"""
from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import torch

from netspec.runtime.attack.attacks import AttackResult, Samples

__all__ = ["plot_curve", "plot_samples"]

_OK, _WRONG = "#1a7f37", "#cf222e"


def _figure(width: float, height: float):  # -> matplotlib.figure.Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _as_image(t: torch.Tensor, image_shape: Sequence[int] | None) -> torch.Tensor:
    """One model input as H×W (gray) or H×W×3 for imshow; flat inputs are reshaped back to
    `image_shape` (or a square) so an MLP's adversarial example still looks like a picture."""
    if t.dim() == 1:
        n = t.numel()
        side = math.isqrt(n)
        shape = tuple(image_shape) if image_shape and math.prod(image_shape) == n else (
            (1, side, side) if side * side == n else (1, 1, n))
        t = t.reshape(shape)
    if t.dim() == 2:  # a [T, D] sequence input (an image read row by row) is the picture itself
        return t
    if t.shape[0] == 1:
        return t[0]
    if t.shape[0] == 3:
        return t.permute(1, 2, 0)
    return t.mean(0)  # other channel counts: show the mean


def _save(fig, path: Path) -> Path:
    """PNG bytes rendered in memory, then written atomically: a failed write (full disk,
    no permission) leaves the previous picture intact instead of half a PNG."""
    from netspec.files import atomic_write

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write(path, buffer.getbuffer())
    return path


def plot_samples(
    samples: Samples,
    classes: Sequence[str],
    path: str | Path,
    *,
    method: str = "fgsm",
    image_shape: Sequence[int] | None = None,
) -> Path:
    """Three rows per column-example: original (true and predicted class), adversarial
    (predicted class, red when wrong), and the perturbation on a ±ε colour scale."""
    k = len(samples.y)
    if k == 0:
        raise ValueError("no samples to plot")
    name = lambda i: classes[i] if 0 <= i < len(classes) else str(i)  # noqa: E731
    fig = _figure(1.7 * k + 0.9, 6.4)
    grid = fig.add_gridspec(3, k, left=0.9 / (1.7 * k + 0.9), right=0.99, top=0.88, bottom=0.02,
                            hspace=0.45, wspace=0.08)
    eps = samples.eps
    span = eps if eps > 0 else 1e-12
    for j in range(k):
        true, clean, adv = (int(t[j]) for t in (samples.y, samples.clean_pred, samples.adv_pred))
        delta = (samples.x_adv[j] - samples.x[j]).float()
        rows = (
            (_as_image(samples.x[j].float(), image_shape), dict(cmap="gray", vmin=0, vmax=1),
             f"true: {name(true)}\npred: {name(clean)}", _OK if clean == true else _WRONG),
            (_as_image(samples.x_adv[j].float(), image_shape), dict(cmap="gray", vmin=0, vmax=1),
             f"pred: {name(adv)}", _OK if adv == true else _WRONG),
            (_as_image(delta, image_shape), dict(cmap="RdBu_r", vmin=-span, vmax=span),
             f"max |δ| {delta.abs().max().item():.3f}", "black"),
        )
        for i, (img, style, title, colour) in enumerate(rows):
            ax = fig.add_subplot(grid[i, j])
            ax.imshow(img.numpy(), interpolation="nearest", **style)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=8, color=colour)
            if j == 0:
                ax.set_ylabel(("original", f"adversarial\nε = {eps:g}", "perturbation")[i], fontsize=9)
    fig.suptitle(f"{method.upper()} adversarial examples (ε = {eps:g}; red = misclassified)", fontsize=11)
    return _save(fig, Path(path))


def plot_curve(result: AttackResult, path: str | Path, *, title: str = "") -> Path:
    """Adversarial accuracy against ε, with clean accuracy as a dashed reference line."""
    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    order = sorted(range(len(result.eps)), key=result.eps.__getitem__)
    eps = [result.eps[i] for i in order]
    acc = [100 * result.adv_acc[i] for i in order]
    label = "PGD-%d" % result.steps if result.method == "pgd" else "FGSM"
    ax.plot(eps, acc, marker="o", color=_WRONG, label=f"{label} accuracy")
    for e, a in zip(eps, acc):
        ax.annotate(f"{a:.1f}%", (e, a), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.axhline(100 * result.clean_acc, linestyle="--", color="gray", label=f"clean accuracy {100 * result.clean_acc:.1f}%")
    ax.set_xlabel("ε (max-norm perturbation, pixels in [0, 1])")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 105)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title or f"accuracy under {label} ({result.examples} examples)", fontsize=10)
    fig.tight_layout()
    return _save(fig, Path(path))
