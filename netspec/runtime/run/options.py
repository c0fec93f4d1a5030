"""`RunOptions`: how a run is executed, kept apart from the spec's `train:` section so the
run folder, resume rules, trainer and entry points can all take it without importing each other."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunOptions"]


@dataclass
class RunOptions:
    """How to run (not what to train: that is the spec's `train:` section)."""

    device: str = "auto"
    amp: str | None = None
    channels_last: bool | None = None  # None: on for CUDA
    compile: bool = False
    deterministic: bool = False
    out: Path | None = None  # run folder; default runs/<spec name>/<timestamp>
    resume: Path | None = None
    data_dir: Path | None = None
    kfold: int | None = None
    grad_norms: bool = False
    save: bool = True  # write a run folder (False: train in memory only)
    quiet: bool = False
    bar: bool | None = None  # None: when stderr is a terminal
    threads: int | None = None  # CPU threads per process (torch.set_num_threads); None: torch's default
