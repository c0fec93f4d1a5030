"""D2L 9.1's sine-wave series as the `sine_wave` dataset, and the MLP and RNN regressors that
learn it (specs/sine_mlp.yaml, sine_rnn.yaml; issue 10 §5). The truths: the book's formula and
constants, the noise floor of the series, and an MSE recomputed by hand from saved weights."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

import netspec
from netspec.cli import main
from netspec.compiler.train_schema import TrainConfig
from netspec.runtime.train.entry import RunOptions, train
from netspec.runtime.train.prepare import prepare_data

sys.path.insert(0, str(Path(__file__).resolve().parent))
from twins_series import sine_mlp  # noqa: E402

SPECS = Path(__file__).resolve().parents[1] / "specs"
pytestmark = pytest.mark.usefixtures("one_thread")


def sine(**fields: object) -> TrainConfig:
    return TrainConfig.model_validate({"dataset": {"name": "sine_wave", **fields}, "loss": "mse"})


def test_without_noise_every_example_is_the_books_window_of_sin_001t() -> None:
    """features[:, i] = x[i : T - tau + i], labels = x[tau:], x_t = sin(0.01·t) for t = 1..T."""
    T, tau, n_train = 50, 3, 30
    data = prepare_data(sine(T=T, tau=tau, n_train=n_train, noise=0.0), input_shape=(tau,))
    x = [math.sin(0.01 * t) for t in range(1, T + 1)]  # the book's time = arange(1, T + 1)
    windows = torch.tensor([x[i : i + tau] for i in range(T - tau)])
    targets = torch.tensor(x[tau:]).reshape(-1, 1)
    torch.testing.assert_close(data.train_x, windows[:n_train])
    torch.testing.assert_close(data.train_y, targets[:n_train])
    torch.testing.assert_close(data.test_x, windows[n_train:])  # the rest of the series, in time order
    torch.testing.assert_close(data.test_y, targets[n_train:])
    assert data.task == "regression" and data.train_x.dtype == data.train_y.dtype == torch.float32


def test_the_books_defaults_and_the_noise_it_adds() -> None:
    """T 1000, tau 4, the first 600 examples train (996 - 600 test), noise N(0, 0.2²)."""
    data = prepare_data(sine(), input_shape=(4,))
    assert data.train_x.shape == (600, 4) and data.test_x.shape == (396, 4)
    series = torch.cat([data.train_x[:, 0], data.test_x[:, 0], data.test_x[-1, 1:], data.test_y[-1]])  # x_1 … x_1000
    assert len(series) == 1000
    noise = series - torch.sin(0.01 * torch.arange(1, 1001, dtype=torch.float32))
    assert abs(noise.mean().item()) < 0.03 and 0.18 < noise.std().item() < 0.22  # 1000 draws of N(0, 0.2²)


def test_the_series_is_seeded_by_train_seed() -> None:
    a, b = (prepare_data(sine().model_copy(update={"seed": s}), input_shape=(4,)) for s in (0, 0))
    c = prepare_data(sine().model_copy(update={"seed": 1}), input_shape=(4,))
    assert torch.equal(a.train_x, b.train_x) and not torch.equal(a.train_x, c.train_x)


def test_the_lagged_and_the_sequence_views_hold_the_same_values() -> None:
    """[tau] feeds the lags as features; [tau, 1] as tau steps of one feature, oldest first."""
    cfg = sine()
    flat = prepare_data(cfg, input_shape=(4,))
    steps = prepare_data(cfg, input_shape=(4, 1))
    xf, xs = flat.inputs(flat.test_x[:5]), steps.inputs(steps.test_x[:5])
    assert xf.shape == (5, 4) and xs.shape == (5, 4, 1)
    for t in range(4):
        torch.testing.assert_close(xs[:, t, 0], xf[:, t], atol=0, rtol=0)


def test_every_view_the_table_documents_is_accepted() -> None:
    """The docs' inputs column (from netspec/datasets.py) is what prepare_data takes."""
    from netspec import datasets

    names = {"tau": 4, "F": 2}
    for view in datasets.get("sine_wave").views + datasets.get("synthetic_regression").views:
        shape = tuple(names.get(d, d) for d in view.shape)
        name = "sine_wave" if "tau" in view.shape else "synthetic_regression"
        data = prepare_data(TrainConfig.model_validate({"dataset": name, "loss": "mse"}), input_shape=shape)
        assert data.inputs(data.train_x[:3]).shape == (3, *shape)


