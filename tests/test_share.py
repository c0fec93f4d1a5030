"""Weight sharing (`share: NAME`) against independent truths.

- hand-written PyTorch twins that tie the same tensors (`head.weight = embed.weight`, one
  encoder module called twice): same outputs, and the gradient on the shared tensor equals
  the sum of the gradients of its two uses computed on an untied copy;
- torch's own count of unique parameters (`model.parameters()` lists a tensor once);
- the ejected model.py and the ONNX file (its initializers, run by onnxruntime);
- every op's declared parameters (`OpDef.weights`) against what torch builds;
- bad specs: one located line each and exit code 2 from the CLI.
"""
from __future__ import annotations

import copy
import math
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import netspec
from netspec.cli import main
from netspec.compiler import registry
from netspec.compiler.codegen.export import write
from netspec.compiler.codegen.torch_fx import build_modules
from netspec.compiler.draw import digraph
from netspec.compiler.graph import INPUT, Graph, Node
from netspec.compiler.memory import plan
from netspec.errors import SpecError
from netspec.runtime.train.ema import EMA

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ejected import import_file, network_class  # noqa: E402  (tests/ is not a package)

V, D, T = 50, 16, 8
TIED_LM = f"""
name: tied_lm
input: {{tokens: {T}, vocab: {V}}}
layers:
  - {{op: embedding, name: embed, dim: {D}}}
  - {{op: linear, name: mid, out: {D}}}
  - relu
  - {{op: linear, name: head, out: {V}, share: embed}}
"""

SIAMESE = """
name: siamese
input: [28, 28]
blocks:
  enc:
    params: {width: int}
    layers:
      - flatten
      - {op: linear, name: fc, out: $width}
      - relu
      - {op: linear, name: proj, out: 8, bias: false}
layers:
  - op: parallel
    name: pair
    merge: concat
    branches:
      top: [{op: chunk, chunks: 2, index: 0}, {op: enc, name: e, width: 32}]
      bottom: [{op: chunk, chunks: 2, index: 1}, {op: enc, name: e, width: 32, share: top.e}]
  - {op: linear, name: out, out: 10}
"""


def unique_numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------- tied embeddings
class TiedLM(nn.Module):
    """The twin: the output layer's weight IS the embedding's, as HF's tied embeddings."""

    def __init__(self, tie: bool = True) -> None:
        super().__init__()
        self.embed = nn.Embedding(V, D)
        self.mid = nn.Linear(D, D)
        self.head = nn.Linear(D, V)
        if tie:
            self.head.weight = self.embed.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.mid(self.embed(x))))


def tokens(batch: int = 3) -> torch.Tensor:
    return torch.randint(0, V, (batch, T), generator=torch.Generator().manual_seed(1))


def test_tied_embedding_is_one_parameter_counted_once() -> None:
    graph = netspec.build_graph(TIED_LM)
    model = netspec.compile(graph, seed=0)
    assert model.head.weight is model.embed.weight
    by_hand = V * D + (D * D + D) + V  # embedding, mid, the head's own bias
    assert graph.total_params == unique_numel(model) == unique_numel(TiedLM()) == by_hand
    assert graph.node("head").params == V and graph.node("head").meta["shares"] == {"weight": "embed"}
    assert netspec.summary(graph)["layers"][-1]["shares"] == {"weight": "embed"}


def test_tied_embedding_matches_the_twin_and_its_gradient_is_the_sum_of_both_uses() -> None:
    model = netspec.compile(TIED_LM, seed=0)
    twin = TiedLM()
    twin.load_state_dict(model.state_dict(), strict=True)
    x = tokens()
    ours, theirs = model(x), twin(x)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    ours.square().sum().backward()
    theirs.square().sum().backward()
    torch.testing.assert_close(model.embed.weight.grad, twin.embed.weight.grad)
    untied = TiedLM(tie=False)  # the same values in two separate tensors: each use's gradient alone
    with torch.no_grad():
        untied.load_state_dict(twin.state_dict(), strict=True)
    untied(x).square().sum().backward()
    both = untied.embed.weight.grad + untied.head.weight.grad
    assert untied.embed.weight.grad.abs().sum() > 0 and untied.head.weight.grad.abs().sum() > 0
    torch.testing.assert_close(model.embed.weight.grad, both)


