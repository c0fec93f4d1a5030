"""Readable ejected source (issue 9 §8): a class per block kind, nn.Sequential for
positional chains (`net.b2[0]`), a shape comment on every line, and still the compiled
module's names, weights and outputs.

Shape comments are checked against a real forward pass (hooks on the ejected module), not
against the graph that wrote them; equivalence against `netspec.compile`, also for random
networks and for structures the zoo does not have (skip connections across groups, nested
blocks, per-layer init).
"""
from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from torch import nn

import netspec
from netspec.compiler.codegen.source import to_source
from netspec.errors import SpecError

ROOT = Path(__file__).resolve().parents[1]
SHAPE = re.compile(r"#\s*(?:e\.g\.\s*)?(\d+(?:×\d+)*)\s*$")  # "e.g.": a class with constructor parameters


def load_source(source: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "ejected"}
    exec(compile(source, "model.py", "exec"), namespace)
    return namespace


def network_class(namespace: dict[str, Any]) -> type[nn.Module]:
    return [v for v in namespace.values() if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == "ejected"][-1]


def assert_equivalent(graph, seed: int = 0) -> nn.Module:
    """Same state_dict (names in order, values bitwise for the same seed) and same outputs."""
    cls = network_class(load_source(to_source(graph)))
    compiled = netspec.compile(graph, seed=seed)
    torch.manual_seed(seed)
    ejected = cls()
    want, got = compiled.state_dict(), ejected.state_dict()
    assert list(got) == list(want)
    assert all(torch.equal(got[k], want[k]) for k in want), [k for k in want if not torch.equal(got[k], want[k])]
    compiled.eval(), ejected.eval()
    x = torch.randn(3, *graph.input_shape, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        torch.testing.assert_close(ejected(x), compiled(x), rtol=0, atol=0)
    return ejected


# --------------------------------------------------------------------------- shape comments

def _comment_shape(lines: list[str], lineno: int) -> tuple[int, ...]:
    match = SHAPE.search(lines[lineno - 1])
    assert match, f"line {lineno} has no shape comment: {lines[lineno - 1]!r}"
    return tuple(int(d) for d in match.group(1).split("×"))


def _sequential_items(call: ast.Call, lines: list[str], path: tuple) -> list[tuple[list[tuple], tuple[int, ...]]]:
    """nn.Sequential(a, b) (children 0, 1) or nn.Sequential(OrderedDict([("name", a), ...]))."""
    out = []
    named = len(call.args) == 1 and isinstance(call.args[0], ast.Call) and ast.unparse(call.args[0].func) == "OrderedDict"
    items = [(e.elts[0].value, e.elts[1], e) for e in call.args[0].args[0].elts] if named else [(i, a, a) for i, a in enumerate(call.args)]
    for key, arg, written in items:
        out.append(([path + (key,)], _comment_shape(lines, written.end_lineno)))
        if isinstance(arg, ast.Call) and ast.unparse(arg.func) == "nn.Sequential":
            out += _sequential_items(arg, lines, path + (key,))
    return out


def _built_list(elements: list[tuple[ast.expr, bool]], lines: list[str], path: tuple) -> list[tuple[list[tuple], tuple[int, ...]]]:
    """`layers = [...]`, `if ...: layers.append(X)`, `nn.Sequential(*layers)`: an element's
    index in an instance is between the count of unconditional elements before it and the
    count of all elements before it."""
    out = []
    for k, (node, _) in enumerate(elements):
        low = sum(1 for _, conditional in elements[:k] if not conditional)
        options = [path + (i,) for i in range(low, k + 1)]
        out.append((options, _comment_shape(lines, node.end_lineno)))
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "nn.Sequential":
            for i in range(low, k + 1):
                out += _sequential_items(node, lines, path + (i,))
    return out


def _list_elements(stmt: ast.stmt, conditional: bool, elements: list[tuple[ast.expr, bool]]) -> bool:
    """Collect what a statement adds to `layers`; whether it was such a statement."""
    if isinstance(stmt, ast.AnnAssign) and ast.unparse(stmt.target) == "layers":
        elements.clear()
        elements += [(e, conditional) for e in stmt.value.elts]
        return True
    if isinstance(stmt, ast.If):
        for inner in stmt.body:
            assert _list_elements(inner, True, elements), ast.unparse(inner)
        return True
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and ast.unparse(stmt.value.func) == "layers.append":
        elements.append((stmt.value.args[0], conditional))
        return True
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and ast.unparse(stmt.value.func) == "layers.extend":
        elements += [(e, conditional) for e in stmt.value.args[0].elts]
        return True
    return False


def _starred(call: ast.Call) -> bool:
    return len(call.args) == 1 and isinstance(call.args[0], ast.Starred) and ast.unparse(call.args[0].value) == "layers"


def claimed_shapes(source: str) -> dict[str, list[tuple[list[tuple], tuple[int, ...]]]]:
    """For each generated class: (the paths a child may have below an instance, the shape its
    comment claims)."""
    lines = source.splitlines()
    claims: dict[str, list] = {}
    for cls in (n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)):
        items: list = []
        elements: list[tuple[ast.expr, bool]] = []
        init = next(f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "__init__")
        for stmt in init.body:
            if _list_elements(stmt, False, elements):
                continue
            call = stmt.value if isinstance(stmt, (ast.Expr, ast.Assign)) else None
            if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Name):
                continue  # a constructor argument kept on the instance (`self.use_add = use_add`), not a layer
            if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Attribute) and ast.unparse(stmt.targets[0].value) == "self":
                name, expr = stmt.targets[0].attr, stmt.value
            elif isinstance(call, ast.Call) and ast.unparse(call.func) == "self.add_module":
                name, expr = call.args[0].value, call.args[1]
            elif isinstance(call, ast.Call) and ast.unparse(call.func) == "super().__init__":
                items += _built_list(elements, lines, ()) if _starred(call) else _sequential_items(call, lines, ())
                continue
            else:
                continue
            if ast.unparse(expr) == "nn.Module()":
                continue
            items.append(([(name,)], _comment_shape(lines, stmt.end_lineno)))
            if isinstance(expr, ast.Call) and ast.unparse(expr.func) == "nn.Sequential":
                items += _built_list(elements, lines, (name,)) if _starred(expr) else _sequential_items(expr, lines, (name,))
        forward = [f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "forward"]
        for stmt in forward[0].body if forward else ():
            _comment_shape(lines, stmt.end_lineno)  # every line of forward says its shape
        claims[cls.name] = items
    return claims


