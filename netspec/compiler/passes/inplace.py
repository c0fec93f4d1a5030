"""In-place activations: where nothing else needs the value, an activation overwrites it
(torch's `inplace=True`, as torchvision writes its ReLU, ReLU6, SiLU and Hardswish), so the
compiled network makes the same calls as the hand-written one.

An activation `a = act(p)` runs in place (`a.meta["inplace"] = True`) only when
- its op has an in-place form for its attrs (`OpDef.inplace`; a leaky ReLU with a negative
  slope has none: torch cannot take its gradient in place);
- `p` has no other user (nothing else reads the value it overwrites);
- `p` is not the network's input (the caller's tensor) nor its output;
- `p`'s op makes a fresh tensor: not a view of another value (flatten, permute, split) nor
  an op that may hand its input back unchanged (dropout and stochastic depth in eval mode);
- `p`'s op does not keep its result for backward (sigmoid, tanh, softmax, or an activation
  that is itself in place and keeps its result): overwriting it would break that gradient.
Batch norm, conv, linear, add and concat keep their inputs, never their result: an activation
after them is always safe. The memory plan (compiler/memory.py) follows the marks: an in-place
node shares its input's storage and saves what `OpDef.inplace` says.
"""
from __future__ import annotations

from netspec.compiler import registry
from netspec.compiler.graph import INPUT, Graph, Node
from netspec.compiler.registry import Saved

# Families whose output may be (a view of) an input, or one element of a module's tuple.
_NOT_FRESH = {"reshape", "regularization", "sequence", "attention"}


def saved(graph: Graph, node: Node) -> Saved:
    """What autograd keeps of `node` for backward: its in-place form's rule where it is marked."""
    op = registry.get(node.op)
    assert op is not None and node.shape is not None
    in_shapes = [graph.node(i).shape for i in node.inputs]
    if node.meta.get("inplace") and op.inplace is not None:
        rule = op.inplace(node.attrs, in_shapes, node.shape)  # type: ignore[arg-type]
        if rule is not None:
            return rule
    return op.saved(node.attrs, in_shapes, node.shape)  # type: ignore[arg-type]


def _may_overwrite(graph: Graph, node: Node, users: dict[str, list[str]]) -> bool:
    op = registry.get(node.op)
    if op is None or op.inplace is None or len(node.inputs) != 1 or node.shape is None:
        return False
    source = graph.node(node.inputs[0])
    if source.op == INPUT or source.name == graph.output or users[source.name] != [node.name]:
        return False
    producer = registry.get(source.op)
    if producer is None or producer.view or producer.family in _NOT_FRESH or source.shape is None:
        return False
    if saved(graph, source).output:
        return False
    return op.inplace(node.attrs, [source.shape], node.shape) is not None


def mark_inplace(graph: Graph) -> Graph:
    """Mark every activation that may overwrite its input (in graph order, so a chain of
    activations sees whether the one before it keeps its result)."""
    users = graph.users()
    for node in graph.ops():
        node.meta.pop("inplace", None)
        if _may_overwrite(graph, node, users):
            node.meta["inplace"] = True
    return graph
