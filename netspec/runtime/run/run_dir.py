"""The run folder, one object (`RunDir`) that owns its files and the order they are written in.

Files: spec.yaml (overrides applied), checkpoint.pt, model.safetensors, metrics.jsonl,
curves.png [, grad_norms.png], summary.json. Rank 0 alone writes here.

What makes the folder tell the truth after a kill at any moment:
- every file is replaced atomically (netspec.files.atomic_write);
- checkpoint.pt is the record of an epoch: it is written first, and model.safetensors and
  metrics.jsonl are derived from it (its weights, its history), so `--resume` rewrites
  them from it before going on, whatever moment the kill came at;
- summary.json is written last and means "finished": a folder without it is an
  unfinished run, one with it is never overwritten by `train --out`; a resume that will
  train more epochs removes it first;
- SIGINT during these writes waits until they are done (exit 130 follows, folder whole).
"""
from __future__ import annotations

import signal
import tempfile
from fnmatch import fnmatch
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from netspec.compiler.graph import Graph
from netspec.compiler.train_schema import TrainConfig
from netspec.errors import TrainingError
from netspec.files import TEMP_SUFFIX, atomic_write, clean_temporaries, open_regular
from netspec.runtime.run import checkpoint as ckpt
from netspec.runtime.run import metrics
from netspec.runtime.run import tensorboard_log
from netspec.runtime.run.options import RunOptions

__all__ = [
    "RUN_FILES",
    "RunDir",
    "RunInterrupted",
    "SPEC_FILE",
    "check_out_folder",
    "check_writable",
    "interrupts_deferred",
    "writing",
]

SPEC_FILE = "spec.yaml"
RUN_FILES = (SPEC_FILE, ckpt.CHECKPOINT, ckpt.WEIGHTS, metrics.METRICS, metrics.SUMMARY, metrics.CURVES, metrics.GRAD_NORMS)
_HEADER = "# resolved by netspec train"


@contextmanager
def writing(path: Path, note: str = "") -> Iterator[None]:
    """Turn an OSError while writing `path` (a read-only folder, a directory in the way, a full
    disk) into one line naming the file; `note` says what was kept."""
    try:
        yield
    except OSError as exc:
        raise TrainingError(f"{path}: cannot write ({exc.strerror or exc}){note}") from None


def _new_run_dir(name: str) -> Path:
    base = Path("runs") / name / datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(1, 1000):
        candidate = base if i == 1 else base.with_name(f"{base.name}-{i}")
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            continue
        except OSError as exc:
            raise TrainingError(f"cannot create the run folder {candidate} ({exc.strerror or exc}); give a writable one with --out") from None
    raise TrainingError(f"cannot create a run folder under {base.parent}")


def _is_run(folder: Path) -> bool:
    """spec.yaml with the header `netspec train` writes."""
    try:
        with open_regular(folder / SPEC_FILE) as f:
            return f.read(len(_HEADER)).decode("utf-8", errors="replace") == _HEADER
    except OSError:
        return False


def _is_unfinished_run(folder: Path) -> bool:
    """A run folder of ours that no epoch completed and that never finished (safe to start
    again in): our spec.yaml, only our files, no checkpoint.pt, no summary.json."""
    try:
        names = {p.name for p in folder.iterdir() if not p.name.endswith(TEMP_SUFFIX) and not fnmatch(p.name, tensorboard_log.EVENTS)}
    except OSError:
        return False
    return _is_run(folder) and names <= set(RUN_FILES) - {ckpt.CHECKPOINT, metrics.SUMMARY}