def parameterised_classes(source: str) -> set[str]:
    """The classes for several configurations: a constructor that takes parameters, or shape
    comments that say they are one instance's (`# e.g. 4`: same code, other widths)."""
    lines = source.splitlines()
    return {cls.name for cls in ast.parse(source).body if isinstance(cls, ast.ClassDef)
            if any(isinstance(f, ast.FunctionDef) and f.name == "__init__" and len(f.args.args) > 1 for f in cls.body)
            or any("  # e.g. " in line for line in lines[cls.lineno - 1:cls.end_lineno])}


def _child(module: nn.Module, path: tuple) -> nn.Module:
    for part in path:
        if module is None:
            return None
        if isinstance(part, int):
            module = module[part] if isinstance(module, nn.Sequential) and part < len(module) else None
        else:
            module = getattr(module, part)
    return module


def assert_comments_are_true(source: str, net: nn.Module, input_shape: tuple[int, ...]) -> None:
    actual: dict[int, tuple[int, ...]] = {}
    hooks = [m.register_forward_hook(lambda m, a, out: actual.__setitem__(id(m), tuple(out.shape[1:]))) for m in net.modules()]
    with torch.no_grad():
        net.eval()(torch.zeros(2, *input_shape))
    for hook in hooks:
        hook.remove()
    claims = claimed_shapes(source)
    examples = parameterised_classes(source)  # their lines say the shapes of one of their instances
    held: dict[tuple, bool] = {}
    checked = 0
    for module in net.modules():
        name = type(module).__name__
        for paths, shape in claims.get(name, ()):
            children = [c for c in (_child(module, p) for p in paths) if c is not None]
            if not children and name in examples:  # an optional member this instance lacks
                continue
            path = paths[-1]
            true = any(tuple(c.shape) == shape if isinstance(c, nn.Parameter) else actual.get(id(c)) == shape for c in children)
            if name in examples:
                held[name, path] = held.get((name, path), False) or true
            else:
                assert true, (name, path)
            checked += 1
    assert all(held.values()), [k for k, v in held.items() if not v]  # each example is some instance's shape
    assert checked >= sum(1 for m in net.modules() if not list(m.children()))  # every layer's line was read


@pytest.mark.parametrize("name", ["lenet.yaml", "resnet18.yaml", "googlenet.yaml", "nin.yaml", "vgg11_small.yaml", "mlp_dropout.yaml",
                                  "imagenet/mobilenet_v2.yaml", "imagenet/mobilenet_v3_large.yaml", "imagenet/efficientnet_b0.yaml",
                                  "imagenet/regnet_y_400mf.yaml"])
def test_every_line_says_its_real_shape(name: str) -> None:
    graph = netspec.build_graph(ROOT / "specs" / name)
    source = to_source(graph)
    net = network_class(load_source(source))()
    assert_comments_are_true(source, net, graph.input_shape)


