"""`--resume auto`: continue the run in --out when it holds a checkpoint, else start it there.

This is what makes `torchrun --max-restarts N ... netspec train SPEC --out DIR --resume auto`
survive a killed worker: torchrun restarts the whole group with the same command, and the
restarted group continues from the last complete epoch instead of refusing the folder. The
command must describe the same run as the folder records (spec and overrides, resolved):
a different one is refused, so a typo cannot continue someone else's run.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from netspec.errors import TrainingError
from netspec.runtime.run import checkpoint as ckpt
from netspec.runtime.run.options import RunOptions
from netspec.runtime.run.run_dir import SPEC_FILE

__all__ = ["AUTO", "decide"]

AUTO = "auto"


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in list(a) + [k for k in b if k not in a]:
            found = _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
            if found:
                return found
        return None
    return None if a == b else (path or "the spec")


def decide(
    spec: str | os.PathLike[str] | None, overrides: Mapping[str, Any], options: RunOptions
) -> tuple[str | os.PathLike[str] | None, dict[str, Any], RunOptions]:
    """(spec, overrides, options) to run: a resume of --out when it holds a checkpoint of the
    same run, else a fresh start in --out."""
    from netspec.runtime.train.entry import resolve

    if options.out is None or spec is None:
        raise TrainingError("--resume auto needs a SPEC and --out (the run folder to continue, or to start in)")
    out = Path(options.out)
    if not (out / ckpt.CHECKPOINT).is_file():
        return spec, dict(overrides), dataclasses.replace(options, resume=None)
    tree = resolve(spec, overrides)[3]
    try:
        recorded = yaml.safe_load((out / SPEC_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TrainingError(f"--resume auto: {out / SPEC_FILE} cannot be read ({exc}); give another --out") from None
    differs = _first_difference(tree, recorded)
    if differs is not None:
        raise TrainingError(
            f"--resume auto: the run in {out} was started with a different {differs}; give another --out, or the same spec and options"
        )
    return None, {}, dataclasses.replace(options, resume=out, out=None)
