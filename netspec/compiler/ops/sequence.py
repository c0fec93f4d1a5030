"""Sequence ops (d2l chapters 9-11): embedding, positional encodings, class token, self-attention,
recurrent layers, and axis ops over `[T, D]` (steps × features) inputs.

Dimensions in parameters (`dim`, `start`, ...) count the non-batch dimensions from 0, negative
ones from the end, as everywhere in a spec: the batch stays first and symbolic.
"""
from __future__ import annotations

import math
import operator
from typing import Literal, Optional

from pydantic import model_validator

from netspec.compiler.ops.layers import Dim
from netspec.compiler.registry import SAVES_NOTHING, Attrs, Emit, OpDef, Part, Saved, examples, register
from netspec.compiler.schema_base import Bool, Model, NonNegFloat, NonNegInt, PosInt, Probability, value_type
from netspec.compiler.shapes import Shape, ShapeError, Tokens, fmt, require_sequence

MAX_DIMS = 64


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


Index = value_type(
    "index", "an integer index (negative counts from the end)", lambda v: _is_int(v) and abs(v) <= 1_000_000,
    {"type": "integer", "minimum": -1_000_000, "maximum": 1_000_000},
)
DimPair = value_type(
    "dim_pair", "a list of two integer dimensions",
    lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(x) and -MAX_DIMS <= x < MAX_DIMS for x in v),
    {"type": "array", "items": {"type": "integer", "minimum": -MAX_DIMS, "maximum": MAX_DIMS - 1}, "minItems": 2, "maxItems": 2},
)
ReshapeDims = value_type(
    "reshape_dims", "a list of positive integers, at most one -1",
    lambda v: isinstance(v, (list, tuple)) and 0 < len(v) <= MAX_DIMS and all(_is_int(x) and (0 < x <= 1_000_000 or x == -1) for x in v)
    and list(v).count(-1) <= 1,
    {"type": "array", "items": {"type": "integer", "minimum": -1}, "minItems": 1, "maxItems": MAX_DIMS},
)


def axis(d: int, shape: Shape, what: str) -> int:
    """A non-batch dimension `d` of `shape`, as a non-negative index."""
    if not -len(shape) <= d < len(shape):
        raise ShapeError(f"{what} {d} is out of range for {fmt(shape)} ({len(shape)} dimensions; the batch is not counted)")
    return d % len(shape)


# ---------------------------------------------------------------- embedding
class EmbeddingParams(Model):
    """A learned `dim`-vector per token id (the vocabulary comes from the input)."""

    dim: PosInt


def _embedding_shape(a: Attrs, ins: list[Shape]) -> Shape:
    if not isinstance(ins[0], Tokens):
        raise ShapeError(f"embedding expects token ids (input: {{tokens: T, vocab: V}}), got float values {fmt(ins[0])}")
    return (*ins[0], a["dim"])


register(
    OpDef(
        name="embedding",
        params=EmbeddingParams,
        shape=_embedding_shape,
        torch=lambda a, ins: __import__("torch").nn.Embedding(ins[0].vocab, a["dim"]),
        family="sequence",
        label=lambda a: f"embedding {a['dim']}",
        doc="Token ids [T] (vocabulary V) to vectors [T, dim] (nn.Embedding(V, dim)).",
        count_params=lambda a, ins, out: ins[0].vocab * a["dim"],
        weights=lambda a, ins: {"weight": (ins[0].vocab, a["dim"])},
        takes_tokens=True,
        saved=lambda a, ins, out: Saved(inputs=(0,)),  # the int64 ids (8 bytes each, compiler/memory.py)
        amp_out=lambda a: 4,  # a float32 table lookup: autocast leaves it float32
        examples=examples(({"dim": 4}, Tokens((6,), 10)), ({"dim": 3}, Tokens((1,), 2))),
    )
)


# ---------------------------------------------------------------- positional encodings
class PositionalParams(Model):
    """Add a position code to each step: fixed sines and cosines (d2l 11.6) or a learned table."""

    kind: Literal["sinusoidal", "learned"] = "sinusoidal"
    max_len: Optional[PosInt] = None
    init_std: Optional[NonNegFloat] = None  # learned only: N(0, init_std²), 0.02 by default (d2l 11.8, torchvision)

    @model_validator(mode="after")
    def _std_is_for_learned(self) -> "PositionalParams":
        if self.init_std is not None and self.kind != "learned":
            raise ValueError("init_std is for learned positions: sinusoidal ones are fixed")
        return self


def _table_len(a: Attrs, ins: list[Shape]) -> int:
    t = ins[0][0]
    return a["max_len"] if a["max_len"] is not None else (1000 if a["kind"] == "sinusoidal" else t)