# --------------------------------------------------------------------------- structure

def test_resnet18_reads_like_torchvision() -> None:
    graph = netspec.build_graph(ROOT / "specs" / "resnet18.yaml")
    source = to_source(graph)
    net = assert_equivalent(graph)
    assert isinstance(net.b2, nn.Sequential) and isinstance(net.b1, nn.Sequential)
    assert type(net.b2[0]) is type(net.b2[1])  # identical blocks: one class
    assert type(net.b2[0]).__name__ == "Residual" and type(net.b3[0]).__name__.startswith("Residual")
    assert net.b3[0].conv3.stride == (2, 2)  # the downsampling shortcut is a named layer of its block
    classes = [n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)]
    assert classes == ["Residual", "Resnet18"]  # 7 block configurations, one block kind: one class (as BasicBlock)
    assert source.count("class Residual(") == 1
    assert "_put" not in source and "getattr(self, 'b" not in source
    assert "residual(out, stride, shortcut='auto'" in ast.get_docstring(next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)))
    # the configurations are constructor arguments; the 1×1-conv shortcut is an optional member
    assert "def __init__(self, in_channels: int, out: int, stride: int, conv3: bool) -> None:" in source
    assert "Residual(64, 128, 2, True),  # 128×12×12" in source and "Residual(128, 128, 1, False),  # 128×12×12" in source
    assert net.b3[1].conv3 is None and "conv3" not in dict(net.b3[1].named_children())
    assert isinstance(net.b4[0].conv3, nn.Conv2d) and net.b4[0].conv3.in_channels == 128 and net.b4[0].conv3.stride == (2, 2)
    assert [type(m).__name__ for m in net.b3[0].children()] == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "Conv2d", "ReLU"]


def test_mobilenet_v2_has_one_class_per_block_kind_and_structure() -> None:
    """conv_bn_relu6: one class for every kernel, stride and group count. inverted_residual:
    one class, as torchvision's InvertedResidual: the 1×1 expansion appended to the layer list
    only `if expand != 1:` (torchvision's `if expand_ratio != 1:`), and the residual add only
    some instances have a boolean on the instance (torchvision's `use_res_connect`)."""
    graph = netspec.build_graph(ROOT / "specs" / "imagenet" / "mobilenet_v2.yaml")
    source = to_source(graph)
    classes = [n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)]
    assert classes == ["ConvBnRelu6", "InvertedResidual", "MobilenetV2Imagenet"]
    kinds = {graph.scopes[p].kind for p in graph.scopes if graph.scopes[p].is_block}
    assert kinds == {"conv_bn_relu6", "inverted_residual"}
    assert "        if expand != 1:\n            layers.append(ConvBnRelu6(" in source
    assert "        self.conv = nn.Sequential(*layers)" in source
    assert "        if self.use_add:\n" in source and "        else:\n            return self.conv(x)" in source
    net = network_class(load_source(source))()
    blocks = [m for m in net.features]
    assert [type(m).__name__ for m in blocks[1:18]] == ["InvertedResidual"] * 17
    # torchvision's table (t, c, n, s) and its rules: a residual when stride 1 and in == out,
    # the expansion (so four layers in `conv`, else three) when t != 1
    want_res, want_len, width = [], [], 32
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            want_res.append((s if i == 0 else 1) == 1 and width == c)
            want_len.append(4 if t != 1 else 3)
            width = c
    assert [m.use_add for m in blocks[1:18]] == want_res
    assert [len(m.conv) for m in blocks[1:18]] == want_len
    assert blocks[1].conv[0][0].groups == 32 and blocks[2].conv[0][0].kernel_size == (1, 1)  # depthwise first where no expansion
    assert "ConvBnRelu6(3, 32, 3, 2, 1, 1),  # 32×112×112" in source
    torch.manual_seed(0)
    ejected = network_class(load_source(source))()
    compiled = netspec.compile(graph, seed=0)
    got, want = ejected.state_dict(), compiled.state_dict()
    assert list(got) == list(want) and all(torch.equal(got[k], want[k]) for k in want)
    ejected.eval(), compiled.eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(ejected(x), compiled(x))


# torchvision's mobilenet_v3_large table: (kernel, expanded, out, se, activation, stride)
MOBILENET_V3_LARGE = [
    (3, 16, 16, False, "RE", 1), (3, 64, 24, False, "RE", 2), (3, 72, 24, False, "RE", 1),
    (5, 72, 40, True, "RE", 2), (5, 120, 40, True, "RE", 1), (5, 120, 40, True, "RE", 1),
    (3, 240, 80, False, "HS", 2), (3, 200, 80, False, "HS", 1), (3, 184, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1), (3, 480, 112, True, "HS", 1), (3, 672, 112, True, "HS", 1),
    (5, 672, 160, True, "HS", 2), (5, 960, 160, True, "HS", 1), (5, 960, 160, True, "HS", 1),
]


