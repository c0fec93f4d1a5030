"""specs/imagenet/vit_b_16.yaml against torchvision's ViT-B/16.

Truths: torchvision's published numbers (ViT_B_16_Weights.IMAGENET1K_V1.meta: 86,567,656
parameters, "_ops" 17.6 G, which torchvision counts as multiply-adds), its state_dict names
(written out below from torchvision/models/vision_transformer.py), the hand-written twin in
tests/twins_vit.py (same module tree, forward and initialisation) and torch's FlopCounterMode.
tests/test_zoo.py runs its generic checks over this spec too (on the meta device: it is big).

Two real 86 M-parameter models take about 1 GB and a few seconds each to build: they are
built once for this file, and compared on one 224×224 image without gradients.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import netspec
from netspec.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent))
from twins_vit import VIT_PUBLISHED_PARAMS, vit_b_16  # noqa: E402  (tests/ is not a package)

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs" / "imagenet" / "vit_b_16.yaml"
PUBLISHED = 86_567_656
PUBLISHED_GMACS = 17.6  # torchvision's meta "_ops", rounded to 0.1 G
D, MLP, LAYERS, TOKENS = 768, 3072, 12, 197


def torchvision_keys() -> dict[str, tuple[int, ...]]:
    """torchvision's vit_b_16 state_dict: names and shapes, from its source."""
    keys: dict[str, tuple[int, ...]] = {
        "class_token": (1, 1, D),
        "conv_proj.weight": (D, 3, 16, 16),
        "conv_proj.bias": (D,),
        "encoder.pos_embedding": (1, TOKENS, D),
    }
    for i in range(LAYERS):
        p = f"encoder.layers.encoder_layer_{i}."
        keys |= {
            p + "ln_1.weight": (D,), p + "ln_1.bias": (D,),
            p + "self_attention.in_proj_weight": (3 * D, D), p + "self_attention.in_proj_bias": (3 * D,),
            p + "self_attention.out_proj.weight": (D, D), p + "self_attention.out_proj.bias": (D,),
            p + "ln_2.weight": (D,), p + "ln_2.bias": (D,),
            p + "mlp.0.weight": (MLP, D), p + "mlp.0.bias": (MLP,),
            p + "mlp.3.weight": (D, MLP), p + "mlp.3.bias": (D,),
        }
    return keys | {"encoder.ln.weight": (D,), "encoder.ln.bias": (D,), "heads.head.weight": (1000, D), "heads.head.bias": (1000,)}


# ---------------------------------------------------------------- without building anything
def test_parameter_count_and_macs_are_torchvisions_without_torch() -> None:
    code = (
        "import sys, netspec\n"
        f"g = netspec.build_graph({str(SPEC)!r})\n"
        "print(g.total_params, g.total_macs, 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    params, macs, torch_imported = done.stdout.split()
    assert int(params) == PUBLISHED == VIT_PUBLISHED_PARAMS["vit_b_16_imagenet"]
    assert round(int(macs) / 1e9, 1) == PUBLISHED_GMACS
    assert torch_imported == "False"


def test_cli_check_compile_and_draw(tmp_path: Path) -> None:
    runner = CliRunner()
    checked = runner.invoke(main, ["check", str(SPEC)])
    assert checked.exit_code == 0, checked.output
    assert "86,567,656 params" in checked.output and "1 of 1 specs valid" in checked.output
    compiled = runner.invoke(main, ["compile", str(SPEC)])
    assert compiled.exit_code == 0, compiled.output
    assert "total params: 86,567,656" in compiled.output
    assert "encoder.layers.encoder_layer_11.self_attention" in compiled.output
    drawn = runner.invoke(main, ["draw", str(SPEC), "-o", str(tmp_path / "vit.dot")])
    assert drawn.exit_code == 0, drawn.output
    assert "86,567,656 params" in (tmp_path / "vit.dot").read_text(encoding="utf-8")


# ---------------------------------------------------------------- on the meta device
def test_state_dict_names_and_shapes_are_torchvisions() -> None:
    graph = netspec.build_graph(SPEC)
    with torch.device("meta"):
        ours = {k: tuple(v.shape) for k, v in netspec.compile(graph).state_dict().items()}
        twin = {k: tuple(v.shape) for k, v in vit_b_16().state_dict().items()}
    assert ours == torchvision_keys() == twin
    assert sum(torch.Size(s).numel() for s in ours.values()) == PUBLISHED


def test_macs_are_flop_counter_mode_flops_over_two() -> None:
    """The compiled module and the twin, counted by torch (the attention's T×T matmuls included:
    the meta device runs scaled_dot_product_attention's math path, which FlopCounterMode sees)."""
    graph = netspec.build_graph(SPEC)
    flops = []
    with torch.device("meta"):
        for model in (netspec.compile(graph).eval(), vit_b_16().eval()):
            with FlopCounterMode(display=False) as counter:
                model(torch.empty(1, 3, 224, 224))
            flops.append(counter.get_total_flops())
    assert flops[0] == flops[1] == 2 * graph.total_macs


# ---------------------------------------------------------------- real weights
def _stats(model: nn.Module) -> dict[str, tuple[float, float, float]]:
    return {k: (v.float().mean().item(), v.float().std().item() if v.numel() > 1 else 0.0, v.abs().max().item())
            for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def pair():
    """The compiled spec and the twin, each freshly initialised, with their initial statistics
    (the tests below overwrite the weights)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    model = netspec.compile(netspec.build_graph(SPEC), seed=0).eval()
    torch.manual_seed(0)
    twin = vit_b_16().eval()
    yield model, twin, _stats(model), _stats(twin)
    torch.set_num_threads(before)


def _randomise(model: nn.Module, seed: int) -> None:
    """Weights of a trained network's scale: layer norms around 1, the rest small normals (the
    initial zero head and class token would make equal outputs trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln" in name and name.endswith("weight"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def _same_output(a: nn.Module, b: nn.Module) -> None:
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = a(x), b(x)
    assert ours.shape == theirs.shape == (1, 1000)
    assert ours.std() > 0.1, "a degenerate output would hide differences"
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-5), f"max |diff| {(ours - theirs).abs().max():.3g}"


def test_initialisation_follows_torchvisions(pair) -> None:
    """Per tensor, the compiled module's initial mean, std and largest value against the twin's
    (torchvision's init), within 2 % of the twin's std (the weights have 590k values or more;
    PyTorch's default would be 9 % off xavier_uniform on mlp.0), 1e-5 absolute for the ~1e-6
    MLP biases, which the spec zeroes. encoder.pos_embedding is normal(std 0.02) in both (151k values)."""
    _, _, ours, theirs = pair
    assert ours.keys() == theirs.keys()
    for key, (mean, std, biggest) in theirs.items():
        tolerance = 0.02 * std + 1e-5
        assert abs(ours[key][0] - mean) <= tolerance, (key, ours[key], theirs[key])
        assert abs(ours[key][1] - std) <= tolerance, (key, ours[key], theirs[key])
        if std == 0.0:  # constants (zeros, ones) are exactly torchvision's
            assert ours[key] == (mean, std, biggest), key


def test_twin_loads_the_compiled_state_dict_strictly_and_gives_the_same_output(pair) -> None:
    model, twin, _, _ = pair
    _randomise(model, seed=2)
    twin.load_state_dict(model.state_dict(), strict=True)
    _same_output(model, twin)


def test_compiled_module_loads_the_twins_state_dict_strictly_and_gives_the_same_output(pair) -> None:
    model, twin, _, _ = pair
    _randomise(twin, seed=3)
    model.load_state_dict(twin.state_dict(), strict=True)
    _same_output(model, twin)