def check_out_folder(out: Path) -> None:
    """Refuse an --out that would overwrite something: a run (use --resume), a finished run,
    or a folder of the user's own files."""
    if str(out).strip() == "":
        raise TrainingError("--out: empty folder name; give the run folder to create")
    if out.is_symlink():
        raise TrainingError(f"--out {out}: is a symbolic link; give the run folder itself")
    if out.exists() and not out.is_dir():
        raise TrainingError(f"--out {out}: is a file, not a folder")
    if (out / ckpt.CHECKPOINT).exists():
        raise TrainingError(f"--out {out}: already holds a run; use --resume {out} to continue it, or another folder")
    if (out / metrics.SUMMARY).exists() and _is_run(out):
        raise TrainingError(f"--out {out}: holds a finished run ({metrics.SUMMARY}); netspec never overwrites one: give another folder")
    if out.is_dir() and any(not p.name.endswith(TEMP_SUFFIX) for p in out.iterdir()) and not _is_unfinished_run(out):
        raise TrainingError(f"--out {out}: folder is not empty and not a netspec run folder; give a new folder (or --resume RUN_DIR to continue a run)")


def check_writable(folder: Path, names: Iterable[str] = RUN_FILES) -> None:
    """Before the work (training, an attack): every file it will write can be written (no
    directory or link in its place, the folder accepts files), so finished work is never
    lost to a write error."""
    for name in names:
        if (folder / name).is_symlink():
            raise TrainingError(f"{folder / name}: is a symbolic link; netspec does not write through links (remove it or choose another --out)")
        if (folder / name).is_dir():
            raise TrainingError(f"{folder / name}: is a directory; netspec writes a file there (move it away or choose another --out)")
    try:
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".netspec-probe-")
        probe.close()
    except OSError as exc:
        raise TrainingError(f"{folder}: cannot write there ({exc.strerror or exc}); choose another --out") from None


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold back SIGINT (Ctrl-C) until the block's writes are done, then raise it: an
    interrupt never lands between an epoch's files."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if caught:
        raise KeyboardInterrupt


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; says where the run folder is and whether it can be resumed
    (the CLI prints the resume command, the library prints nothing)."""

    def __init__(self, folder: Path | None, resumable: bool) -> None:
        super().__init__()
        self.folder, self.resumable = folder, resumable


def _spec_text(tree: dict[str, Any], source: str) -> str:
    return f"{_HEADER} from {source} (command-line overrides applied)\n" + yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)


class RunDir:
    """One run folder: created or reopened for a resume, written once per epoch, finished.

    Every rank holds one (so every rank knows a checkpoint is due: gathering its state is a
    collective); only the one made with `writes=True` (rank 0) touches the disk.
    """

    def __init__(self, path: Path, writes: bool = True) -> None:
        self.path, self.writes = Path(path), writes
        self.board: tensorboard_log.Board | None = None

    def open_board(self, settings: Mapping[str, Any], resumed_after: int = 0) -> None:
        """TensorBoard's event log for the epochs to come (rank 0; opened at the first epoch)."""
        if self.writes:
            self.board = tensorboard_log.Board(self.path, settings, resumed_after)

    def close_board(self) -> None:
        if self.board is not None:
            self.board.close()
            self.board = None

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def resumable(self) -> bool:
        return self.file(ckpt.CHECKPOINT).exists()

    # -------------------------------------------------------------- opening
    @classmethod
    def create(cls, options: RunOptions, name: str, tree: dict[str, Any], source: str) -> "RunDir":
        """A new run folder (--out, or runs/<name>/<timestamp>) holding spec.yaml and an empty
        metrics.jsonl; what an earlier, unfinished start left there is removed."""
        if options.out is None:
            path = _new_run_dir(name)
        else:
            path = Path(options.out)
            check_out_folder(path)
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise TrainingError(f"--out {path}: cannot create ({exc.strerror or exc})") from None
        run = cls(path)
        check_writable(path)
        clean_temporaries(path)
        for stale in [*(set(RUN_FILES) - {SPEC_FILE}), *(p.name for p in path.glob(tensorboard_log.EVENTS))]:
            with writing(run.file(stale)):
                run.file(stale).unlink(missing_ok=True)
        run._write(SPEC_FILE, _spec_text(tree, source).encode())
        run._write(metrics.METRICS, b"")
        return run

    @classmethod
    def reopen(cls, folder: Path, tree: dict[str, Any] | None = None, source: str = "") -> "RunDir":
        """The folder of a run being resumed; spec.yaml is rewritten only when `tree` is given
        (--epochs asks for more: then the run is unfinished again, and summary.json goes first)."""
        run = cls(Path(folder))
        check_writable(run.path)
        clean_temporaries(run.path)
        if tree is not None:
            with writing(run.file(metrics.SUMMARY)):
                run.file(metrics.SUMMARY).unlink(missing_ok=True)
            run._write(SPEC_FILE, _spec_text(tree, source).encode())
        return run

    def restore(self, state: Mapping[str, Any], epochs: int) -> None:
        """Bring every file into line with checkpoint.pt (already checked against the model)
        before training goes on: its weights, its history; and when more epochs will run,
        the run is no longer finished, so summary.json goes first."""
        if not self.writes:
            return
        with interrupts_deferred():
            if int(state["epoch"]) < epochs:
                with writing(self.file(metrics.SUMMARY)):
                    self.file(metrics.SUMMARY).unlink(missing_ok=True)
            self._derived(state)

    # -------------------------------------------------------------- writing
    def _write(self, name: str, data: bytes, note: str = "") -> None:
        with writing(self.file(name), note):
            atomic_write(self.file(name), data)

    def _derived(self, state: Mapping[str, Any]) -> None:
        """model.safetensors (the EMA of the weights when the run keeps one) and metrics.jsonl
        as checkpoint.pt says."""
        with writing(self.file(ckpt.WEIGHTS)):
            ckpt.save_weights(state.get("ema", state["model"]), self.file(ckpt.WEIGHTS))
        with writing(self.file(metrics.METRICS)):
            metrics.MetricsLog(self.path).rewrite(list(state.get("history", [])))

    def write_epoch(self, state: Mapping[str, Any]) -> None:
        """An epoch's files: checkpoint.pt first (the record), then what derives from it."""
        if not self.writes:
            return
        epoch = int(state["epoch"])
        kept = f"; the last good checkpoint is epoch {epoch - 1}" if epoch > 1 else ""
        with interrupts_deferred():
            with writing(self.file(ckpt.CHECKPOINT), kept):
                ckpt.save_checkpoint(self.file(ckpt.CHECKPOINT), state)
            self._derived(state)
            history = state.get("history") or []
            if self.board is not None and history:
                with writing(self.path / tensorboard_log.EVENTS):
                    self.board.epoch(history[-1])

    def finish(self, model: nn.Module, graph: Graph, cfg: TrainConfig, history: list[dict[str, Any]], summary: dict[str, Any], grad_norms: bool = False) -> None:
        """After training: a closed-form run's weights and metrics (it has no checkpoint), the
        pictures, and summary.json last (the mark of a finished run)."""
        if not self.writes:
            return
        kept = f"; the trained weights are in {self.file(ckpt.WEIGHTS)}"
        with interrupts_deferred():
            if cfg.solver == "closed_form":
                with writing(self.file(ckpt.WEIGHTS)):
                    ckpt.save_weights(model, self.file(ckpt.WEIGHTS))
                with writing(self.file(metrics.METRICS), kept):
                    metrics.MetricsLog(self.path).rewrite(history)
                with writing(self.path / tensorboard_log.EVENTS, kept):
                    tensorboard_log.write_history(self.path, cfg.model_dump(mode="json"), history)
            with writing(self.file(metrics.CURVES), kept):
                metrics.plot_curves(history, self.file(metrics.CURVES), title=graph.name)
            if grad_norms:
                with writing(self.file(metrics.GRAD_NORMS), kept):
                    metrics.plot_grad_norms(history, self.file(metrics.GRAD_NORMS), title=f"{graph.name}: gradient norm per layer")
            with writing(self.file(metrics.SUMMARY), kept):
                metrics.write_json(self.file(metrics.SUMMARY), summary)

    def finish_kfold(self, history: list[dict[str, Any]], summary: dict[str, Any]) -> None:
        """A k-fold run keeps no weights: its per-fold rows, then summary.json."""
        if not self.writes:
            return
        with interrupts_deferred():
            with writing(self.file(metrics.METRICS)):
                metrics.MetricsLog(self.path).rewrite(history)
            with writing(self.file(metrics.SUMMARY)):
                metrics.write_json(self.file(metrics.SUMMARY), summary)
