"""Code generation: the compiled torch.fx module, the ejected model.py, initialisation, training.

The ejected source is imported from its file with importlib (no subprocess) and must compute
exactly what the compiled module computes with the same state_dict. Initialisation is checked
statistically against what each scheme promises; training against a falling loss.
"""
from __future__ import annotations

import ast
import math
import re
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import fx, nn

import netspec
from netspec.compiler.codegen.export import write
from netspec.errors import NetspecError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ejected import import_file, network_class  # noqa: E402  (tests/ is not a package)

F = "x.yaml"

ROUND_TRIP = textwrap.dedent(
    """\
    name: round_trip
    input: [3, 12, 12]
    blocks:
      basic:
        params: {out: int, stride: {type: int, default: 1}}
        layers:
          - {op: conv2d, name: conv1, out: $out, kernel: 3, padding: 1, stride: $stride, bias: false}
          - {op: batchnorm, name: bn1}
          - {op: conv2d, name: down, from: input, out: $out, kernel: 1, stride: $stride, when: "in_channels != out or stride != 1"}
          - {op: add, name: sum, from: [bn1, down]}
          - relu
    layers:
      - {op: conv2d, name: stem, out: 8, kernel: 3, padding: 1}
      - {op: basic, out: 8, name: b1}
      - {op: basic, out: 12, stride: 2, repeat: 2, name: b2}
      - op: parallel
        name: mix
        merge: concat
        branches:
          a: [{op: conv2d, out: 4, kernel: 1}, {op: leaky_relu, negative_slope: 0.2}]
          b: [{op: maxpool, kernel: 3, stride: 1, padding: 1}]
          c: []
      - {op: residual, out: 16, name: r}
      - {op: conv2d, out: 16, kernel: [1, 3], padding: [0, 1], groups: 4, dilation: 1}
      - {op: dropout, p: 0.3}
      - {op: adaptive_avgpool, size: 2}
      - flatten
      - {op: linear, out: 32, name: fc1}
      - {op: batchnorm, name: bn}
      - gelu
      - {op: linear, out: 10, name: fc2}
    """
)


def build(text: str):
    return netspec.build_graph(netspec.load(F, text=text))


def eject(graph, tmp_path: Path) -> nn.Module:
    path = write(graph, tmp_path / "model.py")
    return network_class(import_file(path))()


# --------------------------------------------------------------------------- ejected source