def _positional_shape(a: Attrs, ins: list[Shape]) -> Shape:
    t, d = require_sequence(ins[0], "positional_encoding")
    if t > _table_len(a, ins):
        raise ShapeError(f"a sequence of {t} steps is longer than the positional table (max_len {_table_len(a, ins)})")
    if a["kind"] == "sinusoidal" and d % 2:
        raise ShapeError(f"sinusoidal encoding pairs sines and cosines: the width must be even, got {d}")
    return ins[0]


def _positional_torch(a: Attrs, ins: list[Shape]) -> Emit:
    """Sinusoidal: P[t, 2i] = sin(t / 10000^(2i/D)), P[t, 2i+1] = cos(...), computed as d2l does,
    in the forward (nothing stored). Learned: a parameter [1, max_len, D] at the node's path
    (torchvision's pos_embedding), its first T rows added."""
    import torch

    t, d = ins[0]
    length = _table_len(a, ins)

    def sinusoidal(e, xs):
        steps = e.method("reshape", e.call(torch.arange, t, dtype=torch.float32), -1, 1)
        rates = e.call(torch.pow, 10000, e.call(operator.truediv, e.call(torch.arange, 0, d, 2, dtype=torch.float32), d))
        angles = e.call(operator.truediv, steps, rates)
        table = e.call(torch.flatten, e.call(torch.stack, [e.call(torch.sin, angles), e.call(torch.cos, angles)], -1), -2)
        return e.call(operator.add, xs[0], e.method("to", table, xs[0]))

    def learned(e, xs):
        table = e.parameter((1, length, d), 0.0, 0.02 if a["init_std"] is None else a["init_std"])
        if length > t:
            table = e.call(torch.narrow, table, 1, 0, t)
        return e.call(operator.add, xs[0], table)

    return Emit(sinusoidal if a["kind"] == "sinusoidal" else learned)


register(
    OpDef(
        name="positional_encoding",
        params=PositionalParams,
        shape=_positional_shape,
        torch=_positional_torch,
        family="sequence",
        label=lambda a: f"{a['kind']} positions",
        doc="Adds position codes to [T, D]: d2l's fixed sinusoids (max_len 1000) or a learned [max_len, D] table "
        "(default max_len T, drawn from N(0, 0.02²) as d2l 11.8 and torchvision do; `init_std` to change).",
        count_params=lambda a, ins, out: _table_len(a, ins) * ins[0][1] if a["kind"] == "learned" else 0,
        weights=lambda a, ins: {"": (1, _table_len(a, ins), ins[0][1])} if a["kind"] == "learned" else {},
        saved=lambda a, ins, out: SAVES_NOTHING,  # an add (the narrowed table is a view): sizes only
        amp_out=lambda a: 4 if a["kind"] == "learned" else None,  # + a float32 parameter; the sinusoids take x's dtype
        examples=examples(({}, (5, 6)), ({"kind": "learned"}, (4, 3)), ({"kind": "learned", "max_len": 9}, (4, 3)),
                          ({"kind": "learned", "init_std": 0.0}, (4, 3))),
    )
)


# ---------------------------------------------------------------- class token
class NoParams(Model):
    """An op without parameters."""


def _class_token_torch(a: Attrs, ins: list[Shape]) -> Emit:
    import torch

    def build(e, xs):
        token = e.parameter((1, 1, ins[0][1]), 0.0)
        token = e.method("expand", token, e.method("size", xs[0], 0), -1, -1)
        return e.call(torch.cat, [token, xs[0]], 1)

    return Emit(build)


def _class_token_shape(a: Attrs, ins: list[Shape]) -> Shape:
    t, d = require_sequence(ins[0], "class_token")
    return (t + 1, d)


register(
    OpDef(
        name="class_token",
        params=NoParams,
        shape=_class_token_shape,
        torch=_class_token_torch,
        family="sequence",
        label=lambda a: "class token",
        doc="Prepends a learned [1, D] step (ViT's class token, zero-initialised as torchvision's): [T, D] -> [T+1, D].",
        count_params=lambda a, ins, out: ins[0][1],
        weights=lambda a, ins: {"": (1, 1, ins[0][1])},
        saved=lambda a, ins, out: SAVES_NOTHING,  # expand and cat: backward splits the gradient by sizes
        amp_out=lambda a: 4,  # cat with the float32 token promotes
        examples=examples(({}, (4, 6))),
    )
)


# ---------------------------------------------------------------- self-attention
class AttentionParams(Model):
    """Multi-head self-attention over the steps."""

    heads: PosInt
    bias: Bool = True
    dropout: Probability = 0.0
    causal: Bool = False
    pad_id: NonNegInt = 0


def _memory(ins: list[Shape]) -> Shape:
    """Where keys and values come from: a second float input, else the queries themselves
    (a second input of token ids is a padding mask, not a memory)."""
    return ins[1] if len(ins) == 2 and not isinstance(ins[1], Tokens) else ins[0]