def test_mobilenet_v3_is_one_block_class_with_the_activation_as_a_layer_class() -> None:
    """torchvision writes one Conv2dNormActivation (the activation a layer class, or None) and
    one InvertedResidual for all fifteen rows of its table: ReLU or hard-swish, with or without
    squeeze-excitation, with or without the expansion. The ejected source does the same."""
    graph = netspec.build_graph(ROOT / "specs" / "imagenet" / "mobilenet_v3_large.yaml")
    source = to_source(graph)
    classes = [n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)]
    assert classes == ["ConvBnAct", "Se", "Bneck", "MobilenetV3LargeImagenet"]
    assert "activation: type[nn.Module] | None" in source and "        if activation is not None:\n" in source
    assert "        if in_channels != expanded:\n" in source and "        if se:\n" in source
    net = assert_equivalent(graph)
    blocks = list(net.features)[1:16]
    width = 16
    for block, (kernel, expanded, out, se, act, stride) in zip(blocks, MOBILENET_V3_LARGE, strict=True):
        layers = list(block.block)
        assert len(layers) == 2 + (expanded != width) + se
        depthwise = layers[1 if expanded != width else 0]
        assert depthwise[0].kernel_size == (kernel, kernel) and depthwise[0].stride == (stride, stride)
        assert type(depthwise[2]) is (nn.ReLU if act == "RE" else nn.Hardswish)
        assert (type(layers[-2]).__name__ == "Se") is se
        assert len(layers[-1]) == 2 and layers[-1][0].out_channels == out  # the projection has no activation
        assert block.use_add is (stride == 1 and width == out)
        width = out


def test_efficientnet_b0_is_one_mbconv_class_and_stochastic_depth_goes_with_the_add() -> None:
    """torchvision's MBConv: the expansion `if expand_ratio != 1`, and stochastic depth on the
    residual branch; netspec keeps the stochastic depth layer only where the add is, so one
    boolean (the add's) says both."""
    graph = netspec.build_graph(ROOT / "specs" / "imagenet" / "efficientnet_b0.yaml")
    source = to_source(graph)
    classes = [n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)]
    assert classes == ["ConvBnAct", "Se", "Mbconv", "EfficientnetB0Imagenet"]
    assert "        self.stochastic_depth = nn.Dropout(p=drop_path) if use_add else None" in source
    assert "        if expand != 1:\n" in source
    net = assert_equivalent(graph)
    blocks = [b for stage in list(net.features)[1:8] for b in stage]
    assert len(blocks) == 16
    # torchvision's MBConv table: (expand_ratio, kernel, stride, in, out, layers)
    table = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
             (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]
    rows = [(t, k, s if i == 0 else 1, c_in if i == 0 else c_out, c_out) for t, k, s, c_in, c_out, n in table for i in range(n)]
    total = len(rows)
    for index, (block, (t, k, s, c_in, c_out)) in enumerate(zip(blocks, rows, strict=True)):
        assert len(block.block) == 3 + (t != 1)
        residual = s == 1 and c_in == c_out
        assert block.use_add is residual and (block.stochastic_depth is not None) is residual
        if residual:  # torchvision: stochastic_depth_prob * block_id / total_blocks
            assert block.stochastic_depth.p == pytest.approx(0.2 * index / total)


def test_torchvision_resnet18_is_one_basic_block_class_with_an_optional_downsample() -> None:
    """The shortcut of several lines (an nn.Sequential) is optional as a whole, and the weights
    and outputs stay netspec.compile's (the zoo test checks this too, this one the structure)."""
    graph = netspec.build_graph(ROOT / "specs" / "imagenet" / "resnet18.yaml")
    source = to_source(graph)
    assert [n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)] == ["Basic", "Resnet18Imagenet"]
    assert "def __init__(self, in_channels: int, planes: int, stride: int, downsample: bool) -> None:" in source
    assert "        ) if downsample else None" in source
    net = assert_equivalent(graph)
    assert isinstance(net.layer2[0].downsample, nn.Sequential) and net.layer2[0].downsample[0].stride == (2, 2)
    assert net.layer2[1].downsample is None and net.layer1[0].downsample is None
    keys = list(net.state_dict())
    assert "layer2.0.downsample.0.weight" in keys and not any(k.startswith("layer2.1.downsample") for k in keys)


