"""The spec language as pydantic v2 models, and validation with `file:line:col` errors.

A layer is a mapping with an `op` key (or just the op's name, for ops without parameters).
Each layer is validated by the model of the op it names, so an error in a conv layer reports
only conv's fields; an op's model is built the first time a spec names it (building one per
op up front cost most of `netspec check`'s time). The JSON Schema is the same set of models as
one union discriminated by `op`. Names that are not built-in ops are calls of blocks (from the
spec's `blocks:` or the prelude); those are checked against the block's declared parameters
when expanded.
"""
from __future__ import annotations

import keyword
import math
import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, BeforeValidator, Discriminator, Field, PlainValidator, StrictBool, Tag, ValidationError, WithJsonSchema, create_model, field_validator
from pydantic import ConfigDict, GetCoreSchemaHandler, ValidationInfo
from pydantic_core import PydanticCustomError, core_schema

from netspec.compiler import registry
from netspec.compiler.messages import message as netspec_message
from netspec.compiler.schema_base import IDENT, Model, did_you_mean, value_type
from netspec.compiler.budget import BudgetSpec
from netspec.compiler.train_schema import TrainConfig
from netspec.compiler.variants import Variant
from netspec.compiler.yaml_loader import YDict, YList, locate
from netspec.errors import Diagnostic, Location, SpecError


# Layer names become attributes of torch modules (nn.Module, torch.fx.GraphModule), so the
# names those classes already use are refused. Kept here as data so that checking needs no
# torch; tests/test_schema.py checks it against the installed torch.
RESERVED_NAMES = frozenset(
    """T_destination add_module add_submodule apply bfloat16 buffers call_super_init children code compile cpu
    cuda delete_all_unused_submodules delete_submodule double dump_patches eval extra_repr float forward
    get_buffer get_extra_state get_parameter get_submodule graph half ipu load_state_dict meta modules mtia
    named_buffers named_children named_modules named_parameters parameters print_readable recompile
    register_backward_hook register_buffer register_forward_hook register_forward_pre_hook
    register_full_backward_hook register_full_backward_pre_hook register_load_state_dict_post_hook
    register_load_state_dict_pre_hook register_module register_parameter register_state_dict_post_hook
    register_state_dict_pre_hook requires_grad_ self set_extra_state set_submodule shape_env share_memory
    state_dict to to_empty to_folder train training type xpu zero_grad""".split()
)


def _usable_name(name: str) -> str:
    """Names become Python attribute names in generated code: no keywords, no names torch's
    module classes use, no leading underscore (torch's private attributes)."""
    if keyword.iskeyword(name):
        raise ValueError(f"{name!r} is a Python keyword; choose another name")
    if name in RESERVED_NAMES:
        raise ValueError(f"{name!r} is the name of a torch module attribute; choose another name (e.g. {name + '_'!r})")
    if name.startswith("_"):
        raise ValueError(f"{name!r}: names may not start with an underscore")
    return name


def _not_keyword(name: str) -> str:
    """Spec and block names become class names or ops: only keywords are refused."""
    if keyword.iskeyword(name):
        raise ValueError(f"{name!r} is a Python keyword; choose another name")
    return name


Name = Annotated[str, Field(pattern=IDENT, max_length=100), AfterValidator(_usable_name)]
TypeName = Annotated[str, Field(pattern=IDENT, max_length=100), AfterValidator(_not_keyword)]
MAX_LAYERS_PER_LIST = 10_000
INIT_SCHEMES = ("default", "normal", "uniform", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "zeros")
STRUCTURAL_OPS = ("sequential", "parallel")
META_KEYS = ("op", "name", "from", "repeat", "init", "when", "members", "share")
UNKNOWN_OP_HINT = "; `netspec ops` lists the ops and blocks"


class InitSpec(Model):
    """Weight initialisation of conv and linear layers."""

    weight: Literal[INIT_SCHEMES] = "default"  # type: ignore[valid-type]
    std: float = Field(0.01, gt=0, description="normal: standard deviation")
    mean: float = 0.0
    a: float = Field(0.07, gt=0, description="uniform: weights in [-a, a]")
    bias: Literal["default", "zeros"] = "default"


def _init_as_mapping(value: Any) -> Any:
    """`init: xavier_uniform` is short for `init: {weight: xavier_uniform}`."""
    return {"weight": value} if isinstance(value, str) else value


