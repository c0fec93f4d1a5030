"""What a run records: metrics.jsonl (one line per epoch), summary.json and the pictures.

`curves.png` is the training plot: loss (train, val, test) and accuracy (train, val, test)
against epochs, each on its own labelled axis; `grad_norms.png` shows each layer's gradient norm per epoch on
a log scale, where vanishing gradients in a deep sigmoid stack are plain to see.
matplotlib is imported only when a picture is drawn, on a bare `Figure` with the Agg canvas:
no pyplot (its import and global figure state cost start-up time and nothing here needs them).
"""
from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from netspec.files import atomic_write

METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CURVES = "curves.png"
GRAD_NORMS = "grad_norms.png"


def _clean(value: Any) -> Any:
    """JSON cannot hold NaN/inf; write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class MetricsLog:
    """metrics.jsonl of a run folder: rewritten whole and atomically once per epoch (a few
    hundred short lines), so it never holds a line cut short by a kill."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / METRICS

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        rows = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a kill: ignore it
                continue
        return rows

    def rewrite(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Replace the file with `rows` (a resumed run rewrites it from its checkpoint's history)."""
        text = "".join(json.dumps(_clean(dict(r))) + "\n" for r in rows)
        atomic_write(self.path, text.encode())


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    text = json.dumps(_clean(dict(data)), indent=2) + "\n"
    atomic_write(Path(path), text.encode())


def figure(width: float, height: float, dpi: int = 120) -> Any:
    """A matplotlib Figure on the Agg canvas (PNG in memory, no display, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def tight(fig: Any) -> None:
    """Lay the axes out tightly once, then drop the layout engine: matplotlib otherwise lays
    the figure out again at every savefig (one more full draw) for the same picture."""
    fig.tight_layout()
    fig.set_layout_engine(None)


LOSSES = {"train_loss": ("train loss", "-"), "val_loss": ("val loss", "-."), "test_loss": ("test loss", ":")}
ACCURACIES = {"train_acc": ("train acc", "-"), "val_acc": ("val acc", "-."), "test_acc": ("test acc", ":")}


def _series(ax: Any, rows: Sequence[Mapping[str, Any]], styles: Mapping[str, tuple[str, str]]) -> int:
    """Plot each key that has a value in some row; returns how many lines were drawn."""
    epochs = [r["epoch"] for r in rows]
    drawn = 0
    for key, (label, style) in styles.items():
        values = [r.get(key) for r in rows]
        if any(v is not None for v in values):
            ax.plot(epochs, [math.nan if v is None else v for v in values], style, marker="o" if len(rows) < 3 else None, label=label)
            drawn += 1
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.set_xlim(min(epochs, default=1) - 0.05, max(epochs, default=1) + 0.05)
    ax.grid(True, alpha=0.3)
    return drawn


def curves_figure(rows: Sequence[Mapping[str, Any]], title: str = "") -> Any:
    """Loss (train, val, test) and accuracy (train, val, test) per epoch on two labelled axes,
    side by side; a regression run, which has no accuracy, gets the loss axis alone."""
    has_acc = any(r.get(k) is not None for r in rows for k in ACCURACIES)
    fig = figure(9 if has_acc else 5, 3.5)
    axes = fig.subplots(1, 2 if has_acc else 1, squeeze=False)
    loss_ax = axes[0][0]
    if _series(loss_ax, rows, LOSSES):
        loss_ax.legend()
    loss_ax.set_ylabel("loss")
    loss_ax.set_title("loss")
    if has_acc:
        acc_ax = axes[0][1]
        _series(acc_ax, rows, ACCURACIES)
        acc_ax.set_ylabel("accuracy")
        acc_ax.set_title("accuracy")
        acc_ax.legend()
    if title:
        fig.suptitle(title)
    tight(fig)
    return fig


def plot_curves(rows: Sequence[Mapping[str, Any]], path: Path, title: str = "") -> None:
    """curves.png: see `curves_figure`."""
    save(curves_figure(rows, title), path)


def plot_grad_norms(rows: Sequence[Mapping[str, Any]], path: Path, title: str = "") -> None:
    """Each parameter's mean gradient norm per epoch (log scale), shallow layers dark, deep light."""
    rows = [r for r in rows if r.get("grad_norms")]
    if not rows:
        return
    from matplotlib import colormaps

    names = list(rows[-1]["grad_norms"])
    fig = figure(6, 4)
    ax = fig.subplots()
    cmap = colormaps["viridis"]
    for i, name in enumerate(names):
        values = [r["grad_norms"].get(name) for r in rows]
        ax.plot([r["epoch"] for r in rows], [math.nan if v is None else max(v, 1e-30) for v in values],
                color=cmap(i / max(1, len(names) - 1)), label=name, marker="o" if len(rows) < 3 else None)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.set_ylabel("gradient norm (mean over batches)")
    ax.grid(True, which="both", alpha=0.3)
    if len(names) <= 16:
        ax.legend(fontsize=6, ncol=2)
    ax.set_title(title or "gradient norm per layer")
    tight(fig)
    save(fig, path)


def _integer_ticks() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def save(fig: Any, path: Path) -> None:
    """The PNG rendered in memory, then written atomically (a failed write keeps the old picture)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write(Path(path), buffer.getvalue())
