"""netspec: neural networks written down as data.

The public API (`load`, `check`, `compile`, `summary`, `draw`, `train`) lives in `netspec.api`; it is
re-exported lazily so that `import netspec` (and `netspec check`) never imports torch.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["load", "check", "compile", "summary", "draw", "build_graph", "train", "NetspecError", "SpecError"]

from netspec.errors import NetspecError, SpecError


def __getattr__(name: str) -> Any:
    if name in {"load", "check", "compile", "summary", "draw", "build_graph", "train"}:
        from netspec import api

        return getattr(api, name)
    raise AttributeError(f"module 'netspec' has no attribute {name!r}")
