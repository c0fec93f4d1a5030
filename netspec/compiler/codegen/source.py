"""Graph IR -> standalone, readable PyTorch source: a file that needs only torch to import.

The module tree is the compiled one (same dotted names, so the same state_dict keys), written
as people write PyTorch: one `nn.Module` class per block kind, its configurations as
constructor arguments (as torchvision's `Bottleneck`; see `classes`), `nn.Sequential` for
positional chains (so `net.layer1[0]` works), a shape comment on every line (`# e.g.` inside
a class several configurations share: the instantiation line says each one's), and the spec's `init:` applied in the constructor in
the compiled module's order, so that the same seed gives the same weights.

Nothing from a spec or a path becomes code: text is written only as a literal (`literal`,
`docstring`), names only where they are plain ASCII identifiers, numbers through `literal`
(`float('nan')`, never a bare `nan`).
"""
from __future__ import annotations

import inspect
import keyword
import math
import operator
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import nn

from netspec.compiler import registry
from netspec.compiler.codegen import classes
from netspec.compiler.codegen.torch_fx import Recipe, Step, Value, build_modules, class_name, init_calls
from netspec.compiler.graph import INPUT, Graph, Node
from netspec.compiler.passes.share import tied
from netspec.compiler.registry import FunctionCall
from netspec.errors import NetspecError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INFIX = {operator.add: "+", operator.sub: "-", operator.mul: "*", operator.truediv: "/", operator.matmul: "@", operator.eq: "=="}


# --------------------------------------------------------------------------- literals

