"""What a run shows while it trains: a rich progress bar on a terminal, one line per epoch otherwise.

The bar shows loss, accuracy and throughput as of the last refresh (the trainer reads them
from the device only every few batches, so the bar never forces a sync per step). When the
output is not a terminal (CI logs, pipes) each epoch ends with one plain line instead, and
`quiet` prints nothing at all.
"""
from __future__ import annotations

import sys
from typing import Any, TextIO


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def epoch_line(row: dict[str, Any], epochs: int) -> str:
    """`epoch 3/10  loss 0.512  train acc 0.811  test acc 0.795  lr 0.9  41,230 ex/s  5.1 s`."""
    parts = [f"epoch {row['epoch']}/{epochs}", f"loss {_fmt(row.get('train_loss'), '.4g')}"]
    for key in ("train_acc", "val_acc", "val_loss", "test_acc", "test_loss"):
        if row.get(key) is not None and not (key.endswith("_loss") and row.get(key.replace("loss", "acc")) is not None):
            parts.append(f"{key.replace('_', ' ')} {_fmt(row[key], '.4g' if key.endswith('loss') else '.3f')}")
    parts.append(f"lr {row['lr']:.3g}")
    if row.get("examples_per_s"):
        parts.append(f"{row['examples_per_s']:,.0f} ex/s")
    parts.append(f"{row['seconds']:.1f} s")
    return "  ".join(parts)


class Progress:
    """A per-epoch bar (rich) or plain epoch lines; all methods are no-ops when disabled."""

    def __init__(self, enabled: bool = True, bar: bool | None = None, stream: TextIO | None = None, prefix: str = "") -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.bar = enabled and (self.stream.isatty() if bar is None else bar)
        self.prefix = prefix
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> "Progress":
        if self.bar:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._progress = Bar(
                TextColumn("{task.description}"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def start_epoch(self, epoch: int, epochs: int, batches: int) -> None:
        if self._progress is not None:
            self._task = self._progress.add_task(f"{self.prefix}epoch {epoch}/{epochs}", total=batches, stats="")

    def update(self, done: int, loss: float, acc: float | None, examples_per_s: float) -> None:
        if self._progress is not None and self._task is not None:
            stats = f"loss {loss:.3f}" + (f"  acc {acc:.3f}" if acc is not None else "") + f"  {examples_per_s:,.0f} ex/s"
            self._progress.update(self._task, completed=done, stats=stats)

    def end_epoch(self, row: dict[str, Any], epochs: int) -> None:
        if not self.enabled:
            return
        line = self.prefix + epoch_line(row, epochs)
        if self._progress is not None:
            if self._task is not None:  # the finished bar gives way to the epoch's line
                self._progress.remove_task(self._task)
                self._task = None
            self._progress.console.print(line, highlight=False, soft_wrap=True)
        else:
            print(line, file=self.stream, flush=True)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.console.print(text, highlight=False, soft_wrap=True)
        else:
            print(text, file=self.stream, flush=True)
