"""Custom ops come only from Python: registered ops are validated, shaped, compiled and
drawn like built-in ones, and a spec can never name code."""
from __future__ import annotations

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
    del registry.ops()[op.name]  # later test files (docs/ops.md's catalogue) see the built-ins only
    registry._version += 1


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


def test_ops_from_installed_plugins_are_found_when_a_spec_names_them(monkeypatch) -> None:
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
    try:
        netspec.build_graph(netspec.load("k.yaml", text=known))
        assert looked == []  # specs of known ops never scan installed packages
        graph = netspec.build_graph(netspec.load("p.yaml", text="name: p\ninput: [2]\nlayers: [plugin_double]\n"))
        assert looked == ["netspec.ops"] and graph.node("0").op == "plugin_double"
    finally:  # the plugin's op leaves with the test (docs/ops.md's catalogue is of the built-ins)
        registry.ops().pop("plugin_double", None)
        registry._version += 1
