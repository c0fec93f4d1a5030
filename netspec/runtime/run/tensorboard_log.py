"""TensorBoard event files beside metrics.jsonl: each epoch's scalars and the run's settings.

`tensorboard --logdir runs/` then shows every run folder as one run: loss and accuracy
per split, learning rate, throughput, gradient norms (with --grad-norms), and in the HPARAMS
tab the train section's settings next to the final metrics.

The event file is an append-only log, like metrics.jsonl (it cannot be written atomically);
it is opened at the first completed epoch, so a run folder where no epoch finished holds
only netspec's own files. A resumed run starts a new event file that tells TensorBoard to
drop anything recorded after the checkpoint it resumed from (`purge_step`).
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

EVENTS = "events.out.tfevents.*"  # the files' names, as TensorBoard makes them

# metrics.jsonl key -> TensorBoard tag; these tags are also the hparams tab's metrics.
SCALARS: dict[str, str] = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "test_loss": "loss/test",
    "train_acc": "accuracy/train",
    "val_acc": "accuracy/val",
    "test_acc": "accuracy/test",
    "lr": "learning_rate",
    "examples_per_s": "throughput/examples_per_s",
    "seconds": "time/epoch_seconds",
}
GRAD_NORM_PREFIX = "grad_norm/"


def hparams(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The train section flattened to what the hparams plugin holds (bool, number, text):
    `{"optimizer.lr": 0.1, ...}`; lists become their text, unset values are left out."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(hparams(value, name + "."))
        elif isinstance(value, bool | int | float | str):
            flat[name] = value
        elif value is not None:
            flat[name] = str(value)
    return flat


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


class Board:
    """The event writer of one run folder (rank 0 only); a no-op when `folder` is None."""

    def __init__(self, folder: Path | None, settings: Mapping[str, Any], resumed_after: int = 0) -> None:
        self.folder = folder
        self.settings = dict(settings)
        self.resumed_after = resumed_after
        self._writer: Any = None
        self._broken = folder is None

    def _open(self) -> Any:
        if self._writer is None and not self._broken:
            try:
                from torch.utils.tensorboard import SummaryWriter
                from torch.utils.tensorboard.summary import hparams as hparams_summaries
            except ImportError as exc:  # the package is a dependency; an old environment may lack it
                warnings.warn(f"no TensorBoard event files: {exc} (pip install tensorboard)", stacklevel=3)
                self._broken = True
                return None
            purge = self.resumed_after + 1 if self.resumed_after else None
            self._writer = SummaryWriter(str(self.folder), purge_step=purge, flush_secs=30)
            for summary in hparams_summaries(hparams(self.settings), {tag: None for tag in SCALARS.values()}):
                self._writer.file_writer.add_summary(summary)
        return self._writer

    def epoch(self, row: Mapping[str, Any]) -> None:
        """Record one metrics.jsonl row (step = its epoch) and flush it to disk."""
        writer = self._open()
        if writer is None:
            return
        step = int(row["epoch"])
        for key, tag in SCALARS.items():
            value = _number(row.get(key))
            if value is not None:
                writer.add_scalar(tag, value, step)
        for name, value in (row.get("grad_norms") or {}).items():
            if _number(value) is not None:
                writer.add_scalar(GRAD_NORM_PREFIX + name, float(value), step)
        writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def write_history(folder: Path, settings: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> None:
    """Every row at once (a closed-form solve, which has no epoch loop)."""
    board = Board(folder, settings)
    try:
        for row in rows:
            board.epoch(row)
    finally:
        board.close()