def test_a_value_forward_needs_is_kept_on_the_instance() -> None:
    """ShuffleNet's channel shuffle reshapes by the channel count: a constructor parameter
    that forward reads from `self` (as torchvision's own classes keep `self.stride`)."""
    graph = netspec.build_graph(ROOT / "specs" / "imagenet" / "shufflenet_v2_x1_0.yaml")
    source = to_source(graph)
    assert source.count("class ShuffleDown(") == 1 and "class ShuffleDown2" not in source
    net = network_class(load_source(source))()
    assert net.stage2[0].branch1_out_channels == 58 and net.stage3[0].branch1_out_channels == 116


def test_a_purely_positional_network_is_an_nn_sequential() -> None:
    graph = netspec.build_graph(ROOT / "specs" / "lenet.yaml")
    net = assert_equivalent(graph)
    assert isinstance(net, nn.Sequential) and isinstance(net[0], nn.Conv2d) and len(net) == 12


STRUCTURES = {
    "skip across groups": """\
        name: skips
        input: [3, 8, 8]
        layers:
          - {op: conv2d, name: stem, out: 4, kernel: 3, padding: 1}
          - op: sequential
            name: body
            layers:
              - {op: conv2d, out: 4, kernel: 3, padding: 1}
              - relu
              - {op: conv2d, name: inner, out: 4, kernel: 1}
          - {op: add, name: join, from: [body, stem]}
          - {op: concat, name: cat, from: [join, stem, body]}
          - {op: conv2d, out: 2, kernel: 1, init: {weight: uniform, a: 0.3, bias: zeros}}
        """,
    "nested blocks and per-layer init": """\
        name: nested
        input: [2, 6, 6]
        init: {weight: kaiming_normal}
        blocks:
          unit:
            params: {out: int}
            layers:
              - {op: conv2d, name: conv, out: $out, kernel: 3, padding: 1, init: {weight: normal, std: 0.2, mean: 0.1}}
              - {op: batchnorm, name: bn}
              - relu
          pair:
            params: {out: int}
            layers:
              - {op: unit, name: first, out: $out}
              - {op: unit, name: second, out: $out}
              - {op: add, name: sum, from: [first, second]}
        layers:
          - {op: pair, name: p, out: 3, repeat: 2}
          - {op: parallel, name: two, merge: add, branches: {a: [{op: pair, out: 3}], b: [identity]}}
          - global_avgpool
          - flatten
          - {op: linear, out: 4, init: xavier_normal}
        """,
    "empty branches": """\
        name: empty
        input: [4]
        layers:
          - {op: parallel, name: twice, merge: add, branches: {a: [], b: []}}
          - {op: parallel, merge: concat, branches: {a: [], b: [relu]}}
        """,
    "a branch with a named layer": """\
        name: branchy
        input: [5]
        layers:
          - op: parallel
            name: heads
            merge: concat
            branches:
              left: [{op: linear, name: proj, out: 3}, tanh]
              right: [{op: linear, out: 2}]
          - {op: linear, out: 1, name: out}
        """,
    "list elements only some blocks have, in a member only some have": """\
        name: optional_lists
        input: [2, 6, 6]
        blocks:
          unit:
            params: {out: int, act: {type: bool, default: false}}
            layers:
              - op: sequential
                name: body
                layers:
                  - {op: conv2d, out: $out, kernel: 1, when: "out != block_in_channels"}
                  - {op: conv2d, out: $out, kernel: 3, padding: 1}
                  - {op: relu, when: act}
              - op: sequential
                name: side
                from: input
                when: "out != block_in_channels"
                layers:
                  - {op: conv2d, out: $out, kernel: 1}
                  - {op: relu, when: act}
              - {op: add, from: [body, side]}
        layers:
          - {op: unit, out: 3}
          - {op: unit, out: 3, act: true}
          - {op: unit, out: 4, act: true}
          - {op: unit, out: 4}
          - global_avgpool
          - flatten
        """,
}


@pytest.mark.parametrize("name", STRUCTURES)
def test_unusual_structures_eject_exactly(name: str) -> None:
    text = textwrap.dedent(STRUCTURES[name])
    graph = netspec.build_graph(netspec.load("s.yaml", text=text))
    source = to_source(graph)
    net = assert_equivalent(graph, seed=4)
    assert_comments_are_true(source, net, graph.input_shape)


