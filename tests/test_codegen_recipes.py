"""Ejected source of the ops built by an `Emit` recipe (chunk, channel_shuffle, permute,
stochastic_depth, layer_scale, layer_norm2d) and of the blocks using them: readable
expressions (`self.layer_scale * out`, `torch.permute(...)`), true shape comments, the
compiled module's state_dict names and weights, the same outputs in train and eval mode; and
nothing but validated names and literals reach the code.
"""
from __future__ import annotations

import ast
import operator
import os

import pytest
import torch
import yaml

import netspec
from netspec.compiler.codegen.source import _recipe, to_source
from netspec.compiler.codegen.torch_fx import Recipe, Step, Value
from netspec.errors import NetspecError
from tests.test_codegen_readable import assert_comments_are_true, assert_equivalent, load_source, network_class

SPEC = {
    "name": "recipes",
    "input": [8, 8, 8],
    "layers": [
        {"op": "convnext_block", "layer_scale": 0.5, "drop_path": 0.2},
        {"op": "channel_shuffle", "groups": 2},
        {"op": "chunk", "chunks": 2, "index": 1},
        {"op": "stochastic_depth", "p": 0.3, "mode": "batch"},
        {"op": "permute", "dims": [1, 2, 0]},
        {"op": "permute", "dims": [2, 0, 1]},
        {"op": "shufflenet_unit", "out": 8},
        {"op": "shufflenet_unit", "out": 8, "stride": 2},
        {"op": "layer_norm2d", "eps": 0.001},
        {"op": "layer_scale", "init_value": 0.25},
    ],
}


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "recipes.yaml"
    path.write_text(yaml.safe_dump(SPEC), encoding="utf-8")
    return netspec.build_graph(path)


def test_recipes_eject_the_compiled_network(graph) -> None:
    ejected = assert_equivalent(graph, seed=3)  # names, weights bitwise, outputs in eval mode
    compiled = netspec.compile(graph, seed=3)
    ejected.load_state_dict(compiled.state_dict(), strict=True)
    x = torch.randn(4, *graph.input_shape, generator=torch.Generator().manual_seed(1))
    compiled.train(), ejected.train()
    torch.manual_seed(9)
    want = compiled(x)
    torch.manual_seed(9)
    assert torch.equal(ejected(x), want)  # the same stochastic-depth masks drawn in the same order
    assert "0.layer_scale" in compiled.state_dict() and "9" in compiled.state_dict()


def test_recipes_read_as_plain_torch(graph) -> None:
    source = to_source(graph)
    assert "self.layer_scale = nn.Parameter(torch.full((8, 1, 1), 0.5))  # 8×1×1" in source
    assert "out = self.layer_scale * out  # 8×8×8" in source
    assert "self.stochastic_depth = nn.Dropout(p=0.2)  # 1×1×1" in source  # the mask it sees
    assert ".new_ones((out.size(0), 1, 1, 1))" in source and ".new_ones((1, 1, 1, 1))" in source
    assert "torch.permute(x, [0, 2, 3, 1])" in source and "torch.narrow(x, 1, 4, 4)" in source
    assert "torch.flatten(torch.transpose(torch.unflatten(" in source
    assert "self.register_parameter('9', nn.Parameter(torch.full((8, 1, 1), 0.25)))" in source
    tree = ast.parse(source)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert names <= {"torch", "nn", "self", "x", "out", "m", "getattr", "super", "float", "x1", "x2", "branch1", "branch2"} | {
        n.name for n in tree.body if isinstance(n, ast.ClassDef)
    }, names


def test_recipe_lines_say_their_real_shapes(graph) -> None:
    source = to_source(graph)
    net = network_class(load_source(source))()
    assert_comments_are_true(source, net, graph.input_shape)


