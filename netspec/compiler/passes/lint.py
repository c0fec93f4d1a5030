"""Structural checks of a graph: dangling inputs, cycles, unused layers, one output."""
from __future__ import annotations

import networkx as nx

from netspec.compiler.graph import INPUT, Graph
from netspec.errors import Diagnostic, SpecError


def lint(graph: Graph) -> Graph:
    problems: list[Diagnostic] = []
    for name in graph.nx.nodes:
        if "node" not in graph.nx.nodes[name]:
            users = ", ".join(repr(u) for u in graph.nx.successors(name))
            problems.append(Diagnostic(None, f"{graph.source}: input {name!r} of {users} does not exist"))
    if problems:
        raise SpecError(problems)
    if not nx.is_directed_acyclic_graph(graph.nx):
        cycle = " -> ".join(src for src, _ in nx.find_cycle(graph.nx))
        raise SpecError([Diagnostic(None, f"{graph.source}: the network has a cycle: {cycle}")])
    if graph.output not in graph.nx:
        raise SpecError([Diagnostic(None, f"{graph.source}: output {graph.output!r} does not exist")])
    used = nx.ancestors(graph.nx, graph.output) | {graph.output}
    for node in graph.nodes():
        if node.name not in used and node.op != INPUT:
            problems.append(
                Diagnostic(
                    node.location,
                    f"{node.op} {node.name!r}: its output is never used (the network's output is {graph.output!r});"
                    " feed it to a later layer with 'from:' or remove it",
                )
            )
    if INPUT not in used:
        problems.append(Diagnostic(None, f"{graph.source}: the output does not depend on the input"))
    if problems:
        raise SpecError(problems)
    return graph