def test_state_dict_keeps_both_names_and_loads_strictly() -> None:
    """PyTorch's own behaviour for tied tensors: both keys, one tensor; a strict load needs both."""
    model = netspec.compile(TIED_LM, seed=0)
    state = model.state_dict()
    assert "embed.weight" in state and "head.weight" in state
    assert state["embed.weight"].data_ptr() == state["head.weight"].data_ptr()
    fresh = netspec.compile(TIED_LM, seed=1)
    fresh.load_state_dict({k: v.clone() for k, v in state.items()}, strict=True)
    assert fresh.head.weight is fresh.embed.weight and torch.equal(fresh.head.weight, model.embed.weight)
    with pytest.raises(RuntimeError, match="head.weight"):
        fresh.load_state_dict({k: v for k, v in state.items() if k != "head.weight"}, strict=True)


def test_ema_averages_a_shared_tensor_once() -> None:
    model = netspec.compile(TIED_LM, seed=0)
    ema = EMA(model, decay=0.5)
    start = ema.module.embed.weight.detach().clone()
    with torch.no_grad():
        model.embed.weight.add_(1.0)
    ema.update()
    assert ema.module.head.weight is ema.module.embed.weight
    torch.testing.assert_close(ema.module.embed.weight, 0.5 * start + 0.5 * model.embed.weight.detach())


# --------------------------------------------------------------------------- a shared block (siamese)
class SiameseTwin(nn.Module):
    """One encoder module applied to both halves of the image."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Flatten(), nn.Linear(14 * 28, 32), nn.ReLU(), nn.Linear(32, 8, bias=False))
        self.out = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = x.chunk(2, dim=1)
        return self.out(torch.cat([self.enc(top), self.enc(bottom)], dim=1))


def _siamese_twin_from(model: nn.Module) -> SiameseTwin:
    twin = SiameseTwin()
    with torch.no_grad():
        twin.enc[1].weight.copy_(model.pair.top.e.fc.weight)
        twin.enc[1].bias.copy_(model.pair.top.e.fc.bias)
        twin.enc[3].weight.copy_(model.pair.top.e.proj.weight)
        twin.out.load_state_dict(model.out.state_dict())
    return twin


def test_shared_block_is_the_twins_one_module_applied_twice() -> None:
    graph = netspec.build_graph(SIAMESE)
    model = netspec.compile(graph, seed=0)
    for name in ("fc.weight", "fc.bias", "proj.weight"):
        assert model.get_parameter(f"pair.bottom.e.{name}") is model.get_parameter(f"pair.top.e.{name}")
    twin = _siamese_twin_from(model)
    assert graph.total_params == unique_numel(model) == unique_numel(twin) == (392 * 32 + 32) + 32 * 8 + (16 * 10 + 10)
    x = torch.randn(4, 28, 28, generator=torch.Generator().manual_seed(2))
    ours, theirs = model(x), twin(x)
    torch.testing.assert_close(ours, theirs)
    ours.sum().backward()
    theirs.sum().backward()
    torch.testing.assert_close(model.pair.top.e.fc.weight.grad, twin.enc[1].weight.grad)
    torch.testing.assert_close(model.pair.bottom.e.proj.weight.grad, twin.enc[3].weight.grad)


def test_a_shared_lstm_keeps_its_flat_weights_in_step() -> None:
    """nn.LSTM reads its weights through a flat list: tying must reach it (the twin calls one LSTM twice)."""
    spec = """
name: rnn2
input: [5, 6]
layers:
  - {op: lstm, name: a, hidden: 6}
  - {op: lstm, name: b, hidden: 6, share: a}
