"""Layers with weights or windows: linear, conv2d, pooling, flatten, dropout, batch norm.

Each op is one `OpDef`: its parameter schema, shape rule, parameter and MAC counts, a
torch builder (torch is imported inside the builder only) and how to draw it.
"""
from __future__ import annotations

import math
from typing import Optional

from netspec.compiler.registry import SAVES_NOTHING, Attrs, OpDef, Saved, examples, register
from netspec.compiler.schema_base import (
    Model,
    NonNegIntPair,
    PosFloat,
    PosInt,
    PosIntPair,
    Probability,
    Bool,
    ConvPadding,
    value_type,
)
from netspec.compiler.shapes import Shape, ShapeError, fmt, pair, require_image, window_out

Dim = value_type(
    "dim", "an integer dimension (negative counts from the end)", lambda v: isinstance(v, int) and not isinstance(v, bool) and -64 <= v < 64,
    {"type": "integer", "minimum": -64, "maximum": 63},
)


def _kxk(value: object) -> str:
    a, b = pair(value)
    return f"{a}×{b}"


# ---------------------------------------------------------------- linear
class LinearParams(Model):
    """Fully connected layer: `out` features."""

    out: PosInt
    bias: Bool = True


def _linear_shape(a: Attrs, ins: list[Shape]) -> Shape:
    return (*ins[0][:-1], a["out"])  # as nn.Linear: over the last dimension (features, or C of H×W×C)


def _linear_torch(a: Attrs, ins: list[Shape]):
    from torch import nn

    return nn.Linear(ins[0][-1], a["out"], bias=a["bias"])


register(
    OpDef(
        name="linear",
        params=LinearParams,
        shape=_linear_shape,
        torch=_linear_torch,
        family="linear",
        label=lambda a: f"linear {a['out']}",
        doc="Fully connected layer (nn.Linear) over the last dimension: features, or the C of H×W×C after a permute.",
        count_params=lambda a, ins, out: ins[0][-1] * a["out"] + (a["out"] if a["bias"] else 0),
        weights=lambda a, ins: {"weight": (a["out"], ins[0][-1]), **({"bias": (a["out"],)} if a["bias"] else {})},
        count_macs=lambda a, ins, out: math.prod(ins[0]) * a["out"],
        has_weight=True,
        count_extra=lambda a, ins, out: a["out"] if a["bias"] else 0,  # one add per output
        saved=lambda a, ins, out: Saved(inputs=(0,), amp_weight=ins[0][-1] * a["out"]),  # the in×out weight
        amp_low=True,
        amp_out=lambda a: 2,
        examples=examples(({"out": 4}, (6,)), ({"out": 3, "bias": False}, (5,)), ({"out": 8}, (3, 3, 5))),
    )
)


# ---------------------------------------------------------------- conv2d
class Conv2dParams(Model):
    """2-d convolution."""

    out: PosInt
    kernel: PosIntPair
    stride: PosIntPair = 1
    padding: ConvPadding = 0
    dilation: PosIntPair = 1
    groups: PosInt = 1
    bias: Bool = True


def _conv_padding(a: Attrs) -> tuple[int, int] | str:
    return a["padding"] if isinstance(a["padding"], str) else pair(a["padding"])


def _conv_shape(a: Attrs, ins: list[Shape]) -> Shape:
    c, h, w = require_image(ins[0], "conv2d")
    if c % a["groups"] or a["out"] % a["groups"]:
        raise ShapeError(f"groups={a['groups']} must divide input channels {c} and out channels {a['out']}")
    (kh, kw), (sh, sw), (dh, dw) = pair(a["kernel"]), pair(a["stride"]), pair(a["dilation"])
    padding = _conv_padding(a)
    if padding == "same":
        if (sh, sw) != (1, 1):
            raise ShapeError("padding 'same' needs stride 1 (as in PyTorch)")
        # torch pads so the output keeps the input size; the kernel must still fit the padded input
        return (a["out"], h, w)
    ph, pw = (0, 0) if padding == "valid" else padding
    return (a["out"], window_out(h, kh, sh, ph, dh, False, ins[0]), window_out(w, kw, sw, pw, dw, False, ins[0]))