def _attention_shape(a: Attrs, ins: list[Shape]) -> Shape:
    if isinstance(ins[0], Tokens):
        raise ShapeError(f"expects float values [T, D] as its first input, got {fmt(ins[0])}; embed them first")
    t, d = require_sequence(ins[0], "multihead_attention")
    if len(ins) == 2 and isinstance(ins[1], Tokens):
        if ins[1][0] != t:
            raise ShapeError(f"the padding mask's token ids have {ins[1][0]} steps but the sequence has {t}")
    elif len(ins) == 2:
        require_sequence(ins[1], "multihead_attention's memory (second input)")
    if d % a["heads"]:
        raise ShapeError(f"heads={a['heads']} must divide the model width {d} (each head gets width/heads features)")
    return ins[0]


def _attention_torch(a: Attrs, ins: list[Shape]) -> Emit:
    """nn.MultiheadAttention (its names: in_proj_weight, out_proj.weight, as torchvision's ViT)
    with need_weights=False, so torch computes it with scaled_dot_product_attention. A second
    input is the memory that keys and values come from (cross-attention; kdim = its width)."""
    import torch
    from torch import nn

    (t, d), (tk, dk) = ins[0], _memory(ins)
    padded = len(ins) == 2 and isinstance(ins[1], Tokens)
    module = nn.MultiheadAttention(d, a["heads"], dropout=a["dropout"], bias=a["bias"], batch_first=True, kdim=dk, vdim=dk)
    module.bias = a["bias"]  # the constructor's flag, for the `-o model.py` constructor line

    def build(e, xs):
        x, memory = xs[0], (xs[0] if padded else xs[-1])
        masks = {}
        if padded:  # True where a key step holds the padding id: no query attends to it
            masks["key_padding_mask"] = e.call(operator.eq, xs[1], a["pad_id"])
        if a["causal"]:  # True above the diagonal: step t attends to steps <= t
            masks["attn_mask"] = e.method("triu", e.call(torch.ones, t, tk, dtype=torch.bool, device=e.call(getattr, x, "device")), 1)
            masks["is_causal"] = True
        out = e.module(module, x, memory, memory, need_weights=False, **masks)
        # batch_first output is a transposed view of a step-major tensor: made N×T×D in memory,
        # so what follows (dropout's mask, drawn in memory order, included) sees a plain layout
        return e.method("contiguous", e.call(operator.getitem, out, 0))

    return Emit(build)


def _attention_weights(a: Attrs, ins: list[Shape]) -> dict[str, Shape]:
    """nn.MultiheadAttention's parameters: one packed in_proj_weight when keys have the
    queries' width, else q/k/v_proj_weight."""
    (_, d), (_, dk) = ins[0], _memory(ins)
    bias = {"in_proj_bias": (3 * d,)} if a["bias"] else {}
    out_bias = {"out_proj.bias": (d,)} if a["bias"] else {}
    if dk == d:
        return {"in_proj_weight": (3 * d, d), **bias, "out_proj.weight": (d, d), **out_bias}
    return {"q_proj_weight": (d, d), "k_proj_weight": (d, dk), "v_proj_weight": (d, dk), **bias, "out_proj.weight": (d, d), **out_bias}


def _attention_params(a: Attrs, ins: list[Shape], out: Shape) -> int:
    (_, d), (_, dk) = ins[0], _memory(ins)
    return 2 * d * d + 2 * d * dk + (4 * d if a["bias"] else 0)


def _attention_macs(a: Attrs, ins: list[Shape], out: Shape) -> int:
    """Projections (queries and output 2·T·D², keys and values 2·S·Dₖ·D from the S×Dₖ memory)
    plus per head Q·Kᵀ and A·V (T·S·D/heads each): self-attention (S = T, Dₖ = D) is
    4·T·D² + 2·T²·D. A causal mask computes the masked half too."""
    (t, d), (s, dk) = ins[0], _memory(ins)
    return 2 * t * d * d + 2 * s * dk * d + 2 * t * s * d


