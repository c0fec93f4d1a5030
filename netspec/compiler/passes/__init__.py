"""The passes over a graph, in the order they run. Each takes a Graph and returns it.

Expansion (spec -> graph) is the front end in `expand.py`; it already infers shapes as it
goes (blocks may depend on their input's shape), and `infer_shapes` runs again here over the
finished graph, so a graph built or edited from Python gets the same checks.
"""
from __future__ import annotations

from typing import Callable

from netspec.compiler.graph import Graph
from netspec.compiler.passes.counts import count
from netspec.compiler.passes.lint import lint
from netspec.compiler.passes.shapes import infer_shapes

Pass = Callable[[Graph], Graph]

PASSES: tuple[tuple[str, Pass], ...] = (
    ("lint", lint),
    ("shapes", infer_shapes),
    ("counts", count),
)


def run_passes(graph: Graph) -> Graph:
    for _, run in PASSES:
        graph = run(graph)
    return graph