def _conv_weights(a: Attrs, ins: list[Shape]) -> int:
    kh, kw = pair(a["kernel"])
    return a["out"] * (ins[0][0] // a["groups"]) * kh * kw


def _conv_torch(a: Attrs, ins: list[Shape]):
    from torch import nn

    padding = _conv_padding(a)
    return nn.Conv2d(
        ins[0][0],
        a["out"],
        kernel_size=pair(a["kernel"]),
        stride=pair(a["stride"]),
        padding=padding,
        dilation=pair(a["dilation"]),
        groups=a["groups"],
        bias=a["bias"],
    )


def _conv_label(a: Attrs) -> str:
    stride = pair(a["stride"])
    parts = [f"conv {_kxk(a['kernel'])}"]
    if stride != (1, 1):
        parts.append(f"/{stride[0]}" if stride[0] == stride[1] else f"/{stride[0]}×{stride[1]}")
    return " ".join(parts) + f", {a['out']}"


register(
    OpDef(
        name="conv2d",
        params=Conv2dParams,
        shape=_conv_shape,
        torch=_conv_torch,
        family="conv",
        label=_conv_label,
        doc="2-d convolution (nn.Conv2d): out channels, kernel, stride, padding (or 'same'), dilation, groups, bias.",
        count_params=lambda a, ins, out: _conv_weights(a, ins) + (a["out"] if a["bias"] else 0),
        weights=lambda a, ins: {"weight": (a["out"], ins[0][0] // a["groups"], *pair(a["kernel"])), **({"bias": (a["out"],)} if a["bias"] else {})},
        count_macs=lambda a, ins, out: _conv_weights(a, ins) * out[1] * out[2],
        has_weight=True,
        count_extra=lambda a, ins, out: math.prod(out) if a["bias"] else 0,  # one add per output
        saved=lambda a, ins, out: Saved(inputs=(0,), amp_weight=_conv_weights(a, ins), amp_weight_when=None),  # saved always
        amp_low=True,
        amp_out=lambda a: 2,
        examples=examples(
            ({"out": 4, "kernel": 3}, (2, 8, 8)),
            ({"out": 6, "kernel": [3, 1], "stride": 2, "padding": [1, 0], "bias": False}, (3, 9, 7)),
            ({"out": 4, "kernel": 3, "groups": 4, "padding": "same", "dilation": 2}, (4, 7, 7)),
        ),
    )
)


# ---------------------------------------------------------------- pooling
class PoolParams(Model):
    """Max or average pooling; stride defaults to the kernel."""

    kernel: PosIntPair
    stride: Optional[PosIntPair] = None
    padding: NonNegIntPair = 0
    ceil_mode: Bool = False


def _pool_shape(kind: str):
    def rule(a: Attrs, ins: list[Shape]) -> Shape:
        c, h, w = require_image(ins[0], kind)
        (kh, kw), (ph, pw) = pair(a["kernel"]), pair(a["padding"])
        sh, sw = pair(a["stride"] if a["stride"] is not None else a["kernel"])
        if ph > kh // 2 or pw > kw // 2:
            raise ShapeError(f"padding {a['padding']} must be at most half the kernel {_kxk(a['kernel'])}")
        ceil = a["ceil_mode"]
        return (c, window_out(h, kh, sh, ph, 1, ceil, ins[0]), window_out(w, kw, sw, pw, 1, ceil, ins[0]))

    return rule


def _pool_torch(cls_name: str):
    def build(a: Attrs, ins: list[Shape]):
        from torch import nn

        stride = pair(a["stride"]) if a["stride"] is not None else pair(a["kernel"])
        kernel, padding = pair(a["kernel"]), pair(a["padding"])
        if kernel[0] == kernel[1] and stride[0] == stride[1] and padding[0] == padding[1]:
            kernel, stride, padding = kernel[0], stride[0], padding[0]  # reads like hand-written code
        return getattr(nn, cls_name)(kernel, stride=stride, padding=padding, ceil_mode=a["ceil_mode"])

    return build


def _pool_label(kind: str):
    def label(a: Attrs) -> str:
        stride = pair(a["stride"]) if a["stride"] is not None else pair(a["kernel"])
        return f"{kind} {_kxk(a['kernel'])}" + (f" /{stride[0]}" if stride != (1, 1) else "")

    return label


for _name, _cls in (("maxpool", "MaxPool2d"), ("avgpool", "AvgPool2d")):
    register(
        OpDef(
            name=_name,
            params=PoolParams,
            shape=_pool_shape(_name),
            torch=_pool_torch(_cls),
            family="pool",
            label=_pool_label(_name),
            doc=f"{'Max' if _name == 'maxpool' else 'Average'} pooling (nn.{_cls}): kernel, stride (default: kernel), padding, ceil_mode.",
            count_extra=lambda a, ins, out: math.prod(out) * math.prod(pair(a["kernel"])),  # one per window element
            saved=(lambda a, ins, out: Saved(inputs=(0,), extra=((math.prod(out), 8),)))  # + int64 indices
            if _name == "maxpool" else (lambda a, ins, out: Saved(inputs=(0,))),
            examples=examples(({"kernel": 2}, (3, 8, 8)), ({"kernel": 3, "stride": 2, "padding": 1, "ceil_mode": True}, (2, 9, 9))),
        )
    )


class AdaptiveAvgPoolParams(Model):
    """Average pooling to a fixed output size."""

    size: PosIntPair


def _adaptive_shape(a: Attrs, ins: list[Shape]) -> Shape:
    c, _, _ = require_image(ins[0], "adaptive_avgpool")
    return (c, *pair(a["size"]))


def _adaptive_torch(a: Attrs, ins: list[Shape]):
    from torch import nn

    return nn.AdaptiveAvgPool2d(pair(a["size"]))


register(
    OpDef(
        name="adaptive_avgpool",
        params=AdaptiveAvgPoolParams,
        shape=_adaptive_shape,
        torch=_adaptive_torch,
        family="pool",
        label=lambda a: f"adaptive avgpool {_kxk(a['size'])}",
        doc="Adaptive average pooling (nn.AdaptiveAvgPool2d) to `size`.",
        count_extra=lambda a, ins, out: math.prod(ins[0]),  # one add per input element
        saved=lambda a, ins, out: Saved(inputs=(0,)),
        examples=examples(({"size": 2}, (3, 7, 7)), ({"size": [3, 1]}, (2, 6, 5))),
    )
)


class NoParams(Model):
    """An op without parameters."""


register(
    OpDef(
        name="global_avgpool",
        params=NoParams,
        shape=lambda a, ins: (require_image(ins[0], "global_avgpool")[0], 1, 1),
        torch=lambda a, ins: __import__("torch").nn.AdaptiveAvgPool2d((1, 1)),
        family="pool",
        label=lambda a: "global avgpool",
        doc="Global average pooling to C×1×1 (nn.AdaptiveAvgPool2d((1, 1))); follow it with flatten.",
        count_extra=lambda a, ins, out: math.prod(ins[0]),  # one add per input element
        saved=lambda a, ins, out: SAVES_NOTHING,  # a mean: backward needs only the sizes
        examples=examples(({}, (3, 5, 4))),
    )
)


# ---------------------------------------------------------------- reshaping and regularisation
class FlattenParams(Model):
    """Flatten non-batch dimensions start..end (both included; default all)."""

    start: Dim = 0
    end: Dim = -1


def _flatten_dims(a: Attrs, ins: list[Shape]) -> tuple[int, int]:
    rank = len(ins[0])
    start, end = (d % rank if -rank <= d < rank else None for d in (a["start"], a["end"]))
    if start is None or end is None or start > end:
        raise ShapeError(f"start {a['start']} .. end {a['end']} must be dimensions of {fmt(ins[0])} in order (the batch is not counted)")
    return start, end


def _flatten_shape(a: Attrs, ins: list[Shape]) -> Shape:
    start, end = _flatten_dims(a, ins)
    return (*ins[0][:start], math.prod(ins[0][start : end + 1]), *ins[0][end + 1 :])


def _flatten_torch(a: Attrs, ins: list[Shape]):
    from torch import nn

    start, end = _flatten_dims(a, ins)
    return nn.Flatten(start + 1, -1 if end == len(ins[0]) - 1 else end + 1)


register(
    OpDef(
        name="flatten",
        params=FlattenParams,
        shape=_flatten_shape,
        torch=_flatten_torch,
        family="reshape",
        label=lambda a: "flatten" if (a["start"], a["end"]) == (0, -1) else f"flatten {a['start']}..{a['end']}",
        doc="Flatten non-batch dimensions start..end (nn.Flatten; default all: C×H×W to features). "
        "start 1 turns a C×H×W patch grid into C×(H·W).",
        examples=examples(({}, (3, 4, 5)), ({}, (6,)), ({"start": 1}, (4, 3, 2)), ({"start": 0, "end": 1}, (2, 3, 4))),
        view=True,
        saved=lambda a, ins, out: SAVES_NOTHING,
    )
)


class DropoutParams(Model):
    """Dropout with drop probability `p`."""

    p: Probability = 0.5


register(
    OpDef(
        name="dropout",
        params=DropoutParams,
        shape=lambda a, ins: ins[0],
        torch=lambda a, ins: __import__("torch").nn.Dropout(a["p"]),
        family="regularization",
        label=lambda a: f"dropout {a['p']}",
        doc="Dropout (nn.Dropout) with drop probability p; active only in training.",
        # the scaled mask (CPU: activation dtype); p 0 returns its input, saving nothing (torchvision's ViT)
        saved=lambda a, ins, out: Saved(extra=((math.prod(out), 0),)) if a["p"] > 0 else SAVES_NOTHING,
        examples=examples(({}, (3, 4, 4)), ({"p": 0.1}, (6,)), ({"p": 0.0}, (5,))),
    )
)


class BatchNormParams(Model):
    """Batch normalisation; 1-d or 2-d follows from the input."""

    eps: PosFloat = 1e-5
    momentum: Optional[Probability] = 0.1


def _bn_shape(a: Attrs, ins: list[Shape]) -> Shape:
    if len(ins[0]) not in (1, 3):
        raise ShapeError(f"batchnorm expects features or channels×height×width, got {fmt(ins[0])}")
    return ins[0]


def _bn_torch(a: Attrs, ins: list[Shape]):
    from torch import nn

    cls = nn.BatchNorm1d if len(ins[0]) == 1 else nn.BatchNorm2d
    return cls(ins[0][0], eps=a["eps"], momentum=a["momentum"])


register(
    OpDef(
        name="batchnorm",
        params=BatchNormParams,
        shape=_bn_shape,
        torch=_bn_torch,
        family="norm",
        label=lambda a: "batchnorm",
        doc="Batch normalisation: nn.BatchNorm1d after features, nn.BatchNorm2d after images.",
        count_params=lambda a, ins, out: 2 * ins[0][0],
        weights=lambda a, ins: {"weight": (ins[0][0],), "bias": (ins[0][0],)},
        count_extra=lambda a, ins, out: 2 * math.prod(ins[0]),  # scale and shift (inference form)
        saved=lambda a, ins, out: Saved(inputs=(0,), per_batch=((2 * ins[0][0], 4),)),  # + batch mean, inverse std (per batch)
        examples=examples(({}, (3, 4, 4)), ({"eps": 1e-3, "momentum": 0.01}, (6,))),
    )
)
