"""`netspec compile --memory` and the counting options: the memory plan as lines and the
summary's counts under a rule, kept out of cli.py."""
from __future__ import annotations

from typing import Any

from netspec.compiler.graph import Graph


def memory_lines(graph: Graph, batch: int, optimizer: str, amp: str | None) -> list[str]:
    """The plan as aligned lines, e.g. `activations  12.3 MiB  (saved for backward at batch 64)`."""
    from netspec.compiler.memory import human, plan

    p = plan(graph, batch, optimizer, amp)
    dtype = f"{amp} autocast" if amp else "float32"
    rows = [
        ("weights", p.params_bytes, "float32"),
        ("gradients", p.grads_bytes, "float32"),
        ("optimizer", p.optimizer_bytes, optimizer),
        ("activations", p.activations_bytes, f"saved for backward at batch {batch}, {dtype}"),
        ("total", p.total_bytes, "one training step, before allocator overhead"),
    ]
    return [f"training memory (batch {batch}, {optimizer}{', ' + amp if amp else ''}):"] + [
        f"  {name:<12}{human(n):>11}  {n:>16,} B  ({why})" for name, n, why in rows
    ]


def with_counts(data: dict[str, Any], graph: Graph, unit: str, policy: str) -> dict[str, Any]:
    """The summary's `macs` fields, plus `flops` or the "all" policy's counts when asked for."""
    if unit == "macs" and policy == "core":
        return data
    from netspec.compiler.counting import node_count, total

    key = unit if policy == "core" else f"{unit}_all"
    data[key] = total(graph, unit, policy)  # type: ignore[arg-type]
    counts = {n.name: node_count(graph, n, unit, policy) for n in graph.ops()}  # type: ignore[arg-type]
    for layer in data["layers"]:
        layer[key] = counts[layer["name"]]
    data["count"] = {"unit": unit, "policy": policy}
    return data
