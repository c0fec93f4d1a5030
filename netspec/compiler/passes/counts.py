"""Parameters and multiply-accumulates (MACs) per node, from the registry's counting rules.

MACs count the multiply-accumulates of one example's forward pass (conv and linear layers);
the batch dimension stays symbolic: multiply by the batch size.
"""
from __future__ import annotations

from netspec.compiler import registry
from netspec.compiler.graph import INPUT, Graph
from netspec.compiler.passes.shapes import MAX_ELEMENTS
from netspec.errors import SpecError

MAX_COUNT = 2**63 - 1


def count(graph: Graph) -> Graph:
    for node in graph.nodes():
        if node.op == INPUT:
            continue
        op = registry.get(node.op)
        assert op is not None and node.shape is not None
        in_shapes = [graph.node(i).shape for i in node.inputs]
        node.params = op.count_params(node.attrs, in_shapes, node.shape)  # type: ignore[arg-type]
        node.macs = op.count_macs(node.attrs, in_shapes, node.shape)  # type: ignore[arg-type]
        if node.params > MAX_ELEMENTS:
            raise SpecError.at(node.location, f"{node.op} {node.name!r}: {node.params:.3g} parameters; no tensor can hold more than 2**60")
        if node.macs > MAX_COUNT:
            raise SpecError.at(node.location, f"{node.op} {node.name!r}: {node.macs:.3g} MACs per example, more than a 64-bit count holds")
    if graph.total_params > MAX_ELEMENTS or graph.total_macs > MAX_COUNT:
        raise SpecError.at(None, f"{graph.source or graph.name}: {graph.total_params:.3g} parameters and {graph.total_macs:.3g} MACs overflow 64-bit counts")
    return graph
