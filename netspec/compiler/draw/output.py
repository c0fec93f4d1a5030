"""Writing a diagram to disk: the format comes from the file's suffix.

`.dot` is the DOT source and needs nothing else; the other formats run Graphviz's `dot`
program. Where it is missing the user still gets the `.dot` file and one line on how to
install Graphviz, never a traceback.
"""
from __future__ import annotations

from pathlib import Path

import graphviz

from netspec.errors import NetspecError

FORMATS: dict[str, str | None] = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": None, ".gv": None}
INSTALL_HINT = (
    "install Graphviz (Debian/Ubuntu: `sudo apt-get install graphviz`, macOS: `brew install graphviz`, "
    "conda: `conda install -c conda-forge graphviz`)"
)


class DrawError(NetspecError):
    """A diagram cannot be written (unknown format, Graphviz failed)."""


class GraphvizNotFound(DrawError):
    """Graphviz's `dot` program is not on PATH; the DOT source was written instead."""


def output_format(path: Path) -> str | None:
    """The graphviz format for `path` (None: DOT source); refuses unknown suffixes."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        known = ", ".join(s for s in FORMATS if s != ".gv")
        raise DrawError(f"{path}: cannot draw to {suffix or 'a file without a suffix'}; use one of {known}")
    return FORMATS[suffix]


def write(dot: graphviz.Digraph, path: Path) -> Path:
    """Write `dot` to `path` in the format its suffix names; return `path`."""
    fmt = output_format(path)
    if fmt is None:
        return _save(path, dot.source.encode("utf-8"))
    if fmt == "png":
        dot.graph_attr["dpi"] = "144"  # sharp enough for a README on a high-density screen
    try:
        data = dot.pipe(format=fmt, quiet=True)
    except graphviz.ExecutableNotFound:
        source = _save(path.with_suffix(".dot"), dot.source.encode("utf-8"))
        raise GraphvizNotFound(
            f"cannot write {path}: Graphviz's `dot` program is not installed; {INSTALL_HINT}. "
            f"Wrote the diagram's source to {source} (then: dot -T{fmt} {source} -o {path})"
        ) from None
    except graphviz.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        raise DrawError(f"cannot write {path}: dot failed: {detail[-1] if detail else exc}") from None
    return _save(path, data)


def _save(path: Path, data: bytes) -> Path:
    from netspec.files import atomic_write

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)
    except OSError as exc:
        raise DrawError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