def _init_json(schema: dict[str, Any]) -> None:
    as_mapping = dict(schema)
    schema.clear()
    schema["anyOf"] = [as_mapping, {"type": "string", "enum": list(INIT_SCHEMES)}]


Init = Annotated[InitSpec, BeforeValidator(_init_as_mapping), Field(json_schema_extra=_init_json)]


def _as_mapping(value: Any) -> Any:
    """`- relu` is short for `- {op: relu}`."""
    return {"op": value} if isinstance(value, str) else value


def _layer_tag(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None  # pydantic reports union_tag_not_found: "expected a layer ..."
    op = value.get("op")
    if isinstance(op, str) and (op in STRUCTURAL_OPS or registry.get(op) is not None):
        return op
    return "__block__"


MAX_REPEAT = 1000
Repeat = value_type(
    "repeat", f"an integer from 1 to {MAX_REPEAT}", lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_REPEAT,
    {"type": "integer", "minimum": 1, "maximum": MAX_REPEAT},
)


def _layer_refs(value: Any) -> Any:
    """`from:` takes a layer name (or position, or -1: the previous layer) or a list of them;
    positions become names."""
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in items):
        raise PydanticCustomError("layer_refs", "expected a layer name or a list of layer names, got {got}", {"got": repr(value)})
    if any(isinstance(v, int) and v < -1 for v in items):
        raise PydanticCustomError("layer_refs", "a position counts from 0, and -1 is the previous layer; got {got}", {"got": repr(value)})
    names = [str(v) for v in items]
    return names if isinstance(value, list) else names[0]


_NAME_SCHEMA = {"anyOf": [{"type": "string"}, {"type": "integer", "minimum": -1}]}  # -1: the previous layer
LayerRefs = Annotated[
    Any, PlainValidator(_layer_refs), WithJsonSchema({"anyOf": [_NAME_SCHEMA, {"type": "array", "items": _NAME_SCHEMA, "minItems": 1}]})
]


# The first member name of a named repeat; its trailing number counts up. May hold '-' (as
# torchvision's RegNet names `block2-0`): members are reached by getattr, never written as code.
Members = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*?[0-9]+$", max_length=100), AfterValidator(_usable_name)]


# What `share:` names: a layer or block, dotted into groups (`encoder.fc`, `pair.left.0`),
# looked up from the sharing layer's scope outwards (compiler/passes/share.py).
_SHARE_PATH = r"^[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_][A-Za-z0-9_-]*)*$"


def _share_path(value: Any) -> str:
    """A layer name (a position counts, as in `from:`), dotted into groups."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if not isinstance(value, str) or len(value) > 1000 or not re.fullmatch(_SHARE_PATH, value):
        raise PydanticCustomError("share_path", "expected a layer or block name (dotted into groups: encoder.fc), got {got}", {"got": repr(value)})
    return value


SharePath = Annotated[Any, PlainValidator(_share_path), WithJsonSchema({"anyOf": [{"type": "string", "pattern": _SHARE_PATH}, {"type": "integer", "minimum": 0}]})]


class LayerMeta(Model):
    """Keys every layer may have besides its op's parameters."""

    name: Optional[Name] = Field(None, description="module name (default: position)")
    from_: Optional[LayerRefs] = Field(None, alias="from", description="input layer name(s); default: previous layer")
    repeat: Repeat = Field(1, description="repeat this layer n times in sequence")
    init: Optional[Init] = Field(None, description="weight initialisation (conv/linear)")
    when: Optional[Union[bool, str]] = Field(None, description="blocks only: keep this layer only if the expression holds")
    members: Optional[Members] = Field(None, description="with a name: the first member's name (denselayer1, block2-0); its number counts up")
    share: Optional[SharePath] = Field(None, description="use the parameters of this layer or block (its name, dotted into groups: docs/spec.md#weight-sharing)")


class BlockCall(LayerMeta):
    """A call of a parameterised block; its arguments are checked against the block's `params:`."""

    model_config = {"extra": "allow"}
    op: Annotated[str, Field(pattern=IDENT)]

    @classmethod
    def _refuse_unknown_keys(cls, data: Any, handler: Any) -> Any:  # arguments are checked at expansion
        return handler(data)


class LayerItem:
    """A layer: validated by the model of the op it names, built when a spec first names it.

    pydantic asks this type for its schema whenever it builds one (`__get_pydantic_core_schema__`):
    for validation that is a function looking the op up at validation time, so ops registered
    later are validated like built-in ones without rebuilding anything; for the JSON Schema
    (`json_schema`) it is the union of every op's model, discriminated by `op`.
    """

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> Any:
        if _whole_union:
            return handler.generate_schema(_union())
        return core_schema.no_info_plain_validator_function(_validate_layer)


