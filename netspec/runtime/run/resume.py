"""Resume rules: a resume continues a run folder exactly as its spec.yaml records it, from
its last complete epoch; only more epochs may be asked for."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from netspec.compiler.pipeline import LoadedSpec
from netspec.compiler.train_schema import TrainConfig, with_overrides
from netspec.errors import TrainingError
from netspec.runtime.run import checkpoint as ckpt
from netspec.runtime.run.options import RunOptions
from netspec.runtime.run.run_dir import SPEC_FILE

__all__ = ["check_resume", "load_resume_state"]


def check_resume(options: RunOptions, overrides: Mapping[str, Any]) -> None:
    """A resume continues the run exactly as its spec.yaml records it: only more epochs may be asked for."""
    folder = Path(options.resume or "")
    if options.kfold:
        raise TrainingError("--resume and --kfold do not go together (k-fold runs keep no checkpoints)")
    if options.out is not None:
        raise TrainingError("--resume continues the run in its own folder; drop --out (copy the folder first to branch a run)")
    other = [k for k in overrides if k != "epochs"]
    if other:
        named = ", ".join(f"--{k.replace('_', '-')}" if "." not in k else f"--set {k}" for k in other)
        raise TrainingError(
            f"--resume continues the run as its {SPEC_FILE} records it; only --epochs may be changed (to train longer), not {named}; "
            "start a new run to change settings"
        )
    if not (folder / SPEC_FILE).is_file():
        raise TrainingError(f"--resume {folder}: not a run folder (no {SPEC_FILE})")
    if not (folder / ckpt.CHECKPOINT).exists():
        raise TrainingError(f"--resume {folder}: no epoch of this run completed (no {ckpt.CHECKPOINT}); start it again")


def _completed_epochs(state: Mapping[str, Any]) -> int | None:
    try:
        return int(state["epoch"])
    except (KeyError, TypeError, ValueError):
        return None  # Trainer.load reports the damage


def load_resume_state(options: RunOptions, loaded: LoadedSpec, cfg: TrainConfig) -> tuple[dict[str, Any], bool]:
    """The checkpoint to continue from, and whether spec.yaml must be rewritten (only when
    --epochs changes what will run)."""
    assert options.resume is not None
    state = ckpt.load_checkpoint(options.resume)
    done = _completed_epochs(state)
    if done is not None and cfg.epochs < done:
        raise TrainingError(f"--epochs {cfg.epochs}: this run already completed {done} epochs; give more to train longer")
    recorded = with_overrides(loaded.raw.get("train") if isinstance(loaded.raw, Mapping) else None, {})[0]
    return state, cfg.epochs != recorded.epochs  # spec.yaml changes only by what will run