@pytest.mark.parametrize("spec", ["sine_mlp", "sine_rnn"])
def test_the_specs_carry_the_books_settings(spec: str) -> None:
    cfg = netspec.load(SPECS / f"{spec}.yaml").spec.train
    ds = cfg.dataset
    assert (ds.name, ds.T, ds.tau, ds.noise, ds.n_train) == ("sine_wave", 1000, 4, 0.2, 600)
    assert (cfg.loss, cfg.batch_size, cfg.optimizer.name, cfg.optimizer.lr, cfg.epochs) == ("mse", 16, "adam", 0.01, 5)


def test_sine_mlp_is_the_books_get_net() -> None:
    """Same layers and parameter count as D2L's nn.Sequential, and the same outputs from the same weights."""
    graph = netspec.build_graph(SPECS / "sine_mlp.yaml")
    ours, book = netspec.compile(graph, seed=0), sine_mlp()
    assert graph.total_params == sum(p.numel() for p in book.parameters()) == 61
    theirs = [p for p in book.parameters()]
    with torch.no_grad():
        for p, q in zip(ours.parameters(), theirs, strict=True):
            p.copy_(q)
    x = torch.randn(8, 4)
    torch.testing.assert_close(ours(x), book(x))


@pytest.mark.parametrize("spec", ["sine_mlp", "sine_rnn"])
def test_the_regressors_reach_the_noise_floor_and_summary_reports_the_test_mse(spec: str, tmp_path: Path) -> None:
    """After the book's 5 epochs the one-step error is near the noise variance 0.2² = 0.04
    (no model can do much better on fresh noise; the untrained MSE is ≈ 0.5), and
    summary.json's test_loss is the MSE recomputed by hand from model.safetensors."""
    from safetensors.torch import load_file

    result = train(SPECS / f"{spec}.yaml", {}, RunOptions(device="cpu", quiet=True, out=str(tmp_path / "run")))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["test_acc"] is None and summary["train_acc"] is None
    assert 0.03 < summary["test_loss"] < 0.08, summary
    graph = netspec.build_graph(SPECS / f"{spec}.yaml")
    model = netspec.compile(graph, seed=0)
    model.load_state_dict(load_file(tmp_path / "run" / "model.safetensors"))
    data = prepare_data(result.config, input_shape=graph.input_shape)
    with torch.no_grad():
        mse = F.mse_loss(model(data.test_x.reshape(len(data.test_x), *graph.input_shape)), data.test_y).item()
    assert summary["test_loss"] == pytest.approx(mse, rel=1e-5)


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ("{name: sine_wave, T: 4, tau: 4}", "train.dataset: sine_wave: tau (4) must be less than T (4)"),
        ("{name: sine_wave, T: 100, tau: 4, n_train: 96}", "train.dataset: sine_wave: n_train (96) must be less than T - tau (96 examples)"),
        ("{name: sine_wave, T: 1000.0}", "train.dataset.T: expected an integer, got 1000.0"),
        ("{name: sine_wave, tau: 2.5}", "train.dataset.tau: expected an integer, got 2.5"),
        ("{name: sine_wave, n_train: '600'}", "train.dataset.n_train: expected an integer, got '600'"),
        ("{name: sine_wave, tau: 0}", "train.dataset.tau: expected a number greater than 0, got 0"),
        ("{name: sine_wave, noise: -1}", "train.dataset.noise:"),
        ("{name: sine_wave, T: 10000000, tau: 1000}", "at most 100,000,000"),
        ("{name: synthetic_regression, tau: 3}", "dataset synthetic_regression does not read 'tau'"),
    ],
)
def test_bad_series_settings_are_one_located_line_and_exit_2(dataset: str, message: str, tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: s\ninput: [4]\nlayers:\n  - {{op: linear, out: 1}}\ntrain:\n  dataset: {dataset}\n  loss: mse\n")
    for command in (["check", str(spec)], ["train", str(spec), "--device", "cpu", "--out", str(tmp_path / "run")]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2, result.output
        errors = [line for line in result.output.splitlines() if line.startswith(str(spec))]
        assert len(errors) == 1 and errors[0].startswith(f"{spec}:6:") and message in errors[0], result.output
        assert "Traceback" not in result.output and not (tmp_path / "run").exists()


def test_an_input_that_does_not_fit_tau_is_one_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["train", str(SPECS / "sine_mlp.yaml"), "--set", "dataset.tau=3", "--device", "cpu",
                                       "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert "sine_wave examples are 3 (3 values) but the spec's input is 4 (4 values)" in result.output
