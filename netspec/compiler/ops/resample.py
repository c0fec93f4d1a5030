"""Changing the spatial size: transposed convolution, upsampling, adaptive max pooling (U-Net)."""
from __future__ import annotations

import math
from typing import Any, Optional

from netspec.compiler.ops.layers import _kxk
import math

from netspec.compiler.registry import SAVES_NOTHING, Attrs, OpDef, Saved, examples, register
from netspec.compiler.schema_base import Bool, Model, NonNegIntPair, PosFloat, PosInt, PosIntPair, value_type
from netspec.compiler.shapes import Shape, ShapeError, fmt, pair, require_image


# ---------------------------------------------------------------- conv_transpose2d
class ConvTranspose2dParams(Model):
    """2-d transposed convolution."""

    out: PosInt
    kernel: PosIntPair
    stride: PosIntPair = 1
    padding: NonNegIntPair = 0
    output_padding: NonNegIntPair = 0
    dilation: PosIntPair = 1
    groups: PosInt = 1
    bias: Bool = True


def _transpose_size(n: int, k: int, s: int, p: int, op: int, d: int, axis: str, shape: Shape) -> int:
    if not (op < s or op < d):
        raise ShapeError(f"output_padding {op} must be smaller than stride {s} or dilation {d} (as in PyTorch)")
    out = (n - 1) * s - 2 * p + d * (k - 1) + op + 1
    if out <= 0:
        raise ShapeError(f"input {fmt(shape)} gives {axis} ({n}-1)·{s} - 2·{p} + {d}·({k}-1) + {op} + 1 = {out}")
    return out


def _transpose_shape(a: Attrs, ins: list[Shape]) -> Shape:
    c, h, w = require_image(ins[0], "conv_transpose2d")
    if c % a["groups"] or a["out"] % a["groups"]:
        raise ShapeError(f"groups={a['groups']} must divide input channels {c} and out channels {a['out']}")
    (kh, kw), (sh, sw), (ph, pw) = pair(a["kernel"]), pair(a["stride"]), pair(a["padding"])
    (oh, ow), (dh, dw) = pair(a["output_padding"]), pair(a["dilation"])
    return (a["out"], _transpose_size(h, kh, sh, ph, oh, dh, "height", ins[0]), _transpose_size(w, kw, sw, pw, ow, dw, "width", ins[0]))


