"""Property tests of the compiler with random specs.

(a) Random networks (conv/pool/batchnorm/activation stacks, parallel branches merged by add or
    concat, residual blocks, then features and linear layers) are written as YAML text. An
    independent eager PyTorch interpreter of the same layer list (`Twin`) is the truth:
    netspec must refuse the spec exactly when torch cannot run it, and otherwise its shapes
    and parameter counts must equal those of a real forward pass through `netspec.compile`.
(b) Random corruptions of valid zoo-like specs must give a clean, located `NetspecError`,
    never another exception.
"""
from __future__ import annotations

import functools
import operator
import re
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st
from torch import nn

import netspec
from netspec.compiler import registry
from netspec.errors import NetspecError, SpecError

F = "x.yaml"
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")  # torch's note on even kernels
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# --------------------------------------------------------------------------- (a) random valid-ish networks

small = st.integers(min_value=1, max_value=6)
# Element-wise ops as the twin builds them (from torch's definitions, not netspec's code).
TWIN_ELEMENTWISE = {
    "relu": lambda layer: nn.ReLU(), "sigmoid": lambda layer: nn.Sigmoid(), "tanh": lambda layer: nn.Tanh(),
    "gelu": lambda layer: nn.GELU(), "identity": lambda layer: nn.Identity(), "softmax": lambda layer: nn.Softmax(dim=1),
    "leaky_relu": lambda layer: nn.LeakyReLU(layer.get("negative_slope", 0.01)),
}  # fmt: skip
# The registry's activations (those the twin knows): a new op is drawn once the twin knows it.
ACTIVATION_NAMES = sorted(
    name for name, op in registry.ops().items() if (op.family == "activation" or name == "identity") and name in TWIN_ELEMENTWISE
)
ACTIVATIONS = st.sampled_from(ACTIVATION_NAMES + [{"op": "leaky_relu", "negative_slope": 0.2}])
MERGES = sorted(name for name, op in registry.ops().items() if op.max_inputs > 1)  # function calls, not modules