_whole_union = False  # set while `json_schema` builds the schema of every op at once
_members: dict[str, Any] = {}  # tag -> the model validating that kind of layer
_members_version = -1


def _validate_layer(value: Any) -> Any:
    """One layer item, by the model of its op: errors come out at the item's location, as
    the union's would (the `op` tag aside, which `_describe` leaves out anyway)."""
    value = _as_mapping(value)
    tag = _layer_tag(value)
    if tag is None:  # diagnostics_from says "expected a layer ..." for this type
        raise PydanticCustomError("union_tag_not_found", "expected a layer, got {got}", {"got": repr(value)})
    return _member(tag).model_validate(value)


def _member(tag: str) -> Any:
    """The model of one kind of layer (an op, a group, a block call), built once per registry version."""
    global _members_version
    if _members_version != registry.version():
        _members.clear()
        _members_version = registry.version()
    model = _members.get(tag)
    if model is None:
        model = _members[tag] = _op_model(tag) if tag not in STRUCTURAL_OPS and tag != "__block__" else _group_model(tag)
    return model


def _op_model(name: str) -> Any:
    """The layer model of a registered op: its parameters and the keys every layer has."""
    op = registry.get(name)
    assert op is not None
    return create_model(
        f"{name.title().replace('_', '')}Layer",
        __base__=(LayerMeta, op.params),
        __doc__=op.doc,
        op=(Literal[name], ...),  # type: ignore[valid-type]
    )


def _group_model(tag: str) -> Any:
    """A block call, or a fresh subclass of a group (whose layers are checked as the mode
    it is built in says: one op at a time, or the whole union for the JSON Schema)."""
    if tag == "__block__":
        return BlockCall
    if tag == "sequential":
        return create_model("SequentialLayer", __base__=SequentialLayer, __doc__=SequentialLayer.__doc__)
    return create_model(
        "ParallelLayer", __base__=ParallelLayer, __doc__=ParallelLayer.__doc__,
        merge=(Literal[merge_ops()], "concat"),  # type: ignore[valid-type]
    )


_union_cache: tuple[int, Any] = (-1, None)


def merge_ops() -> tuple[str, ...]:
    """Ops that merge several inputs (parallel's `merge:` takes any of them)."""
    return tuple(sorted(name for name, op in registry.ops().items() if op.max_inputs > 1))


def _union() -> Any:
    """The union of one model per registered op, the groups and block calls (built once per
    registry version), discriminated by `op`: the JSON Schema's view of a layer."""
    global _union_cache
    version = registry.version()
    if _union_cache[0] == version:
        return _union_cache[1]
    members: list[Any] = [Annotated[_member(name), Tag(name)] for name in sorted(registry.ops())]
    # the groups hold layers: fresh subclasses, so that their schemas hold this union
    members += [Annotated[_group_model(tag), Tag(tag)] for tag in STRUCTURAL_OPS]
    members.append(Annotated[BlockCall, Tag("__block__")])
    union = Annotated[Union[tuple(members)], Discriminator(_layer_tag), BeforeValidator(_as_mapping)]
    _union_cache = (version, union)
    return union


class SequentialLayer(LayerMeta):
    """Layers applied one after another, as one named group."""

    model_config = ConfigDict(defer_build=True)  # a template: each union subclasses it (`_union`)
    op: Literal["sequential"]
    layers: Annotated[list["LayerItem"], Field(min_length=1, max_length=MAX_LAYERS_PER_LIST)]
    compact: StrictBool = Field(False, description="layers skipped by `when:` take no name and no position")


class ParallelLayer(LayerMeta):
    """Branches applied to the same input, merged by add, channel concat or another merge op. An empty branch is the identity."""

    model_config = ConfigDict(defer_build=True)  # a template: each union subclasses it (`_union`)
    op: Literal["parallel"]
    branches: Union[dict[Name, list["LayerItem"]], list[list["LayerItem"]]]
    merge: str = "concat"  # each union's subclass takes exactly the registered merge ops

    @field_validator("branches")
    @classmethod
    def _at_least_two(cls, value: Any) -> Any:
        if len(value) < 2:
            raise ValueError("parallel needs at least two branches")
        return value


