"""Element-wise activations: the shape passes through unchanged."""
from __future__ import annotations

from typing import Any, Callable

from netspec.compiler.ops.layers import NoParams
from netspec.compiler.registry import Attrs, OpDef, register
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
        )
    )
