"""Static shape inference, in pure Python: each node's output shape from its inputs' shapes.

The rules live with the ops in the registry; this pass applies them in topological order
and turns a failed rule into an error that names the node, its YAML line and the numbers.
"""
from __future__ import annotations

import math

from netspec.compiler import registry
from netspec.compiler.graph import INPUT, Graph, Node
from netspec.compiler.shapes import ShapeError, Tokens, fmt
from netspec.errors import SpecError

MAX_ELEMENTS = 2**60  # elements of one tensor: ×8 bytes still fits torch's int64 sizes


def infer_node(graph: Graph, node: Node) -> None:
    """Set `node.shape` from its inputs (already inferred); raise a located `SpecError`."""
    if node.op == INPUT:
        node.shape = graph.input_shape
        return
    op = registry.get(node.op)
    assert op is not None, node.op
    in_shapes = [graph.node(i).shape for i in node.inputs]
    if not op.min_inputs <= len(in_shapes) <= op.max_inputs:
        want = op.min_inputs if op.min_inputs == op.max_inputs else f"{op.min_inputs} or more"
        raise SpecError.at(node.location, f"{node.op} {node.name!r}: takes {want} input(s), got {len(in_shapes)}")
    tokens = next((s for s in in_shapes if isinstance(s, Tokens)), None)
    if tokens is not None and not op.takes_tokens:
        raise SpecError.at(
            node.location,
            f"{node.op} {node.name!r}: expects float values, got {fmt(tokens)}; an embedding layer turns token ids into vectors",
        )
    try:
        shape = op.shape(node.attrs, in_shapes)  # type: ignore[arg-type]
        node.shape = shape if isinstance(shape, tuple) else tuple(shape)
    except ShapeError as exc:
        raise SpecError.at(node.location, f"{node.op} {node.name!r}: {exc}") from None
    if math.prod(node.shape) > MAX_ELEMENTS:
        raise SpecError.at(
            node.location,
            f"{node.op} {node.name!r}: output {fmt(node.shape)} has {math.prod(node.shape):.3g} elements;"
            f" no tensor can hold more than 2**60 (their size in bytes would overflow)",
        )
    if any(d <= 0 for d in node.shape):
        shown = ", ".join(fmt(s) for s in in_shapes)  # type: ignore[arg-type]
        raise SpecError.at(node.location, f"{node.op} {node.name!r}: empty output {fmt(node.shape)} from input {shown}")


def infer_shapes(graph: Graph, *, again: bool = False) -> Graph:
    """The pass: infer the shape of every node that has none (with `again`, of every node).

    Expansion already shaped each node it added, with this same rule; a graph built or
    edited from Python gets its missing shapes here (set a node's shape to None to redo it).
    """
    for node in graph.nodes():
        if again or node.shape is None:
            infer_node(graph, node)
    return graph
