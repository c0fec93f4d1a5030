"""Weights and training checkpoints: written atomically, loaded safely, checked against the model.

A run folder holds `model.safetensors` (the weights alone, for eval and attacks) and
`checkpoint.pt` (model, optimizer, scheduler, epoch, RNG states: everything a resumed run
needs to continue bit for bit). Both are written to a temporary file, fsynced and renamed
over the old one, so a process killed at any moment leaves the last complete file. Loading
never unpickles code: safetensors, or `torch.load(weights_only=True)`. Anything wrong (a
missing, truncated or corrupt file; keys, shapes or dtypes that do not match the model;
NaN or inf weights) is a `CheckpointError` saying what, and never passes on torch's advice
to load with `weights_only=False`.
"""
from __future__ import annotations

import io
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from netspec.errors import CheckpointError
from netspec.files import atomic_write, open_regular, read_regular

__all__ = [
    "CHECKPOINT",
    "CheckpointError",
    "MAX_WEIGHTS_BYTES",
    "WEIGHTS",
    "check_state_dict",
    "load_checkpoint",
    "load_weights",
    "read_weights",
    "save_checkpoint",
    "save_weights",
    "unwrap",
]

WEIGHTS = "model.safetensors"
CHECKPOINT = "checkpoint.pt"
MAX_WEIGHTS_BYTES = 1 << 36  # 64 GiB: a weights file or checkpoint above this is refused before reading
_MAX_LISTED = 5
_NOT_A_CHECKPOINT = "not a valid netspec checkpoint (corrupt, truncated, or not written by netspec)"
_BLOCKED_GLOBAL = re.compile(r"GLOBAL\s+([\w.]+)")


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DDP and torch.compile wrappers (whose keys carry prefixes)."""
    from torch.nn.parallel import DistributedDataParallel

    while True:
        if isinstance(model, DistributedDataParallel):
            model = model.module
        elif type(model).__name__ == "OptimizedModule" and isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


# ------------------------------------------------------------------ weights (safetensors)
def save_weights(model: nn.Module | Mapping[str, torch.Tensor], path: Path) -> None:
    """A model's state dict (or a state dict itself) as safetensors (contiguous CPU copies)."""
    items = unwrap(model).state_dict() if isinstance(model, nn.Module) else model
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in items.items()}
    atomic_write(Path(path), st_save(state, metadata={"format": "pt", "producer": "netspec"}))


def _weights_file(source: str | os.PathLike[str]) -> Path:
    path = Path(source)
    if path.is_dir():
        if (path / WEIGHTS).is_file():
            return path / WEIGHTS
        if (path / CHECKPOINT).is_file():
            return path / CHECKPOINT
        raise CheckpointError(f"{path}: no {WEIGHTS} in this folder (is it a run folder?)")
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or folder")
    return path


def read_weights(source: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state dict stored in a run folder, a .safetensors file or a checkpoint.pt."""
    path = _weights_file(source)
    if path.suffix == ".safetensors":
        try:
            data = read_regular(path, MAX_WEIGHTS_BYTES)
        except OSError as exc:
            raise CheckpointError(f"{path}: cannot read the weights ({exc.strerror or exc})") from None
        try:
            return st_load(data)
        except (SafetensorError, ValueError, OSError) as exc:
            raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({exc})") from None
    state = load_checkpoint(path).get("model")
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: not a netspec checkpoint (no 'model' entry)")
    return dict(state)


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise `CheckpointError` listing missing and unexpected keys and shape mismatches,
    then for the first tensor of the wrong dtype or with NaN/inf values.

    `load_state_dict` would silently cast int8 or float64 tensors and happily load NaNs,
    and the user would only see `loss nan` (or a quietly wrong model) much later.
    """
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{source}: not a netspec checkpoint (its weights are a {type(state).__name__}, not a dict of tensors)")
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f"{source}: not a netspec checkpoint ({k!s} holds a {type(v).__name__}, not a tensor)")
    expected = unwrap(model).state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            more = f", ... ({len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
            problems.append(f"{label}: {', '.join(items[:_MAX_LISTED])}{more}")
    if problems:
        raise CheckpointError(f"{source}: weights do not match the model; " + "; ".join(problems))
    for k, v in expected.items():
        _check_tensor(k, state[k], v.dtype, source)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _check_tensor(key: str, tensor: torch.Tensor, want: torch.dtype, source: str) -> None:
    """One stored tensor has exactly the model's dtype and, if floating, only finite values."""
    if tensor.dtype != want:
        raise CheckpointError(
            f"{source}: {key} is stored as {_dtype_name(tensor.dtype)} but the model's is {_dtype_name(want)}; "
            "netspec does not cast weights silently"
        )
    if tensor.is_floating_point() or tensor.is_complex():
        finite = torch.isfinite(tensor)
        if not bool(finite.all()):
            bad = tensor[~finite]
            what = "NaN" if bool(torch.isnan(bad).any()) else "inf"
            raise CheckpointError(f"{source}: {key} holds {what} values ({int(bad.numel())} of {tensor.numel()}); the weights are unusable")


def load_weights(model: nn.Module, source: str | os.PathLike[str]) -> None:
    """Load weights into `model` from a run folder, a `.safetensors` file or a `checkpoint.pt`.

    Raises `CheckpointError` naming the file and what does not match (missing/unexpected
    keys, shapes) or that the file is corrupt or truncated. The model keeps its device.
    """
    state = read_weights(source)
    check_state_dict(model, state, str(_weights_file(source)))
    unwrap(model).load_state_dict(state)


# ------------------------------------------------------------------ training checkpoints
def save_checkpoint(path: Path, state: Mapping[str, Any]) -> None:
    """`torch.save` a dict of tensors, numbers, strings, lists and dicts (no code), atomically."""
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    atomic_write(Path(path), buffer.getbuffer())


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint with `weights_only=True`; a damaged file is a `CheckpointError`."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        f = open_regular(path, MAX_WEIGHTS_BYTES)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({exc.strerror or type(exc).__name__})") from None
    try:
        with f:  # once open, any failure (torch reports a truncated zip as OSError) means a bad file
            state = torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's own text advises re-running with weights_only=False (arbitrary code
        # execution): never pass that on, say what the file is instead.
        blocked = _BLOCKED_GLOBAL.search(str(exc))
        if blocked:
            raise CheckpointError(
                f"{path}: contains Python objects ({blocked.group(1)}) that netspec will not load; "
                "netspec checkpoints hold only tensors, numbers and strings"
            ) from None
        raise CheckpointError(f"{path}: {_NOT_A_CHECKPOINT}") from None
    except MemoryError:
        raise
    except Exception:  # random bytes make the unpickler fail in many ways (KeyError, IndexError, ...)
        raise CheckpointError(f"{path}: {_NOT_A_CHECKPOINT}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a netspec checkpoint (holds a {type(state).__name__})")
    return state
