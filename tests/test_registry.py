"""Custom ops come only from Python: registered ops are validated, shaped, compiled and
drawn like built-in ones, and a spec can never name code."""
from __future__ import annotations

import re

import math

import pytest
import torch
from torch import nn

import netspec
from netspec.compiler import registry
from netspec.compiler.ops.layers import NoParams
from netspec.compiler.registry import OpDef
from netspec.compiler.schema_base import Model, PosInt
from netspec.compiler.shapes import ShapeError, require_image
from netspec.errors import SpecError


class SpaceToDepthParams(Model):
    """Fold `block`×`block` pixel squares into channels."""

    block: PosInt = 2


def _space_to_depth_shape(attrs, inputs):
    c, h, w = require_image(inputs[0], "space_to_depth")
    b = attrs["block"]
    if h % b or w % b:
        raise ShapeError(f"height and width must be multiples of {b}, got {h}×{w}")
    return (c * b * b, h // b, w // b)


@pytest.fixture(scope="module", autouse=True)
def space_to_depth():
    """A custom op registered after netspec's schema was built (the hard case)."""
    import netspec.compiler.schema  # noqa: F401  (built before the registration)

    op = registry.register(
        OpDef(
            name="space_to_depth",
            params=SpaceToDepthParams,
            shape=_space_to_depth_shape,
            torch=lambda a, ins: nn.PixelUnshuffle(a["block"]),
            family="reshape",
            label=lambda a: f"space→depth /{a['block']}",
            doc="torch.nn.PixelUnshuffle",
        )
    )
    yield op
    registry.unregister("space_to_depth")


SPEC = """
name: custom
input: [3, 8, 8]
layers:
  - {op: space_to_depth, block: 2}
  - {op: conv2d, out: 4, kernel: 1}
  - flatten
"""


def test_a_registered_op_is_validated_shaped_and_compiled() -> None:
    graph = netspec.build_graph(netspec.load("custom.yaml", text=SPEC))
    assert graph.node("0").shape == (12, 4, 4)
    model = netspec.compile(graph)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(model.get_submodule("0")(x), nn.functional.pixel_unshuffle(x, 2))
    assert tuple(model(x).shape[1:]) == graph.output_shape == (4 * 4 * 4,)


def test_its_parameters_and_shape_rule_give_located_errors() -> None:
    with pytest.raises(SpecError, match=r"custom.yaml:5:\d+: .*unknown key 'blok' \(did you mean 'block'\?\)"):
        netspec.load("custom.yaml", text=SPEC.replace("block: 2", "blok: 2"))
    with pytest.raises(SpecError, match=r"custom.yaml:5:\d+: space_to_depth '0': height and width must be multiples of 3"):
        netspec.build_graph(netspec.load("custom.yaml", text=SPEC.replace("block: 2", "block: 3")))


def test_unknown_ops_suggest_registered_ones() -> None:
    with pytest.raises(SpecError, match=r"did you mean 'space_to_depth'"):
        netspec.load("custom.yaml", text=SPEC.replace("op: space_to_depth", "op: space_to_dept"))


def test_an_op_cannot_be_registered_twice_by_accident(space_to_depth) -> None:
    with pytest.raises(ValueError, match="already registered"):
        registry.register(space_to_depth)


def test_a_spec_cannot_import_code() -> None:
    for text in ("op: os.system", "op: __import__", "op: torch.nn.ReLU"):
        with pytest.raises(SpecError):
            netspec.build_graph(netspec.load("x.yaml", text=f"name: x\ninput: [2]\nlayers:\n  - {{{text}}}\n"))


def test_the_json_schema_knows_registered_ops() -> None:
    from netspec.compiler.schema import json_schema

    assert "SpaceToDepthLayer" in json_schema()["$defs"]


@pytest.fixture
def throwaway_ops():
    """Ops a test registers are removed afterwards, so other tests see the real registry."""
    before = set(registry.ops())
    yield
    for name in set(registry.ops()) - before:
        registry.unregister(name)


def test_ops_from_installed_plugins_are_found_when_a_spec_names_them(monkeypatch, throwaway_ops) -> None:
    """A package's `netspec.ops` entry point is loaded the first time a spec names an op
    nobody knows; then the spec validates and compiles."""
    import importlib.metadata

    def register_plugin_ops() -> None:
        registry.register(
            OpDef(name="plugin_double", params=NoParams, shape=lambda a, ins: ins[0], family="activation",
                  label=lambda a: "×2", doc="doubles its input",
                  torch=lambda a, ins: __import__("torch").nn.Identity())
        )

    class EntryPoint:
        name = "demo"

        def load(self):
            return register_plugin_ops

    looked: list[str] = []

    def fake_entry_points(group: str):
        looked.append(group)
        return [EntryPoint()]

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    known = "name: k\ninput: [2]\nlayers: [relu]\n"
    netspec.build_graph(netspec.load("k.yaml", text=known))
    assert looked == []  # specs of known ops never scan installed packages
    graph = netspec.build_graph(netspec.load("p.yaml", text="name: p\ninput: [2]\nlayers: [plugin_double]\n"))
    assert looked == ["netspec.ops"] and graph.node("0").op == "plugin_double"


def test_late_registration_rebuilds_in_place_without_reloading_the_schema(throwaway_ops) -> None:
    """The layer union is rebuilt, not the module: classes other modules imported stay the
    ones that validate, and module state survives."""
    import netspec.compiler.pipeline as pipeline
    import netspec.compiler.schema as schema

    spec_class, block_def, adapter_type = schema.Spec, schema.BlockDef, schema.LayerItem
    registry.register(
        OpDef(name="late_negate", params=NoParams, shape=lambda a, ins: ins[0], family="activation",
              label=lambda a: "neg", doc="negates its input", torch=lambda a, ins: __import__("torch").nn.Identity())
    )
    loaded = netspec.load("late.yaml", text="name: late\ninput: [2]\nlayers: [late_negate, {op: late_negate}]\n")
    assert isinstance(loaded.spec, spec_class) and schema.Spec is spec_class is pipeline.Spec
    assert schema.BlockDef is block_def and schema.LayerItem is adapter_type
    assert [n.op for n in netspec.build_graph(loaded).ops()] == ["late_negate", "late_negate"]
    with pytest.raises(SpecError, match=r"late.yaml:4:\d+: layers\[0\].x: unknown key .x."):
        netspec.load("late.yaml", text="name: late\ninput: [2]\nlayers:\n  - {op: late_negate, x: 1}\n")
    # inside a block body too (BlockDef is rebuilt as well as Spec)
    text = "name: late\ninput: [2]\nblocks:\n  b:\n    layers: [{op: late_negate, y: 2}]\nlayers: [b]\n"
    with pytest.raises(SpecError, match=r"unknown key 'y'"):
        netspec.load("late.yaml", text=text)


def test_a_registered_merge_op_is_a_parallel_merge(throwaway_ops) -> None:
    """`parallel`'s `merge:` takes any registered op that takes several inputs."""
    import operator

    from netspec.compiler.registry import FunctionCall

    registry.register(
        OpDef(name="late_mul", params=NoParams, shape=lambda a, ins: ins[0], family="merge", label=lambda a: "×",
              doc="element-wise product", torch=lambda a, ins: FunctionCall(operator.mul, fold=True), min_inputs=2, max_inputs=8)
    )
    text = "name: m\ninput: [3]\nlayers:\n  - {op: parallel, merge: late_mul, branches: [[{op: linear, out: 3}], [relu]]}\n"
    graph = netspec.build_graph(netspec.load("m.yaml", text=text))
    assert graph.node(graph.output).op == "late_mul"
    model = netspec.compile(graph)
    x = torch.randn(4, 3)
    expected = model.get_submodule("0.0.0")(x) * torch.relu(x)
    assert torch.allclose(model(x), expected)
    merges = ", ".join(repr(name) for name, op in sorted(registry.ops().items()) if op.max_inputs > 1)
    assert "'late_mul'" in merges
    with pytest.raises(SpecError, match=re.escape(f"merge: expected one of {merges}, got 'relu'")):
        netspec.load("m.yaml", text=text.replace("late_mul", "relu"))
