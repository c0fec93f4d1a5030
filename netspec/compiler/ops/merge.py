"""Merges of several inputs: element-wise add and channel concatenation."""
from __future__ import annotations

import math
import operator

from netspec.compiler.ops.layers import NoParams
from netspec.compiler.registry import SAVES_NOTHING, Attrs, FunctionCall, OpDef, register
from netspec.compiler.shapes import Shape, ShapeError, fmt


def _add_shape(a: Attrs, ins: list[Shape]) -> Shape:
    if any(s != ins[0] for s in ins):
        raise ShapeError("add needs equal shapes, got " + " + ".join(fmt(s) for s in ins))
    return ins[0]


def _concat_shape(a: Attrs, ins: list[Shape]) -> Shape:
    if any(len(s) != len(ins[0]) or s[1:] != ins[0][1:] for s in ins):
        raise ShapeError("concat needs equal spatial sizes, got " + ", ".join(fmt(s) for s in ins))
    return (sum(s[0] for s in ins), *ins[0][1:])


def _concat_torch(a: Attrs, ins: list[Shape]) -> FunctionCall:
    import torch

    return FunctionCall(torch.cat, {"dim": 1}, list_arg=True)


register(
    OpDef(
        name="add",
        params=NoParams,
        shape=_add_shape,
        torch=lambda a, ins: FunctionCall(operator.add, fold=True),
        family="merge",
        label=lambda a: "add",
        doc="Element-wise sum of two or more inputs of equal shape (residual connections).",
        count_extra=lambda a, ins, out: (len(ins) - 1) * math.prod(out),
        saved=lambda a, ins, out: SAVES_NOTHING,
        min_inputs=2,
        max_inputs=64,
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
        saved=lambda a, ins, out: SAVES_NOTHING,
        min_inputs=2,
        max_inputs=64,
    )
)