def test_ejected_module_computes_the_same_as_the_compiled_one(tmp_path: Path) -> None:
    graph = build(ROUND_TRIP)
    compiled = netspec.compile(graph, seed=0)
    with torch.no_grad():  # non-trivial batch-norm statistics, so eval mode has something to use
        for module in compiled.modules():
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    ejected = eject(graph, tmp_path)
    ejected.load_state_dict(compiled.state_dict(), strict=True)
    compiled.eval(), ejected.eval()
    x = torch.randn(5, *graph.input_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = compiled(x), ejected(x)
    assert tuple(got.shape) == (5, *graph.output_shape)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_ejected_module_trains_like_the_compiled_one(tmp_path: Path) -> None:
    text = ROUND_TRIP.replace("{op: dropout, p: 0.3}", "identity")  # dropout draws random masks
    graph = build(text)
    compiled = netspec.compile(graph, seed=0)
    ejected = eject(graph, tmp_path)
    ejected.load_state_dict(compiled.state_dict())
    x = torch.randn(4, *graph.input_shape, generator=torch.Generator().manual_seed(2))
    compiled.train(), ejected.train()
    a, b = compiled(x), ejected(x)
    torch.testing.assert_close(b, a, rtol=0, atol=0)
    a.square().sum().backward()
    b.square().sum().backward()
    for (name, p), (_, q) in zip(compiled.named_parameters(), ejected.named_parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-6, atol=1e-7, msg=name)


def test_ejected_source_needs_only_torch(tmp_path: Path) -> None:
    path = write(build(ROUND_TRIP), tmp_path / "model.py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported == {"torch"}


def test_ejected_state_dict_keys_equal_the_compiled_ones(tmp_path: Path) -> None:
    graph = build(ROUND_TRIP)
    assert list(eject(graph, tmp_path).state_dict()) == list(netspec.compile(graph).state_dict())


def test_ejected_conv_with_padding_same_imports(tmp_path: Path) -> None:
    graph = build("name: s\ninput: [2, 5, 5]\nlayers:\n  - {op: conv2d, out: 3, kernel: 3, padding: same}\n")
    ejected = eject(graph, tmp_path)
    assert tuple(ejected(torch.zeros(1, 2, 5, 5)).shape[1:]) == graph.output_shape


def test_ejected_avgpool_keeps_ceil_mode(tmp_path: Path) -> None:
    graph = build("name: s\ninput: [2, 7, 7]\nlayers:\n  - {op: avgpool, kernel: 2, ceil_mode: true}\n")
    ejected = eject(graph, tmp_path)
    x = torch.randn(1, 2, 7, 7)
    torch.testing.assert_close(ejected(x), netspec.compile(graph)(x))


def test_unknown_output_suffix_is_a_netspec_error(tmp_path: Path) -> None:
    with pytest.raises(NetspecError, match="unknown output format"):
        write(build(ROUND_TRIP), tmp_path / "model.unknown")
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- the compiled module

def test_compiled_module_is_straight_line_fx_code() -> None:
    graph = build(ROUND_TRIP)
    model = netspec.compile(graph)
    assert isinstance(model, fx.GraphModule)
    code = model.code
    assert not re.search(r"^\s*(for|while|if)\b", code, re.M), code
    calls = [n for n in model.graph.nodes if n.op == "call_module"]
    assert [n.target for n in calls] == [n.name for n in graph.ops() if n.op not in ("add", "concat")]
    assignments = [line for line in code.splitlines() if re.match(r"^\s+\w+ = ", line)]
    assert len(assignments) == sum(1 for n in model.graph.nodes if n.op not in ("placeholder", "output"))
    assert "torch.cat" in code


def test_parameter_names_follow_spec_names() -> None:
    model = netspec.compile(build(ROUND_TRIP))
    keys = set(model.state_dict())
    expected_present = {
        "stem.weight", "stem.bias",
        "b1.conv1.weight", "b1.bn1.weight", "b1.bn1.running_mean",
        "b2.0.conv1.weight", "b2.0.down.weight", "b2.1.conv1.weight", "b2.1.down.bias",
        "mix.a.0.weight", "mix.a.0.bias",
        "r.conv1.weight", "r.bn2.bias", "r.conv2.weight",
        "5.weight", "5.bias",
        "fc1.weight", "bn.running_var", "fc2.bias",
    }  # fmt: skip
    assert expected_present <= keys, sorted(expected_present - keys)
    assert "b1.conv1.bias" not in keys  # bias: false
    assert not any(k.startswith("b1.down.") for k in keys)  # skipped by `when`
    assert "r.conv3.weight" in keys  # residual from 4 + 12 + 12 = 28 to 16 channels: 1×1 conv shortcut
    assert set(dict(model.named_modules())) >= {"b2.0.conv1", "mix.b.0", "r.relu2", "fc2"}


def test_unnamed_repeat_makes_consecutive_positions() -> None:
    text = "name: t\ninput: [4]\nlayers:\n  - {op: linear, out: 4, repeat: 3}\n  - {op: linear, out: 2, name: head}\n"
    assert [k for k in netspec.compile(build(text)).state_dict() if k.endswith("weight")] == ["0.weight", "1.weight", "2.weight", "head.weight"]


def test_compile_accepts_a_path_a_loaded_spec_and_a_graph(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("name: t\ninput: [3]\nlayers: [{op: linear, out: 2}]\n", encoding="utf-8")
    loaded = netspec.load(path)
    shapes = {tuple(netspec.compile(s)(torch.zeros(1, 3)).shape) for s in (path, str(path), loaded, netspec.build_graph(loaded))}
    assert shapes == {(1, 2)}


# --------------------------------------------------------------------------- initialisation

def init_spec(init: str, layer_init: str = "", *, fan_in: int = 400, out: int = 300) -> str:
    extra = f", init: {layer_init}" if layer_init else ""
    return f"name: t\ninput: [{fan_in}]\ninit: {init}\nlayers:\n  - {{op: linear, out: {out}{extra}}}\n"


def weights(text: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    model = netspec.compile(build(text), seed=seed)
    layer = model.get_submodule("0")
    return layer.weight.detach(), layer.bias.detach()


def test_init_zeros() -> None:
    w, b = weights(init_spec("zeros"))
    assert torch.count_nonzero(w) == 0
    assert torch.count_nonzero(b) > 0  # bias keeps PyTorch's default unless told


def test_init_normal_with_std_and_zero_bias() -> None:
    w, b = weights(init_spec("{weight: normal, std: 0.01, bias: zeros}"))
    assert abs(w.std().item() - 0.01) < 0.0003  # 120,000 samples: the standard error is ~0.00002
    assert abs(w.mean().item()) < 0.0002
    assert torch.count_nonzero(b) == 0


def test_init_normal_with_mean() -> None:
    w, _ = weights(init_spec("{weight: normal, std: 0.5, mean: 2.0}"))
    assert abs(w.mean().item() - 2.0) < 0.01 and abs(w.std().item() - 0.5) < 0.01


def test_init_uniform() -> None:
    w, _ = weights(init_spec("{weight: uniform, a: 0.07}"))
    assert w.abs().max().item() <= 0.07
    assert w.abs().max().item() > 0.069
    assert abs(w.std().item() - 0.07 / math.sqrt(3)) < 0.001


@pytest.mark.parametrize(
    "scheme,std",
    [
        ("xavier_uniform", math.sqrt(2 / (400 + 300))),
        ("xavier_normal", math.sqrt(2 / (400 + 300))),
        ("kaiming_uniform", math.sqrt(2 / 400)),
        ("kaiming_normal", math.sqrt(2 / 400)),
    ],
)
def test_named_schemes_have_their_published_spread(scheme: str, std: float) -> None:
    w, _ = weights(init_spec(scheme))
    assert abs(w.std().item() - std) / std < 0.02
    if scheme.endswith("uniform"):
        assert w.abs().max().item() <= std * math.sqrt(3) + 1e-6


def test_default_init_is_pytorchs() -> None:
    w, b = weights(init_spec("default"))
    bound = 1 / math.sqrt(400)  # nn.Linear: kaiming_uniform(a=√5) = U(-1/√fan_in, 1/√fan_in)
    assert w.abs().max().item() <= bound and w.abs().max().item() > 0.99 * bound
    assert b.abs().max().item() <= bound


def test_the_nearest_init_wins() -> None:
    text = textwrap.dedent(
        """\
        name: t
        input: [8, 6, 6]
        init: zeros
        blocks:
          two:
            layers:
              - {op: conv2d, name: a, out: 8, kernel: 1}
              - {op: conv2d, name: b, out: 8, kernel: 1, init: {weight: uniform, a: 0.5}}
        layers:
          - {op: conv2d, name: plain, out: 8, kernel: 1}
          - {op: two, name: called, init: {weight: normal, std: 3.0}}
          - op: sequential
            name: grp
            init: {weight: normal, std: 0.001}
            layers: [{op: conv2d, out: 8, kernel: 1}]
        """
    )
    model = netspec.compile(build(text), seed=0)
    w = {name: model.get_submodule(name).weight.detach() for name in ("plain", "called.a", "called.b", "grp.0")}
    assert torch.count_nonzero(w["plain"]) == 0
    assert 2.0 < w["called.a"].std().item() < 4.0
    assert w["called.b"].abs().max().item() <= 0.5
    assert w["grp.0"].std().item() < 0.01


def test_seed_makes_weights_reproducible() -> None:
    graph = build(ROUND_TRIP)
    a, b = netspec.compile(graph, seed=0).state_dict(), netspec.compile(graph, seed=0).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    c = netspec.compile(graph, seed=1).state_dict()
    assert not torch.equal(a["stem.weight"], c["stem.weight"])


# --------------------------------------------------------------------------- training

def test_one_sgd_step_reduces_the_loss_of_a_small_mlp() -> None:
    text = "name: mlp\ninput: [6]\nlayers:\n  - {op: linear, out: 16}\n  - relu\n  - {op: linear, out: 3}\n"
    model = netspec.compile(build(text), seed=0)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 6, generator=gen), torch.randint(0, 3, (32,), generator=gen)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = loss_fn(model(x), y)
    optimizer.zero_grad()
    before.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    optimizer.step()
    with torch.no_grad():
        after = loss_fn(model(x), y)
    assert after.item() < before.item()


def test_a_few_steps_fit_a_tiny_batch() -> None:
    text = "name: mlp\ninput: [4]\nlayers:\n  - {op: linear, out: 32}\n  - tanh\n  - {op: linear, out: 2}\n"
    model = netspec.compile(build(text), seed=0)
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(3))
    y = (x[:, 0] > 0).long()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    assert (model(x).argmax(1) == y).all()


# --------------------------------------------------------------------------- ONNX
def test_onnx_export_computes_what_the_module_computes(tmp_path: Path) -> None:
    """`-o model.onnx` (optional dependency): onnxruntime on the file agrees with torch."""
    pytest.importorskip("onnx", reason="ONNX export needs the optional 'onnx' package")
    ort = pytest.importorskip("onnxruntime", reason="comparing outputs needs onnxruntime")
    import numpy as np

    from netspec.compiler.codegen.torch_fx import to_graph_module

    graph = netspec.build_graph(Path(__file__).resolve().parents[1] / "specs" / "googlenet.yaml")
    torch.manual_seed(0)
    path = write(graph, tmp_path / "model.onnx")
    torch.manual_seed(0)  # the exported module was initialised from the same seed
    module = to_graph_module(graph).eval()
    x = torch.rand(2, *graph.input_shape)
    (y,) = ort.InferenceSession(str(path)).run(None, {"x": x.numpy()})
    assert np.allclose(y, module(x).detach().numpy(), atol=1e-4)


def test_onnx_export_limits_are_a_clean_error(tmp_path: Path) -> None:
    pytest.importorskip("onnx", reason="ONNX export needs the optional 'onnx' package")
    spec = "name: x\ninput: [3, 5, 5]\nlayers:\n  - {op: adaptive_avgpool, size: 2}\n  - flatten\n"
    graph = netspec.build_graph(netspec.load(F, text=spec))
    with pytest.raises(NetspecError, match="ONNX export failed"):
        write(graph, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()
