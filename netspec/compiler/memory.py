"""A static memory plan for training, without torch: weights, gradients, optimizer state and
the activations autograd saves for backward, from each op's `OpDef.saved` rule.

Saved tensors are counted once each: an op that saves its input and the op before it that
saves its output keep the same tensor, and an activation run in place (passes/inplace.py) keeps its input's (token ids, `shapes.Tokens`, are int64: 8 bytes each); views (`OpDef.view`: flatten, identity) share their
input's storage. Parameters and buffers saved by an op are not activations (they are the
weights). Under bf16 autocast (`amp="bf16"`, CPU) each tensor has the dtype autocast gives
it (`_amp_bytes`, `OpDef.amp_low` / `amp_out`), conv/linear/attention/recurrent layers save
bf16 copies of their weights and float32 inputs, and ops whose kernels keep something else
say so (`OpDef.saved_amp`); parameters, gradients and optimizer state stay float32.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from netspec.compiler import registry
from netspec.compiler.graph import INPUT, Graph
from netspec.compiler.passes.inplace import saved as saved_by
from netspec.compiler.shapes import Tokens

OPTIMIZER_STATES = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}  # float32 tensors per parameter
AMP_BYTES = {None: 4, "bf16": 2, "fp16": 2}
TOKEN_BYTES = 8  # token ids are int64 (torch.long), under autocast too
PARAM_BYTES = 4


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes for one training step at `batch` examples."""

    batch: int
    params_bytes: int
    grads_bytes: int
    optimizer_bytes: int
    activations_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.params_bytes + self.grads_bytes + self.optimizer_bytes + self.activations_bytes

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "total_bytes": self.total_bytes}


def _storage_owner(graph: Graph) -> dict[str, str]:
    """Each node -> the node whose output storage it uses (itself unless its op is a view or
    it runs in place, passes/inplace.py)."""
    owner: dict[str, str] = {}
    for node in graph.nodes():
        op = registry.get(node.op) if node.op != INPUT else None
        aliases = op is not None and (op.view or node.meta.get("inplace", False))
        owner[node.name] = owner[node.inputs[0]] if aliases else node.name
    return owner


def saved_activation_bytes(graph: Graph, batch: int, amp: str | None = None) -> int:
    """Bytes autograd holds for backward after one training-mode forward of `batch` examples.

    The input batch counts when a first layer saves it (as torch does: conv and linear save
    the data tensor even though it needs no gradient). An op that nothing upstream of it
    needs a gradient for (no parameters of its own or before it: a relu on the input) is not
    recorded by autograd and saves nothing. Under autocast each tensor has its dtype
    (`_amp_bytes`): an op autocast runs in bf16 that saves a float32 input saves its own bf16
    copy of it (one per such op: casts of tensors other than weights are not cached).
    """
    elem = _amp_bytes(graph) if amp else {n.name: _element_bytes(n.shape, 4) for n in graph.nodes()}  # type: ignore[arg-type]
    owner = _storage_owner(graph)
    kept: dict[object, int] = {}  # storage (its owner node, or (node, input) for a cast copy) -> bytes per example
    needs_grad: set[str] = set()
    cast: set[str] = set()  # the layers whose weight has its low-precision copy counted
    per_example = per_batch = weight_copies = 0
    for node in graph.nodes():
        if node.op == INPUT:
            continue
        op = registry.get(node.op)
        assert op is not None and node.shape is not None
        if node.params == 0 and not node.meta.get("shares") and not any(i in needs_grad for i in node.inputs):
            continue
        needs_grad.add(node.name)
        in_shapes = [graph.node(i).shape for i in node.inputs]
        if amp and op.saved_amp is not None and not node.meta.get("inplace"):
            saved = op.saved_amp(node.attrs, in_shapes, node.shape, [elem[i] for i in node.inputs])  # type: ignore[arg-type]
        else:  # float32, or an op marked in place (its in-place rule: passes/inplace.py)
            saved = saved_by(graph, node)
        grads = [i in needs_grad for i in node.inputs]
        low = bool(amp) and op.amp_low
        for j, i in enumerate(saved.inputs):
            if not _applies(saved.when, j, grads):
                continue
            source = owner[node.inputs[i]]
            if low and elem[source] == PARAM_BYTES:  # autocast's bf16 copy of a float32 input
                kept[(node.name, i)] = _numel(in_shapes[i]) * AMP_BYTES[amp]  # type: ignore[arg-type]
            else:
                kept[source] = _numel(graph.node(source).shape) * elem[source]  # type: ignore[arg-type]
        if saved.output:
            kept[owner[node.name]] = _numel(graph.node(owner[node.name]).shape) * elem[owner[node.name]]  # type: ignore[arg-type]
        act = elem[node.name] if elem[node.name] != TOKEN_BYTES else AMP_BYTES[amp]
        per_example += sum(
            n * (size or act) for j, (n, size) in enumerate(saved.extra) if _applies(saved.extra_when, j, grads)
        )
        per_batch += sum(n * (size or act) for j, (n, size) in enumerate(saved.per_batch) if _applies(saved.per_batch_when, j, grads))
        weight = next(iter(node.meta.get("shares", {}).values()), node.name)  # autocast casts a shared weight once
        if amp and saved.amp_weight and weight not in cast and _applies((saved.amp_weight_when,), 0, grads):
            cast.add(weight)
            weight_copies += saved.amp_weight * AMP_BYTES[amp]
    return batch * (per_example + sum(kept.values())) + per_batch + weight_copies


def _amp_bytes(graph: Graph) -> dict[str, int]:
    """Bytes per element of each node's output under bf16 autocast: the input batch is float32
    (token ids int64), an op that states its own has it (`OpDef.amp_out`: bf16 for conv and
    linear, float32 where a float32 parameter is mixed in), any other its float inputs'
    widest dtype (type promotion: bf16 + float32 is float32)."""
    out: dict[str, int] = {}
    for node in graph.nodes():
        op = registry.get(node.op) if node.op != INPUT else None
        stated = PARAM_BYTES if op is None else op.amp_out(node.attrs)
        floats = [out[i] for i in node.inputs if out[i] != TOKEN_BYTES]
        width = stated if stated is not None else max(floats, default=PARAM_BYTES)
        out[node.name] = TOKEN_BYTES if isinstance(node.shape, Tokens) else width
    return out


def _applies(conditions: tuple[tuple[int, ...] | None, ...], j: int, grads: list[bool]) -> bool:
    """Whether the j-th saved tensor is kept: it has no condition, or one of the inputs its
    condition names needs a gradient (`Saved.when`)."""
    cond = conditions[j] if j < len(conditions) else None
    return cond is None or any(grads[k] for k in cond)


def _element_bytes(shape: tuple[int, ...], act: int) -> int:
    """Bytes per element of a node's output: int64 for token ids, else the activation dtype."""
    return TOKEN_BYTES if isinstance(shape, Tokens) else act


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def plan(graph: Graph, batch: int, optimizer: str = "sgd", amp: str | None = None) -> MemoryPlan:
    """The memory plan of training `graph` at `batch` with `optimizer` (sgd, momentum, adam, adamw)."""
    params = graph.total_params * PARAM_BYTES
    return MemoryPlan(
        batch=batch,
        params_bytes=params,
        grads_bytes=params,
        optimizer_bytes=params * OPTIMIZER_STATES[optimizer],
        activations_bytes=saved_activation_bytes(graph, batch, amp),
    )


def human(nbytes: int) -> str:
    """1536 -> '1.5 KiB'."""
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{nbytes} B"
