"""Diagrams of networks (`netspec draw`): the shaped graph IR drawn with Graphviz.

No torch and no model: the picture comes from the graph alone. `plan` decides what is
drawn (clusters, collapsed blocks, folded repeats), `dot` turns that into a graphviz
graph, `output` writes it in the format the file's suffix names.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from netspec.compiler.graph import Graph
from netspec.compiler.draw.dot import to_digraph
from netspec.compiler.draw.output import DOT_TIMEOUT_S, FORMATS, MAX_BOXES, DrawError, GraphvizNotFound, _save, check_size, output_format, write
from netspec.compiler.draw.plan import Plan, make_plan

if TYPE_CHECKING:
    import graphviz

__all__ = ["render", "digraph", "make_plan", "Plan", "DrawError", "GraphvizNotFound", "FORMATS", "RANKDIRS", "MAX_BOXES",
           "DOT_TIMEOUT_S"]

RANKDIRS = ("TB", "LR")


def digraph(
    graph: Graph,
    *,
    depth: int | None = None,
    rankdir: str = "TB",
    shapes: bool = True,
    title: str | None = None,
    fold_repeats: bool = True,
) -> "graphviz.Digraph":
    """The `graphviz.Digraph` of `graph` (its `.source` is the DOT text); see `render`."""
    layout = _plan(graph, depth, rankdir, fold_repeats)
    return to_digraph(layout, rankdir=rankdir.upper(), shapes=shapes, title=title)


def _plan(graph: Graph, depth: int | None, rankdir: str, fold_repeats: bool) -> Plan:
    if rankdir.upper() not in RANKDIRS:
        raise DrawError(f"rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")
    if depth is not None and depth < 0:
        raise DrawError(f"depth must be 0 or more, got {depth}")
    return make_plan(graph, depth=depth, fold_repeats=fold_repeats)


def render(
    graph: Graph,
    path: Path,
    *,
    depth: int | None = None,
    rankdir: str = "TB",
    shapes: bool = True,
    title: str | None = None,
    fold_repeats: bool = True,
    max_boxes: int = MAX_BOXES,
    timeout: float = DOT_TIMEOUT_S,
) -> Path:
    """Draw `graph` to `path` (.svg, .png, .pdf, .dot for the DOT source, or .html for the
    interactive viewer, which uses only `title` and `depth`: how deep blocks start open).

    depth: None draws every op; N draws blocks nested N deep as one box each (0: every
    top-level block and named group is one box). fold_repeats: consecutive identical
    blocks (same kind, arguments and shapes, shape in == shape out) are drawn once, `×n`.
    Raises `GraphvizNotFound` (after writing the `.dot` next to `path`) when `dot` is missing,
    `DrawError` for a picture of more than `max_boxes` boxes or a `dot` run past `timeout` seconds.
    """
    path = Path(path)
    fmt = output_format(path)  # refuse an unknown suffix before any work
    if fmt == "html":
        from netspec.compiler.draw.html import page

        return _save(path, page(graph, title=title, depth=depth).encode("utf-8"))
    layout = _plan(graph, depth, rankdir, fold_repeats)
    if fmt is not None:
        check_size(len(layout.items), path, max_boxes)
    return write(to_digraph(layout, rankdir=rankdir.upper(), shapes=shapes, title=title), path, timeout)
