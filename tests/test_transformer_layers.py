"""The prelude's transformer_encoder_layer and transformer_decoder_layer, pre-norm and post-norm,
against torch.nn.TransformerEncoderLayer / TransformerDecoderLayer (norm_first False and True)
with copied weights: the same outputs in eval mode, and in training mode the same dropout
masks drawn in the same order, so the same outputs too (issue 10 §4); patch_embedding against
D2L 11.8's PatchEmbedding (§2)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import nn

import netspec
from netspec.errors import SpecError
from netspec.runtime.train.entry import RunOptions, train

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from shared_data import FASHION_MNIST, needs_fashion_mnist  # noqa: E402
from twins import PatchEmbedding  # noqa: E402  (D2L 11.8's)

D, HEADS, FFN, T, S, BATCH = 12, 3, 20, 6, 5, 4


def graph_of(layers: list[Any], input_: Any):
    text = yaml.safe_dump({"name": "s", "input": input_, "layers": layers}, sort_keys=False)
    return netspec.build_graph(netspec.load("s.yaml", text=text))


def torch_names(ours: dict[str, torch.Tensor], attention: dict[str, str]) -> dict[str, torch.Tensor]:
    """Our block's state_dict (under `blk.`) in torch's layer names."""
    renames = {"ln1": "norm1", "ln2": "norm2", "ln3": "norm3", "dense1": "linear1", "dense2": "linear2", **attention}
    out = {}
    for key, value in ours.items():
        head, _, rest = key.removeprefix("blk.").partition(".")
        out[f"{renames[head]}.{rest}"] = value
    return out


def step_major_contiguous(attention: nn.MultiheadAttention) -> None:
    """torch's layers drop out the attention's batch-first output as the transposed view it is,
    so dropout1's mask is drawn in step-major memory order; netspec's attention makes its output
    contiguous first (ops/sequence.py). The twin's attention does the same here, so both draw
    the same masks; values are untouched."""
    attention.register_forward_hook(lambda module, args, out: (out[0].contiguous(), out[1]))


def same_outputs(model: nn.Module, twin: nn.Module, run_ours, run_twin) -> None:
    for training in (False, True):
        model.train(training)
        twin.train(training)
        torch.manual_seed(7)
        ours = run_ours()
        torch.manual_seed(7)
        theirs = run_twin()
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5, msg=lambda m: f"training={training}: {m}")


ACTIVATIONS = [("relu", nn.functional.relu), ("gelu", nn.functional.gelu)]


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=[a for a, _ in ACTIVATIONS])
def test_encoder_layer_equals_torchs(norm_first: bool, activation: tuple[str, Any]) -> None:
    name, fn = activation
    call = {"op": "transformer_encoder_layer", "name": "blk", "heads": HEADS, "ffn": FFN, "dropout": 0.1, "bias": True,
            "norm": "pre" if norm_first else "post", "activation": name, "ffn_dropout": 0.1, "eps": 1e-6}
    graph = graph_of([call], [T, D])
    model = netspec.compile(graph, seed=0)
    twin = nn.TransformerEncoderLayer(D, HEADS, FFN, dropout=0.1, activation=fn, layer_norm_eps=1e-6, batch_first=True,
                                      norm_first=norm_first)
    twin.load_state_dict(torch_names(model.state_dict(), {"attention": "self_attn"}), strict=True)
    step_major_contiguous(twin.self_attn)
    assert graph.total_params == sum(p.numel() for p in twin.parameters())
    x = torch.randn(BATCH, T, D)
    with torch.no_grad():
        same_outputs(model, twin, lambda: model(x), lambda: twin(x))


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("causal", [True, False])
def test_decoder_layer_equals_torchs(norm_first: bool, causal: bool) -> None:
    """Queries from the input's rows through a linear layer, the memory from the input's
    columns through another (S steps): both are part of the compiled net, so the twin gets
    them from the same (copied) layers."""
    call = {"op": "transformer_decoder_layer", "name": "blk", "from": ["x", "memory"], "heads": HEADS, "ffn": FFN,
            "dropout": 0.1, "bias": True, "norm": "pre" if norm_first else "post", "causal": causal, "ffn_dropout": 0.1}
    layers = [{"op": "transpose", "name": "cols", "dims": [0, 1]}, {"op": "linear", "name": "memory", "out": D},
              {"op": "linear", "name": "x", "from": "input", "out": D}, call]
    graph = graph_of(layers, [S, T])  # queries x: S×D (S steps); memory: the T columns, T×D
    model = netspec.compile(graph, seed=0)
    twin = nn.TransformerDecoderLayer(D, HEADS, FFN, dropout=0.1, batch_first=True, norm_first=norm_first)
    ours = model.state_dict()
    twin.load_state_dict(torch_names({k: v for k, v in ours.items() if k.startswith("blk.")},
                                     {"attention1": "self_attn", "attention2": "multihead_attn"}), strict=True)
    step_major_contiguous(twin.self_attn)
    step_major_contiguous(twin.multihead_attn)
    block_params = sum(n.params for n in graph.ops() if n.name.startswith("blk."))
    assert block_params == sum(p.numel() for p in twin.parameters())
    memory, queries = model.get_submodule("memory"), model.get_submodule("x")
    x = torch.randn(BATCH, S, T)
    mask = nn.Transformer.generate_square_subsequent_mask(S) if causal else None

    def run_twin() -> torch.Tensor:
        # the compiled net runs memory before x (their order in the spec); dropout comes after both
        return twin(queries(x), memory(x.transpose(1, 2)), tgt_mask=mask, tgt_is_causal=causal)

    with torch.no_grad():
        same_outputs(model, twin, lambda: model(x), run_twin)


def test_post_norm_names_are_d2ls_and_pre_norm_keeps_them() -> None:
    def names(norm: str) -> list[str]:
        layers = [{"op": "linear", "name": "memory", "out": D},
                  {"op": "transformer_decoder_layer", "name": "blk", "from": [0, "memory"], "heads": HEADS, "ffn": FFN, "norm": norm}]
        return [n.name.removeprefix("blk.") for n in graph_of([{"op": "linear", "out": D}] + layers, [T, 4]).ops() if n.name.startswith("blk.")]

    post, pre = names("post"), names("pre")
    assert [n for n in post if n.startswith(("attention", "ln", "dense"))] == [
        "attention1", "ln1", "attention2", "ln2", "dense1", "dense2", "ln3"]
    assert [n for n in pre if n.startswith(("attention", "ln", "dense"))] == [
        "ln1", "attention1", "ln2", "attention2", "ln3", "dense1", "dense2"]


@pytest.mark.parametrize(
    "call,expected",
    [
        ({"norm": "middle"}, "transformer_decoder_layer.norm: expected one of post, pre, got 'middle'"),
        ({"norm": True}, "transformer_decoder_layer.norm"),
        ({"causal": "yes"}, "transformer_decoder_layer.causal"),
        ({"heads": 5}, "heads=5 must divide the model width 12"),
    ],
)
def test_decoder_arguments_are_typed(call: dict, expected: str) -> None:
    layers = [{"op": "linear", "name": "memory", "out": D}, {"op": "linear", "name": "x", "from": "input", "out": D},
              {"op": "transformer_decoder_layer", "name": "blk", "from": ["x", "memory"], "heads": HEADS, "ffn": FFN, **call}]
    with pytest.raises(SpecError) as info:
        graph_of(layers, [T, 4])
    assert expected in str(info.value)


def test_encoder_norm_is_validated() -> None:
    with pytest.raises(SpecError) as info:
        graph_of([{"op": "transformer_encoder_layer", "heads": 2, "ffn": 8, "norm": "Pre"}], [T, 4])
    assert "transformer_encoder_layer.norm: expected one of post, pre, got 'Pre'" in str(info.value)


def test_a_decoder_without_memory_names_the_rule() -> None:
    with pytest.raises(SpecError) as info:
        graph_of([{"op": "transformer_decoder_layer", "heads": 2, "ffn": 8}], [T, 4])
    assert str(info.value).endswith(
        "block 'transformer_decoder_layer' takes 2 inputs (it reads input_2): call it with `from:` naming 2 layers")


# ---------------------------------------------------------------- patch embedding (§2)
def test_patch_embedding_is_d2ls() -> None:
    """The prelude's patch_embedding against D2L 11.8's PatchEmbedding (tests/twins.py), whose
    names (`conv`) it has: strict load, same outputs, one step per patch in row-major order."""
    graph = graph_of([{"op": "patch_embedding", "name": "patch_embedding", "out": 16, "patch": 8}], [1, 32, 24])
    assert graph.output_shape == (4 * 3, 16)
    model = netspec.compile(graph, seed=0).eval()
    twin = PatchEmbedding(32, 8, 16).eval()
    twin.load_state_dict({k.removeprefix("patch_embedding."): v for k, v in model.state_dict().items()}, strict=True)
    x = torch.randn(2, 1, 32, 24)
    with torch.no_grad():
        y = model(x)
        torch.testing.assert_close(y, twin(x))
        # step 4 is the patch in row 1, column 1 of the 4×3 grid
        patch = x[:, :, 8:16, 8:16]
        torch.testing.assert_close(y[:, 4], torch.einsum("ncij,ocij->no", patch, twin.conv.weight) + twin.conv.bias)


# ---------------------------------------------------------------- the zoo spec (§3)
@needs_fashion_mnist
@pytest.mark.usefixtures("one_thread")
def test_the_encoder_decoder_spec_trains_on_fashion_mnist_rows() -> None:
    """specs/transformer_decoder.yaml checks, compiles and learns, bounded by counts (800
    examples, 2 epochs of 13 steps): the loss falls and test accuracy beats chance."""
    spec = ROOT / "specs" / "transformer_decoder.yaml"
    graph = netspec.build_graph(spec)
    assert graph.output_shape == (10,) and graph.scopes["decoder"].kind == "transformer_decoder_layer"
    overrides = {"epochs": 2, "batch_size": 64, "limit": 800, "test_limit": 200}
    result = train(spec, overrides, RunOptions(device="cpu", quiet=True, data_dir=FASHION_MNIST, save=False))
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.summary["test_acc"] > 0.3  # chance is 0.1
