"""Counting rules, stated and selectable: what a "MAC" and a "FLOP" of a spec mean.

Policy "core" (the default everywhere): the multiply-accumulates of conv and linear layers
(and any op that declares `count_macs`), nothing for bias, norm, pooling or activations;
this equals torch's FlopCounterMode FLOPs / 2. Policy "all" also counts the work each op
declares in its registry entry (`OpDef.count_extra`: bias adds, norm scale and shift,
pooling windows, activations, residual adds), one unit per elementary operation; see
docs/counting.md for the rule of every op. FLOPs are 2 × MACs plus (policy "all") that work.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from netspec.compiler import registry
from netspec.compiler.graph import INPUT, Graph, Node

Policy = Literal["core", "all"]
Unit = Literal["macs", "flops"]
POLICIES = ("core", "all")
UNITS = ("macs", "flops")


def extra_work(graph: Graph, node: Node) -> int:
    """The work beyond multiply-accumulates that `node`'s op declares (per example)."""
    if node.op == INPUT:
        return 0
    op = registry.get(node.op)
    assert op is not None and node.shape is not None
    in_shapes = [graph.node(i).shape for i in node.inputs]
    return op.count_extra(node.attrs, in_shapes, node.shape)  # type: ignore[arg-type]


def node_count(graph: Graph, node: Node, unit: Unit = "macs", policy: Policy = "core") -> int:
    """One node's count per example under a unit and policy."""
    base = node.macs if unit == "macs" else 2 * node.macs
    return base + (extra_work(graph, node) if policy == "all" else 0)


def total(graph: Graph, unit: Unit = "macs", policy: Policy = "core") -> int:
    """The network's count per example."""
    return sum(node_count(graph, n, unit, policy) for n in graph.nodes())


@dataclass(frozen=True)
class Rule:
    """How a count is made, for headers and JSON: `macs (core)` or `flops (all)`."""

    unit: Unit = "macs"
    policy: Policy = "core"

    def __str__(self) -> str:
        return ("MACs" if self.unit == "macs" else "FLOPs") + (" (all ops)" if self.policy == "all" else "")