def test_nested_blocks_share_one_class_per_kind() -> None:
    graph = netspec.build_graph(netspec.load("s.yaml", text=textwrap.dedent(STRUCTURES["nested blocks and per-layer init"])))
    net = assert_equivalent(graph)
    assert type(net.p[0].second) is type(net.p[1].first) is type(net.p[1].second)  # all 3 -> 3 channels at 6×6
    assert type(net.p[0].first) is type(net.p[0].second)  # 2 -> 3 channels: the same class, other arguments
    assert net.p[0].first.conv.in_channels == 2 and net.p[0].second.conv.in_channels == 3
    assert type(net.p[0]).__name__ == "Pair" and type(net.p[0].first).__name__ == "Unit"


# --------------------------------------------------------------------------- random networks

from test_hypothesis import network  # noqa: E402  (the property tests' generator of random specs)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(network())
def test_random_networks_eject_exactly(spec: dict) -> None:
    try:
        graph = netspec.build_graph(netspec.load("r.yaml", text=yaml.safe_dump(spec, sort_keys=False)))
    except SpecError:
        return  # refused networks are the other property test's business
    source = to_source(graph)
    net = assert_equivalent(graph, seed=2)
    assert_comments_are_true(source, net, graph.input_shape)


def test_a_group_read_from_inside_stays_a_plain_container() -> None:
    """The language gives every group one input and one output; a graph where a later layer
    reads a group's inner layer (built by hand) still ejects exactly: the group becomes a plain
    nn.Module holding its layers, and the network's forward reaches into it."""
    text = "name: h\ninput: [4]\nlayers:\n  - {op: sequential, name: g, layers: [{op: linear, out: 3, name: a}, {op: linear, out: 3, name: b}]}\n  - {op: add, name: s, from: [g, g]}\n"
    graph = netspec.build_graph(netspec.load("h.yaml", text=text))
    graph.node("s").inputs = ["g.a", "g.b"]
    source = to_source(graph)
    assert "self.g = nn.Module()" in source and "self.g.a(x)" in source
    assert_equivalent(graph)


def test_vgg_blocks_of_one_and_two_convs_are_one_class() -> None:
    """D2L's vgg_block(num_convs, ...) is one function for every row of conv_arch; the ejected
    VggBlock is one class too, its second conv appended `if convs != 1:` and reading the
    block's width, not its input's."""
    graph = netspec.build_graph(ROOT / "specs" / "vgg11.yaml")
    source = to_source(graph)
    assert [n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)] == ["VggBlock", "Vgg11"]
    assert "        if convs != 1:\n            layers.append(nn.Sequential(\n                nn.Conv2d(out, out, (3, 3)" in source
    net = assert_equivalent(graph)
    conv_arch = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))  # D2L 7.2
    width = 1
    for block, (convs, out) in zip(list(net)[:5], conv_arch, strict=True):
        groups = [m for m in block if isinstance(m, nn.Sequential)]
        assert len(groups) == convs and isinstance(block[-1], nn.MaxPool2d)
        assert [g[0].in_channels for g in groups] == [width] + [out] * (convs - 1)
        assert all(g[0].out_channels == out for g in groups)
        width = out


def test_regnet_y_block_is_one_class_with_the_projection_computed_first() -> None:
    """torchvision's ResBottleneckBlock: `proj` only where the width or stride changes (each
    stage's first block), and forward computes `self.proj(x)` before `self.f(x)`; netspec's
    block says the same, so the blocks with and without `proj` are one class whose forward
    passes the input on where `proj` is None."""
    graph = netspec.build_graph(ROOT / "specs" / "imagenet" / "regnet_y_400mf.yaml")
    source = to_source(graph)
    assert [n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)] == ["ConvBnAct", "Se", "YBlock", "RegnetY400mfImagenet"]
    assert "        out = self.proj(x) if self.proj is not None else x" in source
    net = assert_equivalent(graph)
    # torchvision's AnyStage: an nn.Sequential of blocks named block{stage}-{i}
    assert isinstance(net.trunk_output, nn.Sequential) and isinstance(net.trunk_output.block2, nn.Sequential)
    assert net.trunk_output.block2[1] is getattr(net.trunk_output.block2, "block2-1")
    stages = list(net.trunk_output.children())
    # torchvision's BlockParams for regnet_y_400mf: stage widths and depths
    assert [len(list(s.children())) for s in stages] == [1, 3, 6, 6]
    width = 32
    for stage, out in zip(stages, [48, 104, 208, 440], strict=True):
        for index, block in enumerate(stage.children()):
            assert type(block).__name__ == "YBlock"
            assert (block.proj is not None) is (index == 0)  # width_in != width_out or stride != 1
            assert block.f.a[0].in_channels == (width if index == 0 else out) and block.f.c[0].out_channels == out
            calls: list[str] = []
            hooks = [m.register_forward_pre_hook(lambda m, a, name=name: calls.append(name))
                     for name, m in (("proj", block.proj), ("f", block.f)) if m is not None]
            with torch.no_grad():
                block.eval()(torch.zeros(1, width if index == 0 else out, 16, 16))
            for hook in hooks:
                hook.remove()
            assert calls == (["proj", "f"] if index == 0 else ["f"])
        width = out


