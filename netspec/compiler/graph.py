"""The graph IR: a networkx DiGraph of primitive ops, each node a plain `Node` record.

Blocks are gone by the time a graph exists; what remains of them is each node's `scopes`
(the nested block instances it came from), which diagrams use for clusters and the layer
table for folding. The IR knows nothing of YAML syntax or of torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import networkx as nx

from netspec.compiler.shapes import Shape
from netspec.errors import Location

INPUT = "input"


@dataclass
class Scope:
    """One block instance (or sequential/parallel group) in the expanded network."""

    path: str  # dotted module path, e.g. "b3.0"
    kind: str  # block or group name: "residual", "inception", "sequential", ...
    location: Location | None
    params: dict[str, Any] = field(default_factory=dict)
    is_block: bool = True  # False for plain sequential groups and parallel branches


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


@dataclass
class Graph:
    """The network as a DAG of `Node`s, with its scopes, input and output."""

    name: str
    input_shape: Shape
    nx: nx.DiGraph = field(default_factory=nx.DiGraph)
    scopes: dict[str, Scope] = field(default_factory=dict)
    output: str = INPUT
    source: str = ""  # the spec file, for messages

    def add(self, node: Node) -> Node:
        self.nx.add_node(node.name, node=node)
        for src in node.inputs:
            self.nx.add_edge(src, node.name)
        return node

    def node(self, name: str) -> Node:
        return self.nx.nodes[name]["node"]

    def __contains__(self, name: str) -> bool:
        return name in self.nx

    def __len__(self) -> int:
        return self.nx.number_of_nodes()

    def nodes(self) -> Iterator[Node]:
        """Nodes in a topological order that keeps the order they were written in."""
        order = {name: i for i, name in enumerate(self.nx.nodes)}
        for name in nx.lexicographical_topological_sort(self.nx, key=order.__getitem__):
            yield self.node(name)

    def ops(self) -> Iterator[Node]:
        """Nodes other than the input."""
        return (n for n in self.nodes() if n.op != INPUT)

    @property
    def output_shape(self) -> Shape:
        shape = self.node(self.output).shape
        assert shape is not None
        return shape

    @property
    def total_params(self) -> int:
        return sum(n.params for n in self.nodes())

    @property
    def total_macs(self) -> int:
        return sum(n.macs for n in self.nodes())
