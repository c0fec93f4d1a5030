"""`variants:`: one spec, a model family (width/depth multipliers, input size), `--variant`.

Truths: torchvision's `_make_divisible` (written out in tests/twins_vision.py) for the
rounding; for the family members, hand-written torch modules of each width; for the CLI,
the saved weights of a trained variant, which load only into that variant.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from hypothesis import given, strategies as st
from torch import nn

import netspec
from netspec.cli import main
from netspec.compiler.expr import ExprError, evaluate
from netspec.errors import SpecError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shared_data import FASHION_MNIST, needs_fashion_mnist  # noqa: E402
from twins_vision import make_divisible  # noqa: E402

FAMILY = """
name: family
input: [1, 28, 28]
variants:
  narrow: {width_mult: 0.5, description: half the channels}
  deep: {depth_mult: 2.0}
  wide_small: {width_mult: 1.4, input: [1, 16, 16]}
layers:
  - {op: conv2d, out: "${divisible(16 * width_mult)}", kernel: 3, padding: 1}
  - relu
  - {op: conv2d, out: "${divisible(16 * width_mult)}", kernel: 3, padding: 1, repeat: "${ceil(1.5 * depth_mult)}"}
  - global_avgpool
  - flatten
  - {op: linear, out: 10}
train: {dataset: fashion_mnist, batch_size: 64, epochs: 1, lr: 0.1}
"""


def family_twin(width_mult: float, depth_mult: float) -> nn.Module:
    width = make_divisible(16 * width_mult, 8)
    convs = [nn.Conv2d(width, width, 3, padding=1) for _ in range(int(math.ceil(1.5 * depth_mult)))]
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), *convs, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))


@pytest.fixture
def family(tmp_path: Path) -> Path:
    path = tmp_path / "family.yaml"
    path.write_text(FAMILY)
    return path


# --------------------------------------------------------------------------- rounding
@given(st.floats(min_value=0.1, max_value=5000, allow_nan=False), st.sampled_from([1, 2, 4, 8, 16]))
def test_divisible_is_torchvisions_make_divisible(value: float, divisor: int) -> None:
    assert evaluate("divisible(v, d)", {"v": value, "d": divisor}) == make_divisible(value, divisor)


@pytest.mark.parametrize("text", ["divisible('a')", "divisible(8, 0)", "open(1)", "max()", "ceil(1e309)"])
def test_bad_calls_are_expression_errors(text: str) -> None:
    with pytest.raises(ExprError):
        evaluate(text, {})


# --------------------------------------------------------------------------- the family
@pytest.mark.parametrize(
    "variant, width_mult, depth_mult, shape",
    [(None, 1.0, 1.0, (1, 28, 28)), ("narrow", 0.5, 1.0, (1, 28, 28)), ("deep", 1.0, 2.0, (1, 28, 28)), ("wide_small", 1.4, 1.0, (1, 16, 16))],
)
def test_each_variant_is_its_hand_written_network(family: Path, variant: str | None, width_mult: float, depth_mult: float, shape: tuple) -> None:
    graph = netspec.build_graph(family, variant=variant)
    model = netspec.compile(graph, seed=0).eval()
    twin = family_twin(width_mult, depth_mult).eval()
    assert graph.input_shape == shape
    assert graph.total_params == sum(p.numel() for p in twin.parameters())
    twin.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, *shape)
    assert torch.allclose(model(x), twin(x), atol=1e-6)


def test_the_specs_variant_key_picks_the_default(family: Path) -> None:
    family.write_text(FAMILY.replace("variants:", "variant: narrow\nvariants:"))
    assert netspec.load(family).variant == "narrow"
    assert netspec.build_graph(family).total_params == netspec.build_graph(family, variant="narrow").total_params
    assert netspec.build_graph(family, variant="deep").total_params != netspec.build_graph(family).total_params


def test_unknown_variant_is_one_clear_error(family: Path) -> None:
    with pytest.raises(SpecError) as info:
        netspec.load(family, variant="huge")
    assert "unknown variant 'huge' (variants: narrow, deep, wide_small)" in str(info.value)
    family.write_text(FAMILY.replace("variants:", "variant: huge\nvariants:"))
    with pytest.raises(SpecError) as info:
        netspec.load(family)
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.location is not None and diagnostic.location.line == 4


@pytest.mark.parametrize(
    "bad, message",
    [("{width_mult: '0.5'}", "width_mult"), ("{width_mult: true}", "width_mult"), ("{width_mult: 0}", "width_mult"),
     ("{depth_mult: 100}", "depth_mult"), ("{input: [3, 4]}", "input"), ("{widht_mult: 0.5}", "did you mean 'width_mult'")],
)
def test_variant_values_are_strict(family: Path, bad: str, message: str) -> None:
    family.write_text(FAMILY.replace("{width_mult: 0.5, description: half the channels}", bad))
    with pytest.raises(SpecError) as info:
        netspec.load(family)
    assert message in str(info.value)


def test_check_builds_every_variant(family: Path) -> None:
    """A member whose shapes break (16×16 input through a 5×5-kernel stack) fails the file."""
    family.write_text(FAMILY.replace("input: [1, 16, 16]", "input: [1, 2, 2]").replace("kernel: 3, padding: 1}", "kernel: 3}"))
    result = CliRunner().invoke(main, ["check", str(family)])
    assert result.exit_code == 2
    assert "variant 'wide_small'" in result.output
    assert CliRunner().invoke(main, ["check", str(family), "--variant", "narrow"]).exit_code == 0


# --------------------------------------------------------------------------- commands
def test_compile_variants_prints_each_members_counts(family: Path) -> None:
    result = CliRunner().invoke(main, ["compile", str(family), "--variants"])
    assert result.exit_code == 0, result.output
    for name in (None, "narrow", "deep", "wide_small"):
        graph = netspec.build_graph(family, variant=name)
        row = next(line for line in result.output.splitlines() if (name or "(as written)") in line)
        assert f"{graph.total_params:,}" in row and f"{graph.total_macs:,}" in row


def test_compile_and_draw_take_a_variant(family: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["compile", str(family), "--variant", "narrow", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["params"] == netspec.build_graph(family, variant="narrow").total_params
    dot = tmp_path / "narrow.dot"
    assert CliRunner().invoke(main, ["draw", str(family), "--variant", "narrow", "-o", str(dot)]).exit_code == 0
    assert "conv 3×3, 8" in dot.read_text() and "conv 3×3, 16" not in dot.read_text()
    assert CliRunner().invoke(main, ["draw", str(family), "--variant", "nope", "-o", str(dot)]).exit_code == 2


@needs_fashion_mnist
@pytest.mark.usefixtures("one_thread")
def test_train_eval_attack_keep_the_variant(family: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    data = ["--data-dir", str(FASHION_MNIST), "--device", "cpu"]
    result = CliRunner().invoke(main, ["train", str(family), "--variant", "narrow", "--limit", "256", "--out", str(run), "-q", *data])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((run / "spec.yaml").read_text())["variant"] == "narrow"
    assert json.loads((run / "summary.json").read_text())["params"] == netspec.build_graph(family, variant="narrow").total_params
    assert CliRunner().invoke(main, ["eval", str(run), "--limit", "64", *data]).exit_code == 0  # its spec.yaml: the variant
    ok = CliRunner().invoke(main, ["eval", str(family), "--weights", str(run), "--variant", "narrow", "--limit", "64", *data])
    assert ok.exit_code == 0, ok.output
    wrong = CliRunner().invoke(main, ["eval", str(family), "--weights", str(run), "--limit", "64", *data])  # full width: no fit
    assert wrong.exit_code == 2
    attacked = CliRunner().invoke(main, ["attack", str(family), "-w", str(run), "--variant", "narrow", "--limit", "8",
                                         "--data-dir", str(FASHION_MNIST), "--device", "cpu", "-o", str(tmp_path / "att")])
    assert attacked.exit_code == 0, attacked.output
    resumed = CliRunner().invoke(main, ["train", "--resume", str(run), "--variant", "narrow"])
    assert resumed.exit_code == 2 and "--variant" in resumed.output


# --------------------------------------------------------------------------- MobileNetV2's widths
SPECS = Path(__file__).resolve().parents[1] / "specs" / "imagenet"


@pytest.mark.parametrize("variant, width_mult", [("width_0_5", 0.5), ("width_0_75", 0.75), (None, 1.0), ("width_1_4", 1.4)])
def test_mobilenet_v2_widths_equal_torchvisions(variant: str | None, width_mult: float) -> None:
    from twins_vision import MobileNetV2

    graph = netspec.build_graph(SPECS / "mobilenet_v2.yaml", variant=variant)
    with torch.device("meta"):
        twin = MobileNetV2(width_mult=width_mult)
        model = netspec.compile(graph)
    assert graph.total_params == sum(p.numel() for p in twin.parameters())
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in twin.state_dict().items()}
    if width_mult == 1.0:
        assert graph.total_params == 3_504_872  # torchvision's published count
