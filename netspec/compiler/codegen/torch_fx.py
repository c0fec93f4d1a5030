"""Graph IR -> `torch.fx.GraphModule`: straight-line generated forward code, no interpreter.

Every primitive node becomes a submodule at its dotted name (so parameters are named as in
the spec, e.g. `b3.0.conv1.weight`) or a function call (merges). Weight initialisation from
the spec is applied here.
"""
from __future__ import annotations

import keyword
import re
from typing import Any, Callable

import torch
from torch import fx, nn

from netspec.compiler import registry
from netspec.compiler.graph import INPUT, Graph
from netspec.compiler.registry import Emit, FunctionCall


def class_name(name: str) -> str:
    """`resnet18` -> `Resnet18`, `mlp_dropout` -> `MlpDropout`: a valid Python class name."""
    out = "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name) if part)
    if not out or out[0].isdigit() or keyword.iskeyword(out):  # `none` -> `None` is a keyword
        out = f"Net{out}"
    return out


def put_module(root: nn.Module, dotted: str, module: nn.Module) -> None:
    """Attach `module` at a dotted path, creating plain container modules on the way."""
    *parents, leaf = dotted.split(".")
    for part in parents:
        if not hasattr(root, part):
            root.add_module(part, nn.Module())
        root = getattr(root, part)
    root.add_module(leaf, module)


def put_parameter(root: nn.Module, dotted: str, value: nn.Parameter) -> None:
    """Register a parameter at a dotted path (e.g. `features.1.0.layer_scale`)."""
    *parents, leaf = dotted.split(".")
    for part in parents:
        if not hasattr(root, part):
            root.add_module(part, nn.Module())
        root = getattr(root, part)
    root.register_parameter(leaf, value)


class Emitter:
    """What an op's `Emit` recipe may add: function and method calls, and a module or a
    parameter at its node's own path (so state_dict names are the spec's)."""

    def __init__(self, root: nn.Module, code: fx.Graph, path: str):
        self.root, self.code, self.path = root, code, path

    def call(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> fx.Node:
        return self.code.call_function(target, args, kwargs)

    def method(self, name: str, *args: Any, **kwargs: Any) -> fx.Node:
        return self.code.call_method(name, args, kwargs)

    def module(self, module: nn.Module, *args: Any, **kwargs: Any) -> fx.Node:
        put_module(self.root, self.path, module)
        return self.code.call_module(self.path, args, kwargs)

    def parameter(self, shape: tuple[int, ...], fill: float) -> fx.Node:
        """A learned tensor filled with `fill`; the fill is kept in the node's meta for `-o model.py`."""
        put_parameter(self.root, self.path, nn.Parameter(torch.full(shape, float(fill))))
        node = self.code.get_attr(self.path)
        node.meta["netspec_fill"] = (tuple(shape), float(fill))
        return node


_WEIGHT_INIT: dict[str, Callable[[torch.Tensor, Any], Any]] = {
    "normal": lambda w, s: nn.init.normal_(w, s.mean, s.std),
    "uniform": lambda w, s: nn.init.uniform_(w, -s.a, s.a),
    "xavier_uniform": lambda w, s: nn.init.xavier_uniform_(w),
    "xavier_normal": lambda w, s: nn.init.xavier_normal_(w),
    "kaiming_uniform": lambda w, s: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "kaiming_normal": lambda w, s: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "zeros": lambda w, s: nn.init.zeros_(w),
}


def apply_init(module: nn.Module, graph: Graph) -> None:
    """Initialise the weights of conv/linear nodes as their spec (or its default) says."""
    with torch.no_grad():
        for node in graph.ops():
            op = registry.get(node.op)
            if op is None or not op.has_weight or node.init is None:
                continue
            layer = module.get_submodule(node.name)
            if node.init.weight != "default":
                _WEIGHT_INIT[node.init.weight](layer.weight, node.init)
            if node.init.bias == "zeros" and getattr(layer, "bias", None) is not None:
                nn.init.zeros_(layer.bias)


def to_graph_module(graph: Graph) -> fx.GraphModule:
    """Build the module; parameters are freshly initialised (seed torch first for determinism)."""
    root = nn.Module()
    code = fx.Graph()
    values: dict[str, fx.Node] = {}
    for node in graph.nodes():
        if node.op == INPUT:
            values[node.name] = code.placeholder("x")
            continue
        op = registry.get(node.op)
        assert op is not None
        in_shapes = [graph.node(i).shape for i in node.inputs]
        args = [values[i] for i in node.inputs]
        built = op.torch(node.attrs, in_shapes)
        if isinstance(built, Emit):
            values[node.name] = built.build(Emitter(root, code, node.name), args)
        elif isinstance(built, FunctionCall):
            if built.list_arg:
                values[node.name] = code.call_function(built.target, (args,), built.kwargs)
            else:
                result = args[0]
                for arg in args[1:]:
                    result = code.call_function(built.target, (result, arg), built.kwargs)
                values[node.name] = result
        else:
            put_module(root, node.name, built)
            values[node.name] = code.call_module(node.name, tuple(args))
    code.output(values[graph.output])
    module = fx.GraphModule(root, code, class_name=class_name(graph.name))
    module.meta["netspec_values"] = {name: value.name for name, value in values.items()}  # IR node -> the fx node of its value
    apply_init(module, graph)
    return module