def _attention_saved(a: Attrs, ins: list[Shape], out: Shape) -> Saved:
    """What nn.MultiheadAttention (need_weights=False) keeps on CPU, measured per path (docs/counting.md):

    - no dropout: scaled_dot_product_attention's fused kernel keeps the projections it read
      (self: the packed q, k, v, 3·T·D; cross: q T·D and k, v S·D each), its output T·D and a
      float32 logsumexp per head and query step (heads·T); self-attention keeps the input for
      the packed projection's weight gradient; cross-attention keeps copies of the
      step-major queries (T·D) and memory (S·Dₖ) that its separate projections read;
    - dropout > 0 (training): the math path: the input, the packed q, k, v (3·T·D), the scaled
      queries and the keys' transposed copy (T·D each), the softmax, the dropout mask and the
      dropped weights (3·heads·T·T) and the output T·D; cross-attention keeps what it keeps
      without dropout, the three heads·T·S instead of the logsumexp, and with the packed k, v
      weight (Dₖ = D) a copy of the keys (S·D);
    - a padding mask keeps its token ids (int64) and a float mask per head and key step.
    """
    (t, d), (s, dk) = ins[0], _memory(ins)
    h = a["heads"]
    padded = len(ins) == 2 and isinstance(ins[1], Tokens)
    cross = len(ins) == 2 and not padded
    if a["dropout"] > 0 and not cross:
        return Saved(inputs=(0,), extra=((6 * t * d + 3 * h * t * t, 0),))
    if a["dropout"] > 0:  # cross, math path: as below, the weights' three h·T·S for the logsumexp
        if dk != d:
            return Saved(inputs=(1,), extra=((s * dk + 3 * t * d + 2 * s * d + 3 * h * t * s, 0),))
        return Saved(extra=((s * dk + 3 * t * d + 3 * s * d + 3 * h * t * s, 0),))  # and the keys' copy (S·D)
    if cross and dk != d:  # separate q, k, v weights: the memory itself and a step-major copy
        return Saved(inputs=(1,), extra=((s * dk + 3 * t * d + 2 * s * d, 0), (h * t, 4)))
    if cross:  # packed k, v weight over the memory's step-major copy
        return Saved(extra=((s * dk + 3 * t * d + 2 * s * d, 0), (h * t, 4)))
    extra = ((4 * t * d, 0), (h * t, 4)) + (((h * s, 0),) if padded else ())
    return Saved(inputs=(0, 1) if padded else (0,), extra=extra)


def _attention_saved_amp(a: Attrs, ins: list[Shape], out: Shape, dtypes: list[int]) -> Saved:
    """Under CPU bf16 autocast (measured, docs/counting.md) the projections run in bf16 and keep
    bf16 copies of their weights, per batch: the queries' (D·D) and the keys' and values'
    (2·D·Dₖ) for their input's gradient (self-attention: the packed 3·D·D), the output
    projection's (D·D) always. Without dropout the fused kernel works in bf16: the float32
    rule read with 2 bytes, except that cross-attention with separate k, v weights (Dₖ ≠ D)
    keeps two bf16 step-major copies of the memory (S·Dₖ each) instead of the memory and one.
    With dropout the math path computes in float32 over float32 copies of q, k, v: it keeps
    those of v, the scaled queries and the keys' transposed copy (T·D + 2·S·D float32, the
    bf16 q, k, v are not kept), the softmax, the mask and the dropped weights (3·heads·T·S
    float32), and the output projection keeps a bf16 copy of the float32 heads' output (T·D)."""
    (t, d), (s, dk) = ins[0], _memory(ins)
    h = a["heads"]
    padded = len(ins) == 2 and isinstance(ins[1], Tokens)
    cross = len(ins) == 2 and not padded
    base = _attention_saved(a, ins, out)
    if cross:  # weights: queries' for the queries' gradient, keys' and values' for the memory's
        copies = {"per_batch": ((d * d, 2), (2 * d * dk, 2), (d * d, 2)), "per_batch_when": ((0,), (1,), None)}
        steps = s * dk * (1 if dk == d else 2)  # the memory's step-major bf16 copies
        if a["dropout"] > 0:
            return Saved(extra=((2 * t * d + steps, 2), (t * d + 2 * s * d + 3 * h * t * s, 4)), **copies)
        return Saved(extra=((3 * t * d + steps + 2 * s * d, 2), (h * t, 4)), **copies)
    copies = {"per_batch": ((3 * d * d, 2), (d * d, 2)), "per_batch_when": ((0,), None)}
    if a["dropout"] > 0:
        return Saved(inputs=(0,), extra=((3 * t * d + 3 * h * t * t, 4), (t * d, 2)), **copies)
    return Saved(inputs=base.inputs, extra=base.extra, **copies)


def _attention_parts(a: Attrs, ins: list[Shape], out: Shape) -> tuple[Part, ...]:
    """How nn.MultiheadAttention computes it, for the diagram: self-attention projects q, k, v
    with one packed weight ([T, 3·D]); cross-attention projects q from the queries and k, v
    from the memory ([S, 2·D]); then the heads' softmax(QKᵀ/√d)·V and the output projection."""
    (t, d), (s, _) = ins[0], _memory(ins)
    h = a["heads"]
    padded = len(ins) == 2 and isinstance(ins[1], Tokens)
    cross = len(ins) == 2 and not padded
    if cross:
        projections = (Part("q", f"q projection {d}", "linear", (0,), (t, d)), Part("kv", f"k, v projections {d}", "linear", (1,), (s, 2 * d)))
    else:
        projections = (Part("qkv", f"q, k, v projections {d}", "linear", (0,), (t, 3 * d)),)
    masks = (" causal" if a["causal"] else "") + (" · key padding" if padded else "")
    product = Part("heads", f"softmax(QKᵀ/√{d // h})·V ×{h}{masks}", "attention",
                   tuple(p.id for p in projections) + ((1,) if padded else ()), (t, d))
    return (*projections, product, Part("out", f"out projection {d}", "linear", ("heads",), out))