ParamType = Literal["int", "float", "bool", "str", "ints"]
SHAPE_VARIABLES = ("in_channels", "in_height", "in_width", "in_features")  # set from a block's input

PARAM_TYPES: dict[str, tuple[Any, str]] = {
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "float": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v), "a finite number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "ints": (lambda v: isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v), "a list of integers"),
}


def param_type_problem(value: Any, type_: str, choices: Optional[list[Any]] = None) -> str | None:
    """Why `value` is not a valid argument of a parameter of this type (None if it is)."""
    check, expected = PARAM_TYPES[type_]
    if not check(value):
        return f"expected {expected}, got {value!r}"
    if choices is not None and value not in choices:
        return f"expected one of {', '.join(map(str, choices))}, got {value!r}"
    return None


class ParamDecl(Model):
    """A block parameter: its type, default (absent = required), allowed choices."""

    type: ParamType = "int"
    choices: Optional[list[Any]] = None
    default: Any = None
    doc: str = ""

    @field_validator("choices")
    @classmethod
    def _choices_have_the_type(cls, value: Any, info: ValidationInfo) -> Any:
        for choice in value or ():
            problem = param_type_problem(choice, info.data.get("type", "int"))
            if problem:
                raise PydanticCustomError("param_choice", "{problem}", {"problem": problem})
        return value

    @field_validator("default")
    @classmethod
    def _default_has_the_type(cls, value: Any, info: ValidationInfo) -> Any:
        """A wrong default is the definition's mistake: reported at the default, once."""
        if "type" in info.data:
            problem = param_type_problem(value, info.data["type"], info.data.get("choices"))
            if problem:
                raise PydanticCustomError("param_default", "{problem}", {"problem": problem})
        return value


def _not_shape_variable(name: str) -> str:
    if name in SHAPE_VARIABLES:
        raise ValueError(
            f"{name!r} is set from the block's input shape ({', '.join(SHAPE_VARIABLES)} are); "
            "use it in expressions without declaring it, or choose another parameter name"
        )
    return name


ParamName = Annotated[TypeName, AfterValidator(_not_shape_variable)]


def _param_json(schema: dict[str, Any]) -> None:
    as_mapping = dict(schema)
    schema.clear()
    schema["anyOf"] = [as_mapping, {"type": "string", "enum": ["int", "float", "bool", "str", "ints"]}]


# `out: int` is short for `out: {type: int}` (one schema, so one message per mistake)
Param = Annotated[ParamDecl, BeforeValidator(lambda v: {"type": v} if isinstance(v, str) else v), Field(json_schema_extra=_param_json)]


class BlockDef(Model):
    """A parameterised block written in YAML: `$name` and `${expr}` refer to its parameters."""

    description: str = ""
    params: dict[ParamName, Param] = Field(default_factory=dict)
    layers: Annotated[list[LayerItem], Field(min_length=1, max_length=MAX_LAYERS_PER_LIST)]
    compact: StrictBool = Field(False, description="layers skipped by `when:` take no name and no position")
    examples: list[dict[str, Any]] = Field(default_factory=list, description="calls for `netspec ops` and the tests: {input, args, before, from}")


class TokenInput(Model):
    """`input: {tokens: T, vocab: V}`: sequences of T integer token ids in [0, V)."""

    tokens: Annotated[int, Field(strict=True, gt=0, le=1_000_000)]
    vocab: Annotated[int, Field(strict=True, gt=0, le=100_000_000)]


def _input_kind(value: Any) -> str:
    """One member of `input`'s union checks each value (one message per mistake, no union noise)."""
    return "input-tokens" if isinstance(value, dict) else "input-shape" if isinstance(value, list) else "input-features"


InputDim = Annotated[int, Field(strict=True, gt=0, le=1_000_000)]
SpecInput = Annotated[
    Union[
        Annotated[InputDim, Tag("input-features")],
        Annotated[list[InputDim], Field(min_length=1, max_length=3), Tag("input-shape")],
        Annotated[TokenInput, Tag("input-tokens")],
    ],
    Discriminator(_input_kind),
]