PROJECTION_FIRST = """\
    name: s
    input: [3, 8, 8]
    blocks:
      unit:
        params: {out: int}
        layers:
          - {op: conv2d, name: proj, out: $out, kernel: 1, when: "block_in_channels != out"}
          - op: sequential
            name: body
            from: input
            layers:
              - {op: conv2d, out: $out, kernel: 3, padding: 1}
              - relu
          - {op: add, name: add, from: [proj, body]}
          - {op: relu, name: act}
    layers:
    {units}
      - global_avgpool
      - flatten
    """


@pytest.mark.parametrize("widths", [[3, 5, 5, 7], [5, 5, 7, 7], [3, 3, 5]],
                         ids=["first without the projection", "first with it", "two without first"])
def test_a_projection_computed_before_the_branch_is_one_class_either_way(widths: list[int]) -> None:
    """Whichever instance comes first (the writer renames the forward of the instances without
    the member to the names of those with it), one class, the same weights and outputs, and
    every line's shape comment true."""
    units = "\n".join(f"  - {{op: unit, out: {w}}}" for w in widths)
    graph = netspec.build_graph(netspec.load("s.yaml", text=textwrap.dedent(PROJECTION_FIRST).replace("{units}", units)))
    source = to_source(graph)
    assert [n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)] == ["Unit", "S"]
    net = assert_equivalent(graph, seed=3)
    assert_comments_are_true(source, net, graph.input_shape)
    widths_in = [3] + widths[:-1]
    assert [net[k].proj is not None for k in range(len(widths))] == [a != b for a, b in zip(widths_in, widths)]


def test_named_chains_are_named_nn_sequentials_as_in_torchvision() -> None:
    """torchvision's DenseNet `features` and ViT's `encoder.layers` / `heads` are nn.Sequential
    of named children (OrderedDict); the ejected source writes them so, with no class of their
    own, and indexing reaches the same modules as the names."""
    graph = netspec.build_graph(ROOT / "specs" / "imagenet" / "densenet121.yaml")
    source = to_source(graph)
    assert source.count("\nfrom collections import OrderedDict\n") == 1
    assert [n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)] == ["DenseLayer", "TorchvisionTransition", "Densenet121Imagenet"]
    net = assert_equivalent(graph)
    assert isinstance(net.features, nn.Sequential)
    assert [name for name, _ in net.features.named_children()] == [  # torchvision's densenet.py
        "conv0", "norm0", "relu0", "pool0", "denseblock1", "transition1", "denseblock2", "transition2",
        "denseblock3", "transition3", "denseblock4", "norm5"]
    for k, layers in enumerate((6, 12, 24, 16), start=1):  # densenet121's block_config
        block = getattr(net.features, f"denseblock{k}")
        assert isinstance(block, nn.Sequential)
        assert [name for name, _ in block.named_children()] == [f"denselayer{i}" for i in range(1, layers + 1)]
        assert block[0] is block.denselayer1
    graph = netspec.build_graph(ROOT / "specs" / "imagenet" / "vit_b_16.yaml")
    source = to_source(graph)
    assert [n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)] == ["EncoderBlock", "Encoder", "VitB16Imagenet"]
    with torch.device("meta"):
        net = network_class(load_source(source))()
    assert isinstance(net.encoder.layers, nn.Sequential) and isinstance(net.heads, nn.Sequential)
    assert [name for name, _ in net.encoder.layers.named_children()] == [f"encoder_layer_{i}" for i in range(12)]
    assert net.heads[0] is net.heads.head and net.heads.head.out_features == 1000


def test_a_group_or_network_named_like_an_import_does_not_shadow_it() -> None:
    """A group is a class named after itself (`encoder`: `Encoder`); one named `ordered_dict`
    and a network named so do not hide the OrderedDict a named nn.Sequential needs."""
    text = textwrap.dedent("""\
        name: ordered_dict
        input: [3, 6, 6]
        layers:
          - op: sequential
            name: ordered_dict
            layers:
              - {op: conv2d, out: 3, kernel: 3, padding: 1}
              - {op: add, from: [0, input]}
          - op: sequential
            name: named
            layers:
              - {op: conv2d, name: first, out: 2, kernel: 1}
              - {op: relu, name: act}
        """)
    graph = netspec.build_graph(netspec.load("s.yaml", text=text))
    source = to_source(graph)
    assert "from collections import OrderedDict" in source
    assert "class OrderedDict(" not in source and "class OrderedDictNet(" in source
    assert_equivalent(graph)