"""
    graph = netspec.build_graph(spec)
    model = netspec.compile(graph, seed=0)
    lstm = copy.deepcopy(model.a)
    assert graph.total_params == unique_numel(model) == unique_numel(lstm)
    x = torch.randn(2, 5, 6, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model(x), lstm(lstm(x)[0])[0])


# --------------------------------------------------------------------------- model.py and ONNX
@pytest.mark.parametrize("text", [TIED_LM, SIAMESE], ids=["tied_lm", "siamese"])
def test_ejected_source_ties_the_same_tensors_with_the_same_weights(text: str, tmp_path: Path) -> None:
    graph = netspec.build_graph(text)
    source = write(graph, tmp_path / "model.py")
    assert "# shared parameters (`share:` in the spec)" in source.read_text(encoding="utf-8")
    cls = network_class(import_file(source))
    compiled = netspec.compile(graph, seed=5)
    torch.manual_seed(5)
    ejected = cls()
    want, got = compiled.state_dict(), ejected.state_dict()
    assert list(got) == list(want) and all(torch.equal(got[k], want[k]) for k in want)
    assert unique_numel(ejected) == graph.total_params
    ejected_params = dict(ejected.named_parameters(remove_duplicate=False))
    compiled_params = dict(compiled.named_parameters(remove_duplicate=False))
    groups = lambda params: sorted(sorted(k for k, p in params.items() if p is q) for q in {id(p): p for p in params.values()}.values())  # noqa: E731
    assert groups(ejected_params) == groups(compiled_params)  # the same names hold one tensor
    x = tokens() if "tokens" in text else torch.randn(2, 28, 28)
    torch.testing.assert_close(ejected(x), compiled(x), rtol=0, atol=0)


def test_line_in_the_source_is_readable(tmp_path: Path) -> None:
    source = write(netspec.build_graph(TIED_LM), tmp_path / "model.py").read_text(encoding="utf-8")
    assert "        self.head.weight = self.embed.weight\n" in source


@pytest.mark.parametrize("text", [TIED_LM, SIAMESE], ids=["tied_lm", "siamese"])
def test_onnx_holds_one_initializer_per_shared_tensor(text: str, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    graph = netspec.build_graph(text)
    path = write(graph, tmp_path / "model.onnx")
    model = onnx.load(str(path))
    sizes = [math.prod(i.dims) for i in model.graph.initializer]
    assert sum(sizes) == graph.total_params  # every parameter stored once, nothing twice
    compiled = netspec.compile(graph, seed=0)  # the weights in the file are a fresh model's: compare structure
    assert len(model.graph.initializer) == len(list(compiled.parameters()))
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    exported = netspec.compile(graph, seed=0)
    with torch.no_grad():  # load the file's initializers into a module by name, run both
        values = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in model.graph.initializer}
        for name, value in values.items():
            exported.get_parameter(name).copy_(value)
    x = tokens() if "tokens" in text else torch.randn(2, 28, 28)
    (y,) = session.run(None, {"x": x.numpy()})
    torch.testing.assert_close(torch.from_numpy(y), exported.eval()(x), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- counts everywhere
def test_memory_plan_counts_weights_and_gradients_once() -> None:
    graph = netspec.build_graph(TIED_LM)
    memory = plan(graph, batch=4, optimizer="adam")
    unique = unique_numel(netspec.compile(graph))
    assert memory.params_bytes == memory.grads_bytes == 4 * unique
    assert memory.optimizer_bytes == 2 * 4 * unique


def test_budget_sees_the_shared_count(tmp_path: Path) -> None:
    spec = tmp_path / "tied.yaml"
    count = V * D + D * D + D + V
    spec.write_text(TIED_LM + f"budget: {{max_params: {count}}}\n", encoding="utf-8")
    assert CliRunner().invoke(main, ["check", str(spec)]).exit_code == 0
    spec.write_text(TIED_LM + f"budget: {{max_params: {count - 1}}}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["check", str(spec)])
    assert result.exit_code != 0 and f"{count:,} parameters exceed the budget of {count - 1:,}" in result.output + result.stderr


def test_diff_shows_the_tensor_that_is_no_longer_stored() -> None:
    untied = TIED_LM.replace(", share: embed", "")
    d = netspec.diff(untied, TIED_LM).as_dict()
    assert d["totals"]["params"] == [netspec.build_graph(untied).total_params, netspec.build_graph(TIED_LM).total_params]
    assert d["totals"]["params"][0] - d["totals"]["params"][1] == V * D


def test_compile_table_names_the_owner() -> None:
    graph = netspec.build_graph(TIED_LM)
    from netspec.compiler.table import rows

    head = [r for r in rows(graph) if r.name == "head"][0]
    assert head.shared == ("embed",) and head.params == V


def test_compile_cli_prints_shared_with(tmp_path: Path) -> None:
    spec = tmp_path / "tied.yaml"
    spec.write_text(TIED_LM, encoding="utf-8")
    result = CliRunner().invoke(main, ["compile", str(spec)])
    assert result.exit_code == 0
    assert "50 + shared with embed" in result.output
    assert f"total params: {V * D + D * D + D + V:,}" in result.output


def test_drawing_shows_a_dashed_shares_line() -> None:
    dot = digraph(netspec.build_graph(TIED_LM)).source
    lines = [line for line in dot.splitlines() if "shares" in line]
    assert len(lines) == 1 and "head -> embed" in lines[0] and "dashed" in lines[0]


# --------------------------------------------------------------------------- the registry hook
def _one_op_graph(name: str, params: dict, inputs: tuple) -> Graph:
    op = registry.get(name)
    attrs = op.params.model_validate(params).model_dump()
    graph = Graph("t", inputs[0])
    graph.add(Node(INPUT, INPUT, {}, [], shape=inputs[0]))
    names = [INPUT]
    for k, shape in enumerate(inputs[1:]):
        graph.add(Node(f"i{k}", "identity", {}, [INPUT], shape=shape))
        names.append(f"i{k}")
    graph.add(Node("n", name, attrs, names, shape=op.shape(attrs, list(inputs))))
    return graph


CASES = [(name, e) for name, op in sorted(registry.ops().items()) if op.weights is not None for e in op.examples]


@pytest.mark.parametrize("name,example", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_declared_weights_are_torchs(name: str, example) -> None:
    """`OpDef.weights` names and shapes equal the parameters torch creates at the layer's path,
    and add up to the op's parameter count."""
    op = registry.get(name)
    graph = _one_op_graph(name, example.params, example.inputs)
    node = graph.node("n")
    root, _ = build_modules(graph)
    built = {("" if k == "n" else k.removeprefix("n.")): tuple(v.shape) for k, v in root.named_parameters() if k == "n" or k.startswith("n.")}
    declared = {k: tuple(v) for k, v in op.weights(node.attrs, list(example.inputs)).items()}
    assert declared == built
    assert sum(math.prod(s) for s in declared.values()) == op.count_params(node.attrs, list(example.inputs), node.shape)


