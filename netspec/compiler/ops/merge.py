"""Merges of several inputs: element-wise add and multiply (broadcasting), channel concatenation."""
from __future__ import annotations

import math
import operator

from netspec.compiler.ops.layers import NoParams
from netspec.compiler.registry import SAVES_NOTHING, Attrs, FunctionCall, OpDef, Saved, examples, register
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


def _partials(ins: list[Shape]) -> list[Shape]:
    """The shapes of the folded results ((a·b)·c ...): one per pairwise step."""
    return [broadcast("mul", ins[: k + 1]) for k in range(1, len(ins))]


def _fold_work(a: Attrs, ins: list[Shape], out: Shape) -> int:
    """The "all" policy: one operation per element of each pairwise step's result."""
    return sum(math.prod(p) for p in _partials(ins))


def _mul_saved(a: Attrs, ins: list[Shape], out: Shape) -> Saved:
    """torch's mul saves each factor only for the other's gradient; a fold (a·b)·c also
    saves its intermediate products (each for the next factor's gradient)."""
    inputs, when = [0, 1], [(1,), (0,)]
    extra, extra_when = [], []
    for k, p in enumerate(_partials(ins)[:-1], start=2):
        extra.append((math.prod(p), 0))
        extra_when.append((k,))
        inputs.append(k)
        when.append(tuple(range(k)))
    return Saved(inputs=tuple(inputs), when=tuple(when), extra=tuple(extra), extra_when=tuple(extra_when))


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
        count_extra=_fold_work,
        saved=lambda a, ins, out: SAVES_NOTHING,  # broadcasting too: backward sums over the sizes
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
        count_extra=_fold_work,
        saved=_mul_saved,
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
        saved=lambda a, ins, out: SAVES_NOTHING,
        min_inputs=2,
        max_inputs=64,
        examples=examples(({}, [(3, 5, 5), (2, 5, 5)]), ({}, [(3,), (4,), (1,)])),
    )
)
