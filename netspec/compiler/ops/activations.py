"""Element-wise activations: the shape passes through unchanged."""
from __future__ import annotations

from typing import Any, Callable

from netspec.compiler.ops.layers import NoParams
from netspec.compiler.registry import Attrs, OpDef, Saved, examples, register
from netspec.compiler.schema_base import Model, Number, PosInt
from netspec.compiler.shapes import Shape, ShapeError


class LeakyReluParams(Model):
    """Leaky ReLU with its negative slope."""

    negative_slope: Number = 0.01


class HardtanhParams(Model):
    """Clamp to [min_val, max_val]."""

    min_val: Number = -1.0
    max_val: Number = 1.0


class EluParams(Model):
    """ELU with its alpha."""

    alpha: Number = 1.0


def _module(cls_name: str, **fixed: Any) -> Callable[[Attrs, Any], Any]:
    def build(a: Attrs, ins: Any) -> Any:
        from torch import nn

        return getattr(nn, cls_name)(**fixed, **a)

    return build


_ACTIVATIONS = {
    "relu": ("ReLU", NoParams, {}, "max(x, 0)"),
    "sigmoid": ("Sigmoid", NoParams, {}, "1 / (1 + exp(-x))"),
    "tanh": ("Tanh", NoParams, {}, "hyperbolic tangent"),
    "gelu": ("GELU", NoParams, {}, "Gaussian error linear unit"),
    "softmax": ("Softmax", NoParams, {"dim": 1}, "softmax over features (or channels); most specs end with logits instead"),
    "leaky_relu": ("LeakyReLU", LeakyReluParams, {}, "max(x, 0) + negative_slope·min(x, 0)"),
    "identity": ("Identity", NoParams, {}, "passes its input through"),
    "relu6": ("ReLU6", NoParams, {}, "min(max(x, 0), 6) (MobileNetV2)"),
    "hardtanh": ("Hardtanh", HardtanhParams, {}, "clamp(x, min_val, max_val)"),
    "hardswish": ("Hardswish", NoParams, {}, "x·relu6(x + 3)/6 (MobileNetV3)"),
    "hardsigmoid": ("Hardsigmoid", NoParams, {}, "relu6(x + 3)/6 (MobileNetV3's squeeze-excitation gate)"),
    "silu": ("SiLU", NoParams, {}, "x·sigmoid(x), also called swish (EfficientNet)"),
    "elu": ("ELU", EluParams, {}, "x if x > 0 else alpha·(exp(x) - 1)"),
}
_EXAMPLE_PARAMS: dict[str, dict[str, Any]] = {
    "leaky_relu": {"negative_slope": 0.2},
    "hardtanh": {"min_val": -0.5, "max_val": 2},
    "elu": {"alpha": 0.5},
}


def _same_shape(name: str) -> Callable[[Attrs, list[Shape]], Shape]:
    def rule(a: Attrs, ins: list[Shape]) -> Shape:
        if name == "hardtanh" and not a["min_val"] < a["max_val"]:
            raise ShapeError(f"hardtanh needs min_val < max_val, got {a['min_val']} and {a['max_val']}")
        return ins[0]

    return rule


# What autograd saves for each (its derivative formula needs the result or the input; default
# the input), and the "all" counting policy's work per element (default one operation).
_SAVES_OUTPUT = {"relu", "sigmoid", "tanh", "softmax"}
_WORK_PER_ELEMENT = {"identity": 0, "softmax": 3}  # softmax: exp, sum, divide


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _saved(name: str) -> Any:
    if name == "identity":
        return lambda a, ins, out: Saved()
    return lambda a, ins, out: Saved(output=True) if name in _SAVES_OUTPUT else Saved(inputs=(0,))


# What each activation's in-place form saves (torch 2.x autograd, measured by tests/test_memory.py):
# relu_, leaky_relu_ and elu_ compute their gradient from the result, so the result is all they
# keep (a negative slope or alpha cannot go backward in place: none); hardtanh_ (relu6), silu_,
# hardswish_ and hardsigmoid_ need the input they overwrite, so autograd keeps a copy of it.
def _keeps_result(a: Attrs, ins: list[Shape], out: Shape) -> Saved:
    return Saved(output=True)


def _keeps_input_copy(a: Attrs, ins: list[Shape], out: Shape) -> Saved:
    return Saved(extra=((_numel(ins[0]), 0),))


def _keeps_result_if(param: str) -> Callable[[Attrs, list[Shape], Shape], Saved | None]:
    return lambda a, ins, out: Saved(output=True) if a[param] >= 0 else None


_INPLACE: dict[str, Callable[[Attrs, list[Shape], Shape], Saved | None]] = {
    "relu": _keeps_result,
    "leaky_relu": _keeps_result_if("negative_slope"),
    "elu": _keeps_result_if("alpha"),
    **dict.fromkeys(("relu6", "hardtanh", "silu", "hardswish", "hardsigmoid"), _keeps_input_copy),
}


for _name, (_cls, _params, _fixed, _doc) in _ACTIVATIONS.items():
    register(
        OpDef(
            name=_name,
            params=_params,
            shape=_same_shape(_name),
            torch=_module(_cls, **_fixed),
            family="activation" if _name != "identity" else "reshape",
            label=(lambda n: lambda a: n)(_name),
            doc=f"{_doc} (nn.{_cls}).",
            count_extra=(lambda k: lambda a, ins, out: k * _numel(out))(_WORK_PER_ELEMENT.get(_name, 1)),
            saved=_saved(_name),
            view=_name == "identity",
            inplace=_INPLACE.get(_name),
            examples=examples(({}, (3, 5, 5)), (_EXAMPLE_PARAMS.get(_name, {}), (7,))),
        )
    )


class PreluParams(Model):
    """PReLU: one learned slope, or one per channel."""

    num_parameters: PosInt = 1


def _prelu_shape(a: Attrs, ins: list[Shape]) -> Shape:
    n, c = a["num_parameters"], ins[0][0]
    if n not in (1, c):
        raise ShapeError(f"num_parameters must be 1 or the channel count {c}, got {n}")
    return ins[0]


register(
    OpDef(
        name="prelu",
        params=PreluParams,
        shape=_prelu_shape,
        torch=lambda a, ins: __import__("torch").nn.PReLU(a["num_parameters"]),
        family="activation",
        label=lambda a: "prelu" if a["num_parameters"] == 1 else f"prelu ×{a['num_parameters']}",
        doc="max(x, 0) + a·min(x, 0) with learned a, one or one per channel (nn.PReLU, a starts at 0.25).",
        count_params=lambda a, ins, out: a["num_parameters"],
        weights=lambda a, ins: {"weight": (a["num_parameters"],)},
        count_extra=lambda a, ins, out: _numel(out),  # one per element, as the other activations
        # its input (the slope is a parameter); under bf16 autocast (prelu is on its list) the
        # input's bf16 copy and the slope's, always
        saved=lambda a, ins, out: Saved(inputs=(0,), amp_weight=a["num_parameters"], amp_weight_when=None),
        amp_low=True,
        amp_out=lambda a: 2,
        examples=examples(({}, (3, 5, 5)), ({"num_parameters": 3}, (3, 5, 5)), ({"num_parameters": 6}, (6,))),
    )
)
