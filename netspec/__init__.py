"""netspec: neural networks written down as data.

The notebook API, each function taking a spec as a path, YAML text, a dict, or what the
previous step returned:

    load(spec)               the validated spec (raises SpecError listing every problem)
    check(specs)             {file: graph or diagnostics} for files, folders, text or a dict
    build_graph(spec)        the shaped, counted graph IR
    compile(spec, seed=)     a torch.nn.Module (the only call that imports torch)
    summary(spec)            the layer table as data: shapes, params, MACs (memory with batch=)
    draw(spec, path)         the diagram as .svg, .png, .pdf or .dot
    diff(a, b)               what changed between two specs (also "REV:path" from git)
    train(spec, **settings)  a training run, as `netspec train` does it (the run folder, summary)

They live in `netspec.api` and are imported on first use, so that `import netspec` (and
`netspec check`) never imports torch; `help(netspec)` and `dir(netspec)` still list them.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
_API = ("load", "check", "build_graph", "compile", "summary", "draw", "diff", "train")
__all__ = [*_API, "NetspecError", "SpecError"]

from netspec.errors import NetspecError, SpecError


def __getattr__(name: str) -> Any:
    if name in _API:
        from netspec import api

        return getattr(api, name)
    raise AttributeError(f"module 'netspec' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The lazy API too, so that help(netspec) and completion list it."""
    return sorted(set(globals()) | set(_API))
