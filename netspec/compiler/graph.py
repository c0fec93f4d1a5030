"""The graph IR: primitive ops as plain `Node` records in a dict, in the order they were
added; an edge is a name in a node's `inputs`. There is no other edge store, so a pass edits
a graph by editing nodes.

`Graph.nx` is a networkx DiGraph view, built on demand (networkx costs `netspec check` a
tenth of a second to import), for graph algorithms that pay for it: finding a cycle to
report, aligning two graphs, laying out a drawing. Neighbour lookups need no networkx:
`Graph.users()`.

Blocks are gone by the time a graph exists; what remains of them is each node's `scopes`
(the nested block instances it came from), which diagrams use for clusters and the layer
table for folding. Each node's `meta` is an open dict where passes record facts of their
own (as torch.fx's `Node.meta`). The IR knows nothing of YAML syntax or of torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from netspec.compiler.shapes import Shape
from netspec.errors import Location

if TYPE_CHECKING:
    import networkx

INPUT = "input"


@dataclass
class Scope:
    """One block instance (or sequential/parallel group) in the expanded network."""

    path: str  # dotted module path, e.g. "b3.0"
    kind: str  # block or group name: "residual", "inception", "sequential", ...
    location: Location | None
    params: dict[str, Any] = field(default_factory=dict)
    is_block: bool = True  # False for plain sequential groups and parallel branches
    doc: str = ""  # the block's description (ejected source writes it as a docstring literal)

    @property
    def is_unit(self) -> bool:
        """Shown as one unit (a box in diagrams, a row when tables fold): every block, and
        groups the spec gave a name (not the positional ones, "0", "1", ...)."""
        return self.is_block or not self.path.rsplit(".", 1)[-1].isdigit()


@dataclass
class Node:
    """One primitive op of the network."""

    name: str  # dotted module path; also its torch module name
    op: str
    attrs: dict[str, Any]
    inputs: list[str]
    scopes: tuple[str, ...] = ()
    location: Location | None = None
    shape: Shape | None = None
    params: int = 0
    macs: int = 0
    init: Any = None  # InitSpec resolved from the layer, its blocks or the spec default
    meta: dict[str, Any] = field(default_factory=dict)  # facts later passes add (free-form, by key)


@dataclass
class Graph:
    """The network as a DAG of `Node`s, with its scopes, input and output.

    Nodes are kept in a dict in the order they were added (edges are each node's `inputs`);
    `graph.nx` gives a snapshot of it as a `networkx.DiGraph` for graph algorithms, built when
    asked for, so that `netspec check` does not pay networkx's import time.
    """

    name: str
    input_shape: Shape
    scopes: dict[str, Scope] = field(default_factory=dict)
    output: str = INPUT
    source: str = ""  # the spec file, for messages
    limits: Any = None  # the spec's `budget:` as compiler.budget.Limits (None: no budget section)
    description: str = ""  # the spec's description
    # `share:` as written: the sharing layer's or block's path -> (the name it shares, where);
    # the `share` pass (passes/share.py) resolves them into each node's meta["shares"]
    shares: dict[str, tuple[str, Location | None]] = field(default_factory=dict)
    _nodes: dict[str, Node] = field(default_factory=dict, repr=False)

    def add(self, node: Node) -> Node:
        self._nodes[node.name] = node
        return node

    def node(self, name: str) -> Node:
        return self._nodes[name]

    def __contains__(self, name: str) -> bool:
        return name in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[Node]:
        """Nodes in the order they were added (whatever their edges; `nodes()` orders them)."""
        return iter(list(self._nodes.values()))

    def verify(self) -> None:
        """The IR's invariants (what every pass must leave true): each node filed under its
        own name, every input and the output exist, no cycle. Raises ValueError."""
        for name, node in self._nodes.items():
            if name != node.name:
                raise ValueError(f"node {node.name!r} is filed under {name!r}")
            missing = [src for src in node.inputs if src not in self._nodes]
            if missing:
                raise ValueError(f"node {name!r}: input {missing[0]!r} does not exist")
        if self.output not in self._nodes:
            raise ValueError(f"output {self.output!r} does not exist")
        for _ in self.nodes():  # raises on a cycle
            pass

    @property
    def nx(self) -> "networkx.DiGraph":
        """The graph now, as a networkx DiGraph; each node's record is its `node` attribute.
        A snapshot: built on each call, so edits made since are in it."""
        import networkx

        digraph = networkx.DiGraph(name=self.name)
        for node in self._nodes.values():
            digraph.add_node(node.name, node=node)
        for node in self._nodes.values():
            digraph.add_edges_from((src, node.name) for src in node.inputs)
        return digraph

    def nodes(self) -> Iterator[Node]:
        """Nodes in a topological order that keeps the order they were added in.

        Raises ValueError on a cycle or an input that names no node (lint reports those).
        """
        placed: set[str] = set()
        pending = list(self._nodes.values())
        while pending:
            waiting = []
            for node in pending:
                if all(i in placed for i in node.inputs):
                    placed.add(node.name)
                    yield node
                else:
                    waiting.append(node)
            if len(waiting) == len(pending):
                raise ValueError(f"graph {self.name!r} has a cycle or a dangling input at {waiting[0].name!r}")
            pending = waiting

    def ops(self) -> Iterator[Node]:
        """Nodes other than the input."""
        return (n for n in self.nodes() if n.op != INPUT)

    def users(self) -> dict[str, list[str]]:
        """For each node, the nodes that take its output."""
        out: dict[str, list[str]] = {name: [] for name in self._nodes}
        for node in self._nodes.values():
            for src in node.inputs:
                out.setdefault(src, []).append(node.name)
        return out

    @property
    def output_shape(self) -> Shape:
        shape = self.node(self.output).shape
        assert shape is not None
        return shape

    @property
    def total_params(self) -> int:
        return sum(n.params for n in self._nodes.values())

    @property
    def total_macs(self) -> int:
        return sum(n.macs for n in self._nodes.values())
