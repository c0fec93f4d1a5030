"""Expansion: a validated spec becomes a graph of primitive ops.

Walks the layer lists in order. Each item's `$refs` are substituted from its block's
parameters (and the shape of its input: `in_channels`, `in_height`, `in_width`,
`in_features`, `in_steps`; inside a block also the block's input: `block_in_channels`, ...), its
`when:` decides whether it is kept (in a `compact` list a skipped layer leaves no name and
no position, as torchvision's conditional `layers.append`), it is validated against its op's
schema, and then it is either added as a node (shape inferred at once, since later blocks
may depend on it) or expanded as a group, a parallel or a block call. Sizes are bounded.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from netspec.compiler import registry
from netspec.compiler.expr import ExprError, evaluate, substitute
from netspec.compiler.graph import INPUT, Graph, Node, Scope
from netspec.compiler.passes.calls import argument_problems
from netspec.compiler.passes.shapes import infer_node
from netspec.compiler.schema import (
    META_KEYS,
    UNKNOWN_OP_HINT,
    BlockDef,
    InitSpec,
    ParamDecl,
    Spec,
    diagnostics_from,
    layer_adapter,
)
from netspec.compiler.schema_base import did_you_mean
from netspec.compiler.yaml_loader import YDict, YList, load_yaml_text, locate
from netspec.errors import Diagnostic, Location, SpecError

MAX_NODES = 20_000
MAX_BLOCK_DEPTH = 32
PRELUDE_FILE = "netspec:prelude.yaml"
PREVIOUS = "-1"  # `from: -1` (or -1 in a list) names the previous layer

_NOT_SUBSTITUTED = {"name", "from", "when", "layers", "branches", "op", "init", "members", "share"}


@dataclass(frozen=True)
class Block:
    """A block definition with its raw YAML (for locations)."""

    name: str
    definition: BlockDef
    raw: YDict
    builtin: bool


@dataclass
class Env:
    """What a layer list is expanded in: its module path, names in sight, block parameters."""

    prefix: str
    input: str
    values: dict[str, Any]
    scopes: tuple[str, ...]
    init: InitSpec
    stack: tuple[str, ...] = ()
    report_at: Location | None = None  # inside a built-in block: report errors at its call
    names: dict[str, str] = field(default_factory=dict)
    compact: bool = False  # skipped layers take no name and no position

    def path(self, local: str) -> str:
        return f"{self.prefix}.{local}" if self.prefix else local


class BuiltinBlockDef(BlockDef):
    """A prelude block: its layers are checked when a call expands them (as every block's
    are, once its parameters are substituted), not at every start-up: that would build the
    model of every op the prelude names. tests/test_lazy_startup.py checks them as BlockDefs."""

    layers: Annotated[list[Any], Field(min_length=1)]


def prelude_text() -> str:
    return resources.files("netspec.compiler").joinpath("prelude.yaml").read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def prelude() -> dict[str, Block]:
    """The built-in composite blocks, defined in YAML like users' blocks."""
    raw = load_yaml_text(prelude_text(), PRELUDE_FILE)
    defs = TypeAdapter(dict[str, BuiltinBlockDef]).validate_python(raw)
    return {name: Block(name, d, raw[name], True) for name, d in defs.items()}


def resolve_init(value: Any) -> InitSpec:
    return InitSpec(weight=value) if isinstance(value, str) else value


def _shape_vars(shape: tuple[int, ...]) -> dict[str, int]:
    if len(shape) == 3:
        return {"in_channels": shape[0], "in_height": shape[1], "in_width": shape[2]}
    if len(shape) == 2:  # a [T, D] sequence: features are the last dimension, as linear reads them
        return {"in_steps": shape[0], "in_features": shape[1]}
    return {"in_channels": shape[0], "in_features": shape[0]}


