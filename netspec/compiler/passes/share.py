"""Weight sharing: `share: NAME` makes a layer (or every layer of a block) use another's parameters.

The rules, checked statically (no torch), each error at the `share:` that breaks it:
- NAME is a layer or a block (a group, a block call), looked up from the sharing layer's
  scope outwards: in a block body first its own layers, then the enclosing scopes, up to the
  network (`enc` from `pair.right.0` tries `pair.right.enc`, `pair.enc`, `enc`); dots reach
  into groups (`left.fc`).
- A layer shares a layer; a block shares a block of the same structure (the layers that have
  parameters at the same relative names), pairing them one to one.
- Two paired layers share the parameters they both have by name and shape (`OpDef.weights`);
  the sharing op's first one (its weight) must be among them. A linear D→V shares an
  embedding's V×D weight (tied input and output embeddings) and keeps its own bias; a
  conv_transpose2d shares a conv2d's weight (a tied autoencoder) and keeps its own bias, of
  another size. A parameter not shared stays the sharing layer's own (and is counted there).
- No layer shares itself, a block it is part of, or (through others) a layer that shares it.

Each sharing node gets `meta["shares"]` = {parameter: owning node} (chains resolved to the
owner) and its `params` count loses those tensors, so every total (layer table, budgets,
diff, memory plan) counts a shared tensor once. The torch builders tie them as one
`nn.Parameter` (codegen/torch_fx.py, codegen/source.py).
"""
from __future__ import annotations

import math

from netspec.compiler import registry
from netspec.compiler.graph import INPUT, Graph, Node
from netspec.compiler.schema_base import did_you_mean
from netspec.compiler.shapes import Shape, fmt
from netspec.errors import Location, SpecError

MAX_KNOWN = 12  # names listed after an unknown one


def _what(graph: Graph, path: str) -> str:
    """`linear 'head'` or `block 'enc' (mlp)`, as messages name things."""
    if path in graph:
        return f"{graph.node(path).op} {path!r}"
    return f"block {path!r} ({graph.scopes[path].kind})"


def _exists(graph: Graph, path: str) -> bool:
    return (path in graph and path != INPUT) or path in graph.scopes


def resolve(graph: Graph, sharer: str, name: str, where: Location | None) -> str:
    """The path `name` means at `sharer`: its scope first, then the enclosing ones."""
    parts = sharer.split(".")[:-1]
    for depth in range(len(parts), -1, -1):
        candidate = ".".join(parts[:depth] + [name])
        if _exists(graph, candidate):
            return candidate
    known: list[str] = []
    for depth in range(len(parts), -1, -1):
        prefix = ".".join(parts[:depth])
        start = len(prefix) + 1 if prefix else 0
        for path in [n.name for n in graph] + list(graph.scopes):
            if path.startswith(prefix + "." if prefix else "") and path != INPUT and "." not in path[start:]:
                if path[start:] not in known:
                    known.append(path[start:])
    listed = ", ".join(known[:MAX_KNOWN]) + (", ..." if len(known) > MAX_KNOWN else "")
    raise SpecError.at(where, f"share: {name!r} names no layer or block in this scope or an enclosing one{did_you_mean(name, known)} (known: {listed})")


def _weights(graph: Graph, node: Node, where: Location | None) -> dict[str, Shape]:
    op = registry.get(node.op)
    assert op is not None
    if op.weights is None:
        if not node.params:  # an activation, a pooling: nothing to share
            return {}
        raise SpecError.at(where, f"share: {node.op} {node.name!r} does not declare its parameters (OpDef.weights), so it cannot share them")
    return op.weights(node.attrs, [graph.node(i).shape for i in node.inputs])  # type: ignore[misc]


def _members(graph: Graph, scope: str) -> dict[str, Node]:
    """The layers with parameters inside a block, by their path relative to it."""
    return {n.name[len(scope) + 1:]: n for n in graph.ops() if n.name.startswith(scope + ".") and n.params}


