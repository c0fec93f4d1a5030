"""`netspec train`, `eval` and `attack` on the sequence zoo (issue 10 §6): the row-reading
LSTM, GRU and Transformer encoder (input [28, 28], the row-sequence view of Fashion-MNIST) and
the ViT (a low-resolution copy of specs/vit.yaml, so the run stays cheap; the resize path is
kept). Tiny runs on the real data: one epoch on a few hundred images.

The truths: `eval` recomputes from the saved weights what `train` reported; every input the
attack feeds the network, laid back out as the 1×H×W image it came from, lies in [0, 1] and
within ε of that image (x/255, resized as the spec says), checked against the stored uint8
pixels; and the attack never raises accuracy above the clean accuracy.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

from netspec.cli import main
from netspec.runtime.attack import attacks

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shared_data import FASHION_MNIST as DATA, needs_fashion_mnist  # noqa: E402

SPECS = Path(__file__).resolve().parents[1] / "specs"
pytestmark = [needs_fashion_mnist, pytest.mark.usefixtures("one_thread")]

# specs/vit.yaml at 32×32 (patch 8: 16 patches), width 32, 4 heads, MLP 64: its layer list,
# class token, positions, blocks and training settings, at 19k instead of 6.5M parameters.
VIT_SMALL = {
    "name: vit\n": "name: vit_small\n",
    "input: [1, 96, 96]": "input: [1, 32, 32]",
    "resize: 96": "resize: 32",
    "out: 512, patch: 16": "out: 32, patch: 8",
    "heads: 8, mlp: 2048": "heads: 4, mlp: 64",
}
LIMIT, TEST_LIMIT, ATTACKED = 600, 100, 64


def spec_file(name: str, tmp_path: Path) -> Path:
    if name != "vit":
        return SPECS / f"{name}.yaml"
    text = (SPECS / "vit.yaml").read_text()
    for old, new in VIT_SMALL.items():
        assert text.count(old) == 1, f"specs/vit.yaml no longer has {old!r}: update VIT_SMALL"
        text = text.replace(old, new)
    path = tmp_path / "vit_small.yaml"
    path.write_text(text)
    return path


def run(*args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--data-dir", str(DATA), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return result.output


def recorded_inputs(monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """Every tensor `netspec attack` feeds the network (clean, PGD's steps, the adversarial ones)."""
    seen: list[torch.Tensor] = []
    real = attacks.evaluate_attack

    class Recorder(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.detach().clone())
            return self.inner(x)

    monkeypatch.setattr(attacks, "evaluate_attack", lambda model, *a, **k: real(Recorder(model), *a, **k))
    return seen


def clean_images(size: int) -> torch.Tensor:
    """The first test images as the network should see them, from the stored uint8 pixels:
    x/255 (torchvision's ToTensor), bilinearly resized when the spec's input is larger."""
    from netspec.runtime.data.idx import load_dataset

    x = load_dataset("fashion_mnist", DATA).test_x[:ATTACKED].to(torch.float32) / 255
    return x if size == 28 else F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)


def check_inputs(seen: list[torch.Tensor], clean: torch.Tensor, eps: float) -> None:
    assert seen, "the attack ran no forward pass"
    moved = 0.0
    for x in seen:
        image = x.reshape(clean.shape)  # the network's layout back to 1×H×W: a [28, 28] input is row t = step t
        assert image.min() >= 0 and image.max() <= 1
        moved = max(moved, (image - clean).abs().max().item())
        assert moved <= eps + 1e-6
    assert moved == pytest.approx(eps, abs=1e-6)  # the attack did spend its budget somewhere


@pytest.mark.parametrize("name", ["lstm", "gru", "transformer_encoder", "vit"])
def test_train_eval_and_attack(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, folder = spec_file(name, tmp_path), tmp_path / "run"
    run("train", str(spec), "--epochs", "1", "--limit", str(LIMIT), "--test-limit", str(TEST_LIMIT), "--out", str(folder), "-q")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["epochs"] == 1 and summary["test_acc"] is not None

    evaluated = json.loads(run("eval", str(folder), "--json"))  # the run's own test subset, from the saved weights
    assert evaluated["examples"] == TEST_LIMIT
    assert evaluated["acc"] == summary["test_acc"]
    assert evaluated["loss"] == pytest.approx(summary["test_loss"], rel=1e-5)

    clean = clean_images(32 if name == "vit" else 28)
    seen = recorded_inputs(monkeypatch)
    eps = 0.1
    for method, extra in (("fgsm", ["--eps", f"0,{eps}"]), ("pgd", ["--eps", str(eps), "--steps", "2"])):
        seen.clear()
        out = tmp_path / method
        run("attack", str(folder), "--method", method, *extra, "--limit", str(ATTACKED), "--batch-size", str(ATTACKED),
            "--out", str(out))
        check_inputs(seen, clean, eps)
        report = json.loads((out / "attack.json").read_text())
        assert report["examples"] == ATTACKED and report["method"] == method
        assert all(acc <= report["clean_acc"] for acc in report["adv_acc"]), report
        assert (out / "attack.png").is_file()
        if method == "fgsm":
            assert report["adv_acc"][0] == report["clean_acc"]  # ε = 0 changes nothing