@pytest.mark.parametrize(
    "step",
    [
        Step("method", "size(0); import os; os", (Value(0),)),  # a method name that is code
        Step("call", os.system, ("echo hi",)),  # a function outside torch
        Step("call", torch.narrow, (Value(0),), {"dim); import os #": 1}),  # a keyword that is code
    ],
)
def test_recipes_write_only_validated_names(step: Step) -> None:
    with pytest.raises(NetspecError):
        _recipe(Recipe(step, None), ["x"], "self.op")


def test_recipe_text_arguments_stay_literals() -> None:
    hostile = "'); import os; os.system('echo owned') #"
    text = _recipe(Recipe(Step("call", operator.mul, (Value(0), Step("call", torch.full, ((2,), hostile)))), None), ["x"], "self.op")
    call = ast.parse(text, mode="eval").body.right
    assert isinstance(call, ast.Call) and call.args[1].value == hostile


# ---------------------------------------------------------------- sequence ops (tuples, keywords, dtypes, shared steps)
SEQUENCE_SPEC = {
    "name": "sequence_recipes",
    "input": {"tokens": 6, "vocab": 10},
    "layers": [
        {"op": "embedding", "dim": 8, "name": "emb"},
        {"op": "positional_encoding", "name": "pos"},
        {"op": "multihead_attention", "heads": 2, "causal": True, "dropout": 0.1, "name": "attn"},
        {"op": "multihead_attention", "heads": 2, "from": ["attn", "input"], "pad_id": 3, "name": "pad"},
        {"op": "lstm", "hidden": 4, "layers": 2, "bidirectional": True, "output": "last", "name": "lstm"},
    ],
}


def test_sequence_recipes_eject_readable_and_equal(tmp_path) -> None:
    path = tmp_path / "seq.yaml"
    path.write_text(yaml.safe_dump(SEQUENCE_SPEC), encoding="utf-8")
    graph = netspec.build_graph(path)
    source = to_source(graph)
    # the module's keywords, its tuple indexed, dtypes as torch's names, the angles computed once
    assert "self.attn(out, out, out, need_weights=False, attn_mask=torch.ones(6, 6, dtype=torch.bool" in source
    assert "key_padding_mask=x == 3)[0].contiguous()" in source
    assert "self.lstm(out)[1][0]" in source and "torch.arange(6, dtype=torch.float32)" in source
    assert "torch.stack([torch.sin(h), torch.cos(h)], -1)" in source and source.count("torch.arange(6") == 1
    assert "kdim" not in source  # the queries' width is nn.MultiheadAttention's default
    compiled = netspec.compile(graph, seed=2)
    ejected = network_class(load_source(source))()
    ejected.load_state_dict(compiled.state_dict(), strict=True)
    x = torch.randint(0, 10, (3, 6), generator=torch.Generator().manual_seed(1))
    for train in (False, True):
        compiled.train(train), ejected.train(train)
        torch.manual_seed(4)
        want = compiled(x)
        torch.manual_seed(4)
        assert torch.equal(ejected(x), want)


def test_dtypes_are_written_by_name_and_text_stays_text() -> None:
    from netspec.compiler.codegen.source import literal

    assert literal(torch.float32) == "torch.float32" and literal(torch.bool) == "torch.bool"
    assert literal("torch.float32") == "'torch.float32'"  # a spec's text is never a name


@pytest.mark.parametrize("name", ["device; import os", "__class__.__init__", 3])
def test_recipe_attributes_are_validated_names(name) -> None:
    with pytest.raises(NetspecError):
        _recipe(Recipe(Step("call", getattr, (Value(0), name)), None), ["x"], "self.op")


def test_a_shared_step_is_computed_once_or_refused() -> None:
    shared = Step("call", torch.sin, (Value(0),))
    recipe = Recipe(Step("call", operator.add, (shared, shared)), None)
    with pytest.raises(NetspecError):  # as one expression it would be computed twice
        _recipe(recipe, ["x"], "self.op")
    lines: list[str] = []
    text = _recipe(recipe, ["x"], "self.op", lambda e: lines.append(f"h = {e}") or "h")
    assert lines == ["h = torch.sin(x)"] and text == "h + h"
