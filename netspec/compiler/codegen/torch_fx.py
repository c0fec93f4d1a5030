"""Graph IR -> `torch.fx.GraphModule`: straight-line generated forward code, no interpreter.

Every primitive node becomes a submodule at its dotted name (so parameters are named as in
the spec, e.g. `b3.0.conv1.weight`), a function call (merges) or an op's `Emit` recipe (calls,
methods, a module or a parameter at the node's path). Weight initialisation from the spec is
applied here. `build_modules` builds the same layers and records the recipes for model.py.
"""
from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
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


def _parent(root: nn.Module, dotted: str) -> tuple[nn.Module, str]:
    """The module that holds a dotted path's last part, creating plain containers on the way."""
    *parents, leaf = dotted.split(".")
    for part in parents:
        if not hasattr(root, part):
            root.add_module(part, nn.Module())
        root = getattr(root, part)
    return root, leaf


def put_module(root: nn.Module, dotted: str, module: nn.Module) -> None:
    """Attach `module` at a dotted path."""
    parent, leaf = _parent(root, dotted)
    parent.add_module(leaf, module)


def put_parameter(root: nn.Module, dotted: str, value: nn.Parameter) -> None:
    """Register a parameter at a dotted path (e.g. `features.1.0.layer_scale`)."""
    parent, leaf = _parent(root, dotted)
    parent.register_parameter(leaf, value)


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

    def parameter(self, shape: tuple[int, ...], fill: float, std: float = 0.0) -> fx.Node:
        """A learned tensor: filled with `fill`, or drawn from N(fill, std²) when `std` > 0."""
        put_parameter(self.root, self.path, new_parameter(shape, fill, std))
        return self.code.get_attr(self.path)


def new_parameter(shape: tuple[int, ...], fill: float, std: float) -> nn.Parameter:
    """The op's own initialisation of a raw learned tensor (no nn.Module defines one): a constant,
    or a normal draw (ViT's positions: N(0, 0.02²) in d2l 11.8 and torchvision). `-o model.py`
    writes the same expression (codegen/source.py), so it consumes the generator alike."""
    if std > 0:
        return nn.Parameter(torch.empty(shape).normal_(float(fill), float(std)))
    return nn.Parameter(torch.full(shape, float(fill)))


@dataclass(frozen=True)
class Value:
    """Input `index` of a node, as a recipe recorded by `Recorder` refers to it."""

    index: int


@dataclass(frozen=True, eq=False)
class Step:
    """One operation of a recorded `Emit` recipe: kind "call" (target: a function), "method"
    (target: its name), "module" (the module at the node's path) or "parameter" (target:
    (shape, fill, std) of the tensor at the node's path). Arguments may hold Steps and Values."""

    kind: str
    target: Any
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