def pair_or_int(values: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    return st.one_of(values, st.lists(values, min_size=2, max_size=2))


@st.composite
def conv(draw: st.DrawFn) -> dict:
    layer: dict[str, Any] = {"op": "conv2d", "out": draw(st.sampled_from([2, 3, 4, 6]))}
    layer["kernel"] = draw(pair_or_int(st.integers(1, 4)))
    if draw(st.booleans()):
        layer["stride"] = draw(pair_or_int(st.integers(1, 2)))
    padding = draw(st.one_of(st.none(), pair_or_int(st.integers(0, 2)), st.just("same")))
    if padding is not None:
        layer["padding"] = padding
    if draw(st.integers(0, 3)) == 0:
        layer["dilation"] = draw(st.integers(1, 2))
    if draw(st.integers(0, 3)) == 0:
        layer["groups"] = draw(st.sampled_from([2, 3]))
    if draw(st.booleans()):
        layer["bias"] = draw(st.booleans())
    return layer


@st.composite
def pool(draw: st.DrawFn) -> dict:
    layer: dict[str, Any] = {"op": draw(st.sampled_from(["maxpool", "avgpool"])), "kernel": draw(pair_or_int(st.integers(1, 3)))}
    if draw(st.booleans()):
        layer["stride"] = draw(pair_or_int(st.integers(1, 3)))
    if draw(st.booleans()):
        layer["padding"] = draw(st.integers(0, 2))
    if draw(st.booleans()):
        layer["ceil_mode"] = draw(st.booleans())
    return layer


def simple_image_layer() -> st.SearchStrategy[Any]:
    return st.one_of(
        conv(),
        pool(),
        st.just("batchnorm"),
        ACTIVATIONS,
        st.builds(lambda p: {"op": "dropout", "p": p}, st.sampled_from([0.0, 0.1, 0.5])),
        st.builds(lambda c, s: {"op": "residual", "out": c, "stride": s}, st.sampled_from([2, 4, 6]), st.integers(1, 2)),
        st.builds(lambda s: {"op": "adaptive_avgpool", "size": s}, pair_or_int(st.integers(1, 3))),
    )


def parallel(layer: st.SearchStrategy[Any]) -> st.SearchStrategy[dict]:
    branches = st.lists(st.lists(layer, max_size=2), min_size=2, max_size=3)
    return st.builds(
        lambda merge, bs: {"op": "parallel", "merge": merge, "branches": {f"b{i}": b for i, b in enumerate(bs)}},
        st.sampled_from([m for m in MERGES if m in ("add", "concat")]),  # the merges the twin knows
        branches,
    )


def image_layers() -> st.SearchStrategy[list]:
    layer = st.one_of(simple_image_layer(), simple_image_layer(), parallel(simple_image_layer()))
    return st.lists(layer, max_size=4)


def feature_layer() -> st.SearchStrategy[Any]:
    simple = st.one_of(
        st.builds(lambda o, b: {"op": "linear", "out": o, "bias": b}, st.integers(1, 8), st.booleans()),
        st.just("batchnorm"),
        ACTIVATIONS,
        st.builds(lambda p: {"op": "dropout", "p": p}, st.sampled_from([0.0, 0.3])),
    )
    return st.one_of(simple, simple, parallel(simple))


@st.composite
def network(draw: st.DrawFn) -> dict:
    if draw(st.integers(0, 4)) == 0:  # a features-only network
        shape: list[int] = [draw(st.integers(1, 8))]
        layers = draw(st.lists(feature_layer(), min_size=1, max_size=4))
    else:
        shape = [draw(st.integers(1, 4)), draw(st.integers(2, 10)), draw(st.integers(2, 10))]
        layers = draw(image_layers())
        tail = draw(st.sampled_from(["none", "flatten", "pool"]))
        if tail != "none":
            layers += ["global_avgpool", "flatten"] if tail == "pool" else ["flatten"]
            layers += draw(st.lists(feature_layer(), max_size=3))
        if not layers:
            layers = ["identity"]
    return {"name": "random_net", "input": shape, "layers": layers}


class Twin:
    """Runs a layer list eagerly with torch.nn modules built from the actual tensor shapes.

    Written from the spec language's definitions, not from netspec's code: it is the truth
    for whether a network can run and what shapes and parameter counts it has.
    """

    def __init__(self) -> None:
        self.params = 0

    def run(self, layers: list, x: torch.Tensor) -> torch.Tensor:
        for layer in layers:
            x = self.layer({"op": layer} if isinstance(layer, str) else layer, x)
        return x

    def module(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        self.params += sum(p.numel() for p in module.parameters())
        return module.eval()(x)

    def layer(self, layer: dict, x: torch.Tensor) -> torch.Tensor:
        op, c = layer["op"], x.shape[1]
        if op == "conv2d":
            return self.module(
                nn.Conv2d(
                    c, layer["out"], layer["kernel"], stride=layer.get("stride", 1), padding=layer.get("padding", 0),
                    dilation=layer.get("dilation", 1), groups=layer.get("groups", 1), bias=layer.get("bias", True),
                ),
                x,
            )  # fmt: skip
        if op in ("maxpool", "avgpool"):
            cls = nn.MaxPool2d if op == "maxpool" else nn.AvgPool2d
            stride = layer.get("stride", layer["kernel"])
            return self.module(cls(layer["kernel"], stride=stride, padding=layer.get("padding", 0), ceil_mode=layer.get("ceil_mode", False)), x)
        if op == "linear":
            if x.dim() != 2:
                raise ValueError("linear takes features")
            return self.module(nn.Linear(c, layer["out"], bias=layer.get("bias", True)), x)
        if op == "batchnorm":
            return self.module(nn.BatchNorm2d(c) if x.dim() == 4 else nn.BatchNorm1d(c), x)
        if op == "residual":
            return self.residual(layer["out"], layer.get("stride", 1), x)
        if op == "parallel":
            outs = [self.run(branch, x) for branch in layer["branches"].values()]
            if layer["merge"] == "concat":
                return torch.cat(outs, dim=1)
            if any(o.dim() != outs[0].dim() for o in outs):  # the language's add broadcasts equal ranks only
                raise ValueError("add needs equal ranks")
            return functools.reduce(operator.add, outs)  # torch's broadcasting (sizes equal or 1)
        if op in TWIN_ELEMENTWISE:
            return self.module(TWIN_ELEMENTWISE[op](layer), x)
        simple = {
            "dropout": nn.Dropout(layer.get("p", 0.5)), "flatten": nn.Flatten(), "global_avgpool": nn.AdaptiveAvgPool2d(1),
            "adaptive_avgpool": nn.AdaptiveAvgPool2d(layer.get("size", 1)),
        }  # fmt: skip
        return self.module(simple[op], x)

    def residual(self, out: int, stride: int, x: torch.Tensor) -> torch.Tensor:
        """D2L's Residual with the 1×1 conv shortcut when channels or stride change."""
        c = x.shape[1]
        y = self.module(nn.Conv2d(c, out, 3, padding=1, stride=stride), x)
        y = torch.relu(self.module(nn.BatchNorm2d(out), y))
        y = self.module(nn.BatchNorm2d(out), self.module(nn.Conv2d(out, out, 3, padding=1), y))
        shortcut = self.module(nn.Conv2d(c, out, 1, stride=stride), x) if (c != out or stride != 1) else x
        return torch.relu(y + shortcut)


def twin_result(spec: dict) -> tuple[tuple[int, ...], int] | None:
    """(output shape, parameter count) from the twin, or None when torch cannot run it."""
    twin = Twin()
    try:
        with torch.no_grad():
            y = twin.run(spec["layers"], torch.zeros(2, *spec["input"]))
    except (RuntimeError, ValueError):
        return None
    return tuple(y.shape[1:]), twin.params


def check_against_forward_pass(graph: Any) -> None:
    """Every node's shape and parameters equal those of a forward pass of the compiled module."""
    model = netspec.compile(graph, seed=0).eval()
    outputs: dict[str, tuple[int, ...]] = {}
    inputs: dict[str, tuple[int, ...]] = {}
    hooks = []
    modules = {n.name for n in graph.ops() if n.op not in MERGES}
    for name in modules:
        sub = model.get_submodule(name)
        hooks.append(sub.register_forward_hook(lambda m, a, out, name=name: outputs.__setitem__(name, tuple(out.shape[1:]))))
        hooks.append(sub.register_forward_pre_hook(lambda m, a, name=name: inputs.__setitem__(name, tuple(a[0].shape[1:]))))
    with torch.no_grad():
        y = model(torch.zeros(2, *graph.input_shape))
    for hook in hooks:
        hook.remove()
    assert tuple(y.shape[1:]) == graph.output_shape
    for node in graph.ops():
        if node.name in modules:
            assert outputs[node.name] == node.shape, node.name
            assert inputs[node.name] == graph.node(node.inputs[0]).shape, node.name
            assert sum(p.numel() for p in model.get_submodule(node.name).parameters()) == node.params, node.name
        else:
            assert node.params == 0
    assert sum(p.numel() for p in model.parameters()) == graph.total_params


@settings(max_examples=70, **SETTINGS)
@given(network())
def test_random_networks_agree_with_torch(spec: dict) -> None:
    text = yaml.safe_dump(spec, sort_keys=False)
    note(text)
    truth = twin_result(spec)
    try:
        graph = netspec.build_graph(netspec.load(F, text=text))
    except SpecError as exc:
        assert truth is None, f"netspec refused a network torch runs:\n{exc}"
        assert all(d.location is not None and d.location.file == F for d in exc.diagnostics)
        return
    assert truth is not None, "netspec accepted a network torch cannot run"
    shape, params = truth
    assert graph.output_shape == shape
    assert graph.total_params == params
    check_against_forward_pass(graph)


def test_the_generator_makes_both_valid_and_invalid_networks() -> None:
    """A guard that the property above is not vacuous."""
    seen = {True: 0, False: 0}

    @settings(max_examples=60, database=None, derandomize=True, **SETTINGS)
    @given(network())
    def count(spec: dict) -> None:
        seen[twin_result(spec) is not None] += 1

    count()
    assert seen[True] >= 10 and seen[False] >= 5, seen


# --------------------------------------------------------------------------- (b) corruptions

ZOO_LIKE = [
    """\
# yaml-language-server: $schema=../docs/netspec.schema.json
name: lenet
description: LeNet-5 (D2L 7.6)
input: [1, 28, 28]
init: xavier_uniform
layers:
  - {op: conv2d, out: 6, kernel: 5, padding: 2}
  - sigmoid
  - {op: avgpool, kernel: 2, stride: 2}
  - {op: conv2d, out: 16, kernel: 5}
  - sigmoid
  - {op: avgpool, kernel: 2, stride: 2}
  - flatten
  - {op: linear, out: 120}
  - sigmoid
  - {op: linear, out: 84}
  - sigmoid
  - {op: linear, out: 10}
train: {batch_size: 256, epochs: 10, lr: 0.9}
""",
    """\
name: tiny_resnet
input: [3, 16, 16]
blocks:
  basic:
    params: {out: int, stride: {type: int, default: 1}}
    layers:
      - {op: conv2d, name: conv1, out: $out, kernel: 3, padding: 1, stride: $stride, bias: false}
      - {op: batchnorm, name: bn1}
      - {op: conv2d, name: down, from: input, out: $out, kernel: 1, stride: $stride, when: "in_channels != out or stride != 1"}
      - {op: add, from: [bn1, down]}
      - relu
layers:
  - op: sequential
    name: stem
    layers:
      - {op: conv2d, out: 8, kernel: 3, padding: 1}
      - batchnorm
      - relu
  - {op: basic, out: 8, name: b1}
  - {op: basic, out: 16, stride: 2, repeat: 2, name: b2}
  - {op: residual, out: 16, name: r}
  - op: parallel
    merge: concat
    branches:
      wide: [{op: conv2d, out: 4, kernel: 1}]
      deep: [{op: conv2d, out: 4, kernel: 1}, {op: conv2d, out: 4, kernel: 3, padding: 1}]
      same: []
  - {op: inception, c1: 4, c2: [4, 8], c3: [2, 4], c4: 4}
  - global_avgpool
  - flatten
  - {op: dropout, p: 0.5}
  - {op: linear, out: 10}
""",
    """\
name: mlp
input: [784]
init:
  weight: normal
  std: 0.01
  bias: zeros
layers:
  - op: linear
    out: 256
    name: hidden
  - op: relu
  - op: dropout
    p: 0.2
  - op: linear
    out: 10
    from: 2
train:
  batch_size: 256
  epochs: 10
  optimizer: {name: sgd, lr: 0.1}
  loss: cross_entropy
""",
]

VALUES = [
    "[1, 2]", "{a: 1}", "true", "null", "~", "-3", "0", "1.5", "1e9", "''", "'x'", "$x", "'${1 // 0}'",
    "'${__import__(\"os\")}'", "[[[1]]]", "!!binary aGk=", "2024-01-01", "*undefined", "&a 3", "[]", "{}",
    "-.inf", ".nan", "99999999999999999999", "[1, 2, 3, 4]", "relu", "input",
]  # fmt: skip


@st.composite
def corrupted(draw: st.DrawFn) -> str | bytes:
    text = draw(st.sampled_from(ZOO_LIKE))
    lines = text.splitlines(keepends=True)
    kind = draw(st.sampled_from(["delete", "retype", "insert", "truncate", "indent", "swap", "bytes", "duplicate", "char"]))
    i = draw(st.integers(0, len(lines) - 1))
    if kind == "delete":
        del lines[i]
    elif kind == "retype":
        pairs = list(re.finditer(r"(\w+): ([^,{}\[\]\n]+|\[[^\]\n]*\])", text))
        m = pairs[draw(st.integers(0, len(pairs) - 1))]
        return text[: m.start(2)] + draw(st.sampled_from(VALUES)) + text[m.end(2) :]
    elif kind == "insert":
        key = draw(st.sampled_from(["zzq", "kernal", "op", "name", "from", "repeat", "when", "init", "layers", "input"]))
        indent = re.match(r"\s*(- )?", lines[i]).end()  # type: ignore[union-attr]
        if draw(st.booleans()) and "{" in lines[i]:
            lines[i] = lines[i].replace("{", f"{{{key}: {draw(st.sampled_from(VALUES))}, ", 1)
        else:
            lines.insert(i, " " * indent + f"{key}: {draw(st.sampled_from(VALUES))}\n")
    elif kind == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    elif kind == "indent":
        change = draw(st.sampled_from([" ", "  ", "\t", "-1", "-2"]))
        lines[i] = lines[i][int(change[1:]) :] if change.startswith("-") else change + lines[i]
    elif kind == "swap":
        j = draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "duplicate":
        lines.insert(i, lines[i])
    elif kind == "char":
        pos = draw(st.integers(0, len(text)))
        return text[:pos] + draw(st.text(min_size=1, max_size=3)) + text[pos + 1 :]
    else:
        data = text.encode("utf-8")
        pos = draw(st.integers(0, len(data)))
        return data[:pos] + draw(st.binary(min_size=1, max_size=8)) + data[pos:]
    return "".join(lines)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corrupt")


def test_the_zoo_like_bases_are_valid() -> None:
    for text in ZOO_LIKE:
        netspec.build_graph(netspec.load(F, text=text))


@settings(max_examples=250, **SETTINGS)
@given(corrupted())
def test_corrupted_specs_fail_cleanly_with_a_location(scratch: Path, corrupt: str | bytes) -> None:
    path = scratch / "spec.yaml"
    if isinstance(corrupt, bytes):
        path.write_bytes(corrupt)
    else:
        path.write_text(corrupt, encoding="utf-8", newline="")
    note(repr(corrupt))
    try:
        graph = netspec.build_graph(path)
    except NetspecError as exc:
        diagnostics = exc.diagnostics if isinstance(exc, SpecError) else []
        assert str(path) in str(exc)
        for d in diagnostics:
            assert (d.location is not None and d.location.file == str(path)) or str(path) in d.message, str(d)
            for pydantic_words in ("Input should", "String should", "Value error,", "Field required", "Extra inputs"):
                assert pydantic_words not in d.message, str(d)  # netspec's own words only
        return
    assume(graph.total_params < 2_000_000)  # a corruption may ask for a huge (valid) layer
    model = netspec.compile(graph).eval()
    with torch.no_grad():
        assert tuple(model(torch.zeros(1, *graph.input_shape)).shape[1:]) == graph.output_shape
