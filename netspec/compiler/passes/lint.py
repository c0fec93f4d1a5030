"""Structural checks of a graph: dangling inputs, cycles, unused layers, one output.

Plain Python walks (no networkx) so that `netspec check` stays fast; graphs built from Python
get the same checks as expanded specs.
"""
from __future__ import annotations

from netspec.compiler.graph import INPUT, Graph
from netspec.errors import Diagnostic, SpecError


def _find_cycle(graph: Graph) -> list[str] | None:
    """A cycle as a list of node names, or None (iterative DFS over inputs)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in (n.name for n in graph._nodes.values()):
        if state.get(start):
            continue
        stack = [(start, iter(graph.node(start).inputs))]
        state[start] = 1
        while stack:
            name, inputs = stack[-1]
            for src in inputs:
                if state.get(src) == 1:
                    path = [n for n, _ in stack]
                    return path[path.index(src):] + [src]
                if not state.get(src):
                    state[src] = 1
                    stack.append((src, iter(graph.node(src).inputs)))
                    break
            else:
                state[name] = 2
                stack.pop()
    return None


def lint(graph: Graph) -> Graph:
    problems: list[Diagnostic] = []
    for node in graph._nodes.values():
        for src in node.inputs:
            if src not in graph:
                problems.append(Diagnostic(node.location, f"{node.op} {node.name!r}: input {src!r} does not exist"))
    if graph.output not in graph:
        problems.append(Diagnostic(None, f"{graph.source}: output {graph.output!r} does not exist"))
    if problems:
        raise SpecError(problems)
    cycle = _find_cycle(graph)
    if cycle:
        raise SpecError([Diagnostic(graph.node(cycle[0]).location, f"the network has a cycle: {' -> '.join(reversed(cycle))}")])
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