register(
    OpDef(
        name="multihead_attention",
        params=AttentionParams,
        shape=_attention_shape,
        torch=_attention_torch,
        family="attention",
        label=lambda a: f"attention ×{a['heads']}" + (" causal" if a["causal"] else ""),
        doc="Multi-head attention on [T, D] (nn.MultiheadAttention via scaled_dot_product_attention): self-attention, "
        "or cross-attention to a second input [S, Dk] (from: [queries, memory]); heads, bias (of the projections; false "
        "as d2l's ViT), dropout (of the weights), causal; token ids as the second input (from: [x, input]) mask the "
        "keys whose id is pad_id (0). MACs 4·T·D² + 2·T²·D (self).",
        count_params=_attention_params,
        weights=_attention_weights,
        count_macs=_attention_macs,
        saved=_attention_saved,
        saved_amp=_attention_saved_amp,
        amp_low=True,  # its projections and the fused kernel (the math path: below)
        amp_out=lambda a: 2,  # the output projection's
        max_inputs=2,
        examples=examples(
            ({"heads": 2}, (5, 8)),
            ({"heads": 3, "bias": False, "dropout": 0.1}, (4, 6)),
            ({"heads": 1, "causal": True}, (6, 4)),
            ({"heads": 2}, [(5, 8), (3, 6)]),
            ({"heads": 2, "bias": False, "causal": True}, [(4, 6), (4, 6)]),
            ({"heads": 2, "pad_id": 3}, [(5, 8), Tokens((5,), 4)]),
            ({"heads": 2, "dropout": 0.1}, [(5, 8), (3, 6)]),
            ({"heads": 3, "dropout": 0.1, "causal": True}, [(4, 6), (7, 6)]),
        ),
        takes_tokens=True,  # as the padding mask's source; the shape rule refuses them as queries
        parts=_attention_parts,
    )
)


# ---------------------------------------------------------------- recurrent layers
class RecurrentParams(Model):
    """A (stacked, optionally bidirectional) recurrent layer over the steps."""

    hidden: PosInt
    layers: PosInt = 1
    bidirectional: Bool = False
    dropout: Probability = 0.0
    bias: Bool = True
    output: Literal["sequence", "last"] = "sequence"


class RnnParams(RecurrentParams):
    nonlinearity: Literal["tanh", "relu"] = "tanh"


_GATES = {"rnn": 1, "gru": 3, "lstm": 4}
_CLASSES = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}


def _recurrent_shape(kind: str):
    def rule(a: Attrs, ins: list[Shape]) -> Shape:
        t, _ = require_sequence(ins[0], kind)
        width = a["hidden"] * (2 if a["bidirectional"] else 1)
        return (t, width) if a["output"] == "sequence" else (width,)

    return rule


def _recurrent_weights(kind: str, a: Attrs, ins: list[Shape]) -> tuple[int, int]:
    """(weights, biases) of all layers and directions: per layer gates·H·(I_l + H) weights."""
    g, h, dirs = _GATES[kind], a["hidden"], 2 if a["bidirectional"] else 1
    weights = sum(g * h * ((ins[0][1] if layer == 0 else dirs * h) + h) for layer in range(a["layers"])) * dirs
    return weights, (2 * g * h * a["layers"] * dirs if a["bias"] else 0)


def _recurrent_tensors(kind: str, a: Attrs, ins: list[Shape]) -> dict[str, Shape]:
    """nn.RNN/GRU/LSTM's parameters by name: weight_ih_l{k}[_reverse] [gates·H, I_l], ..."""
    g, h, dirs = _GATES[kind], a["hidden"], 2 if a["bidirectional"] else 1
    out: dict[str, Shape] = {}
    for layer in range(a["layers"]):
        for suffix in ("", "_reverse")[:dirs]:
            out[f"weight_ih_l{layer}{suffix}"] = (g * h, ins[0][1] if layer == 0 else dirs * h)
            out[f"weight_hh_l{layer}{suffix}"] = (g * h, h)
            if a["bias"]:
                out[f"bias_ih_l{layer}{suffix}"] = out[f"bias_hh_l{layer}{suffix}"] = (g * h,)
    return out