def test_every_op_with_parameters_declares_them() -> None:
    missing = [name for name, op in registry.ops().items() for e in op.examples if op.weights is None
               and op.count_params(op.params.model_validate(e.params).model_dump(), list(e.inputs),
                                   op.shape(op.params.model_validate(e.params).model_dump(), list(e.inputs)))]
    assert not missing


# --------------------------------------------------------------------------- errors
def _error(tmp_path: Path, text: str) -> str:
    spec = tmp_path / "bad.yaml"
    spec.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["check", str(spec)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output + result.stderr
    lines = [line for line in result.stderr.splitlines() if str(spec) in line]
    assert len(lines) == 1, result.stderr
    return lines[0].replace(str(spec), "FILE")


def _where(text: str, needle: str) -> str:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return f"FILE:{number}:{line.index(needle) + len('share: ') + 1}"
    raise AssertionError(needle)


def _mlp(*layers: str) -> str:
    return "name: t\ninput: [12]\nlayers:\n" + "".join(f"  - {layer}\n" for layer in layers)


@pytest.mark.parametrize(
    "layers,needle,message",
    [
        (["{op: linear, name: fc, out: 12}", "{op: linear, out: 12, share: fcc}"], "share: fcc",
         "share: 'fcc' names no layer or block in this scope or an enclosing one (did you mean 'fc'?) (known: fc, 1)"),
        (["{op: linear, name: fc, out: 12}", "{op: linear, out: 6, share: fc}"], "share: fc",
         "share: linear '1' cannot share linear 'fc': its weight is 6×12 here but 12×12 there"),
        (["{op: linear, name: fc, out: 12}", "{op: relu, name: r}", "{op: linear, out: 12, share: r}"], "share: r",
         "share: relu 'r' has no parameters to share"),
        (["{op: linear, name: fc, out: 12, share: fc}"], "share: fc", "share: linear 'fc' cannot share itself"),
        (["{op: linear, name: a, out: 12, share: b}", "{op: linear, name: b, out: 12, share: a}"], "share: b",
         "share: a cycle: a -> b -> a; one layer must own the parameters"),
        (["{op: linear, name: fc, out: 12}", "{op: sequential, name: g, layers: [{op: linear, out: 12}], share: fc}"], "share: fc",
         "share: block 'g' (sequential) cannot share linear 'fc': a layer shares a layer, a block a block"),
        (["{op: batchnorm, name: bn}", "{op: linear, out: 12, share: bn}"], "share: bn",
         "share: linear '1' cannot share batchnorm 'bn': its weight is 12×12 here but 12 there"),
    ],
    ids=["unknown", "shape", "no-params", "self", "cycle", "layer-vs-block", "other-op"],
)
def test_bad_shares_are_one_located_line(tmp_path: Path, layers: list[str], needle: str, message: str) -> None:
    text = _mlp(*layers)
    assert _error(tmp_path, text) == f"{_where(text, needle)}: {message}"


def test_no_common_parameter_names_both_sides(tmp_path: Path) -> None:
    text = "name: t\ninput: [4, 6]\nlayers:\n  - {op: lstm, name: r, hidden: 6}\n  - {op: linear, out: 6, share: r}\n"
    line = _error(tmp_path, text)
    assert line.startswith(_where(text, "share: r") + ": share: linear '1' and lstm 'r' have no parameter in common (linear: weight, bias; lstm: weight_ih_l0")


def test_blocks_of_another_structure_cannot_share(tmp_path: Path) -> None:
    text = SIAMESE.replace("{op: enc, name: e, width: 32, share: top.e}", "{op: sequential, name: e, layers: [flatten, {op: linear, name: fc, out: 32}], share: top.e}")
    line = _error(tmp_path, text)
    assert line.startswith(_where(text, "share: top.e") + ": share: block 'pair.bottom.e' (sequential) and block 'pair.top.e' (enc) differ: pair.top.e.proj has no counterpart pair.bottom.e.proj")


def test_a_variant_that_breaks_the_share_is_reported(tmp_path: Path) -> None:
    text = """name: t
input: [12]
variants:
  small: {width_mult: 0.5}
layers:
  - {op: linear, name: fc, out: '${round(12 * width_mult)}'}
  - {op: linear, out: 12, share: fc}
"""
    spec = tmp_path / "v.yaml"
    spec.write_text(text, encoding="utf-8")
    graph_ok = netspec.build_graph(spec)  # as written: 12×12 both
    assert graph_ok.node("1").meta["shares"] == {"weight": "fc", "bias": "fc"}
    with pytest.raises(SpecError, match="variant 'small'|cannot share"):
        netspec.build_graph(spec, variant="small")
    result = CliRunner().invoke(main, ["check", str(spec)])
    assert result.exit_code == 2 and "variant 'small': share: linear '1' cannot share linear 'fc'" in result.stderr


def test_share_must_be_a_name(tmp_path: Path) -> None:
    line = _error(tmp_path, _mlp("{op: linear, name: fc, out: 12}", "{op: linear, out: 12, share: [fc]}"))
    assert "expected a layer or block name (dotted into groups: encoder.fc), got ['fc']" in line


def test_tied_autoencoder_decodes_with_the_encoders_weight() -> None:
    """conv_transpose2d shares conv2d's weight (the same 8×1×4×4 tensor: the adjoint map) and
    keeps its own bias; the twin calls F.conv_transpose2d with the encoder's weight."""
    spec = """
name: ae
input: [1, 28, 28]
layers:
  - {op: conv2d, out: 8, kernel: 4, stride: 2, padding: 1}
  - relu
  - {op: conv_transpose2d, out: 1, kernel: 4, stride: 2, padding: 1, share: 0}
"""
    graph = netspec.build_graph(spec)
    model = netspec.compile(graph, seed=0)
    enc, dec = model.get_submodule("0"), model.get_submodule("2")
    assert dec.weight is enc.weight and dec.bias is not enc.bias
    assert graph.total_params == unique_numel(model) == (8 * 16 + 8) + 1
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    want = nn.functional.conv_transpose2d(torch.relu(nn.functional.conv2d(x, enc.weight, enc.bias, stride=2, padding=1)),
                                          enc.weight, dec.bias, stride=2, padding=1)
    torch.testing.assert_close(model(x), want)


def test_blocks_that_share_fold_apart_from_their_owner() -> None:
    """ALBERT-style: b2..b4 share b1's layer; the three fold into one ×3 box, drawn apart from
    b1 (which owns the weights) and joined to it by one dashed line."""
    spec = "name: a\ninput: [32]\nblocks:\n  res:\n    layers: [{op: linear, name: fc, out: 32}, relu]\nlayers:\n" + "".join(
        f"  - {{op: res, name: b{k}{', share: b1' if k > 1 else ''}}}\n" for k in range(1, 5)
    ) + "  - {op: linear, out: 4}\n"
    graph = netspec.build_graph(spec)
    assert graph.total_params == 32 * 32 + 32 + 32 * 4 + 4
    dot = digraph(graph).source
    assert "res ×3" in dot
    assert [line.split("[")[0].strip() for line in dot.splitlines() if "shares" in line] == ['"b2.fc" -> "b1.fc"']