def _pairs(graph: Graph, sharer: str, target: str, where: Location | None) -> list[tuple[Node, Node]]:
    """(sharing node, shared node) pairs of one `share:`."""
    if target == sharer:
        raise SpecError.at(where, f"share: {_what(graph, sharer)} cannot share itself")
    if sharer.startswith(target + ".") or target.startswith(sharer + "."):
        inner, outer = (sharer, target) if sharer.startswith(target + ".") else (target, sharer)
        raise SpecError.at(where, f"share: {_what(graph, inner)} is part of {_what(graph, outer)}; a layer cannot share a block it is in")
    if (sharer in graph) != (target in graph):
        raise SpecError.at(where, f"share: {_what(graph, sharer)} cannot share {_what(graph, target)}: a layer shares a layer, a block a block")
    if sharer in graph:
        return [(graph.node(sharer), graph.node(target))]
    mine, theirs = _members(graph, sharer), _members(graph, target)
    if not theirs:
        raise SpecError.at(where, f"share: {_what(graph, target)} has no parameters to share")
    for rel in list(mine) + list(theirs):
        if rel not in mine or rel not in theirs:
            has, lacks = (sharer, target) if rel in mine else (target, sharer)
            raise SpecError.at(
                where, f"share: {_what(graph, sharer)} and {_what(graph, target)} differ: {has}.{rel} has no counterpart {lacks}.{rel}"
            )
    return [(mine[rel], theirs[rel]) for rel in mine]


def _tie(graph: Graph, a: Node, b: Node, where: Location | None) -> list[str]:
    """The parameters `a` takes from `b`, checked."""
    mine, theirs = _weights(graph, a, where), _weights(graph, b, where)
    if not theirs:
        raise SpecError.at(where, f"share: {b.op} {b.name!r} has no parameters to share")
    common = [p for p in mine if p in theirs]
    if not common:
        raise SpecError.at(
            where,
            f"share: {a.op} {a.name!r} and {b.op} {b.name!r} have no parameter in common"
            f" ({a.op}: {', '.join(mine) or 'none'}; {b.op}: {', '.join(theirs)})",
        )
    main = next(iter(mine))  # the op's principal tensor (its weight) must be the one shared
    if main not in theirs or mine[main] != theirs[main]:
        label = f"its {main}" if main else "its parameter"
        there = f"{fmt(theirs[main])} there" if main in theirs else f"{b.op} has none (it has {', '.join(theirs)})"
        raise SpecError.at(where, f"share: {a.op} {a.name!r} cannot share {b.op} {b.name!r}: {label} is {fmt(mine[main])} here but {there}")
    return [p for p in common if mine[p] == theirs[p]]  # another of other size (a bias) stays its own


def share(graph: Graph) -> Graph:
    """The pass: resolve every `share:`, check it, record the ties and count each tensor once."""
    direct: dict[str, tuple[str, list[str], Location | None]] = {}  # node -> (node it shares, parameters, where)
    for sharer, (name, where) in graph.shares.items():
        target = resolve(graph, sharer, name, where)
        for a, b in _pairs(graph, sharer, target, where):
            if a.name in direct:
                raise SpecError.at(where, f"share: {a.op} {a.name!r} already shares {direct[a.name][0]!r}; a layer shares one other")
            direct[a.name] = (b.name, _tie(graph, a, b, where), where)
    for name, (_, params, where) in direct.items():
        node = graph.node(name)
        owners: dict[str, str] = {}
        for p in params:
            chain, current = [name], name
            while current in direct and p in direct[current][1]:
                current = direct[current][0]
                if current in chain:
                    raise SpecError.at(where, f"share: a cycle: {' -> '.join(chain + [current])}; one layer must own the parameters")
                chain.append(current)
            owners[p] = current
        node.meta["shares"] = owners
        shapes = _weights(graph, node, where)
        node.params -= sum(math.prod(shapes[p]) for p in owners)
    return graph


def tied(graph: Graph) -> list[tuple[str, str]]:
    """Every tied tensor as (its path in the sharing layer, its path in the owner), in graph
    order: `("head.weight", "embed.weight")`; "" names a parameter at the layer's own path."""
    out = []
    for node in graph.ops():
        for p, owner in node.meta.get("shares", {}).items():
            out.append((f"{node.name}.{p}" if p else node.name, f"{owner}.{p}" if p else owner))
    return out
