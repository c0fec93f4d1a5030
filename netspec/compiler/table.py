"""The layer table of `netspec compile`: rows per layer, or per block when folded by depth."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from netspec.compiler.graph import Graph, Node
from netspec.compiler.shapes import Shape


@dataclass
class Row:
    name: str
    op: str
    shape: Shape
    params: int
    macs: int
    depth: int
    shared: tuple[str, ...] = ()  # the layers whose parameters this one uses (`share:`)


def rows(graph: Graph, depth: int | None = None, count: Callable[[Node], int] | None = None) -> list[Row]:
    """One row per primitive op; with `depth`, blocks nested `depth` deep are folded into one
    row each (0: every top-level block and named group is one row), as `netspec draw` does.
    `count` gives a node's MACs column (default its MACs; compiler/counting.py for others)."""
    count = count or (lambda n: n.macs)
    out: list[Row] = []
    folded: dict[str, Row] = {}
    for node in graph.ops():
        block_scopes = [s for s in node.scopes if graph.scopes[s].is_unit]
        if depth is not None and len(block_scopes) > depth:
            scope = block_scopes[depth]
            row = folded.get(scope)
            if row is None:
                row = folded[scope] = Row(scope, graph.scopes[scope].kind, node.shape or (), 0, 0, depth)
                out.append(row)
            row.shape, row.params, row.macs = node.shape or (), row.params + node.params, row.macs + count(node)
        else:
            shared = tuple(dict.fromkeys(node.meta.get("shares", {}).values()))
            out.append(Row(node.name, node.op, node.shape or (), node.params, count(node), len(block_scopes), shared))
    return out
