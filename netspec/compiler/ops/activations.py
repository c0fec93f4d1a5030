"""Element-wise activations: the shape passes through unchanged."""
from __future__ import annotations

from typing import Any, Callable

from netspec.compiler.ops.layers import NoParams
from netspec.compiler.registry import Attrs, OpDef, Saved, register
from netspec.compiler.schema_base import Model, Number


class LeakyReluParams(Model):
    """Leaky ReLU with its negative slope."""

    negative_slope: Number = 0.01


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
}

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


for _name, (_cls, _params, _fixed, _doc) in _ACTIVATIONS.items():
    register(
        OpDef(
            name=_name,
            params=_params,
            shape=lambda a, ins: ins[0],
            torch=_module(_cls, **_fixed),
            family="activation" if _name != "identity" else "reshape",
            label=(lambda n: lambda a: n)(_name),
            doc=f"{_doc} (nn.{_cls}).",
            count_extra=(lambda k: lambda a, ins, out: k * _numel(out))(_WORK_PER_ELEMENT.get(_name, 1)),
            saved=_saved(_name),
            view=_name == "identity",
        )
    )
