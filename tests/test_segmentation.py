"""Segmentation on real Fashion-MNIST (netspec/runtime/data/segmentation.py) and the U-Net spec.

Truths: the masks recomputed with numpy from the raw images and labels; pixel accuracy and
IoU counted pixel by pixel from the saved weights' predictions, not from the confusion
matrix the runtime uses.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import netspec
from netspec.cli import main
from netspec.runtime.data import segmentation as S

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shared_data import FASHION_MNIST, needs_fashion_mnist  # noqa: E402

UNET = Path(__file__).resolve().parents[1] / "specs" / "unet.yaml"


@needs_fashion_mnist
def test_masks_are_the_thresholded_pixels_labelled_with_the_class() -> None:
    from netspec.runtime import data as D

    fm = D.load_dataset("fashion_mnist", FASHION_MNIST)
    seg = S.load(FASHION_MNIST)
    images, labels = fm.test_x[:500, 0].numpy(), fm.test_y[:500].numpy()
    expected = np.where(images > 32, labels[:, None, None] + 1, 0)
    assert np.array_equal(seg.test_y[:500].numpy(), expected)
    assert seg.classes[0] == "background" and len(seg.classes) == 11
    assert seg.train_y.shape == (60_000, 28, 28) and seg.train_y.dtype == torch.uint8
    foreground = (seg.test_y > 0).float().mean().item()
    assert 0.3 < foreground < 0.7  # garments cover about half the pixels


def test_scores_of_a_known_confusion_matrix() -> None:
    k = len(S.CLASSES)
    counts = torch.zeros(k, k, dtype=torch.int64)
    counts[0, 0], counts[0, 1], counts[1, 1], counts[1, 0] = 6, 2, 3, 1  # two classes seen, the rest absent
    result = S.scores(counts)
    assert result["test_pixel_acc"] == pytest.approx(9 / 12)
    assert result["test_miou"] == pytest.approx((6 / 9 + 3 / 6) / 2)


def test_a_classifier_is_refused_for_segmentation(tmp_path: Path) -> None:
    spec = tmp_path / "cls.yaml"
    spec.write_text("name: cls\ninput: [1, 28, 28]\nlayers: [flatten, {op: linear, out: 10}]\ntrain: {dataset: fashion_mnist_segmentation}\n")
    with pytest.raises(Exception) as info:
        S.check_output(netspec.build_graph(spec).output_shape, (28, 28))
    assert "11×28×28" in str(info.value)


@needs_fashion_mnist
@pytest.mark.usefixtures("one_thread")
def test_unet_trains_and_reports_pixel_accuracy_and_miou(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["train", str(UNET), "--limit", "256", "--test-limit", "64", "--epochs", "1", "--batch-size", "64",
            "--data-dir", str(FASHION_MNIST), "--device", "cpu", "--out", str(run), "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "summary.json").read_text())
    assert (run / S.PICTURE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the same numbers, pixel by pixel, from the saved weights
    from safetensors.torch import load_file

    model = netspec.compile(UNET).eval()
    model.load_state_dict(load_file(str(run / "model.safetensors")))
    seg = S.load(FASHION_MNIST)
    x, truth = seg.test_x[:64].float() / 255, seg.test_y[:64].long()
    with torch.no_grad():
        pred = model(x).argmax(1)
    assert summary["test_pixel_acc"] == pytest.approx((pred == truth).float().mean().item(), abs=1e-6)
    ious = []
    for c in range(len(S.CLASSES)):
        union = ((pred == c) | (truth == c)).sum().item()
        if union:
            ious.append(((pred == c) & (truth == c)).sum().item() / union)
    assert summary["test_miou"] == pytest.approx(sum(ious) / len(ious), abs=1e-6)
    assert summary["test_acc"] is None  # no image-level accuracy for a per-pixel task

    evaluated = CliRunner().invoke(main, ["eval", str(run), "--test-limit", "64", "--data-dir", str(FASHION_MNIST), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["test_pixel_acc"] == pytest.approx(summary["test_pixel_acc"], abs=1e-6)
