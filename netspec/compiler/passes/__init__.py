"""The passes over a graph: one table, in the order they run, each a Graph -> Graph.

Expansion (spec -> graph, `expand.py`) is the front end; it infers each node's shape as it
adds it (blocks read their input's shape), so the `shapes` pass infers only what has no
shape yet: the nodes of a graph built or edited from Python. Shape inference runs once.

Between passes the graph is verified (`Graph.verify`): a pass that leaves it broken is a bug
in that pass, named as such. `run_passes(graph, after=...)` reports each pass's name, time
and result; with `NETSPEC_DUMP_PASSES` set, the CLI logs the same (a text dump of the graph
after every pass, and its time) to stderr through the `netspec.passes` logger.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from netspec.compiler.graph import Graph
from netspec.compiler.passes.counts import count
from netspec.compiler.passes.inplace import mark_inplace
from netspec.compiler.passes.lint import lint
from netspec.compiler.passes.shapes import infer_shapes
from netspec.compiler.passes.share import share

log = logging.getLogger("netspec.passes")


@dataclass(frozen=True)
class Pass:
    """A named step of the compiler: takes the graph and returns it (edited or new)."""

    name: str
    run: Callable[[Graph], Graph]
    doc: str


PASSES: tuple[Pass, ...] = (
    Pass("lint", lint, "dangling inputs, cycles, unused layers, one output (errors a user can make)"),
    Pass("shapes", infer_shapes, "output shape of every node that has none yet"),
    Pass("counts", count, "parameters and MACs of every node"),
    Pass("share", share, "`share:` resolved and checked; a shared tensor counted once (its owner's)"),
    Pass("inplace", mark_inplace, "activations that may overwrite their input (torch's inplace=True)"),
)


@dataclass(frozen=True)
class PassRecord:
    """What `run_passes` tells its `after` callback once a pass is done."""

    name: str
    seconds: float
    graph: Graph


class PassError(RuntimeError):
    """A pass broke the IR's invariants: a bug in netspec (or in a custom pass), not in the spec."""


def run_passes(
    graph: Graph, passes: Iterable[Pass] = PASSES, *, after: Callable[[PassRecord], None] | None = None
) -> Graph:
    """Run `passes` in order, verifying the graph after each one."""
    for step in passes:
        start = time.perf_counter()
        graph = step.run(graph)
        seconds = time.perf_counter() - start
        try:
            graph.verify()
        except ValueError as exc:
            raise PassError(f"pass {step.name!r} left the graph invalid: {exc}") from None
        if after is not None:
            after(PassRecord(step.name, seconds, graph))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("after pass %s (%.2f ms):\n%s", step.name, seconds * 1e3, dump(graph))
    return graph


def dump(graph: Graph) -> str:
    """The graph as text, one node a line: `name = op(inputs) {attrs} -> shape  params macs  meta`."""
    lines = [f"graph {graph.name} (input {list(graph.input_shape)}, output {graph.output})"]
    for node in graph:
        attrs = " " + repr(node.attrs) if node.attrs else ""
        shape = "?" if node.shape is None else "×".join(map(str, node.shape))
        meta = f"  meta={node.meta!r}" if node.meta else ""
        lines.append(f"  {node.name} = {node.op}({', '.join(node.inputs)}){attrs} -> {shape}  params={node.params} macs={node.macs}{meta}")
    return "\n".join(lines)