class Recorder:
    """The Emitter interface, recording steps instead of fx nodes: what ejected source is
    written from. The module or parameter is placed at the node's path as in the compiled one."""

    def __init__(self, root: nn.Module, path: str):
        self.root, self.path = root, path
        self.module_built: nn.Module | None = None

    def call(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> Step:
        return Step("call", target, args, kwargs)

    def method(self, name: str, *args: Any, **kwargs: Any) -> Step:
        return Step("method", name, args, kwargs)

    def module(self, module: nn.Module, *args: Any, **kwargs: Any) -> Step:
        put_module(self.root, self.path, module)
        self.module_built = module
        return Step("module", None, args, kwargs)

    def parameter(self, shape: tuple[int, ...], fill: float, std: float = 0.0) -> Step:
        put_parameter(self.root, self.path, new_parameter(shape, fill, std))
        return Step("parameter", (tuple(shape), float(fill), float(std)))


@dataclass(frozen=True)
class Recipe:
    """A node built by an `Emit` recipe: its recorded output step, and the module (if any)
    placed at the node's path."""

    output: Any
    module: nn.Module | None


# Each scheme as (torch.nn.init function, its arguments from the InitSpec): one table, used
# both to initialise the compiled module and to write the same calls into ejected source.
INIT_CALLS: dict[str, tuple[str, Callable[[Any], tuple[Any, ...]], dict[str, Any]]] = {
    "normal": ("normal_", lambda s: (s.mean, s.std), {}),
    "uniform": ("uniform_", lambda s: (-s.a, s.a), {}),
    "xavier_uniform": ("xavier_uniform_", lambda s: (), {}),
    "xavier_normal": ("xavier_normal_", lambda s: (), {}),
    "kaiming_uniform": ("kaiming_uniform_", lambda s: (), {"nonlinearity": "relu"}),
    "kaiming_normal": ("kaiming_normal_", lambda s: (), {"nonlinearity": "relu"}),
    "zeros": ("zeros_", lambda s: (), {}),
}


def init_calls(node: Any) -> list[tuple[str, str, tuple[Any, ...], dict[str, Any]]]:
    """The initialisation of one node as (parameter, nn.init function, args, kwargs), in order;
    empty where PyTorch's default stays."""
    op = registry.get(node.op)
    if op is None or not op.has_weight or node.init is None:
        return []
    calls = []
    if node.init.weight != "default":
        function, args, kwargs = INIT_CALLS[node.init.weight]
        calls.append(("weight", function, args(node.init), kwargs))
    if node.init.bias == "zeros":
        calls.append(("bias", "zeros_", (), {}))
    return calls


def apply_init(module: nn.Module, graph: Graph) -> None:
    """Initialise the weights of conv/linear nodes as their spec (or its default) says."""
    with torch.no_grad():
        for node in graph.ops():
            for param, function, args, kwargs in init_calls(node):
                tensor = getattr(module.get_submodule(node.name), param, None)
                if tensor is not None:
                    getattr(nn.init, function)(tensor, *args, **kwargs)


def tie_parameters(module: nn.Module, graph: Graph) -> None:
    """`share:`: each tied tensor of a sharing layer becomes its owner's `nn.Parameter` (one
    object: both uses add to its gradient, `parameters()` lists it once). Done after `init:`,
    so the owner's initialisation is the one that counts, as ejected source does it."""
    from netspec.compiler.passes.share import tied

    for mine, owner in tied(graph):
        parent, _, leaf = mine.rpartition(".")
        setattr(module.get_submodule(parent), leaf, module.get_parameter(owner))


def build(graph: Graph, node: Any) -> Any:
    """What the node's op builds (a module, a FunctionCall or an Emit recipe); a module the
    `inplace` pass marked gets torch's `inplace=True` (passes/inplace.py says when that is safe)."""
    op = registry.get(node.op)
    assert op is not None
    built = op.torch(node.attrs, [graph.node(i).shape for i in node.inputs])
    if node.meta.get("inplace") and isinstance(built, nn.Module) and hasattr(built, "inplace"):
        built.inplace = True
    return built


def build_modules(graph: Graph) -> tuple[nn.Module, dict[str, FunctionCall | Recipe]]:
    """The layers alone, in graph order (as `to_graph_module` builds them), the merges'
    function calls and the recorded `Emit` recipes: what ejected source is written from,
    without torch.fx's code generator."""
    root = nn.Module()
    calls: dict[str, FunctionCall | Recipe] = {}
    for node in graph.ops():
        built = build(graph, node)
        if isinstance(built, Emit):
            recorder = Recorder(root, node.name)
            output = built.build(recorder, [Value(k) for k in range(len(node.inputs))])
            calls[node.name] = Recipe(output, recorder.module_built)
        elif isinstance(built, FunctionCall):
            calls[node.name] = built
        else:
            put_module(root, node.name, built)
    return root, calls


def to_graph_module(graph: Graph) -> fx.GraphModule:
    """Build the module; parameters are freshly initialised (seed torch first for determinism)."""
    root = nn.Module()
    code = fx.Graph()
    values: dict[str, fx.Node] = {}
    for node in graph.nodes():
        if node.op == INPUT:
            values[node.name] = code.placeholder("x")
            continue
        args = [values[i] for i in node.inputs]
        built = build(graph, node)
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
    tie_parameters(module, graph)
    return module