class Spec(Model):
    """A network: header, optional blocks, layers, optional training section."""

    name: TypeName
    description: str = ""
    input: SpecInput = Field(description="[F], [T, D], [C, H, W] or {tokens: T, vocab: V}")
    init: Init = "default"
    blocks: dict[TypeName, BlockDef] = Field(default_factory=dict)
    layers: Annotated[list[LayerItem], Field(min_length=1, max_length=MAX_LAYERS_PER_LIST)]
    train: Optional[TrainConfig] = None
    budget: Optional[BudgetSpec] = Field(None, description="size limits `netspec check` enforces (docs/spec.md#budgets)")
    variants: dict[TypeName, Variant] = Field(default_factory=dict, description="model family members (netspec/compiler/variants.py)")
    variant: Optional[TypeName] = Field(None, description="the variant built unless --variant names another")

    @field_validator("input")
    @classmethod
    def _shape(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) else value

    @property
    def input_shape(self) -> tuple[int, ...]:
        """[F], [T, D] or [C, H, W] floats, or `Tokens((T,), V)` for `{tokens: T, vocab: V}`."""
        if isinstance(self.input, TokenInput):
            from netspec.compiler.shapes import Tokens

            return Tokens((self.input.tokens,), self.input.vocab)
        return tuple(self.input)  # type: ignore[arg-type]


# ------------------------------------------------------------------ validation with locations
_UNION_MEMBER_TAGS = frozenset({"__block__", "bool", "str", "int", "float", "list", "dict", "tuple", "none"})


