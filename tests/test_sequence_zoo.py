"""The sequence zoo on real data: Fashion-MNIST read as 28 steps of 28 pixels (input [28, 28]
lays each 1×28×28 image out row by row, no dataset code of its own), and the LSTM/GRU
classifiers learn from it through `netspec.runtime.train.entry` (issue 10 §5)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import netspec
from netspec.runtime.train.prepare import prepare_data
from netspec.runtime.train.entry import RunOptions, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shared_data import FASHION_MNIST as DATA, needs_fashion_mnist as needs_data  # noqa: E402

SPECS = Path(__file__).resolve().parents[1] / "specs"
pytestmark = pytest.mark.usefixtures("one_thread")


@needs_data
def test_a_sequence_input_reads_the_image_row_by_row() -> None:
    spec = netspec.load(SPECS / "lstm.yaml").spec
    prepared = prepare_data(spec.train, DATA, input_shape=spec.input_shape)
    images = prepared.test_x[:3]  # as stored: N×1×28×28
    steps = prepared.inputs(images)
    assert steps.shape == (3, 28, 28) and steps.dtype == torch.float32
    assert images.dtype == torch.uint8 and images.shape[1:] == (1, 28, 28)
    for t in (0, 13, 27):  # step t is row t of the image, pixel for pixel, as ToTensor scales it
        torch.testing.assert_close(steps[:, t, :], images[:, 0, t, :].float() / 255, atol=0, rtol=0)


@needs_data
@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_row_classifiers_learn(name: str) -> None:
    overrides = {"epochs": 2, "batch_size": 64, "limit": 2000, "test_limit": 500}
    result = train(SPECS / f"{name}.yaml", overrides, RunOptions(device="cpu", quiet=True, data_dir=DATA, save=False))
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.summary["test_acc"] > 0.5  # chance is 0.1


@needs_data
def test_attack_on_the_row_lstm_draws_the_rows_as_the_image(tmp_path) -> None:
    """`netspec attack` works on a [28, 28] input: FGSM lowers accuracy and attack.png shows
    each example as its 28×28 picture (a sequence input is not averaged into one row)."""
    from click.testing import CliRunner

    from netspec.cli import main
    from netspec.runtime.attack.plot import _as_image

    rows = torch.rand(28, 28)
    assert torch.equal(_as_image(rows, (1, 28, 28)), rows)
    run = tmp_path / "run"
    common = ["--data-dir", str(DATA)]
    trained = CliRunner().invoke(main, ["train", str(SPECS / "lstm.yaml"), "--epochs", "1", "--limit", "1000", "--test-limit", "200",
                                        "--out", str(run), "--device", "cpu", *common])
    assert trained.exit_code == 0, trained.output
    attacked = CliRunner().invoke(main, ["attack", str(run), "--eps", "0,0.2", "--limit", "100", *common])
    assert attacked.exit_code == 0, attacked.output
    report = json.loads((run / "attack.json").read_text())
    assert (run / "attack.png").is_file()
    assert report["eps"] == [0.0, 0.2] and report["adv_acc"][0] == report["clean_acc"]
    assert report["adv_acc"][1] < report["clean_acc"]


@needs_data
def test_training_a_token_input_on_images_is_one_clear_refusal(tmp_path) -> None:
    from click.testing import CliRunner

    from netspec.cli import main

    spec = tmp_path / "tok.yaml"
    spec.write_text("name: tok\ninput: {tokens: 784, vocab: 256}\nlayers:\n  - {op: embedding, dim: 4}\n"
                    "  - {op: mean, dim: 0}\n  - {op: linear, out: 10}\ntrain: {dataset: fashion_mnist, epochs: 1, limit: 64}\n")
    result = CliRunner().invoke(main, ["train", str(spec), "--data-dir", str(DATA), "--device", "cpu", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert "the spec's input is 784 token ids (vocab 256) but fashion_mnist examples are 1×28×28" in result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
