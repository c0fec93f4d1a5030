"""The run folder: choosing/creating it, refusing an --out that would overwrite something,
checking it is writable before any work, the resolved spec.yaml, and the files written after
training. Rank 0 alone writes here.

Files: spec.yaml (overrides applied), metrics.jsonl, summary.json, curves.png,
model.safetensors, checkpoint.pt [, grad_norms.png].
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from netspec.compiler.graph import Graph
from netspec.compiler.train_schema import TrainConfig
from netspec.errors import TrainingError
from netspec.runtime import checkpoint as ckpt
from netspec.runtime import metrics
from netspec.runtime import tensorboard_log
from netspec.runtime.options import RunOptions

__all__ = [
    "RUN_FILES",
    "SPEC_FILE",
    "check_out_folder",
    "check_writable",
    "prepare_run_dir",
    "write_results",
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


def _is_unfinished_run(folder: Path) -> bool:
    """A run folder of ours in which no epoch completed (safe to start again in)."""
    try:
        names = {p.name for p in folder.iterdir()}
        header = (folder / SPEC_FILE).read_text(encoding="utf-8", errors="replace")[: len(_HEADER)]
    except OSError:
        return False
    return header == _HEADER and ckpt.CHECKPOINT not in names and names <= set(RUN_FILES)


def check_out_folder(out: Path) -> None:
    """Refuse an --out that would overwrite something: a run (use --resume) or a folder of the user's own files."""
    if str(out).strip() == "":
        raise TrainingError("--out: empty folder name; give the run folder to create")
    if out.exists() and not out.is_dir():
        raise TrainingError(f"--out {out}: is a file, not a folder")
    if (out / ckpt.CHECKPOINT).exists():
        raise TrainingError(f"--out {out}: already holds a run; use --resume {out} to continue it, or another folder")
    if out.is_dir() and any(out.iterdir()) and not _is_unfinished_run(out):
        raise TrainingError(f"--out {out}: folder is not empty and not a netspec run folder; give a new folder (or --resume RUN_DIR to continue a run)")


def check_writable(folder: Path, names: Iterable[str] = RUN_FILES) -> None:
    """Before the work (training, an attack): every file it will write can be written (no
    directory in its place, the folder accepts files), so finished work is never lost to a
    write error."""
    for name in names:
        if (folder / name).is_dir():
            raise TrainingError(f"{folder / name}: is a directory; netspec writes a file there (move it away or choose another --out)")
    try:
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".netspec-probe-")
        probe.close()
    except OSError as exc:
        raise TrainingError(f"{folder}: cannot write there ({exc.strerror or exc}); choose another --out") from None


def _spec_text(tree: dict[str, Any], source: str) -> str:
    return f"{_HEADER} from {source} (command-line overrides applied)\n" + yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)


def prepare_run_dir(options: RunOptions, name: str, tree: dict[str, Any], source: str, write_spec: bool = True) -> Path:
    run_dir = options.resume or options.out
    if run_dir is None:
        run_dir = _new_run_dir(name)
    elif options.resume is None:
        check_out_folder(Path(run_dir))
        try:
            Path(run_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrainingError(f"--out {run_dir}: cannot create ({exc.strerror or exc})") from None
    run_dir = Path(run_dir)
    check_writable(run_dir)
    if write_spec:
        text = _spec_text(tree, source)
        with writing(run_dir / SPEC_FILE):
            ckpt.atomic_write(run_dir / SPEC_FILE, lambda f: f.write(text.encode()))
    return run_dir


def write_results(run_dir: Path, model: nn.Module, graph: Graph, cfg: TrainConfig, history: list[dict[str, Any]], summary: dict[str, Any], options: RunOptions) -> None:
    """After training, weights first, pictures last: a failed picture never costs the weights."""
    if cfg.solver == "closed_form":
        with writing(run_dir / ckpt.WEIGHTS):
            ckpt.save_weights(model, run_dir / ckpt.WEIGHTS)
    kept = f"; the trained weights are in {run_dir / ckpt.WEIGHTS}"
    if cfg.solver == "closed_form":
        with writing(run_dir / metrics.METRICS, kept):
            metrics.MetricsLog(run_dir).rewrite(history)
        with writing(run_dir / tensorboard_log.EVENTS, kept):
            tensorboard_log.write_history(run_dir, cfg.model_dump(mode="json"), history)
    with writing(run_dir / metrics.SUMMARY, kept):
        metrics.write_json(run_dir / metrics.SUMMARY, summary)
    with writing(run_dir / metrics.CURVES, kept):
        metrics.plot_curves(history, run_dir / metrics.CURVES, title=graph.name)
    if options.grad_norms:
        with writing(run_dir / metrics.GRAD_NORMS, kept):
            metrics.plot_grad_norms(history, run_dir / metrics.GRAD_NORMS, title=f"{graph.name}: gradient norm per layer")
