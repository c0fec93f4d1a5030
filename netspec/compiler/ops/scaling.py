"""Per-sample and per-channel scaling of a residual branch: stochastic depth and layer scale
(EfficientNet, ConvNeXt). Both are written with plain torch in the generated code."""
from __future__ import annotations

import operator

import math

from netspec.compiler.registry import Attrs, Emit, OpDef, Saved, examples, register
from netspec.compiler.schema_base import Model, Number, Probability, value_type
from netspec.compiler.shapes import Shape

DepthMode = value_type("stochastic_depth_mode", "'row' or 'batch'", lambda v: v in ("row", "batch"), {"enum": ["row", "batch"]})


class StochasticDepthParams(Model):
    """Drop the whole branch with probability p, per example (row) or per batch."""

    p: Probability
    mode: DepthMode = "row"


def _stochastic_depth_torch(a: Attrs, ins: list[Shape]) -> Emit:
    """torchvision.ops.stochastic_depth as x · dropout(ones): in training, ones of shape
    N×1×…×1 (row) or 1×…×1 (batch) are zeroed with probability p and the rest divided by
    1 - p, exactly torchvision's noise; in eval nn.Dropout is the identity."""
    from torch import nn

    rank, p, row = len(ins[0]), a["p"], a["mode"] == "row"

    def build(e, xs):
        x = xs[0]
        size = (e.method("size", x, 0) if row else 1, *([1] * rank))
        mask = e.module(nn.Dropout(p), e.method("new_ones", x, size))
        return e.call(operator.mul, x, mask)

    return Emit(build)


register(
    OpDef(
        name="stochastic_depth",
        params=StochasticDepthParams,
        shape=lambda a, ins: ins[0],
        torch=_stochastic_depth_torch,
        family="regularization",
        label=lambda a: f"drop path {a['p']}",
        doc="torchvision's StochasticDepth: zero the input per example (row) or per batch with probability p, scale the rest by 1/(1-p); identity in eval.",
        # x·mask saves the scaled mask (for x's gradient; x itself is not needed, the mask
        # needs no gradient): one element per example (row) or one per batch
        saved=lambda a, ins, out: Saved(extra=((1, 0),)) if a["mode"] == "row" else Saved(per_batch=((1, 0),)),
        examples=examples(({"p": 0.2}, (3, 4, 4)), ({"p": 0.5, "mode": "batch"}, (6,))),
    )
)


class LayerScaleParams(Model):
    """A learned per-channel scale, initialised to `init_value`."""

    init_value: Number = 1e-6


def _layer_scale_torch(a: Attrs, ins: list[Shape]) -> Emit:
    shape = (ins[0][0], *([1] * (len(ins[0]) - 1)))

    def build(e, xs):
        return e.call(operator.mul, e.parameter(shape, a["init_value"]), xs[0])

    return Emit(build)


register(
    OpDef(
        name="layer_scale",
        params=LayerScaleParams,
        shape=lambda a, ins: ins[0],
        torch=_layer_scale_torch,
        family="norm",
        label=lambda a: f"layer scale {a['init_value']:g}",
        doc="A learned per-channel scale (C×1×1 for images), a parameter at the layer's own name as ConvNeXt's layer_scale.",
        count_params=lambda a, ins, out: ins[0][0],
        weights=lambda a, ins: {"": (ins[0][0], *([1] * (len(ins[0]) - 1)))},  # the scale at the layer's own name
        count_extra=lambda a, ins, out: math.prod(out),  # one multiply per element
        # (default: saves its input, for the scale's gradient; the scale is a parameter)
        amp_out=lambda a: 4,  # times the float32 scale: float32 under autocast too
        examples=examples(({}, (4, 3, 3)), ({"init_value": 0.5}, (5,))),
    )
)