def _recurrent_saved(kind: str):
    """What CPU torch keeps for nn.RNN / nn.GRU (step by step, per layer and direction) and
    nn.LSTM (oneDNN's fused kernel), measured (docs/counting.md). T steps, I inputs, H hidden,
    L layers, D directions, J = D·H the width of a layer ≥ 1's input:

    - rnn: the input (and a copy per extra direction), the initial state and each step's
      state: (T + 1)·H per layer and direction;
    - gru: per step its 3·H gates and four H-vectors, 7·T·H per layer and direction (the
      initial state included);
    - lstm: a step-major copy of the input (not the input itself), per layer and direction
      the outputs T·H, h₀, c₀, h_n, c_n (4·H), and oneDNN's workspace: 28 KiB per batch plus
      60 bytes per step, example and hidden unit (a fit: within 1 % at T·H ≥ 3,500, the
      workspace's padding makes it up to 12.3 % high on tiny layers); without biases, a
      float32 copy of its weights per batch;
    - between layers, the next layer's input: with dropout its mask and the dropped values
      (2·T·J), else rnn/gru one copy (T·J), lstm one when bidirectional (the concatenation).
    """

    def rule(a: Attrs, ins: list[Shape], out: Shape) -> Saved:
        t, i = ins[0]
        h, layers, dirs = a["hidden"], a["layers"], 2 if a["bidirectional"] else 1
        j = dirs * h
        between = 2 if a["dropout"] > 0 else (1 if kind != "lstm" or dirs == 2 else 0)
        inner = (layers - 1) * between * t * j
        if kind == "lstm":
            elements = t * i + inner + layers * dirs * (t * h + 4 * h)
            copies = 0 if a["bias"] else PARAM_BYTES * sum(_recurrent_weights(kind, a, ins))
            shared = a["output"] == "sequence" and dirs == 1  # the node's output IS the top layer's saved output
            return Saved(
                output=shared,
                extra=((elements - (t * h if shared else 0), 0), (layers * dirs * t * h, LSTM_WORKSPACE_BYTES)),
                per_batch=((layers * dirs, LSTM_WORKSPACE_BASE), (copies, 1)),
            )
        per = (t + 1) * h if kind == "rnn" else 7 * t * h
        return Saved(inputs=(0,), extra=((t * i * (dirs - 1) + inner + layers * dirs * per, 0),))

    return rule


def _recurrent_saved_amp(kind: str):
    """Under CPU bf16 autocast (measured, docs/counting.md): the cells' matmuls run in bf16
    and keep bf16 copies of their weights (per batch): rnn/gru the hidden-to-hidden weights
    of every layer and direction and the input weights of layers ≥ 1, the first layer's
    input weights only for the input's gradient; lstm (oneDNN's bf16 kernel) all four
    tensors of every layer and direction (twice the weights without biases). rnn keeps what
    it keeps in float32, in bf16; gru per step 6·H bf16 and one H-vector h - n in h₀'s dtype
    (zeros of the input's: float32 on a float32 input, which then runs through every step
    and layer); lstm the float32 rule's tensors in bf16 (each direction its own copy of the
    input), its workspace fitted as in float32: 28 KiB per layer and direction + 42 bytes per
    step, example and hidden unit (measured 40-44 at T·B·H from 1,280 to 25,600)."""

    def rule(a: Attrs, ins: list[Shape], out: Shape, dtypes: list[int]) -> Saved:
        t, i = ins[0]
        g, h, layers, dirs = _GATES[kind], a["hidden"], a["layers"], 2 if a["bidirectional"] else 1
        base = _recurrent_saved(kind)(a, ins, out)
        if kind == "lstm":
            elements, _ = base.extra[0]
            weights = sum(_recurrent_weights(kind, a, ins)) * (1 if a["bias"] else 2)  # no biases: the weights twice
            return Saved(
                output=base.output,
                extra=((elements + t * i * (dirs - 1), 2), (layers * dirs * t * h, LSTM_WORKSPACE_BYTES_BF16)),
                per_batch=((layers * dirs, LSTM_WORKSPACE_BASE), (weights, 2)),
            )
        first = g * h * i * dirs
        copies = _recurrent_weights(kind, a, ins)[0] - first
        if kind == "rnn":
            return Saved(inputs=(0,), extra=((base.extra[0][0], 2),), amp_weight=first, per_batch=((copies, 2),))
        # a layer's output has its h₀'s dtype, the input's: each direction of the next layer
        # casts a float32 one to bf16 (its own copy), a bf16 one they share
        j, casts = dirs * h, (dirs if dtypes[0] == 4 else 1)
        between = ((t * j, 0),) if a["dropout"] > 0 else ()  # the dropout mask
        return Saved(
            inputs=(0,),
            extra=((t * i * (dirs - 1) + (layers - 1) * casts * t * j + layers * dirs * 6 * t * h, 2),
                   (layers * dirs * t * h, 0), *((layers - 1) * between)),  # h - n and the masks: h₀'s dtype
            amp_weight=first, per_batch=((copies, 2),),
        )

    return rule


PARAM_BYTES = 4
LSTM_WORKSPACE_BYTES_BF16 = 42  # per step, example and hidden unit under bf16 autocast (fitted as the float32 one)
LSTM_WORKSPACE_BASE = 28672  # bytes per layer and direction (oneDNN, CPU; measured)
LSTM_WORKSPACE_BYTES = 60  # per step, example and hidden unit (fitted at T·B·H from 60 to 14,336)


