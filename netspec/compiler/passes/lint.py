"""Structural checks of a graph: dangling inputs, cycles, unused layers, one output.

Plain Python walks over the graph's public interface, so that `netspec check` stays fast;
only a graph that has a cycle pays for networkx, whose `find_cycle` names it. Graphs built
from Python get the same checks as expanded specs.
"""
from __future__ import annotations

from netspec.compiler.graph import INPUT, Graph
from netspec.errors import Diagnostic, SpecError


def _cycle(graph: Graph) -> list[str] | None:
    """A cycle as a list of node names (first repeated last), or None."""
    try:
        for _ in graph.nodes():  # a topological walk: stops on a cycle (inputs exist by now)
            pass
        return None
    except ValueError:
        import networkx

        edges = networkx.find_cycle(graph.nx)
        return [src for src, _ in edges] + [edges[0][0]]


def lint(graph: Graph) -> Graph:
    problems: list[Diagnostic] = []
    for node in graph:
        for src in node.inputs:
            if src not in graph:
                problems.append(Diagnostic(node.location, f"{node.op} {node.name!r}: input {src!r} does not exist"))
    if graph.output not in graph:
        problems.append(Diagnostic(None, f"{graph.source}: output {graph.output!r} does not exist"))
    if problems:
        raise SpecError(problems)
    cycle = _cycle(graph)
    if cycle:
        raise SpecError([Diagnostic(graph.node(cycle[0]).location, f"the network has a cycle: {' -> '.join(cycle)}")])
    used = {graph.output}
    stack = [graph.output]
    while stack:
        for src in graph.node(stack.pop()).inputs:
            if src not in used:
                used.add(src)
                stack.append(src)
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