def literal(value: Any) -> str:
    """Python source that evaluates to `value`: repr for text and numbers, `float('nan')` for
    the non-finite floats (a bare `nan` is a name), `torch.float32` for a torch dtype (the
    object itself, found under its own name in torch: never text), containers element by element."""
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, torch.dtype):
        name = str(value).removeprefix("torch.")
        if is_identifier(name) and getattr(torch, name, None) is value:
            return f"torch.{name}"
        raise NetspecError(f"cannot write the dtype {value!r} as Python source")
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"float({repr(value)!r})"
    if isinstance(value, tuple):
        return f"({literal(value[0])},)" if len(value) == 1 else "(" + ", ".join(map(literal, value)) + ")"
    if isinstance(value, list):
        return "[" + ", ".join(map(literal, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, torch.Size):
        return literal(tuple(value))
    raise NetspecError(f"cannot write {type(value).__name__} value {value!r} as Python source")


def docstring(text: str, indent: str = "") -> str:
    """A docstring statement holding exactly `text`: triple-quoted where that is plainly safe
    (printable text, no backslash or quote run that could end it), otherwise `repr`."""
    safe = all(ch == "\n" or ch.isprintable() for ch in text) and "\\" not in text and '"""' not in text
    if safe and not text.endswith('"') and not text.startswith('"'):
        return f'{indent}"""{text}\n{indent}"""' if "\n" in text else f'{indent}"""{text}"""'
    return indent + literal(text)


def _comment(shape: Any) -> str:
    return "  # " + "×".join(str(int(d)) for d in shape) if shape is not None else ""


def is_identifier(name: str) -> bool:
    """Plain ASCII identifiers only (Python folds other letters with NFKC, so `ﬁ` would name `fi`)."""
    return bool(_IDENTIFIER.fullmatch(name)) and not keyword.iskeyword(name)


def constructor(module: nn.Module, force: frozenset[str] | set[str] = frozenset()) -> str:
    """`nn.Conv2d(1, 6, kernel_size=(5, 5), padding=(2, 2))`-style source for a torch.nn layer.

    Built from the constructor's signature and the module's attributes of the same names
    (not from `extra_repr`, which leaves arguments out and does not quote strings); values
    equal to their defaults are omitted, so the line reads like hand-written code, except those
    in `force` (a setting other configurations of the same block write: one class for both).
    """
    return f"nn.{type(module).__name__}({', '.join(text for _, text in _arguments(module, force))})"


def _arguments(module: nn.Module, force: frozenset[str] | set[str] = frozenset()) -> list[tuple[str, str]]:
    """(name, source) of each argument `constructor` writes."""
    cls = type(module)
    if not cls.__module__.startswith("torch.nn") or getattr(nn, cls.__name__, None) is not cls:
        raise NetspecError(f"cannot write source for the custom module {cls.__name__}; use -o model.onnx or the Python API")
    args = []
    parameters = dict(inspect.signature(cls.__init__).parameters)
    base = next((c for c in cls.__mro__[1:] if "mode" in inspect.signature(c.__init__).parameters), None)
    if base is not None and any(p.kind == p.VAR_POSITIONAL for p in parameters.values()):  # nn.LSTM(*args, **kwargs): RNNBase's, as keywords
        parameters = {n: p.replace(kind=p.KEYWORD_ONLY, default=None if p.default is p.empty else p.default)
                      for n, p in inspect.signature(base.__init__).parameters.items() if n not in ("self", "mode")}
        if getattr(module, "nonlinearity", "tanh") != "tanh":  # nn.RNN's own keyword
            args.append(("nonlinearity", f"nonlinearity={module.nonlinearity!r}"))
    for name, param in parameters.items():
        if name in ("self", "device", "dtype") or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if not hasattr(module, name):
            continue
        value = getattr(module, name)
        if isinstance(value, torch.Tensor) or (value is None and name == "bias"):
            value = value is not None  # `bias` is a flag in the constructor, a tensor on the module
        default = param.default
        if default is not param.empty and _same(value, default) and name not in force:
            continue
        if name in ("kdim", "vdim") and value == getattr(module, "embed_dim", None):
            continue  # nn.MultiheadAttention's None: the queries' width
        args.append((name, literal(value) if default is param.empty else f"{name}={literal(value)}"))
    return args


def _same(value: Any, default: Any) -> bool:
    if isinstance(value, tuple) and not isinstance(default, tuple):
        return all(_same(v, default) for v in value)
    return type(value) is type(default) and value == default or (value is default)


def _function(call: FunctionCall, args: list[str]) -> str:
    """Source of a merge: `a + b + c`, `torch.cat([a, b], dim=1)`."""
    if not all(map(is_identifier, call.kwargs)):
        raise NetspecError(f"cannot write source for the keyword arguments {list(call.kwargs)!r}")
    kwargs = "".join(f", {k}={literal(v)}" for k, v in call.kwargs.items())
    if call.target in _INFIX and not call.kwargs and not call.list_arg:
        return f" {_INFIX[call.target]} ".join(args)
    name = _qualified(call.target)
    if call.list_arg:
        return f"{name}([{', '.join(args)}]{kwargs})"
    result = args[0]
    for arg in args[1:]:
        result = f"{name}({result}, {arg}{kwargs})"
    return result


def _qualified(target: Any) -> str:
    """`torch.permute` for the function torch.permute: only functions found under their own
    (plain) name in torch or torch.nn.functional are written."""
    name = getattr(target, "__name__", "")
    for prefix, namespace in (("torch", torch), ("nn.functional", nn.functional)):
        if is_identifier(name) and getattr(namespace, name, None) is target:
            return f"{prefix}.{name}"
    raise NetspecError(f"cannot write source for the function {name or target!r}")


def _uses(output: Any) -> dict[int, int]:
    """How many times each Step of a recipe is an argument (its own arguments counted once)."""
    counts: dict[int, int] = {}
    stack = [output]
    while stack:
        value = stack.pop()
        if isinstance(value, (list, tuple)):
            stack += list(value)
        elif isinstance(value, Step):
            counts[id(value)] = counts.get(id(value), 0) + 1
            if counts[id(value)] == 1:
                stack += list(value.args) + list(value.kwargs.values())
    return counts


def _recipe(recipe: Recipe, args: list[str], at: str, bind: Callable[[str], str] | None = None) -> str:
    """Source of an `Emit` recipe as one expression: `x * self.layer_scale`,
    `torch.permute(self.norm(torch.permute(x, [0, 2, 3, 1])), [0, 3, 1, 2])`; `at` reaches
    the node's own module or parameter. A step used twice (the angles of both sin and cos) is
    computed once: `bind(expression)` writes it to a local variable and returns its name."""
    uses = _uses(recipe.output)
    bound: dict[int, str] = {}

    def render(value: Any, operand: bool = False) -> str:
        if isinstance(value, Value):
            return args[value.index]
        if isinstance(value, (list, tuple)):
            items = [render(v) for v in value]
            if isinstance(value, list):
                return "[" + ", ".join(items) + "]"
            return f"({items[0]},)" if len(items) == 1 else "(" + ", ".join(items) + ")"
        if not isinstance(value, Step):
            return literal(value)
        if value.kind == "parameter":
            return at
        if id(value) in bound:
            return bound[id(value)]
        if uses[id(value)] > 1:  # an expression would compute it twice (a dropout twice)
            if bind is None:
                raise NetspecError("cannot write source for a recipe that uses an intermediate value twice")
            bound[id(value)] = bind(expression(value))
            return bound[id(value)]
        text = expression(value)
        return f"({text})" if operand and value.kind == "call" and value.target in _INFIX else text

    def expression(value: Step) -> str:
        if not all(map(is_identifier, value.kwargs)):
            raise NetspecError(f"cannot write source for the keyword arguments {list(value.kwargs)!r}")
        if value.kind == "call" and value.target in _INFIX and len(value.args) == 2 and not value.kwargs:
            return f" {_INFIX[value.target]} ".join(render(a, operand=True) for a in value.args)
        if value.kind == "call" and value.target is operator.getitem and len(value.args) == 2 and not value.kwargs:
            return f"{render(value.args[0], operand=True)}[{render(value.args[1])}]"
        if value.kind == "call" and value.target is getattr and len(value.args) == 2 and not value.kwargs:
            name = value.args[1]
            if not isinstance(name, str) or not is_identifier(name):
                raise NetspecError(f"cannot write source for the attribute {name!r}")
            return f"{render(value.args[0], operand=True)}.{name}"
        if value.kind == "method":
            if not is_identifier(value.target) or not value.args:
                raise NetspecError(f"cannot write source for the method {value.target!r}")
            head, *rest = value.args
            rendered = [render(head, operand=True)] + [render(a) for a in rest]
        else:
            rendered = [render(a) for a in value.args]
        rendered += [f"{k}={render(v)}" for k, v in value.kwargs.items()]
        if value.kind == "module":
            return f"{at}({', '.join(rendered)})"
        if value.kind == "method":
            return f"{rendered[0]}.{value.target}({', '.join(rendered[1:])})"
        return f"{_qualified(value.target)}({', '.join(rendered)})"

    return render(recipe.output)


def _module_output_shape(recipe: Recipe, in_shapes: list[Any]) -> tuple[int, ...]:
    """What the recipe's own module returns (per example), for its line's shape comment: the
    recipe run on meta tensors (LayerNorm2d's norm sees H×W×C, stochastic depth's dropout a
    mask); of a module returning a tuple (nn.LSTM's output and state), its first tensor."""
    found: list[tuple[int, ...]] = []
    done: dict[int, Any] = {}

    def run(value: Any) -> Any:
        if isinstance(value, Value):
            return torch.zeros(2, *in_shapes[value.index])
        if isinstance(value, (list, tuple)):
            return type(value)(run(v) for v in value)
        if not isinstance(value, Step):
            return value
        if id(value) not in done:
            done[id(value)] = step(value)
        return done[id(value)]

    def step(value: Step) -> Any:
        if value.kind == "parameter":
            return torch.zeros(value.target[0])
        args = [run(a) for a in value.args]
        kwargs = {k: run(v) for k, v in value.kwargs.items()}
        if value.kind == "module":
            out = recipe.module(*args, **kwargs)
            first = out
            while isinstance(first, (tuple, list)):
                first = first[0]
            found.append(tuple(first.shape[1:]))
            return out
        if value.kind == "method":
            return getattr(args[0], value.target)(*args[1:], **kwargs)
        return value.target(*args, **kwargs)

    with torch.device("meta"), torch.no_grad():
        run(recipe.output)
    return found[0]


# --------------------------------------------------------------------------- the module tree

_SEQUENTIAL = nn.Sequential()  # what a child of a named nn.Sequential may not be called


@dataclass
class Container:
    """A dotted prefix of module names: the root, a block, a group or a branch."""

    path: str
    entries: list[str] = field(default_factory=list)  # full paths of direct children, in order
    members: list[Node] = field(default_factory=list)  # every node below, in graph order
    inputs: list[str] = field(default_factory=list)  # values used from outside
    outputs: list[str] = field(default_factory=list)  # values used outside (or the network's output)
    kind: str = ""  # "sequential" (nn.Sequential), "class" or "holder" (a plain nn.Module, no forward)
    named: bool = False  # a sequential whose children have names, not positions: nn.Sequential(OrderedDict(...))
    own_class: bool = False  # written as a class of its own (blocks, the network, non-chain groups)


class _Writer:
    def __init__(self, graph: Graph, module: nn.Module, calls: dict[str, FunctionCall | Recipe]) -> None:
        self.graph, self.module = graph, module
        self.nodes = {n.name: n for n in graph.ops()}
        self.containers: dict[str, Container] = {"": Container("")}
        for node in self.nodes.values():
            parts = node.name.split(".")
            for depth in range(len(parts)):
                parent = ".".join(parts[:depth])
                child = ".".join(parts[: depth + 1])
                box = self.containers.setdefault(parent, Container(parent))
                box.members.append(node)
                if child not in box.entries:
                    box.entries.append(child)
                if depth + 1 < len(parts):
                    self.containers.setdefault(child, Container(child))
        users = graph.users()
        for box in self.containers.values():
            inside = {n.name for n in box.members}
            box.inputs = list(dict.fromkeys(i for n in box.members for i in n.inputs if i not in inside))
            box.outputs = [n.name for n in box.members if n.name == graph.output or any(u not in inside for u in users.get(n.name, ()))]
        self.built: dict[str, Any] = {**dict(module.named_modules()), **calls}
        self.class_source: list[str] = []
        self.instance: dict[str, str] = {}  # a class-written container -> `Residual(64, 128, 2, True)`
        self.signatures: dict[str, list[str]] = {}  # class name -> its constructor's parameters
        self.forced: dict[tuple[str, str, type], set[str]] = {}  # (class name, path in block, layer type) -> keywords
        self.owner: tuple[str, str] | None = None  # (class name, path) of the block being written
        self.used_names: set[str] = {"nn", "torch", "OrderedDict"}  # what the module imports
        self.shapes = {n.name: n.shape for n in graph.nodes()}
        self.root_name = class_name(graph.name)
        if self.root_name in self.used_names:  # a network named `ordered_dict`
            self.root_name += "Net"
        self.used_names.add(self.root_name)
        for path in sorted(self.containers, key=lambda p: -p.count(".") if p else 1):
            self._classify(self.containers[path])

    # ----------------------------------------------------------------- what each container becomes
    def _entry_inputs(self, entry: str) -> list[str]:
        return self.nodes[entry].inputs if entry in self.nodes else self.containers[entry].inputs

    def _entry_output(self, entry: str) -> str:
        return entry if entry in self.nodes else self.containers[entry].outputs[0]

    def _is_unit(self, box: Container) -> bool:
        return len(box.inputs) == 1 and len(box.outputs) == 1

    def _classify(self, box: Container) -> None:
        if not self._is_unit(box) and box.path:
            box.kind = "holder"
            return
        scope = self.graph.scopes.get(box.path)
        is_block = scope is not None and scope.is_block
        names = [e.rsplit(".", 1)[-1] for e in box.entries]
        positional = names == [str(i) for i in range(len(box.entries))]
        # a chain of named children (RegNet's stages, DenseNet's features) is an nn.Sequential
        # with names, as torchvision writes them; a block, the network, and a chain with a
        # child named as nn.Sequential's own attributes (`pop`, `append`) stay classes
        chain = positional or (bool(box.path) and not is_block and not any(hasattr(_SEQUENTIAL, n) for n in names))
        previous = box.inputs[0] if box.inputs else INPUT
        for entry in box.entries if chain else ():
            if entry in self.nodes:
                ok = isinstance(self._built(entry), nn.Module)
            else:
                ok = self.containers[entry].kind != "holder"
            if not ok or self._entry_inputs(entry) != [previous]:
                chain = False
                break
            previous = self._entry_output(entry)
        chain = chain and previous == (box.outputs[0] if box.outputs else self.graph.output)
        box.kind = "sequential" if chain and box.entries else "class"
        box.named = box.kind == "sequential" and not positional
        box.own_class = box.kind == "class" or is_block or not box.path

    def _built(self, name: str) -> Any:
        """The module at `name`, the FunctionCall a merge node makes, or an op's Recipe."""
        return self.built[name]

    # ----------------------------------------------------------------- expressions
    def expression(self, path: str, indent: str) -> list[str]:
        """Lines of the constructor expression of `path` (a module node or a unit container);
        the first line carries no indent, the rest are indented for an argument list."""
        if path in self.nodes:
            return [constructor(self.module.get_submodule(path), self._force(path))]
        box = self.containers[path]
        if box.own_class:
            return [self.instance[path]]
        lines = ["nn.Sequential(OrderedDict([" if box.named else "nn.Sequential("]
        for entry in box.entries:
            sub = self.expression(entry, indent + "    ")
            opened, closed = (f"({literal(entry.rsplit('.', 1)[-1])}, ", ")") if box.named else ("", "")
            comment = _comment(self.shapes[self._entry_output(entry)])
            lines.append(f"{indent}    {opened}{sub[0]}" + ("" if len(sub) > 1 else f"{closed},{comment}"))
            lines += sub[1:-1]
            if len(sub) > 1:
                lines.append(f"{sub[-1]}{closed},{comment}")
        lines.append(f"{indent}]))" if box.named else f"{indent})")
        return lines

    def access(self, base: str, relative: str, parent_path: str) -> str:
        """Source that reaches module `relative` (dotted, below `parent_path`) from `base`."""
        expr, path = base, parent_path
        for part in relative.split("."):
            parent = self.containers.get(path)
            if parent is not None and parent.kind == "sequential" and re.fullmatch("[0-9]+", part):
                expr += f"[{part}]"
            elif is_identifier(part):
                expr += f".{part}"
            else:
                expr = f"getattr({expr}, {literal(part)})"
            path = f"{path}.{part}" if path else part
        return expr

    # ----------------------------------------------------------------- classes
    def _construct(self, box: Container, target: str, lines: list[str], tags: list | None = None, top: str = "") -> None:
        """Constructor statements adding every child of `box` to `target` (a holder expands in
        place); `tags` gets ("init", child's name below the class) for each line."""
        prefix = box.path + "." if box.path else ""
        top = top or prefix
        tags = [] if tags is None else tags
        for entry in box.entries:
            local = entry[len(prefix):]
            tags += [None] * (len(lines) - len(tags))
            self._construct_entry(box, entry, local, target, lines, tags, top)
            tags += [("init", entry[len(top):])] * (len(lines) - len(tags))

    def _construct_entry(self, box: Container, entry: str, local: str, target: str, lines: list[str], tags: list, top: str) -> None:
        child = self.containers.get(entry)
        if child is not None and child.kind == "holder":
            holder = f"{target}.{local}" if is_identifier(local) else f"getattr({target}, {literal(local)})"
            lines.append(f"        {self._add(target, local, 'nn.Module()')}")
            tags.append(None)
            self._construct(child, holder, lines, tags, top)
            return
        if entry in self.nodes and isinstance(self._built(entry), FunctionCall):
            return  # a merge: a line in forward, not a module
        if entry in self.nodes and isinstance(self._built(entry), Recipe):
            lines += self._recipe_member(target, local, self._built(entry), entry)
            return
        expr = self.expression(entry, "        ")
        comment = _comment(self.shapes[self._entry_output(entry)])
        head = self._add(target, local, expr[0], open_call=len(expr) > 1)
        if len(expr) == 1:
            lines.append(f"        {head}{comment}")
        else:
            lines.append(f"        {head}")
            lines += expr[1:-1]
            lines.append(f"{expr[-1]}{')' if not is_identifier(local) else ''}{comment}")

    def _recipe_member(self, target: str, local: str, recipe: Recipe, path: str) -> list[str]:
        """The module or learned tensor a recipe keeps at its node's path (none for pure calls)."""
        if recipe.module is not None:
            shape = _module_output_shape(recipe, [self.shapes[i] for i in self.nodes[path].inputs])
            return [f"        {self._add(target, local, constructor(recipe.module, self._force(path)))}{_comment(shape)}"]
        steps = [recipe.output]
        while steps:  # the recipe's parameter, if it has one
            step = steps.pop()
            if isinstance(step, (list, tuple)):
                steps += list(step)
            elif isinstance(step, Step):
                if step.kind == "parameter":
                    shape, fill, std = step.target
                    value = (f"nn.Parameter(torch.empty({literal(shape)}).normal_({literal(fill)}, {literal(std)}))" if std > 0
                             else f"nn.Parameter(torch.full({literal(shape)}, {literal(fill)}))")
                    if is_identifier(local):
                        return [f"        {target}.{local} = {value}{_comment(shape)}"]
                    return [f"        {target}.register_parameter({literal(local)}, {value}){_comment(shape)}"]
                steps += list(step.args) + list(step.kwargs.values())
        return []

    @staticmethod
    def _add(target: str, local: str, expr: str, open_call: bool = False) -> str:
        if is_identifier(local):
            return f"{target}.{local} = {expr}"
        return f"{target}.add_module({literal(local)}, {expr}" + ("" if open_call else ")")

    def _steps(self, box: Container) -> Iterator[tuple[str, list[str], str]]:
        """(what is called, its input values, its output value) in graph order; units once."""
        prefix = box.path + "." if box.path else ""
        seen: set[str] = set()
        for node in box.members:
            step = node.name
            rest = node.name[len(prefix):].split(".")
            for depth in range(1, len(rest)):
                candidate = prefix + ".".join(rest[:depth])
                if self.containers[candidate].kind != "holder":
                    step = candidate
                    break
            if step in seen:
                continue
            seen.add(step)
            yield step, self._entry_inputs(step), self._entry_output(step)

    def _forward(self, box: Container, tags: list | None = None) -> list[str]:
        steps = list(self._steps(box))
        output = box.outputs[0] if box.outputs else self.graph.output
        uses: dict[str, int] = {output: 1}
        for _, inputs, _ in steps:
            for value in inputs:
                uses[value] = uses.get(value, 0) + 1
        names = {box.inputs[0] if box.inputs else INPUT: "x"}
        taken = {"x", "self", "torch", "nn"}
        prefix = box.path + "." if box.path else ""
        lines = []
        tags = [] if tags is None else tags
        offset = len(tags)  # `tags` may already hold the constructor's lines
        for step, inputs, out in steps:
            self._forward_step(step, inputs, out, box, prefix, names, taken, uses, lines)
            tags += [("fwd", step[len(prefix):])] * (offset + len(lines) - len(tags))
        if lines and lines[-1].lstrip().startswith(f"{names[output]} = "):
            lines[-1] = lines[-1].replace(f"{names[output]} = ", "return ", 1)
        else:
            lines.append(f"        return {names[output]}")
            tags.append(None)
        return lines

    def _forward_step(self, step: str, inputs: list[str], out: str, box: Container, prefix: str,
                      names: dict[str, str], taken: set[str], uses: dict[str, int], lines: list[str]) -> None:
        args = [names[v] for v in inputs]
        for value in inputs:
            uses[value] -= 1
        local = step[len(prefix):]
        if step in self.nodes and isinstance(self._built(step), FunctionCall):
            call = _function(self._built(step), args)
        elif step in self.nodes and isinstance(self._built(step), Recipe):
            def bind(expression: str) -> str:
                name = "h"
                while name in taken:
                    name += "_"
                taken.add(name)
                lines.append(f"        {name} = {expression}")
                return name

            call = _recipe(self._built(step), args, self.access("self", local, box.path), bind)
        else:
            call = f"{self.access('self', local, box.path)}({', '.join(args)})"
        if inputs and uses[inputs[0]] == 0:
            var = names[inputs[0]]
        else:
            base = local.rsplit(".", 1)[-1]
            var = "out" if "out" not in taken else base if is_identifier(base) else f"x{len(taken)}"
            while var in taken:
                var += "_"
            taken.add(var)
        names[out] = var
        lines.append(f"        {var} = {call}{_comment(self.shapes[out])}")

    def _body(self, box: Container) -> tuple[str, list[str], list]:
        """(base class, body lines without the docstring, each line's tag for `classes`)."""
        if box.kind == "sequential":
            lines = ["    def __init__(self) -> None:", "        super().__init__("]
            for entry in box.entries:
                expr = self.expression(entry, "            ")
                comment = _comment(self.shapes[self._entry_output(entry)])
                lines.append(f"            {expr[0]}" + ("" if len(expr) > 1 else f",{comment}"))
                if len(expr) > 1:
                    lines += expr[1:-1] + [f"{expr[-1]},{comment}"]
            lines.append("        )")
            if not box.path:
                lines += self._init() + self._ties()
            return "nn.Sequential", lines, [None] * len(lines)
        lines = ["    def __init__(self) -> None:", "        super().__init__()"]
        tags: list = [None, None]
        self._construct(box, "self", lines, tags)
        if not box.path:
            lines += self._init() + self._ties()
        lines += ["", "    def forward(self, x: torch.Tensor) -> torch.Tensor:"]
        tags += [None] * (len(lines) - len(tags))
        lines += self._forward(box, tags)
        return "nn.Module", lines, tags

    def _name(self, box: Container) -> str:
        scope = self.graph.scopes.get(box.path)
        kind = scope.kind if scope is not None else "branch"
        if kind not in ("sequential", "repeat"):
            return class_name(kind)
        own = box.path.rsplit(".", 1)[-1]  # a group is named after its own name (ViT's `encoder`: `Encoder`)
        return class_name(own) if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", own) else {"sequential": "Group", "repeat": "Repeat"}[kind]

    def _doc(self, boxes: list[Container]) -> str:
        """`residual(out=64, stride=1, ...)`: the block's parameters, by name only where its
        instances differ."""
        scopes = [self.graph.scopes.get(b.path) for b in boxes]
        if scopes[0] is None or not scopes[0].is_block:
            return ""
        params = scopes[0].params
        shown = [k if any(s.params.get(k, None) != v or type(s.params.get(k)) is not type(v) for s in scopes) else f"{k}={v!r}"
                 for k, v in params.items()]
        return f"{scopes[0].kind}({', '.join(shown)})" + (f": {scopes[0].doc}" if scopes[0].doc else "")

    def _owning_class(self, path: str) -> str | None:
        """The nearest container above `path` written as a class of its own."""
        parts = path.split(".")
        for depth in range(len(parts) - 1, 0, -1):
            box = self.containers.get(".".join(parts[:depth]))
            if box is not None and box.own_class:
                return box.path
        return None

    def _force(self, path: str) -> set[str]:
        """Keywords to write at `path` though default: other configurations of its block set them."""
        owner = self._owning_class(path)
        if owner is None:
            return set()
        built = self._built(path)
        module = built.module if isinstance(built, Recipe) else built
        return self.forced.get((self._name(self.containers[owner]), path[len(owner) + 1:], type(module)), set())

    def write_classes(self) -> None:
        """Every class, children first; the configurations of one block kind that differ only
        in literal values (and optional members) as one class with constructor parameters."""
        boxes = [b for p, b in self.containers.items() if p and b.own_class]
        for node in self.graph.ops():  # settings some configuration of a block writes
            owner = self._owning_class(node.name)
            built = self._built(node.name)
            module = built.module if isinstance(built, Recipe) else built
            if owner is None or not isinstance(module, nn.Module) or module is self.module:
                continue
            try:
                names = {n for n, text in _arguments(module) if "=" in text}
            except NetspecError:
                continue
            key = (self._name(self.containers[owner]), node.name[len(owner) + 1:], type(module))
            self.forced.setdefault(key, set()).update(names)
        height: dict[str, int] = {b.path: 0 for b in boxes}
        for box in sorted(boxes, key=lambda b: -b.path.count(".")):
            parent = self._owning_class(box.path)
            if parent is not None:
                height[parent] = max(height[parent], height[box.path] + 1)
        for level in sorted(set(height.values())):
            groups: dict[tuple[str, str, str], list] = {}
            for box in (b for b in boxes if height[b.path] == level):
                base, lines, tags = self._body(box)
                scope = self.graph.scopes.get(box.path)
                params = dict(scope.params) if scope is not None and scope.is_block else {}
                shape = self.shapes[box.inputs[0]] if box.inputs else self.graph.input_shape
                width = int(shape[0]) if shape is not None and len(shape) else None
                config = classes.parse(lines, tags, params, width, self.signatures)
                kind = scope.kind if scope is not None else ""  # a group named `body` is not block kind `body`
                groups.setdefault((self._name(box), base, kind), []).append((box, config, "\n".join(lines)))
            for (name, base, _), members in groups.items():
                # each cluster: its template, its (container, source) pairs, source -> configuration
                clusters: list[tuple[classes.Template, list[tuple[Container, str]], dict[str, int]]] = []
                for box, config, key in members:
                    for n, (template, owned, keys) in enumerate(clusters):
                        if key in keys:
                            owned.append((box, key))
                            break
                        merged = classes.merge(template, config)
                        if merged is not None:
                            keys[key] = len(template.configs)
                            owned.append((box, key))
                            clusters[n] = (merged, owned, keys)
                            break
                    else:
                        clusters.append((classes.start(config), [(box, key)], {key: 0}))
                for template, owned, keys in clusters:
                    self._emit(name, base, template, owned, keys)

    def _emit(self, name: str, base: str, template: classes.Template, owned: list[tuple[Container, str]], keys: dict[str, int]) -> None:
        written = classes.render(template)
        unique, n = name, 1
        while unique in self.used_names:
            n += 1
            unique = f"{name}{n}"
        self.used_names.add(unique)
        self.signatures[unique] = written.params
        firsts = list({keys[key]: box for box, key in reversed(owned)}.values())
        doc = self._doc(firsts if written.varying else [owned[0][0]])
        body = ([docstring(doc, "    "), ""] if doc else []) + written.lines
        self.class_source.append(f"class {unique}({base}):\n" + "\n".join(body) + "\n")
        for box, key in owned:
            self.instance[box.path] = f"{unique}({', '.join(written.args[keys[key]])})"

    def write_root(self) -> None:
        base, lines, _ = self._body(self.containers[""])
        self.class_source.append(f"class {self.root_name}({base}):\n" + "\n".join(lines) + "\n")

    def _init(self) -> list[str]:
        """The spec's initialisation, in the compiled module's order (graph order, after every
        layer is built), so that the same seed draws the same weights."""
        calls = [(node, call) for node in self.graph.ops() for call in init_calls(node)]
        if not calls:
            return []
        lines = ["        # initialisation from the spec's `init:` (the rest keeps PyTorch's defaults)"]
        weighted = [n for n in self.graph.ops() if self._has_weight(n)]
        plans = {tuple((p, f, a, tuple(k.items())) for p, f, a, k in init_calls(n)) for n in weighted}
        types = tuple(dict.fromkeys(type(self.module.get_submodule(n.name)) for n in weighted))
        matched = [name for name, m in self.module.named_modules() if isinstance(m, types)]
        if len(plans) == 1 and matched == [n.name for n in weighted]:
            (plan,) = plans
            names = ", ".join(f"nn.{t.__name__}" for t in types)
            lines.append("        for m in self.modules():")
            lines.append(f"            if isinstance(m, {names if len(types) == 1 else '(' + names + ')'}):")
            for param, function, args, kwargs in plan:
                call = self._init_call(f"m.{param}", function, args, dict(kwargs))
                lines.append(f"                if m.{param} is not None:" if param == "bias" else f"                {call}")
                if param == "bias":
                    lines.append(f"                    {call}")
            return lines
        for node, (param, function, args, kwargs) in calls:
            target = f"{self.access('self', node.name, '')}.{param}"
            if param == "bias" and getattr(self.module.get_submodule(node.name), "bias", None) is None:
                continue
            lines.append(f"        {self._init_call(target, function, args, kwargs)}")
        return lines

    def _ties(self) -> list[str]:
        """`share:`: the sharing layers take their owners' tensors, after the initialisation
        (as netspec.compile does), so the state_dict keeps both names for one tensor."""
        pairs = tied(self.graph)
        if not pairs:
            return []
        lines = ["        # shared parameters (`share:` in the spec): one tensor, used at both places"]
        for mine, owner in pairs:
            parent, _, leaf = mine.rpartition(".")
            target = self.access("self", parent, "") if parent else "self"
            value = self.access("self", owner, "")
            lines.append(f"        {target}.{leaf} = {value}" if is_identifier(leaf) else f"        setattr({target}, {literal(leaf)}, {value})")
        return lines

    def _has_weight(self, node: Node) -> bool:
        op = registry.get(node.op)
        return op is not None and op.has_weight and node.init is not None

    @staticmethod
    def _init_call(target: str, function: str, args: tuple, kwargs: dict) -> str:
        rendered = [target, *map(literal, args), *(f"{k}={literal(v)}" for k, v in kwargs.items())]
        return f"nn.init.{function}({', '.join(rendered)})"


def to_source(graph: Graph, title: str = "") -> str:
    """Python source of an nn.Module equivalent to `to_graph_module(graph)`: same state_dict
    keys, same outputs, and with the same seed the same initial weights."""
    with torch.device("meta"):  # the source needs the layers' settings, not their weights
        module, calls = build_modules(graph)
    writer = _Writer(graph, module, calls)
    writer.write_classes()
    writer.write_root()
    shape = "×".join(map(str, graph.input_shape))
    about = (
        f"{title or f'{graph.name} as a PyTorch module'}\n\n"
        + (f"{graph.description}\n\n" if graph.description else "")
        + f"Generated by netspec from {graph.source}; needs only PyTorch.\n"
        f"Input: {shape} per example; output: {'×'.join(map(str, graph.output_shape))}; {graph.total_params:,} parameters.\n"
        f"Construct it after torch.manual_seed(s) for the weights netspec.compile(spec, seed=s) gives."
    )
    ordered = "from collections import OrderedDict\n\n" if any(b.named for b in writer.containers.values()) else ""
    head = f"{docstring(about)}\n{ordered}import torch\nfrom torch import nn\n"
    return head + "".join(f"\n\n{cls}" for cls in writer.class_source)