def _recurrent_torch(kind: str):
    def build_op(a: Attrs, ins: list[Shape]) -> Emit:
        import torch
        from torch import nn

        extra = {"nonlinearity": a["nonlinearity"]} if kind == "rnn" else {}
        module = getattr(nn, _CLASSES[kind])(
            ins[0][1], a["hidden"], num_layers=a["layers"], bias=a["bias"], batch_first=True,
            dropout=a["dropout"], bidirectional=a["bidirectional"], **extra,
        )
        dirs = 2 if a["bidirectional"] else 1

        def build(e, xs):
            out = e.module(module, xs[0])
            if a["output"] == "sequence":
                return e.call(operator.getitem, out, 0)
            state = e.call(operator.getitem, out, 1)
            if kind == "lstm":
                state = e.call(operator.getitem, state, 0)  # h_n of (h_n, c_n)
            if dirs == 1:
                return e.call(operator.getitem, state, -1)  # the top layer's final state
            top = e.call(torch.narrow, state, 0, (a["layers"] - 1) * dirs, 2)  # forward, backward
            return e.call(torch.flatten, e.call(torch.permute, top, [1, 0, 2]), 1)

        return Emit(build)

    return build_op


for _kind in ("rnn", "gru", "lstm"):
    register(
        OpDef(
            name=_kind,
            params=RnnParams if _kind == "rnn" else RecurrentParams,
            shape=_recurrent_shape(_kind),
            torch=_recurrent_torch(_kind),
            family="sequence",
            label=(lambda k: lambda a: f"{k} {a['hidden']}" + (f" ×{a['layers']}" if a["layers"] > 1 else "") + (" bi" if a["bidirectional"] else ""))(_kind),
            doc=f"nn.{_CLASSES[_kind]} over [T, I] (batch first): hidden, layers, bidirectional, dropout (between layers), bias; "
            f"output: the sequence [T, dirs·hidden] or the top layer's final state [dirs·hidden] (forward, backward). "
            f"MACs per step {_GATES[_kind]}·H·(I_l + H) per layer and direction.",
            count_params=(lambda k: lambda a, ins, out: sum(_recurrent_weights(k, a, ins)))(_kind),
            weights=(lambda k: lambda a, ins: _recurrent_tensors(k, a, ins))(_kind),
            count_macs=(lambda k: lambda a, ins, out: ins[0][0] * _recurrent_weights(k, a, ins)[0])(_kind),
            saved=_recurrent_saved(_kind),
            saved_amp=_recurrent_saved_amp(_kind),
            amp_low=True,  # its cells' matmuls
            amp_cpu_native=_kind == "lstm",  # torch sends bf16 LSTM on CPU to oneDNN's kernel only
            # GRU's h' = (h - n)·z + n has its h₀'s dtype: zeros of the input's
            amp_out=(lambda k: lambda a: None if k == "gru" else 2)(_kind),
            examples=examples(
                ({"hidden": 6}, (5, 4)),
                ({"hidden": 3, "layers": 2, "bidirectional": True, "dropout": 0.2, "output": "last"}, (4, 5)),
                ({"hidden": 4, "bias": False, "output": "last"}, (3, 2)),
            ),
        )
    )


# ---------------------------------------------------------------- axis ops
class TransposeParams(Model):
    """Swap two non-batch dimensions."""

    dims: DimPair


def _transpose_dims(a: Attrs, ins: list[Shape]) -> tuple[int, int]:
    return axis(a["dims"][0], ins[0], "dim"), axis(a["dims"][1], ins[0], "dim")


def _transpose_shape(a: Attrs, ins: list[Shape]) -> Shape:
    i, j = _transpose_dims(a, ins)
    out = list(ins[0])
    out[i], out[j] = out[j], out[i]
    return tuple(out)


def _transpose_torch(a: Attrs, ins: list[Shape]) -> Emit:
    import torch

    i, j = _transpose_dims(a, ins)
    return Emit(lambda e, xs: e.call(torch.transpose, xs[0], i + 1, j + 1))


register(
    OpDef(
        name="transpose",
        params=TransposeParams,
        shape=_transpose_shape,
        torch=_transpose_torch,
        family="reshape",
        label=lambda a: f"transpose {a['dims'][0]},{a['dims'][1]}",
        doc="Swap two non-batch dimensions (torch.transpose, batch kept first): [0, 1] turns [T, D] into [D, T].",
        saved=lambda a, ins, out: SAVES_NOTHING,
        view=True,
        examples=examples(({"dims": [0, 1]}, (3, 5)), ({"dims": [-1, 0]}, (2, 3, 4))),
    )
)


class ReshapeParams(Model):
    """New non-batch dimensions with the same number of values; one may be -1."""

    shape: ReshapeDims