class Expander:
    """Turns one validated spec into a Graph."""

    def __init__(self, spec: Spec, raw: YDict, filename: str, values: dict[str, Any] | None = None):
        self.spec = spec
        self.values = dict(values or {})  # the variant's names (width_mult, ...) for top-level expressions
        self.raw = raw
        self.filename = filename
        self.blocks = dict(prelude())
        for name, definition in spec.blocks.items():
            self.blocks[name] = Block(name, definition, raw["blocks"][name], False)
        self.graph = Graph(spec.name, spec.input_shape, source=filename, description=spec.description)

    # ------------------------------------------------------------------ helpers
    def fail(self, env: Env, where: Location | None, message: str) -> SpecError:
        return SpecError.at(env.report_at or where or Location(self.filename, 1, 1), message)

    def add_node(self, node: Node, env: Env) -> Node:
        if node.name in self.graph:
            raise self.fail(env, node.location, f"duplicate layer name {node.name!r}")
        if len(self.graph) >= MAX_NODES:
            raise self.fail(env, node.location, f"network too large: more than {MAX_NODES} layers after expansion")
        self.graph.add(node)
        infer_node(self.graph, node)
        return node

    def shape(self, name: str) -> tuple[int, ...]:
        shape = self.graph.node(name).shape
        assert shape is not None
        return shape

    # ------------------------------------------------------------------ entry
    def run(self) -> Graph:
        self.graph.add(Node(INPUT, INPUT, {}, [], location=self.raw.value_locs.get("input")))
        infer_node(self.graph, self.graph.node(INPUT))
        env = Env("", INPUT, self.values, (), resolve_init(self.spec.init), names={INPUT: INPUT})
        self.graph.output = self.sequence(self.raw["layers"], env)
        return self.graph

    def sequence(self, items: list, env: Env) -> str:
        """Expand a layer list; return the name of its output node."""
        current = env.input
        index = 0
        for position, raw_item in enumerate(items):
            where = items.item_locs[position] if isinstance(items, YList) else None
            item = self.prepare(raw_item, where, env, current)
            if item is None:
                continue
            inputs = self.inputs(item, env, current, where)
            if item.get("when") is not None and not self.condition(item, env, inputs[0], where):
                if env.compact:
                    continue
                # a skipped layer passes its input through under its name, and keeps its
                # position, so the names of the layers after it do not depend on `when`
                env.names[self.claim(item.get("name") or str(index), env, where)] = inputs[0]
                index += 1
                continue
            values = dict(env.values, **_shape_vars(self.shape(inputs[0])))
            item = self.substitute(item, values, env)
            model = self.validate(item, env)
            repeat = model.repeat
            local = self.claim(model.name or str(index), env, where)
            if model.members and not model.name:
                raise self.fail(env, locate(item, ("members",)) or where, "members: needs a name, the group's (e.g. name: denseblock1)")
            if repeat == 1 and not model.members:
                current = self.expand(model, item, env, inputs, env.path(local), where)
                index += 1
            elif model.name:  # a named repeat is one group: name.0, name.1, ... (or as `members:` counts)
                group = env.path(local)
                self.graph.scopes[group] = Scope(group, "repeat", where, {"times": repeat}, is_block=False)
                inner = replace(env, prefix=group, scopes=env.scopes + (group,), names={})
                current = inputs[0]
                for member in member_names(model.members, repeat):
                    current = self.expand(model, item, inner, [current], inner.path(member), where)
                index += 1
            else:  # an unnamed repeat is that many layers in sequence
                current = inputs[0]
                for k in range(repeat):
                    name = str(index) if k == 0 else self.claim(str(index), env, where)
                    current = self.expand(model, item, env, [current], env.path(name), where)
                    env.names[name] = current
                    index += 1
            env.names[local] = current
        return current

    def claim(self, local: str, env: Env, where: Location | None) -> str:
        """Reserve a name in this scope; a name (or `input`) used twice is an error."""
        if local in env.names:
            what = "the input of this scope" if local == INPUT else "an earlier layer of this scope"
            raise self.fail(env, where, f"duplicate layer name {local!r}: it already names {what}")
        env.names[local] = ""  # set to the layer's output once it is expanded
        return local

    # ------------------------------------------------------------------ one item
    def prepare(self, raw_item: Any, where: Location | None, env: Env, current: str) -> YDict | None:
        if isinstance(raw_item, str):
            item = YDict(op=raw_item)
            item.loc = where
            item.key_locs = {"op": where}
            item.value_locs = {"op": where}
            return item
        if not isinstance(raw_item, dict):
            raise self.fail(env, where, "expected a layer: an op name or a mapping with 'op'")
        return raw_item  # type: ignore[return-value]

    def inputs(self, item: YDict, env: Env, current: str, where: Location | None) -> list[str]:
        source = item.get("from")
        if source is None:
            return [current]
        names = [str(n) for n in source] if isinstance(source, list) else [str(source)]
        out = []
        for name in names:
            if name == PREVIOUS:  # as in Ultralytics' `from: [-1, 6]`: what the layer would read without `from:`
                out.append(current)
            elif name in env.names:
                out.append(env.names[name])
            elif env.report_at and env.stack and name.startswith("input_") and name[6:].isdigit():
                # a built-in block called with too few inputs: its inner names mean nothing to the caller
                raise self.fail(env, where, f"block {env.stack[-1]!r} takes {name[6:]} inputs (it reads {name}):"
                                            f" call it with `from:` naming {name[6:]} layers")
            else:
                known = sorted(n for n in env.names if n != INPUT) + ["input"]
                raise self.fail(
                    env,
                    locate(item, ("from",)) or where,
                    f"'from: {name}' names no earlier layer in this scope{did_you_mean(name, known)}"
                    f" (known: {', '.join(known)})",
                )
        return out

    def condition(self, item: YDict, env: Env, first_input: str, where: Location | None) -> bool:
        when = item["when"]
        if isinstance(when, bool):
            return when
        try:
            return bool(evaluate(when, dict(env.values, **_shape_vars(self.shape(first_input)))))
        except ExprError as exc:
            raise self.fail(env, locate(item, ("when",)) or where, f"when: {exc}") from None

    def substitute(self, item: YDict, values: dict[str, Any], env: Env) -> YDict:
        out = YDict()
        out.loc, out.key_locs, out.value_locs = item.loc, item.key_locs, item.value_locs
        for key, value in item.items():
            if key in _NOT_SUBSTITUTED:
                out[key] = value
                continue
            try:
                out[key] = substitute(value, values)
            except ExprError as exc:
                raise self.fail(env, item.value_locs.get(key), f"{key}: {exc}") from None
        return out

    def validate(self, item: YDict, env: Env) -> Any:
        try:
            return layer_adapter().validate_python(item)
        except ValidationError as exc:
            diagnostics = diagnostics_from(exc, item, self.filename)
            if env.report_at:
                diagnostics = [Diagnostic(env.report_at, d.message) for d in diagnostics]
            raise SpecError(diagnostics) from None

    def expand(self, model: Any, item: YDict, env: Env, inputs: list[str], path: str, where: Location | None) -> str:
        """Add one (validated) layer at `path`; return its output node."""
        if model.share is not None:  # resolved once the whole graph exists (passes/share.py)
            self.graph.shares[path] = (model.share, env.report_at or locate(item, ("share",)) or where)
        if model.op == "sequential":
            self.graph.scopes[path] = Scope(path, "sequential", where, is_block=False)
            inner = replace(env, prefix=path, input=inputs[0], scopes=env.scopes + (path,), names={INPUT: inputs[0]},
                            compact=item.get("compact") is True)
            inner.init = resolve_init(model.init) if model.init else env.init
            return self.sequence(item["layers"], inner)
        if model.op == "parallel":
            return self.parallel(model, item, env, inputs, path, where)
        op = registry.get(model.op)
        if op is None:
            return self.call_block(model, item, env, inputs, path, where)
        attrs = model.model_dump(exclude=set(META_KEYS) | {"from_"})
        if any(isinstance(v, str) and v.startswith("$") for v in attrs.values()):
            raise self.fail(env, where, f"{model.op}: unresolved reference outside a block")
        if len(inputs) < op.min_inputs:
            raise self.fail(env, where, f"{model.op} needs 'from:' naming {op.min_inputs} or more layers")
        node = Node(
            name=path,
            op=model.op,
            attrs=attrs,
            inputs=inputs,
            scopes=env.scopes,
            location=env.report_at or where,
            init=resolve_init(model.init) if model.init else env.init,
        )
        return self.add_node(node, env).name

    def parallel(self, model: Any, item: YDict, env: Env, inputs: list[str], path: str, where: Location | None) -> str:
        self.graph.scopes[path] = Scope(path, "parallel", where, {"merge": model.merge}, is_block=False)
        raw = item["branches"]
        branches = list(raw.items()) if isinstance(raw, dict) else [(str(i), b) for i, b in enumerate(raw)]
        outputs = []
        problems: list[Diagnostic] = []  # branches are independent: report each one's mistakes
        init = resolve_init(model.init) if model.init else env.init
        for name, branch in branches:
            prefix = f"{path}.{name}"
            inner = replace(env, prefix=prefix, input=inputs[0], scopes=env.scopes + (path,), names={INPUT: inputs[0]}, init=init,
                            compact=False)
            try:
                outputs.append(self.sequence(branch, inner) if branch else inputs[0])
            except SpecError as exc:
                problems += exc.diagnostics
        if problems:
            raise SpecError(problems)
        merge = Node(f"{path}.{model.merge}", model.merge, {}, outputs, env.scopes + (path,), env.report_at or where)
        return self.add_node(merge, env).name

    def call_block(self, model: Any, item: YDict, env: Env, inputs: list[str], path: str, where: Location | None) -> str:
        block = self.blocks.get(model.op)
        if block is None:  # schema validation reports unknown ops; this is a safety net
            raise self.fail(env, where, f"unknown op {model.op!r}{did_you_mean(model.op, self.blocks)}{UNKNOWN_OP_HINT}")
        if model.op in env.stack:
            chain = " -> ".join(env.stack + (model.op,))
            raise self.fail(env, where, f"block {model.op!r} calls itself ({chain})")
        if len(env.stack) >= MAX_BLOCK_DEPTH:
            raise self.fail(env, where, f"blocks nested more than {MAX_BLOCK_DEPTH} deep")
        args = {k: v for k, v in item.items() if k not in META_KEYS}
        values = self.bind(block, args, item, env, where)
        self.graph.scopes[path] = Scope(path, model.op, where, values, is_block=True, doc=block.definition.description)
        # the block's own input shape, visible to every layer of its body (not only the first)
        block_vars = {f"block_{k}": v for k, v in _shape_vars(self.shape(inputs[0])).items()}
        # a block called with `from: [a, b, ...]` sees them as `input`, `input_2`, ...
        names = {INPUT: inputs[0], **{f"input_{k + 1}": name for k, name in enumerate(inputs) if k}}
        inner = Env(
            prefix=path,
            input=inputs[0],
            values=dict(block_vars, **values),
            scopes=env.scopes + (path,),
            init=resolve_init(model.init) if model.init else env.init,
            stack=env.stack + (model.op,),
            report_at=env.report_at or (where if block.builtin else None),
            names=names,
            compact=block.definition.compact,
        )
        if block.builtin:
            return self.sequence(block.raw["layers"], inner)  # errors are already reported at the call
        try:
            return self.sequence(block.raw["layers"], inner)
        except SpecError as exc:  # an error in a block's body: say which call it came from
            call = f" (in block {model.op!r} called at line {where.line})" if where else ""
            raise SpecError(
                [Diagnostic(d.location, d.message if "(in block" in d.message or "calls itself" in d.message else d.message + call)
                 for d in exc.diagnostics]
            ) from None

    def bind(self, block: Block, args: dict[str, Any], item: YDict, env: Env, where: Location | None) -> dict[str, Any]:
        """Check a call's arguments against the block's parameters; return all values."""
        decls = {k: (ParamDecl(type=v) if isinstance(v, str) else v) for k, v in block.definition.params.items()}
        values, problems = argument_problems(block.name, decls, item, where, env.report_at)
        if problems:
            raise SpecError(problems)
        return values


def member_names(first: str | None, count: int) -> list[str]:
    """`denselayer1`, 3 -> denselayer1, denselayer2, denselayer3 (without `first`: 0, 1, 2)."""
    if first is None:
        return [str(k) for k in range(count)]
    stem = first.rstrip("0123456789")
    start = int(first[len(stem):])
    return [f"{stem}{start + k}" for k in range(count)]


def expand(spec: Spec, raw: YDict, filename: str, values: dict[str, Any] | None = None) -> Graph:
    """Spec -> Graph of primitive ops with shapes; `values` are names for top-level expressions."""
    return Expander(spec, raw, filename, values).run()
