"""torch's own count of a compiled spec's work, shared by the counting and diff tests.

tests/ is not a package: test files put this folder on `sys.path` and `from torch_counts import ...`.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

import netspec
from netspec.compiler.graph import Graph


def meta_flops(graph: Graph) -> tuple[torch.nn.Module, int]:
    """The compiled module on the meta device (no memory, no arithmetic) and the FLOPs torch's
    FlopCounterMode counts for one example through it."""
    with torch.device("meta"):
        model = netspec.compile(graph).eval()
        x = torch.empty(1, *graph.input_shape)
    with FlopCounterMode(display=False) as counter:
        model(x)
    return model, counter.get_total_flops()