def _reshape_dims(a: Attrs, ins: list[Shape]) -> tuple[int, ...]:
    total, dims = math.prod(ins[0]), list(a["shape"])
    known = math.prod(d for d in dims if d != -1)
    if -1 in dims:
        if total % known:
            raise ShapeError(f"cannot reshape {fmt(ins[0])} ({total} values) to {dims}: {known} does not divide {total}")
        dims[dims.index(-1)] = total // known
    elif known != total:
        raise ShapeError(f"cannot reshape {fmt(ins[0])} ({total} values) to {fmt(tuple(dims))} ({known} values)")
    return tuple(dims)


def _reshape_torch(a: Attrs, ins: list[Shape]) -> Emit:
    dims = _reshape_dims(a, ins)
    return Emit(lambda e, xs: e.method("reshape", xs[0], e.method("size", xs[0], 0), *dims))


register(
    OpDef(
        name="reshape",
        params=ReshapeParams,
        shape=lambda a, ins: _reshape_dims(a, ins),
        torch=_reshape_torch,
        family="reshape",
        label=lambda a: "reshape " + "×".join(map(str, a["shape"])),
        doc="Reshape the non-batch dimensions (x.reshape(batch, *shape)); one entry may be -1. [1, 28, 28] -> [28, 28]: rows as steps.",
        saved=lambda a, ins, out: SAVES_NOTHING,
        view=True,  # of a contiguous input (a transposed one is copied: not modelled)
        examples=examples(({"shape": [28, 28]}, (1, 28, 28)), ({"shape": [-1, 2]}, (3, 4)), ({"shape": [12]}, (3, 4))),
    )
)


def _reduce(name: str, fn: str, doc: str) -> None:
    class ReduceParams(Model):
        """Reduce one non-batch dimension."""

        dim: Dim

    ReduceParams.__name__ = f"{name.title()}Params"

    def shape(a: Attrs, ins: list[Shape]) -> Shape:
        d = axis(a["dim"], ins[0], "dim")
        return tuple(n for k, n in enumerate(ins[0]) if k != d) or (1,)

    def build(a: Attrs, ins: list[Shape]) -> Emit:
        import torch

        d = axis(a["dim"], ins[0], "dim")
        keep = len(ins[0]) == 1  # features -> one feature, not a bare batch
        return Emit(lambda e, xs: e.call(getattr(torch, fn), xs[0], d + 1, keepdim=keep))

    register(
        OpDef(
            name=name,
            params=ReduceParams,
            shape=shape,
            torch=build,
            family="pool",
            label=lambda a: f"{name} dim {a['dim']}",
            doc=doc,
            # mean: sizes only; amax: the input and the result (the gradient goes where they are equal)
            saved=(lambda a, ins, out: SAVES_NOTHING) if fn == "mean" else (lambda a, ins, out: Saved(inputs=(0,), output=True)),
            examples=examples(({"dim": 0}, (5, 4)), ({"dim": -1}, (2, 3, 4)), ({"dim": 0}, (6,))),
        )
    )


_reduce("mean", "mean", "Mean over one non-batch dimension (torch.mean): [T, D] with dim 0 -> [D], mean over the steps.")
_reduce("max", "amax", "Maximum over one non-batch dimension (torch.amax): [T, D] with dim 0 -> [D].")


class SelectParams(Model):
    """One index of one non-batch dimension."""

    dim: Dim
    index: Index


def _select_index(a: Attrs, ins: list[Shape]) -> tuple[int, int]:
    d = axis(a["dim"], ins[0], "dim")
    if not -ins[0][d] <= a["index"] < ins[0][d]:
        raise ShapeError(f"index {a['index']} is out of range for dimension {d} of {fmt(ins[0])} (size {ins[0][d]})")
    return d, a["index"]


def _select_shape(a: Attrs, ins: list[Shape]) -> Shape:
    d, _ = _select_index(a, ins)
    if len(ins[0]) == 1:
        raise ShapeError(f"select needs at least two dimensions, got {fmt(ins[0])} (the batch cannot be selected away)")
    return tuple(n for k, n in enumerate(ins[0]) if k != d)


def _select_torch(a: Attrs, ins: list[Shape]) -> Emit:
    import torch

    d, i = _select_index(a, ins)
    return Emit(lambda e, xs: e.call(torch.select, xs[0], d + 1, i))


register(
    OpDef(
        name="select",
        params=SelectParams,
        shape=_select_shape,
        torch=_select_torch,
        family="reshape",
        label=lambda a: f"select {a['index']} of dim {a['dim']}",
        doc="One index of a non-batch dimension (torch.select): dim 0, index 0 is ViT's class token; index -1 the last step.",
        saved=lambda a, ins, out: SAVES_NOTHING,
        view=True,
        examples=examples(({"dim": 0, "index": 0}, (5, 4)), ({"dim": 0, "index": -1}, (3, 2)), ({"dim": 1, "index": 2}, (2, 4, 3))),
    )
)