def _describe(path: tuple) -> str:
    """`('layers', 3, 'conv2d', 'kernel')` -> `layers[3].kernel` (union tags dropped)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and not (
            part in registry.ops() or part in STRUCTURAL_OPS or part in _UNION_MEMBER_TAGS or "[" in part or "-" in part
        ):
            out += ("." if out else "") + part
    return out


def diagnostics_from(exc: ValidationError, raw: Any, filename: str, prefix: tuple = ()) -> list[Diagnostic]:
    """Turn pydantic errors into located, one-line diagnostics."""
    found: dict[tuple, list[str]] = {}
    for err in exc.errors(include_url=False):
        path = prefix + tuple(err["loc"])
        if _wrong_member(raw, path):
            continue
        if path and path[-1] == "[key]":  # a bad mapping key: point at the key
            path = path[:-1]
            loc = locate(raw, path, key=True)
            where = _describe(path)
        elif err["type"] == "unknown_key":
            loc = locate(raw, path, key=True)
            where = _describe(path)
        else:
            loc = locate(raw, path)
            where = _describe(path)
        message = netspec_message(err)
        if err["type"] == "missing":
            where, _, field = where.rpartition(".")
            message = f"missing required key {field!r}"
        elif err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            message = f"expected a layer: an op name or a mapping with an 'op' key, got {err.get('input')!r}"
        messages = found.setdefault((loc or Location(filename, 1, 1), where), [])
        if message not in messages:
            messages.append(message)
    out = []
    for (loc, where), messages in found.items():
        for message in _one_per_union(messages):
            out.append(Diagnostic(loc, f"{where}: {message}" if where else message))
    return out


def _wrong_member(raw: Any, path: tuple) -> bool:
    """An error of the union member that does not fit the input's kind (the list member's
    errors for a mapping): the member that fits says what is wrong."""
    node = raw
    for part in path:
        if isinstance(part, str) and part.startswith(("dict[", "list[")):
            if isinstance(node, dict) != part.startswith("dict[") and isinstance(node, (dict, list)):
                return True
            continue
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
    return False


def _one_per_union(messages: list[str]) -> list[str]:
    """The members of a union each say what they expected: one line says it for all of them
    ("expected true or false or a string, got 3")."""
    parts = [re.fullmatch(r"expected (.*), got (.*)", m, flags=re.S) for m in messages]
    if len(messages) > 1 and all(parts) and len({p.group(2) for p in parts}) == 1:  # type: ignore[union-attr]
        return [f"expected {' or '.join(p.group(1) for p in parts)}, got {parts[0].group(2)}"]  # type: ignore[union-attr]
    return messages


def _walk_layers(items: Any, path: tuple):
    """Yield (item, path) for every layer mapping, nested ones too."""
    if not isinstance(items, list):
        return
    for i, item in enumerate(items):
        yield item, path + (i,)
        if isinstance(item, dict):
            if isinstance(item.get("layers"), list):
                yield from _walk_layers(item["layers"], path + (i, "layers"))
            branches = item.get("branches")
            if isinstance(branches, dict):
                for key, branch in branches.items():
                    yield from _walk_layers(branch, path + (i, "branches", key))
            elif isinstance(branches, list):
                for j, branch in enumerate(branches):
                    yield from _walk_layers(branch, path + (i, "branches", j))


def unknown_op_diagnostics(raw: Any, known_blocks: set[str], filename: str) -> list[Diagnostic]:
    """Ops that are neither built in nor blocks, with a "did you mean"."""
    if not isinstance(raw, dict):
        return []
    candidates = set(registry.ops()) | set(STRUCTURAL_OPS) | known_blocks
    out = []
    roots = [(raw.get("layers"), ("layers",))]
    if isinstance(raw.get("blocks"), dict):
        roots += [(b.get("layers"), ("blocks", n, "layers")) for n, b in raw["blocks"].items() if isinstance(b, dict)]
    for items, path in roots:
        for item, item_path in _walk_layers(items, path):
            op = item if isinstance(item, str) else item.get("op") if isinstance(item, dict) else None
            if isinstance(op, str) and op not in candidates:
                where = locate(raw, item_path + (("op",) if isinstance(item, dict) else ()))
                out.append(Diagnostic(where, f"unknown op {op!r}{did_you_mean(op, candidates)}{UNKNOWN_OP_HINT}"))
    return out


def validate_spec(raw: Any, filename: str, prelude_blocks: set[str], also: list[Diagnostic] = ()) -> Spec:  # type: ignore[assignment]
    """Validate a loaded spec, reporting every problem at once (with `also`: the problems
    other checks of the same raw tree found, such as block calls')."""
    if not isinstance(raw, dict):
        where = getattr(raw, "loc", None) or Location(filename, 1, 1)
        raise SpecError.at(where, "a spec must be a mapping with name, input and layers")
    diagnostics: list[Diagnostic] = []
    blocks = raw.get("blocks") if isinstance(raw.get("blocks"), dict) else {}
    unknown = unknown_op_diagnostics(raw, set(blocks) | prelude_blocks, filename)
    if unknown and registry.load_plugins():  # an installed plugin may define them
        return validate_spec(raw, filename, prelude_blocks, also)
    diagnostics += unknown + list(also)
    for name in blocks:
        if name in STRUCTURAL_OPS or registry.get(name) is not None:
            where = raw["blocks"].key_locs.get(name) if isinstance(raw["blocks"], YDict) else None
            diagnostics.append(Diagnostic(where, f"block {name!r} has the name of a built-in op; choose another name"))
    spec = None
    try:
        spec = Spec.model_validate(raw)
    except ValidationError as exc:
        diagnostics += diagnostics_from(exc, raw, filename)
    if diagnostics:
        raise SpecError(diagnostics)
    assert spec is not None
    return spec


_layer_adapter: Any = None


def layer_adapter() -> Any:
    """A TypeAdapter validating one layer item (expansion validates items one by one)."""
    global _layer_adapter
    if _layer_adapter is None:
        from pydantic import TypeAdapter

        _layer_adapter = TypeAdapter(LayerItem)
    return _layer_adapter


def _rebuild_holders() -> None:
    """Rebuild the models that hold layers in place (the classes stay the same objects), for
    `json_schema`'s whole union and back. A new model with a `LayerItem` field goes here too,
    before the models that embed it: else its JSON Schema meets the validation function."""
    BlockDef.model_rebuild(force=True)  # before Spec, which embeds it
    Spec.model_rebuild(force=True)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the spec language, for editors (yaml-language-server).

    Two things pydantic cannot say by itself are added: a layer may be a bare op name, and a
    block call's `op` is any name except a built-in one (so a built-in layer is checked
    against its own schema only, and the layer union's `oneOf` has one match).
    """
    global _whole_union
    registry.load_plugins()
    _whole_union = True
    try:
        _rebuild_holders()
        schema = Spec.model_json_schema(by_alias=True)
    finally:
        _whole_union = False
        _rebuild_holders()
    builtins = sorted(set(registry.ops()) | set(STRUCTURAL_OPS))
    schema["$defs"]["BlockCall"]["not"] = {"properties": {"op": {"enum": builtins}}, "required": ["op"]}

    def allow_bare_names(node: Any) -> Any:
        if isinstance(node, dict):
            members = node.get("oneOf")
            if isinstance(members, list) and {"$ref": "#/$defs/BlockCall"} in members:
                return {"anyOf": [{"type": "string", "pattern": IDENT, "description": "an op or block name"}, {"oneOf": members}]}
            return {key: allow_bare_names(value) for key, value in node.items()}
        if isinstance(node, list):
            return [allow_bare_names(value) for value in node]
        return node

    schema = allow_bare_names(schema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "netspec spec"
    return schema
