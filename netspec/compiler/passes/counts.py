"""Parameters and multiply-accumulates (MACs) per node, from the registry's counting rules.

MACs count the multiply-accumulates of one example's forward pass (conv and linear layers);
the batch dimension stays symbolic: multiply by the batch size.
"""
from __future__ import annotations

from netspec.compiler import registry
from netspec.compiler.graph import INPUT, Graph


def count(graph: Graph) -> Graph:
    for node in graph.nodes():
        if node.op == INPUT:
            continue
        op = registry.get(node.op)
        assert op is not None and node.shape is not None
        in_shapes = [graph.node(i).shape for i in node.inputs]
        node.params = op.count_params(node.attrs, in_shapes, node.shape)  # type: ignore[arg-type]
        node.macs = op.count_macs(node.attrs, in_shapes, node.shape)  # type: ignore[arg-type]
    return graph
