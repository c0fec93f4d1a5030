"""Merges of several inputs: element-wise add and multiply (broadcasting), channel concatenation."""
from __future__ import annotations

import operator

from netspec.compiler.ops.layers import NoParams
from netspec.compiler.registry import Attrs, FunctionCall, OpDef, examples, register
from netspec.compiler.shapes import Shape, ShapeError, fmt


def broadcast(what: str, ins: list[Shape]) -> Shape:
    """torch's broadcasting of equal-rank shapes: per dimension, equal sizes or 1.

    Ranks must be equal: torch aligns shapes from the right *including the batch*, so a
    features vector against an image would silently mix the batch with a spatial axis.
    """
    if any(len(s) != len(ins[0]) for s in ins):
        raise ShapeError(f"{what} needs inputs of the same rank, got " + f" {_SYMBOL[what]} ".join(fmt(s) for s in ins))
    out = []
    for dim, sizes in enumerate(zip(*ins)):
        big = {n for n in sizes if n != 1}
        if len(big) > 1:
            raise ShapeError(
                f"{what} needs shapes that broadcast (per dimension equal, or 1), got "
                + f" {_SYMBOL[what]} ".join(fmt(s) for s in ins)
                + f": dimension {dim + 1} is {' vs '.join(map(str, sizes))}"
            )
        out.append(big.pop() if big else 1)
    return tuple(out)


_SYMBOL = {"add": "+", "mul": "·"}


def _concat_shape(a: Attrs, ins: list[Shape]) -> Shape:
    if any(len(s) != len(ins[0]) or s[1:] != ins[0][1:] for s in ins):
        raise ShapeError("concat needs equal spatial sizes, got " + ", ".join(fmt(s) for s in ins))
    return (sum(s[0] for s in ins), *ins[0][1:])


def _concat_torch(a: Attrs, ins: list[Shape]) -> FunctionCall:
    import torch

    return FunctionCall(torch.cat, {"dim": 1}, list_arg=True)


_MERGE_EXAMPLES = examples(
    ({}, [(4, 6, 6), (4, 6, 6)]), ({}, [(4, 1, 1), (4, 6, 6)]), ({}, [(5,), (5,), (5,)]), ({}, [(1, 6, 6), (4, 6, 1)])
)
register(
    OpDef(
        name="add",
        params=NoParams,
        shape=lambda a, ins: broadcast("add", ins),
        torch=lambda a, ins: FunctionCall(operator.add, fold=True),
        family="merge",
        label=lambda a: "add",
        doc="Element-wise sum of two or more inputs (residual connections); broadcasts sizes of 1 like torch.",
        min_inputs=2,
        max_inputs=64,
        examples=_MERGE_EXAMPLES,
    )
)
register(
    OpDef(
        name="mul",
        params=NoParams,
        shape=lambda a, ins: broadcast("mul", ins),
        torch=lambda a, ins: FunctionCall(operator.mul, fold=True),
        family="merge",
        label=lambda a: "mul",
        doc="Element-wise product of two or more inputs, broadcasting (C×1×1 · C×H×W for squeeze-excitation).",
        min_inputs=2,
        max_inputs=64,
        examples=_MERGE_EXAMPLES,
    )
)
register(
    OpDef(
        name="concat",
        params=NoParams,
        shape=_concat_shape,
        torch=_concat_torch,
        family="merge",
        label=lambda a: "concat",
        doc="Concatenation along channels (or features) of inputs with equal spatial sizes.",
        min_inputs=2,
        max_inputs=64,
        examples=examples(({}, [(3, 5, 5), (2, 5, 5)]), ({}, [(3,), (4,), (1,)])),
    )
)
