"""Writing a diagram to disk: the format comes from the file's suffix.

`.dot` is the DOT source and needs nothing else; the other formats run Graphviz's `dot`
program. Where it is missing the user still gets the `.dot` file and one line on how to
install Graphviz, never a traceback.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import graphviz

from netspec.errors import NetspecError

FORMATS: dict[str, str | None] = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": None, ".gv": None, ".html": "html"}
# Graphviz's layout grows much faster than linearly (here: 600 boxes 4 s, 1,200 boxes 35 s; a
# 10,000-layer branching spec ran over 600 s), so past this many we refuse and say what works.
MAX_BOXES = 1000
DOT_TIMEOUT_S = 120.0  # and a hard stop for the `dot` process, whatever the size
INSTALL_HINT = (
    "install Graphviz (Debian/Ubuntu: `sudo apt-get install graphviz`, macOS: `brew install graphviz`, "
    "conda: `conda install -c conda-forge graphviz`)"
)


class DrawError(NetspecError):
    """A diagram cannot be written (unknown format, Graphviz failed)."""


class GraphvizNotFound(DrawError):
    """Graphviz's `dot` program is not on PATH; the DOT source was written instead."""


def output_format(path: Path) -> str | None:
    """The format for `path` (None: DOT source, "html": the viewer page); refuses unknown suffixes."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        known = ", ".join(s for s in FORMATS if s != ".gv")
        raise DrawError(f"{path}: cannot draw to {suffix or 'a file without a suffix'}; use one of {known}")
    return FORMATS[suffix]


def check_size(boxes: int, path: Path, limit: int = MAX_BOXES) -> None:
    """Refuse a picture Graphviz would take minutes to lay out; name what works instead."""
    if boxes > limit:
        raise DrawError(
            f"cannot write {path}: the diagram has {boxes:,} boxes, more than Graphviz lays out in reasonable time "
            f"(limit {limit:,}, --max-boxes); draw blocks as single boxes with --depth N, or write the interactive "
            f"viewer: -o {path.with_suffix('.html').name}"
        )


def write(dot: graphviz.Digraph, path: Path, timeout: float = DOT_TIMEOUT_S) -> Path:
    """Write `dot` to `path` in the format its suffix names; return `path`.

    The `dot` program is stopped after `timeout` seconds (a `DrawError`, nothing written)."""
    fmt = output_format(path)
    if fmt is None:
        return _save(path, dot.source.encode("utf-8"))
    if fmt == "png":
        dot.graph_attr["dpi"] = "144"  # sharp enough for a README on a high-density screen
    try:
        done = subprocess.run(["dot", f"-T{fmt}"], input=dot.source.encode("utf-8"), capture_output=True, timeout=timeout)
    except FileNotFoundError:
        source = _save(path.with_suffix(".dot"), dot.source.encode("utf-8"))
        raise GraphvizNotFound(
            f"cannot write {path}: Graphviz's `dot` program is not installed; {INSTALL_HINT}. "
            f"Wrote the diagram's source to {source} (then: dot -T{fmt} {source} -o {path})"
        ) from None
    except subprocess.TimeoutExpired:
        raise DrawError(
            f"cannot write {path}: Graphviz did not finish within {timeout:g} s; draw fewer boxes with --depth N, "
            f"or write the interactive viewer: -o {path.with_suffix('.html').name}"
        ) from None
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        raise DrawError(f"cannot write {path}: dot failed: {detail[-1] if detail else f'exit code {done.returncode}'}")
    return _save(path, done.stdout)


def _save(path: Path, data: bytes) -> Path:
    from netspec.files import atomic_write

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)
    except OSError as exc:
        raise DrawError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