# Blocks whose members only some instances have, in every order of three instances: the
# writer's renaming (a member absent passes its input on) must only merge forwards that
# compute the same (review of the RegNet change: two optional members writing one name, a
# member that is not `out = self.m(x)`).
OPTIONAL_FLOWS = {
    "projection, add optional": """
      - {op: conv2d, name: proj, out: 3, kernel: 1, when: p}
      - {op: conv2d, name: f, from: input, out: 3, kernel: 1}
      - {op: add, name: add, from: [proj, f], when: q}
      - {op: relu, name: act}""",
    "projection and a second branch": """
      - {op: conv2d, name: proj, out: 3, kernel: 1, when: p}
      - {op: conv2d, name: g, from: input, out: 3, kernel: 1, when: q}
      - {op: conv2d, name: f, from: input, out: 3, kernel: 1}
      - {op: add, name: add, from: [proj, g, f]}""",
    "two optional members writing one name": """
      - {op: conv2d, name: proj, out: 3, kernel: 1, when: p}
      - {op: relu, name: r, when: q}
      - {op: conv2d, name: f, from: input, out: 3, kernel: 1}
      - {op: add, name: add, from: [r, f]}""",
    "an optional member reading an optional one": """
      - {op: conv2d, name: proj, out: 3, kernel: 1, when: p}
      - {op: conv2d, name: f, from: input, out: 3, kernel: 1}
      - {op: conv2d, name: h, from: proj, out: 3, kernel: 1, when: q}
      - {op: add, name: add, from: [h, f]}""",
    "a second optional add": """
      - {op: conv2d, name: proj, out: 3, kernel: 1, when: p}
      - {op: conv2d, name: f, from: input, out: 3, kernel: 1}
      - {op: add, name: add, from: [proj, f]}
      - {op: add, name: add2, from: [add, input], when: q}""",
    "an optional member that is not a call": """
      - {op: layer_scale, name: ls, when: p}
      - {op: conv2d, name: f, from: input, out: 3, kernel: 1, when: q}
      - {op: add, name: add, from: [ls, f]}""",
}


@pytest.mark.parametrize("name", OPTIONAL_FLOWS)
def test_optional_members_in_every_order_eject_exactly(name: str) -> None:
    import itertools

    built = 0
    for order in itertools.permutations([(True, True), (True, False), (False, True), (False, False)], 3):
        units = "\n".join(f"  - {{op: unit, p: {str(p).lower()}, q: {str(q).lower()}}}" for p, q in order)
        text = f"name: s\ninput: [3, 8, 8]\nblocks:\n  unit:\n    params: {{p: bool, q: bool}}\n    layers:{OPTIONAL_FLOWS[name]}\nlayers:\n{units}\n"
        try:
            graph = netspec.build_graph(netspec.load("s.yaml", text=text))
        except SpecError:
            continue  # an instance leaving a layer unused (the add off, the projection on)
        built += 1
        source = to_source(graph)
        net = assert_equivalent(graph, seed=5)
        assert_comments_are_true(source, net, graph.input_shape)
    assert built >= 6


def test_a_named_chain_with_a_child_called_like_a_sequential_method_stays_a_class() -> None:
    text = "name: s\ninput: [3, 6, 6]\nlayers:\n  - {op: sequential, name: g, layers: [{op: conv2d, name: pop, out: 4, kernel: 1}, {op: relu, name: append}]}\n"
    graph = netspec.build_graph(netspec.load("s.yaml", text=text))
    net = assert_equivalent(graph)
    assert not isinstance(net.g, nn.Sequential) and isinstance(net.g.pop, nn.Conv2d)


def test_a_group_named_as_a_block_kind_keeps_its_own_class() -> None:
    text = textwrap.dedent("""\
        name: s
        input: [3, 6, 6]
        blocks:
          body:
            params: {out: int}
            layers:
              - {op: conv2d, name: conv, out: $out, kernel: 1}
              - {op: add, from: [conv, input]}
        layers:
          - {op: body, out: 3}
          - op: sequential
            name: body
            layers:
              - {op: conv2d, name: conv, out: 3, kernel: 1}
              - {op: add, from: [conv, input]}
        """)
    graph = netspec.build_graph(netspec.load("s.yaml", text=text))
    net = assert_equivalent(graph)
    block, group = getattr(net, "0"), net.body
    assert type(block) is not type(group) and type(group).__doc__ is None  # no "body(out=3)" on the group
    assert type(block).__doc__.startswith("body(")
