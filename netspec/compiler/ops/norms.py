"""Normalisations beyond batch norm: layer norm (last dimension, or the channels of an
image as torchvision's LayerNorm2d) and group norm."""
from __future__ import annotations

import math

from netspec.compiler.registry import Attrs, Emit, OpDef, Saved, examples, register
from netspec.compiler.schema_base import Bool, Model, PosFloat, PosInt
from netspec.compiler.shapes import Shape, ShapeError, require_image


def _norm_work(shape: Shape, affine: bool) -> int:
    """The "all" policy, fvcore's norm rule: 5 operations per element with the affine scale
    and shift, 4 without (statistics per example cannot be folded as batchnorm's)."""
    return (5 if affine else 4) * math.prod(shape)


class LayerNormParams(Model):
    """Layer norm over the last dimension."""

    eps: PosFloat = 1e-5
    elementwise_affine: Bool = True


def _layer_norm_torch(a: Attrs, ins: list[Shape]):
    from torch import nn

    return nn.LayerNorm(ins[0][-1], eps=a["eps"], elementwise_affine=a["elementwise_affine"])


register(
    OpDef(
        name="layer_norm",
        params=LayerNormParams,
        shape=lambda a, ins: ins[0],
        torch=_layer_norm_torch,
        family="norm",
        label=lambda a: "layer norm",
        doc="Layer normalisation over the last dimension (nn.LayerNorm): features, or the C of H×W×C.",
        count_params=lambda a, ins, out: 2 * ins[0][-1] if a["elementwise_affine"] else 0,
        weights=lambda a, ins: {"weight": (ins[0][-1],), "bias": (ins[0][-1],)} if a["elementwise_affine"] else {},
        # input + mean and inverse std per normalised row: float32, the dtype of its float32
        # scale (a bf16 input under autocast keeps float32 ones), without one the input's
        saved=lambda a, ins, out: Saved(inputs=(0,), extra=((2 * math.prod(ins[0][:-1]), 4 if a["elementwise_affine"] else 0),)),
        count_extra=lambda a, ins, out: _norm_work(ins[0], a["elementwise_affine"]),
        examples=examples(({}, (6,)), ({"eps": 1e-6}, (3, 3, 5)), ({"elementwise_affine": False}, (4,))),
    )
)


class LayerNorm2dParams(Model):
    """Layer norm over the channels of each pixel."""

    eps: PosFloat = 1e-5


def _layer_norm2d_torch(a: Attrs, ins: list[Shape]) -> Emit:
    """torchvision's LayerNorm2d: permute to N×H×W×C, nn.LayerNorm(C) (its `weight` and `bias`
    at the node's path), permute back."""
    import torch
    from torch import nn

    def build(e, xs):
        x = e.call(torch.permute, xs[0], [0, 2, 3, 1])
        x = e.module(nn.LayerNorm(ins[0][0], eps=a["eps"]), x)
        return e.call(torch.permute, x, [0, 3, 1, 2])

    return Emit(build)


register(
    OpDef(
        name="layer_norm2d",
        params=LayerNorm2dParams,
        shape=lambda a, ins: require_image(ins[0], "layer_norm2d"),
        torch=_layer_norm2d_torch,
        family="norm",
        label=lambda a: "layer norm 2d",
        doc="Layer normalisation over the channels of each pixel of a C×H×W image (torchvision's LayerNorm2d, ConvNeXt).",
        count_params=lambda a, ins, out: 2 * ins[0][0],
        weights=lambda a, ins: {"weight": (ins[0][0],), "bias": (ins[0][0],)},
        # the permuted input is a view of the input; + float32 mean and inverse std per pixel
        saved=lambda a, ins, out: Saved(inputs=(0,), extra=((2 * math.prod(ins[0][1:]), 4),)),
        count_extra=lambda a, ins, out: _norm_work(ins[0], True),
        examples=examples(({}, (4, 3, 3)), ({"eps": 1e-6}, (6, 2, 5))),
    )
)


class GroupNormParams(Model):
    """Group norm: channels in `groups` groups."""

    groups: PosInt
    eps: PosFloat = 1e-5
    affine: Bool = True


def _group_norm_shape(a: Attrs, ins: list[Shape]) -> Shape:
    if ins[0][0] % a["groups"]:
        raise ShapeError(f"groups={a['groups']} must divide the {ins[0][0]} input channels")
    return ins[0]


register(
    OpDef(
        name="group_norm",
        params=GroupNormParams,
        shape=_group_norm_shape,
        torch=lambda a, ins: __import__("torch").nn.GroupNorm(a["groups"], ins[0][0], eps=a["eps"], affine=a["affine"]),
        family="norm",
        label=lambda a: f"group norm /{a['groups']}",
        doc="Group normalisation (nn.GroupNorm): channels in `groups` groups, each normalised over its channels and pixels.",
        count_params=lambda a, ins, out: 2 * ins[0][0] if a["affine"] else 0,
        weights=lambda a, ins: {"weight": (ins[0][0],), "bias": (ins[0][0],)} if a["affine"] else {},
        # input + mean and inverse std per group: float32 (its scale's dtype; without one the input's)
        saved=lambda a, ins, out: Saved(inputs=(0,), extra=((2 * a["groups"], 4 if a["affine"] else 0),)),
        count_extra=lambda a, ins, out: _norm_work(ins[0], a["affine"]),
        examples=examples(({"groups": 2}, (4, 3, 3)), ({"groups": 3, "eps": 1e-6, "affine": False}, (6, 2, 2)), ({"groups": 2}, (6,))),
    )
)
