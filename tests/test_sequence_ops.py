"""Sequence ops against independent truths: torch.nn.LSTM/GRU/RNN with copied weights, attention
against an explicit softmax(QKᵀ/√d + mask)·V, d2l's sinusoidal table, LSTM MACs against
FlopCounterMode over nn.LSTMCell steps; sequence shapes and their errors (issue 10 §1-2)."""
from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import netspec
from netspec.compiler.shapes import Tokens
from netspec.errors import SpecError

SETTINGS = dict(deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])


def graph_of(layers: list[Any], input_: Any):
    text = yaml.safe_dump({"name": "s", "input": input_, "layers": layers}, sort_keys=False)
    return netspec.build_graph(netspec.load("s.yaml", text=text))


def error_of(layers: list[Any], input_: Any) -> str:
    with pytest.raises(SpecError) as info:
        graph_of(layers, input_)
    return str(info.value)


# ---------------------------------------------------------------- recurrent layers
CASES = [
    dict(hidden=5),
    dict(hidden=4, layers=2, bidirectional=True),
    dict(hidden=3, layers=3, bias=False, output="last"),
    dict(hidden=6, layers=2, bidirectional=True, output="last"),
]


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("case", CASES)
def test_recurrent_layers_equal_torch_with_copied_weights(kind: str, case: dict) -> None:
    graph = graph_of([{"op": kind, "name": "r", **case}], [7, 3])
    torch.manual_seed(0)
    model = netspec.compile(graph, seed=0).eval()
    cls = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[kind]
    twin = cls(3, case["hidden"], num_layers=case.get("layers", 1), bias=case.get("bias", True), batch_first=True,
               bidirectional=case.get("bidirectional", False)).eval()
    twin.load_state_dict(model.get_submodule("r").state_dict(), strict=True)
    x = torch.randn(4, 7, 3)
    out, state = twin(x)
    h = state[0] if kind == "lstm" else state
    if case.get("output") == "last":
        want = torch.cat([h[-2], h[-1]], dim=1) if case.get("bidirectional") else h[-1]
    else:
        want = out
    got = model(x)
    assert tuple(got.shape[1:]) == graph.output_shape
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert graph.total_params == sum(p.numel() for p in twin.parameters())


@pytest.mark.parametrize("case", CASES)
def test_lstm_macs_are_flopcountermode_over_lstmcell_steps(case: dict) -> None:
    """CPU torch's fused LSTM hides its matmuls from FlopCounterMode; the same layer run as
    nn.LSTMCell steps (one cell per layer and direction, T steps each) does not."""
    t, i = 6, 3
    graph = graph_of([{"op": "lstm", "name": "r", **case}], [t, i])
    h, dirs, bias = case["hidden"], 2 if case.get("bidirectional") else 1, case.get("bias", True)
    with FlopCounterMode(display=False) as flops:
        for layer in range(case.get("layers", 1)):
            for _ in range(dirs):
                cell, x = nn.LSTMCell(i if layer == 0 else dirs * h, h, bias=bias), torch.randn(1, i if layer == 0 else dirs * h)
                state = None
                for _ in range(t):
                    state = cell(x, state)
    # a cell's bias is added, not multiplied: addmm counts the same flops as mm
    assert graph.node("r").macs * 2 == flops.get_total_flops()


