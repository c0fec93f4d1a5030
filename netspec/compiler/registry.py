"""The one table of ops: name -> schema, shape rule, counts, torch builder, drawing style.

Every stage looks ops up here instead of branching on op names. Custom ops come only from
Python: call `register(OpDef(...))`, or publish a `netspec.ops` entry point whose object is
a callable that registers its ops. A spec can name ops but never import anything.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from pydantic import BaseModel

from netspec.compiler.shapes import Shape

Attrs = dict[str, Any]


def _zero(attrs: Attrs, inputs: list[Shape], output: Shape) -> int:
    return 0


@dataclass(frozen=True)
class Saved:
    """What autograd keeps of one op for its backward pass (training mode, per example).

    `inputs`: indices of the node's inputs it saves; `output`: whether it saves its result;
    `extra`: further tensors it makes and saves (a dropout mask, pooling indices), as
    (elements, bytes per element or 0 for the dtype of the op's output); `amp_weight`: elements of the
    low-precision weight copy autocast makes and the op saves, when one of the inputs
    `amp_weight_when` names needs a gradient (linear's mm saves it for its input's gradient;
    None: always, as convolution saves its weight).
    `when` / `extra_when` (parallel to `inputs` / `extra`; missing or None: always): input
    indices of which one must need a gradient for the tensor to be saved (torch's mul saves
    x for y's gradient only). `per_batch`: tensors whose size does not grow with the batch
    (batch norm's batch mean and inverse std), as (elements, bytes) for the whole batch;
    `per_batch_when` their conditions, as `extra_when` (autocast's bf16 copy of a weight is
    kept for its input's gradient).
    Parameters and buffers are never counted (they are the weights). See compiler/memory.py.
    """

    inputs: tuple[int, ...] = ()
    output: bool = False
    extra: tuple[tuple[int, int], ...] = ()
    amp_weight: int = 0
    amp_weight_when: Optional[tuple[int, ...]] = (0,)
    when: tuple[Optional[tuple[int, ...]], ...] = ()
    extra_when: tuple[Optional[tuple[int, ...]], ...] = ()
    per_batch: tuple[tuple[int, int], ...] = ()
    per_batch_when: tuple[Optional[tuple[int, ...]], ...] = ()


def _saves_inputs(attrs: Attrs, inputs: list[Shape], output: Shape) -> Saved:
    """The default: most ops need their inputs for backward (an op that saves less says so)."""
    return Saved(inputs=tuple(range(len(inputs))))


SAVES_NOTHING = Saved()


@dataclass(frozen=True)
class FunctionCall:
    """A torch function applied to a node's inputs (for merges), instead of a module.

    `fold=True` chains a binary function over the inputs (a + b + c); `list_arg=True`
    passes them as one list (torch.cat([a, b], dim=1)).
    """

    target: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    fold: bool = False
    list_arg: bool = False


@dataclass(frozen=True)
class Emit:
    """For ops that are neither one module nor one function: a recipe that adds fx nodes.

    `build(emitter, inputs)` returns the output node; `emitter` (see codegen/torch_fx.py)
    offers `call(fn, *args)`, `method(name, *args)`, `module(m, *args)` (placed at the node's
    path) and `parameter(shape, fill)` (a learned tensor AT the node's path, no suffix, as
    torchvision's `layer_scale`). Keeps torch out of the registry: builders import it.
    """

    build: Callable[[Any, list[Any]], Any]


@dataclass(frozen=True)
class Example:
    """Valid parameters and input shapes of an op, for the conformance test and `netspec ops`."""

    params: dict[str, Any]
    inputs: tuple[Shape, ...]


@dataclass(frozen=True)
class Part:
    """One step inside an op, for diagrams that draw the op as a cluster of its steps
    (attention's projections and per-head product): `inputs` are the op's input indices (int)
    or earlier parts' ids (str), `shape` is the step's output; the last part gives the op's."""

    id: str
    label: str
    family: str
    inputs: tuple[int | str, ...]
    shape: Shape


@dataclass(frozen=True)
class OpDef:
    """Everything netspec knows about one primitive op."""

    name: str
    params: type[BaseModel]
    shape: Callable[[Attrs, list[Shape]], Shape]
    torch: Callable[[Attrs, list[Shape]], Any]
    family: str
    label: Callable[[Attrs], str]
    doc: str
    count_params: Callable[[Attrs, list[Shape], Shape], int] = _zero
    count_macs: Callable[[Attrs, list[Shape], Shape], int] = _zero
    min_inputs: int = 1
    max_inputs: int = 1
    has_weight: bool = False  # whether `init:` applies to it
    # Work beyond the conv/linear multiply-accumulates, counted only by the opt-in "all"
    # counting policy (netspec/compiler/counting.py): bias adds, norm, pooling, activations,
    # as elementary operations per example. Default: none declared.
    count_extra: Callable[[Attrs, list[Shape], Shape], int] = _zero
    # The tensors autograd saves for backward (netspec/compiler/memory.py). Default: its inputs.
    saved: Callable[[Attrs, list[Shape], Shape], Saved] = _saves_inputs
    # Under CPU bf16 autocast, where it differs from `saved` read with 2-byte activations
    # (a recurrent cell's bf16 weight copies, attention's float32 math path). None: `saved`.
    # Its last argument: bytes per element of each input under autocast (2 bf16, 4 float32).
    saved_amp: Optional[Callable[[Attrs, list[Shape], Shape, list[int]], Saved]] = None
    # On autocast's lower-precision list (conv, linear, matmuls, RNN cells): under bf16 autocast
    # it computes in bf16, and a float32 input it saves is its own bf16 copy.
    amp_low: bool = False
    # Under CPU bf16 autocast torch runs it only with oneDNN's bf16 kernel, which needs a CPU
    # with AVX-512; elsewhere it fails (LSTM: "could not create a primitive descriptor"), so
    # training refuses it there (runtime/train/recipe.py).
    amp_cpu_native: bool = False
    # Bytes per element of its output under bf16 autocast: 2 for most `amp_low` ops, 4 for ops
    # that mix in a float32 parameter (embedding); None: its inputs' (type promotion).
    amp_out: Callable[[Attrs], Optional[int]] = lambda a: None
    view: bool = False  # the output shares its input's storage (flatten, identity)
    # The op's in-place form (torch's `inplace=True`), which the `inplace` pass may choose
    # (compiler/passes/inplace.py): what autograd saves when it runs in place, or None where
    # these attrs have none (an in-place leaky ReLU with a negative slope cannot go backward).
    inplace: Optional[Callable[[Attrs, list[Shape], Shape], Optional[Saved]]] = None
    takes_tokens: bool = False  # integer token ids (shapes.Tokens) are refused unless set
    examples: tuple[Example, ...] = ()  # every built-in op has some: tests/test_op_conformance.py
    # The learned tensors a layer owns, name -> shape (names as torch gives them below the
    # node's path; "" is a parameter AT the path, as Emitter.parameter places it): what
    # `share:` ties (compiler/passes/share.py). None: the op cannot share or be shared.
    weights: Optional[Callable[[Attrs, list[Shape]], dict[str, Shape]]] = None
    # Drawn as a cluster of these steps instead of one box (netspec/compiler/draw/plan.py).
    parts: Optional[Callable[[Attrs, list[Shape], Shape], tuple[Part, ...]]] = None


_OPS: dict[str, OpDef] = {}
_loaded = False
_version = 0  # bumped by every registration, so the schema knows to rebuild its layer union


def register(op: OpDef, *, replace: bool = False) -> OpDef:
    """Add an op; refuse to shadow an existing one unless `replace` is set."""
    global _version
    if op.name in _OPS and not replace:
        raise ValueError(f"op {op.name!r} is already registered")
    _OPS[op.name] = op
    _version += 1
    return op


def unregister(name: str) -> None:
    """Remove an op (tests that register throw-away ops clean up with this)."""
    global _version
    del _OPS[name]
    _version += 1


def version() -> int:
    """Changes whenever an op is registered."""
    ops()
    return _version


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import netspec.compiler.ops  # noqa: F401  (registers the built-in ops)


_plugins_loaded = False


def load_plugins() -> bool:
    """Register the ops of installed `netspec.ops` entry points (once); True if any came.

    Called only when a spec names an op nobody knows (and for the JSON Schema): scanning
    installed packages' metadata costs tens of milliseconds that `netspec check` need not pay.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return False
    _plugins_loaded = True
    from importlib.metadata import entry_points

    before = version()
    for entry in entry_points(group="netspec.ops"):
        entry.load()()
    return version() != before


def ops() -> dict[str, OpDef]:
    if not _loaded:
        _load()
    return _OPS


def get(name: str) -> OpDef | None:
    if not _loaded:  # looked up for every layer, shape and count: kept to one dict lookup
        _load()
    return _OPS.get(name)


def examples(*cases: tuple[dict[str, Any], Any]) -> tuple[Example, ...]:
    """`examples(({"out": 4}, (3, 8, 8)), ...)`: each case's input is one shape or a list of them."""
    return tuple(Example(p, tuple(s) if isinstance(s, list) else (s,)) for p, s in cases)