def _transpose_weights(a: Attrs, ins: list[Shape]) -> int:
    return ins[0][0] * (a["out"] // a["groups"]) * math.prod(pair(a["kernel"]))


def _transpose_torch(a: Attrs, ins: list[Shape]):
    from torch import nn

    return nn.ConvTranspose2d(
        ins[0][0], a["out"], kernel_size=pair(a["kernel"]), stride=pair(a["stride"]), padding=pair(a["padding"]),
        output_padding=pair(a["output_padding"]), groups=a["groups"], bias=a["bias"], dilation=pair(a["dilation"]),
    )


register(
    OpDef(
        name="conv_transpose2d",
        params=ConvTranspose2dParams,
        shape=_transpose_shape,
        torch=_transpose_torch,
        family="conv",
        label=lambda a: f"conv⊤ {_kxk(a['kernel'])}" + (f" ×{pair(a['stride'])[0]}" if pair(a["stride"]) != (1, 1) else "") + f", {a['out']}",
        doc="2-d transposed convolution (nn.ConvTranspose2d): size (n-1)·stride - 2·padding + dilation·(kernel-1) + output_padding + 1.",
        count_params=lambda a, ins, out: _transpose_weights(a, ins) + (a["out"] if a["bias"] else 0),
        weights=lambda a, ins: {"weight": (ins[0][0], a["out"] // a["groups"], *pair(a["kernel"])), **({"bias": (a["out"],)} if a["bias"] else {})},
        # as FlopCounterMode: every input pixel is multiplied by the whole kernel
        count_macs=lambda a, ins, out: _transpose_weights(a, ins) * ins[0][1] * ins[0][2],
        has_weight=True,
        count_extra=lambda a, ins, out: math.prod(out) if a["bias"] else 0,  # one add per output
        saved=lambda a, ins, out: Saved(inputs=(0,), amp_weight=_transpose_weights(a, ins), amp_weight_when=None),  # saved always
        amp_low=True,
        amp_out=lambda a: 2,
        examples=examples(
            ({"out": 3, "kernel": 2, "stride": 2}, (4, 5, 5)),
            ({"out": 4, "kernel": 3, "stride": 2, "padding": 1, "output_padding": 1, "groups": 2, "bias": False}, (2, 4, 3)),
            ({"out": 2, "kernel": [3, 1], "dilation": 2}, (3, 3, 3)),
        ),
    )
)


# ---------------------------------------------------------------- upsample
Scale = value_type(
    "scale", "a positive number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 64,
    {"type": "number", "exclusiveMinimum": 0, "maximum": 64},
)
Mode = value_type("upsample_mode", "'nearest' or 'bilinear'", lambda v: v in ("nearest", "bilinear"), {"enum": ["nearest", "bilinear"]})


class UpsampleParams(Model):
    """Resize by a `scale` factor or to a `size`."""

    scale: Optional[Scale] = None
    size: Optional[PosIntPair] = None
    mode: Mode = "nearest"
    align_corners: Optional[Bool] = None


def _upsample_shape(a: Attrs, ins: list[Shape]) -> Shape:
    c, h, w = require_image(ins[0], "upsample")
    if (a["scale"] is None) == (a["size"] is None):
        raise ShapeError("upsample takes either scale or size (one of them)")
    if a["align_corners"] is not None and a["mode"] == "nearest":
        raise ShapeError("align_corners applies to mode 'bilinear' only (as in PyTorch)")
    if a["size"] is not None:
        return (c, *pair(a["size"]))
    s = a["scale"]
    out = (c, math.floor(h * s), math.floor(w * s))  # torch: floor(size · scale)
    if min(out[1:]) <= 0:
        raise ShapeError(f"scale {s} makes {h}×{w} empty: floor({h}·{s}) × floor({w}·{s}) = {out[1]}×{out[2]}")
    return out


def _upsample_torch(a: Attrs, ins: list[Shape]):
    from torch import nn

    scale: Any = float(a["scale"]) if a["scale"] is not None else None
    size = pair(a["size"]) if a["size"] is not None else None
    return nn.Upsample(size=size, scale_factor=scale, mode=a["mode"], align_corners=a["align_corners"])


register(
    OpDef(
        name="upsample",
        params=UpsampleParams,
        shape=_upsample_shape,
        torch=_upsample_torch,
        family="pool",
        label=lambda a: f"upsample {'×' + str(a['scale']) if a['scale'] is not None else 'to ' + _kxk(a['size'])} {a['mode']}",
        doc="Resize images (nn.Upsample) by scale (floor(n·scale)) or to size; mode nearest or bilinear, align_corners.",
        # nearest copies; bilinear weighs 4 neighbours per output element (fvcore's rule)
        count_extra=lambda a, ins, out: 4 * math.prod(out) if a["mode"] == "bilinear" else 0,
        saved=lambda a, ins, out: SAVES_NOTHING,  # both modes: backward needs the sizes only
        examples=examples(
            ({"scale": 2}, (3, 4, 5)), ({"size": [7, 3], "mode": "bilinear"}, (2, 4, 4)),
            ({"scale": 1.5, "mode": "bilinear", "align_corners": True}, (2, 5, 5)),
        ),
    )
)


# ---------------------------------------------------------------- adaptive_maxpool
class AdaptiveMaxPoolParams(Model):
    """Max pooling to a fixed output size."""

    size: PosIntPair


register(
    OpDef(
        name="adaptive_maxpool",
        params=AdaptiveMaxPoolParams,
        shape=lambda a, ins: (require_image(ins[0], "adaptive_maxpool")[0], *pair(a["size"])),
        torch=lambda a, ins: __import__("torch").nn.AdaptiveMaxPool2d(pair(a["size"])),
        family="pool",
        label=lambda a: f"adaptive maxpool {_kxk(a['size'])}",
        doc="Adaptive max pooling (nn.AdaptiveMaxPool2d) to `size`.",
        count_extra=lambda a, ins, out: math.prod(ins[0]),  # one compare per input element
        saved=lambda a, ins, out: Saved(inputs=(0,), extra=((math.prod(out), 8),)),  # + int64 indices
        examples=examples(({"size": 1}, (3, 5, 5)), ({"size": [2, 3]}, (2, 7, 6))),
    )
)