# ---------------------------------------------------------------- attention
def _reference_attention(x: torch.Tensor, module: nn.MultiheadAttention, causal: bool, memory: torch.Tensor | None = None,
                         padding: torch.Tensor | None = None) -> torch.Tensor:
    memory = x if memory is None else memory
    b, t, d = x.shape
    s = memory.shape[1]
    heads = module.num_heads
    bias = module.in_proj_bias if module.in_proj_bias is not None else torch.zeros(3 * d)
    if module._qkv_same_embed_dim:  # one packed [3D, D] weight: rows for q, k, v
        wq, wk, wv = module.in_proj_weight.chunk(3)
    else:  # a memory of another width: one weight each
        wq, wk, wv = module.q_proj_weight, module.k_proj_weight, module.v_proj_weight
    bq, bk, bv = bias.chunk(3)
    q, k, v = x @ wq.T + bq, memory @ wk.T + bk, memory @ wv.T + bv
    q, k, v = (z.reshape(b, -1, heads, d // heads).transpose(1, 2) for z in (q, k, v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(d // heads)
    if causal:
        scores = scores.masked_fill(torch.ones(t, s, dtype=torch.bool).triu(1), float("-inf"))
    if padding is not None:  # (batch, S): True where a key is padding
        scores = scores.masked_fill(padding[:, None, None, :], float("-inf"))
    y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
    return module.out_proj(y)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("causal", [False, True])
def test_attention_equals_explicit_softmax_with_mask(bias: bool, causal: bool) -> None:
    graph = graph_of([{"op": "multihead_attention", "name": "a", "heads": 4, "bias": bias, "causal": causal}], [5, 8])
    model = netspec.compile(graph, seed=0).eval()
    module = model.get_submodule("a")
    assert (module.in_proj_bias is not None) == bias and (module.out_proj.bias is not None) == bias
    with torch.no_grad():
        if bias:  # torch initialises biases to zero: make them matter
            module.in_proj_bias.normal_()
            module.out_proj.bias.normal_()
        x = torch.randn(3, 5, 8)
        torch.testing.assert_close(model(x), _reference_attention(x, module, causal), atol=1e-5, rtol=1e-5)
        if causal:  # the first step sees only itself: changing later steps leaves it alone
            changed = x.clone()
            changed[:, 1:] += 1
            torch.testing.assert_close(model(changed)[:, 0], model(x)[:, 0], atol=1e-6, rtol=0)
    assert graph.total_params == sum(p.numel() for p in module.parameters()) == 4 * 64 + (4 * 8 if bias else 0)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("memory_width", [8, 6])
def test_cross_attention_equals_explicit_softmax(bias: bool, memory_width: int) -> None:
    layers = [
        {"op": "linear", "name": "q", "out": 8},
        {"op": "transpose", "name": "steps", "from": "input", "dims": [0, 1]},
        {"op": "linear", "name": "four", "out": 4},
        {"op": "transpose", "name": "back", "dims": [0, 1]},   # 4 steps of 3
        {"op": "linear", "name": "m", "out": memory_width},
        {"op": "multihead_attention", "name": "a", "from": ["q", "m"], "heads": 2, "bias": bias, "causal": True},
    ]
    graph = graph_of(layers, [5, 3])
    model = netspec.compile(graph, seed=0).eval()
    module = model.get_submodule("a")
    with torch.no_grad():
        if bias:
            module.in_proj_bias.normal_()
        x = torch.randn(2, 5, 3)
        memory = model.m(model.four(x.transpose(1, 2)).transpose(1, 2))
        assert memory.shape == (2, 4, memory_width)
        want = _reference_attention(model.q(x), module, True, memory=memory)
        torch.testing.assert_close(model(x), want, atol=1e-5, rtol=1e-5)
    assert graph.node("a").params == sum(p.numel() for p in module.parameters())
    assert graph.node("a").shape == (5, 8)


@pytest.mark.parametrize("causal", [False, True])
def test_padding_mask_from_token_ids_equals_explicit_softmax(causal: bool) -> None:
    layers = [
        {"op": "embedding", "name": "emb", "dim": 8},
        {"op": "multihead_attention", "name": "a", "from": ["emb", "input"], "heads": 2, "pad_id": 0, "causal": causal},
    ]
    graph = graph_of(layers, {"tokens": 6, "vocab": 5})
    model = netspec.compile(graph, seed=0).eval()
    ids = torch.tensor([[3, 1, 4, 0, 0, 0], [2, 2, 1, 3, 4, 0], [1, 0, 2, 0, 3, 4]])  # 0 pads; the first step is never padding
    with torch.no_grad():
        want = _reference_attention(model.emb(ids), model.a, causal, padding=ids == 0)
        got = model(ids)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        model.emb.weight[0] += 5.0  # what the padding id embeds to reaches no step that is not padding
        torch.testing.assert_close(model(ids)[0, :3], got[0, :3], atol=1e-5, rtol=1e-5)
        assert not torch.allclose(model(ids)[0, 3:], got[0, 3:])  # (the padded steps' own queries did change)


def test_padding_mask_errors_name_the_rule() -> None:
    message = error_of([{"op": "embedding", "name": "emb", "dim": 4}, {"op": "reshape", "name": "r", "shape": [3, 8]},
                        {"op": "multihead_attention", "from": ["r", "input"], "heads": 2}], {"tokens": 6, "vocab": 5})
    assert "the padding mask's token ids have 6 steps but the sequence has 3" in message
    message = error_of([{"op": "multihead_attention", "from": ["input", "input"], "heads": 1}], {"tokens": 6, "vocab": 5})
    assert "expects float values [T, D] as its first input, got 6 token ids (vocab 5)" in message


def test_attention_heads_must_divide_the_width() -> None:
    message = error_of([{"op": "multihead_attention", "heads": 3}], [5, 8])
    assert message.startswith("s.yaml:") and "heads=3 must divide the model width 8" in message


# ---------------------------------------------------------------- positions, tokens, class token
def test_sinusoidal_positions_are_d2ls_table() -> None:
    """d2l 11.6's PositionalEncoding (dropout left out): P[:, :, 0::2] = sin, 1::2 = cos."""
    t, d = 9, 6
    max_len = 1000
    table = torch.zeros((1, max_len, d))
    angles = torch.arange(max_len, dtype=torch.float32).reshape(-1, 1) / torch.pow(10000, torch.arange(0, d, 2, dtype=torch.float32) / d)
    table[:, :, 0::2] = torch.sin(angles)
    table[:, :, 1::2] = torch.cos(angles)
    model = netspec.compile(graph_of([{"op": "positional_encoding"}], [t, d]), seed=0)
    x = torch.randn(2, t, d)
    torch.testing.assert_close(model(x), x + table[:, :t, :], atol=0, rtol=0)


def test_learned_positions_and_class_token_are_parameters_at_the_layer() -> None:
    graph = graph_of([{"op": "class_token", "name": "cls"}, {"op": "positional_encoding", "name": "pos", "kind": "learned"}], [4, 3])
    model = netspec.compile(graph, seed=0)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {"cls": (1, 1, 3), "pos": (1, 5, 3)}
    with torch.no_grad():
        model.cls.normal_()
        model.pos.normal_()
    x = torch.randn(2, 4, 3)
    want = torch.cat([model.cls.expand(2, -1, -1), x], dim=1) + model.pos
    torch.testing.assert_close(model(x), want, atol=0, rtol=0)


def test_a_sequence_longer_than_the_positional_table_is_refused() -> None:
    message = error_of([{"op": "positional_encoding", "kind": "learned", "max_len": 8}], [9, 4])
    assert "a sequence of 9 steps is longer than the positional table (max_len 8)" in message
    assert "width must be even, got 5" in error_of([{"op": "positional_encoding"}], [3, 5])


def test_token_input_embeds_integer_ids() -> None:
    graph = graph_of([{"op": "embedding", "name": "emb", "dim": 4}, {"op": "mean", "dim": 0}], {"tokens": 6, "vocab": 11})
    assert graph.input_shape == Tokens((6,), 11) and graph.input_shape.vocab == 11
    assert graph.node("emb").shape == (6, 4) and graph.output_shape == (4,) and graph.total_params == 44
    model = netspec.compile(graph, seed=0)
    ids = torch.randint(0, 11, (3, 6))
    torch.testing.assert_close(model(ids), model.emb.weight[ids].mean(dim=1), atol=0, rtol=0)


def test_tokens_and_floats_are_not_mixed_up() -> None:
    assert "embedding expects token ids (input: {tokens: T, vocab: V}), got float values 6×4" in error_of(
        [{"op": "embedding", "dim": 4}], [6, 4])
    message = error_of([{"op": "conv2d", "out": 2, "kernel": 1}], {"tokens": 6, "vocab": 9})
    assert "conv2d '0': expects float values, got 6 token ids (vocab 9); an embedding layer turns token ids into vectors" in message
    assert "linear '0': expects float values" in error_of([{"op": "linear", "out": 2}], {"tokens": 6, "vocab": 9})


@pytest.mark.parametrize(
    "input_,expected",
    [
        ({"tokens": 8}, "input: missing required key 'vocab'"),
        ({"tokens": "8", "vocab": 3}, "input.tokens: expected an integer, got '8'"),
        ({"tokens": 8, "vocab": 0}, "input.vocab: expected a number greater than 0, got 0"),
        ({"tokens": 8, "vocab": 3, "dtype": "int"}, "input.dtype: unknown key 'dtype'"),
        ([2, 3, 4, 5], "input: expected at most 3 items, got 4"),
    ],
)
def test_bad_inputs_get_one_located_message(input_: Any, expected: str) -> None:
    message = error_of(["relu"], input_)
    assert message.count("\n") == 0 and message.startswith("s.yaml:") and expected in message


def test_a_conv_on_a_sequence_names_the_rule() -> None:
    assert "conv2d expects a channels×height×width input, got 28×28" in error_of([{"op": "conv2d", "out": 2, "kernel": 3}], [28, 28])
    assert "lstm expects a steps×features sequence ([T, D]), got 1×28×28" in error_of([{"op": "lstm", "hidden": 4}], [1, 28, 28])


# ---------------------------------------------------------------- axis ops
@pytest.mark.parametrize(
    "layer,shape,fn",
    [
        ({"op": "flatten", "start": 1}, [4, 3, 2], lambda x: x.flatten(2)),
        ({"op": "flatten", "start": 0, "end": -2}, [4, 3, 2], lambda x: x.flatten(1, 2)),
        ({"op": "transpose", "dims": [0, 1]}, [3, 5], lambda x: x.transpose(1, 2)),
        ({"op": "reshape", "shape": [28, -1]}, [1, 28, 28], lambda x: x.reshape(len(x), 28, 28)),
        ({"op": "mean", "dim": 0}, [5, 4], lambda x: x.mean(1)),
        ({"op": "max", "dim": -1}, [5, 4], lambda x: x.amax(2)),
        ({"op": "select", "dim": 0, "index": -1}, [5, 4], lambda x: x[:, -1]),
    ],
)
def test_axis_ops_equal_the_torch_expression(layer: dict, shape: list[int], fn: Any) -> None:
    graph = graph_of([layer], shape)
    x = torch.randn(2, *shape)
    got = netspec.compile(graph, seed=0)(x)
    assert tuple(got.shape[1:]) == graph.output_shape
    torch.testing.assert_close(got, fn(x), atol=0, rtol=0)


def test_axis_op_errors_name_the_numbers() -> None:
    assert "cannot reshape 3×4 (12 values) to 5 (5 values)" in error_of([{"op": "reshape", "shape": [5]}], [3, 4])
    assert "index 5 is out of range for dimension 0 of 5×4 (size 5)" in error_of([{"op": "select", "dim": 0, "index": 5}], [5, 4])
    assert "dim 2 is out of range for 5×4 (2 dimensions; the batch is not counted)" in error_of([{"op": "mean", "dim": 2}], [5, 4])
    assert "start 1 .. end 0 must be dimensions of 3×4 in order" in error_of([{"op": "flatten", "start": 1, "end": 0}], [3, 4])


# ---------------------------------------------------------------- generated sequence specs
@settings(max_examples=25, **SETTINGS)
@given(t=st.integers(1, 6), heads=st.integers(1, 3), per_head=st.integers(1, 3), hidden=st.integers(1, 5),
       kind=st.sampled_from(["rnn", "gru", "lstm"]), bidirectional=st.booleans(), last=st.booleans(),
       tokens=st.booleans(), cls=st.booleans())
def test_generated_sequence_specs_infer_the_real_shapes(t, heads, per_head, hidden, kind, bidirectional, last, tokens, cls) -> None:
    d = heads * per_head * 2
    layers: list[Any] = [{"op": "embedding", "dim": d}] if tokens else [{"op": "linear", "out": d}]
    if cls:
        layers.append("class_token")
    layers += [{"op": "positional_encoding"}, {"op": "layer_norm"}, {"op": "multihead_attention", "heads": heads},
               {"op": kind, "hidden": hidden, "bidirectional": bidirectional, "output": "last" if last else "sequence"}]
    graph = graph_of(layers, {"tokens": t, "vocab": 7} if tokens else [t, 3])
    x = torch.randint(0, 7, (2, t)) if tokens else torch.randn(2, t, 3)
    y = netspec.compile(graph, seed=0)(x)
    assert tuple(y.shape[1:]) == graph.output_shape
    assert [tuple(n.shape) for n in graph.ops()][-1] == ((hidden * (1 + bidirectional),) if last else (t + cls, hidden * (1 + bidirectional)))


# ---------------------------------------------------------------- the post-norm encoder block
def test_transformer_encoder_layer_equals_d2ls_block() -> None:
    """The prelude's transformer_encoder_layer against D2L 11.7's TransformerEncoderBlock
    (AddNorm = LayerNorm(dropout(Y) + X), PositionWiseFFN = dense2(relu(dense1(X)))), eval mode."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from twins import TransformerEncoderBlock  # noqa: E402  (D2L's, with its W_q/W_k/W_v/W_o attention)

    graph = graph_of([{"op": "transformer_encoder_layer", "name": "blk", "heads": 4, "ffn": 48, "dropout": 0.1}], [7, 24])
    model = netspec.compile(graph, seed=0).eval()
    ours = model.state_dict()
    twin = TransformerEncoderBlock(24, 48, 4, 0.1).eval()
    wq, wk, wv = ours["blk.attention.in_proj_weight"].chunk(3)
    twin.load_state_dict({
        "attention.W_q.weight": wq, "attention.W_k.weight": wk, "attention.W_v.weight": wv,
        "attention.W_o.weight": ours["blk.attention.out_proj.weight"],
        "addnorm1.ln.weight": ours["blk.ln1.weight"], "addnorm1.ln.bias": ours["blk.ln1.bias"],
        "ffn.dense1.weight": ours["blk.dense1.weight"], "ffn.dense1.bias": ours["blk.dense1.bias"],
        "ffn.dense2.weight": ours["blk.dense2.weight"], "ffn.dense2.bias": ours["blk.dense2.bias"],
        "addnorm2.ln.weight": ours["blk.ln2.weight"], "addnorm2.ln.bias": ours["blk.ln2.bias"],
    }, strict=True)
    assert graph.total_params == sum(p.numel() for p in twin.parameters())
    x = torch.randn(3, 7, 24)
    with torch.no_grad():
        torch.testing.assert_close(model(x), twin(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "layer,expected",
    [
        ({"op": "mean", "dim": True}, "expected an integer dimension (negative counts from the end), got True"),
        ({"op": "reshape", "shape": [2, 6.0]}, "expected a list of positive integers, at most one -1, got [2, 6.0]"),
        ({"op": "reshape", "shape": [-1, -1]}, "at most one -1"),
        ({"op": "lstm", "hidden": "8"}, "expected a positive integer"),
        ({"op": "multihead_attention", "heads": 2, "causal": "yes"}, "expected true or false, got 'yes'"),
        ({"op": "transpose", "dims": [0]}, "expected a list of two integer dimensions, got [0]"),
    ],
)
def test_sequence_op_values_are_strict(layer: dict, expected: str) -> None:
    assert expected in error_of([layer], [3, 4])
