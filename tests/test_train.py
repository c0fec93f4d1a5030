"""Tests of `netspec train` / `netspec eval` and the training runtime (fast; small data).

Truths used: a hand-written PyTorch loop (same data order) for the update rule, torch's own
LR schedulers for the schedules, the generating weights of synthetic data for linear
regression, an independent accuracy count for the reported test accuracy, and chance level
(10%) for "learns".
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from safetensors.torch import load_file

from netspec.api import compile as compile_spec
from netspec.cli import main
from netspec.compiler.schema import json_schema
from netspec.compiler.train_schema import ScheduleSpec, TrainConfig, with_overrides
from netspec.errors import SpecError, TrainingError
from netspec.runtime import data as D
from netspec.runtime.data import batching as B
from netspec.runtime.run.checkpoint import load_weights
from netspec.runtime.train.optim import lr_factor
from netspec.runtime.train.prepare import prepare_data
from netspec.runtime.train.entry import RunOptions, evaluate, train

from shared_data import FASHION_MNIST as DATA, needs_fashion_mnist as needs_data  # noqa: E402

SOFTMAX = """
name: softmax_regression
input: [1, 28, 28]
init: {weight: normal, std: 0.01, bias: zeros}
layers:
  - flatten
  - {op: linear, out: 10}
train: {batch_size: 256, epochs: 10, lr: 0.1}
"""

MLP = """
name: mlp
input: [1, 28, 28]
init: {weight: normal, std: 0.01, bias: zeros}
layers:
  - flatten
  - {op: linear, out: 256}
  - relu
  - {op: linear, out: 10}
train: {batch_size: 256, epochs: 10, lr: 0.1}
"""

LINREG = """
name: linreg
input: [2]
init: {weight: normal, std: 0.01, bias: zeros}
layers:
  - {op: linear, out: 1}
train:
  dataset: {name: synthetic_regression, true_w: [2, -3.4], true_b: 4.2, examples: 1000}
  batch_size: 10
  epochs: 3
  lr: 0.03
  loss: mse
"""

SYNTH_MLP = """
name: synth_mlp
input: [2]
layers:
  - {op: linear, out: 16}
  - tanh
  - {op: linear, out: 1}
train:
  dataset: {name: synthetic_regression, examples: 256}
  batch_size: 32
  epochs: 2
  lr: 0.05
  momentum: 0.9
  weight_decay: 0.001
  loss: mse
"""


pytestmark = pytest.mark.usefixtures("one_thread")


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def quiet(tmp_path: Path | None = None, **kw) -> RunOptions:
    return RunOptions(device="cpu", quiet=True, data_dir=DATA, out=tmp_path, save=tmp_path is not None, **kw)


def run_cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


# ------------------------------------------------------------------ learning on real data
@needs_data
def test_lenet_learns_fashion_mnist_through_cli(tmp_path):
    """The zoo's LeNet, overridden from the command line, learns well above chance (10%);
    the run folder holds what it promises and the reported accuracy is the real one."""
    spec = Path(__file__).resolve().parents[1] / "specs" / "lenet.yaml"
    out = tmp_path / "run"
    result = run_cli(
        "train", spec, "--optimizer", "adam", "--lr", "0.01", "--epochs", "4", "--batch-size", "64", "--limit", "3000",
        "--test-limit", "1000", "--seed", "1", "--data-dir", DATA, "--out", out, "--device", "cpu",
    )
    assert result.exit_code == 0, result.output
    assert f"run folder: {out}" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_acc"] > 0.5
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert {"train_loss", "train_acc", "test_acc", "lr", "examples_per_s", "seconds"} <= set(rows[0])
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    resolved = (out / "spec.yaml").read_text()
    assert "limit: 3000" in resolved and "name: adam" not in resolved and "optimizer: adam" in resolved
    for key in ("train_loss", "train_acc", "test_acc", "examples_per_s", "params", "device", "epochs", "wall_seconds"):
        assert summary[key] is not None

    # Independent count: load the weights into a fresh model and score the same 1000 test images.
    model = compile_spec(out / "spec.yaml")
    load_weights(model, out)
    splits = D.load_dataset("fashion_mnist", DATA)
    with torch.no_grad():
        predicted = model(splits.test_x[:1000].float() / 255).argmax(1)
    assert summary["test_acc"] == pytest.approx((predicted == splits.test_y[:1000]).float().mean().item(), abs=1e-6)

    evaluated = run_cli("eval", spec, "--weights", out, "--test-limit", "1000", "--data-dir", DATA, "--device", "cpu")
    assert evaluated.exit_code == 0, evaluated.output
    assert f"test acc {summary['test_acc']:.4f}" in evaluated.output


@needs_data
@pytest.mark.parametrize("text", [SOFTMAX, MLP], ids=["softmax_regression", "mlp"])
def test_textbook_models_learn(tmp_path, text):
    result = train(write(tmp_path, text), {"epochs": 3, "batch_size": 64, "limit": 2000, "test_limit": 1000}, quiet())
    assert result.summary["test_acc"] > 0.6
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


# ------------------------------------------------------------------ linear regression
@pytest.mark.parametrize("solver", ["sgd", "closed_form"])
def test_linear_regression_recovers_true_weights(tmp_path, solver):
    result = train(write(tmp_path, LINREG), {"solver": solver}, quiet(tmp_path / "run"))
    layer = result.model.get_submodule("0")
    assert torch.allclose(layer.weight.detach().flatten(), torch.tensor([2.0, -3.4]), atol=1e-2)
    assert abs(layer.bias.item() - 4.2) < 1e-2
    assert result.summary["test_loss"] < 1e-3  # noise variance is 1e-4
    saved = load_file(tmp_path / "run" / "model.safetensors")
    assert torch.equal(saved["0.weight"], layer.weight.detach())


def test_closed_form_refuses_a_deep_network(tmp_path):
    with pytest.raises(TrainingError, match="one linear layer"):
        train(write(tmp_path, SYNTH_MLP), {"solver": "closed_form"}, quiet())


# ------------------------------------------------------------------ the update rule
def test_trainer_step_matches_a_handwritten_loop(tmp_path):
    """SGD with momentum and weight decay, over the same batches, gives the same weights as
    the textbook loop written out by hand."""
    spec = write(tmp_path, SYNTH_MLP)
    result = train(spec, {}, quiet())
    cfg = TrainConfig.model_validate({"dataset": {"name": "synthetic_regression", "examples": 256}, "loss": "mse"})
    data = prepare_data(cfg)
    model = compile_spec(spec, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=0.001)
    batches = B.Batches(data.train_x, data.train_y, 32, shuffle=True, seed=0)
    torch.manual_seed(1)
    for epoch in range(2):
        batches.set_epoch(epoch)
        for x, y in batches:
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    for name, value in model.state_dict().items():
        torch.testing.assert_close(result.model.state_dict()[name], value, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ schedules against torch's
def _factors(spec: ScheduleSpec, steps: int, epochs: int) -> list[float]:
    f = lr_factor(spec, 0.5, steps, epochs)
    return [0.5 * f(t) for t in range(steps * epochs)]


def _torch_lrs(make, steps: int, epochs: int, per_epoch: bool = False) -> list[float]:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.5)
    sched = make(opt)
    lrs = []
    for t in range(steps * epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if not per_epoch or (t + 1) % steps == 0:
            sched.step()
    return lrs


def test_schedules_match_torch_schedulers():
    steps, epochs = 7, 6
    S = torch.optim.lr_scheduler
    pairs = [
        (ScheduleSpec(name="constant"), lambda o: S.ConstantLR(o, factor=1.0), False),
        (ScheduleSpec(name="step", step_size=2, gamma=0.3), lambda o: S.StepLR(o, step_size=2, gamma=0.3), True),
        (ScheduleSpec(name="cosine", min_lr=0.01), lambda o: S.CosineAnnealingLR(o, T_max=steps * epochs, eta_min=0.01), False),
        (
            ScheduleSpec(name="onecycle", pct_start=0.3),
            lambda o: S.OneCycleLR(o, max_lr=0.5, total_steps=steps * epochs, pct_start=0.3, cycle_momentum=False),
            False,
        ),
    ]
    for spec, make, per_epoch in pairs:
        ours, theirs = _factors(spec, steps, epochs), _torch_lrs(make, steps, epochs, per_epoch)
        assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12), spec.name


def test_warmup_rises_linearly_then_follows_the_schedule():
    f = lr_factor(ScheduleSpec(name="constant", warmup=2), 1.0, steps_per_epoch=5, epochs=4)
    assert [f(t) for t in range(12)] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0, 1.0])


# ------------------------------------------------------------------ numerical guards
@needs_data
def test_nan_loss_stops_with_epoch_and_batch_and_keeps_last_good_checkpoint(tmp_path):
    spec = write(tmp_path, MLP)
    out = tmp_path / "run"
    # epoch 1 at lr 0.1 is fine; the step schedule multiplies it by 1e12 for epoch 2.
    result = run_cli(
        "train", spec, "--limit", "512", "--test-limit", "128", "--epochs", "3", "--batch-size", "64",
        "--set", "schedule.name=step", "--set", "schedule.step_size=1", "--set", "schedule.gamma=1e12",
        "--data-dir", DATA, "--out", out, "--quiet", "--device", "cpu",
    )
    assert result.exit_code == 2, result.output
    assert "epoch 2, batch " in result.output and "loss is " in result.output
    assert "Traceback" not in result.output
    assert f"last good checkpoint (epoch 1) is in {out}" in result.output
    model = compile_spec(spec)
    load_weights(model, out)  # the epoch-1 weights, finite
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 1


def test_nan_in_first_epoch_says_no_checkpoint(tmp_path):
    with pytest.raises(TrainingError, match=r"epoch 1, batch \d+: loss is (NaN|infinite).*no checkpoint"):
        train(write(tmp_path, LINREG), {"lr": 1e6}, quiet(tmp_path / "run"))  # the largest lr allowed


# ------------------------------------------------------------------ validation, k-fold, grad norms, augment
def test_val_fraction_and_kfold_report_mean_and_spread(tmp_path):
    spec = write(tmp_path, SYNTH_MLP)
    result = train(spec, {"val_fraction": 0.25}, quiet())
    assert result.history[-1]["val_loss"] is not None
    folded = train(spec, {"epochs": 1}, quiet(tmp_path / "kf", kfold=3))
    summary = json.loads((tmp_path / "kf" / "summary.json").read_text())
    losses = [f["val_loss"] for f in summary["folds"]]
    assert len(losses) == 3 and summary["kfold"] == 3
    assert summary["val_loss_mean"] == pytest.approx(statistics.fmean(losses))
    assert summary["val_loss_std"] == pytest.approx(statistics.stdev(losses))
    assert len(folded.history) == 3


def test_grad_norms_show_vanishing_gradients_in_a_sigmoid_stack(tmp_path):
    layers = "\n".join(["  - {op: linear, out: 32}\n  - sigmoid"] * 6)
    spec = write(tmp_path, f"name: deep_sigmoid\ninput: [2]\nlayers:\n{layers}\n  - {{op: linear, out: 1}}\n"
                 "train: {dataset: synthetic_regression, loss: mse, epochs: 2, batch_size: 100, lr: 0.01}\n")
    out = tmp_path / "run"
    result = train(spec, {}, quiet(out, grad_norms=True))
    norms = result.history[-1]["grad_norms"]
    assert set(norms) == {n for n, _ in result.model.named_parameters()}
    assert norms["0.weight"] < norms["10.weight"] / 10  # the first layer learns far more slowly
    assert (out / "grad_norms.png").is_file()


@needs_data
def test_augmentation_is_applied_in_training_only(tmp_path):
    spec = write(tmp_path, SOFTMAX)
    base = {"epochs": 1, "limit": 512, "test_limit": 256}
    plain_run = train(spec, base, quiet())
    augmented = train(spec, {**base, "augment": [{"random_crop": {"padding": 4}}, "horizontal_flip"]}, quiet())
    assert not torch.equal(plain_run.model.get_submodule("1").weight, augmented.model.get_submodule("1").weight)
    cfg, _ = with_overrides({}, {**base, "augment": ["horizontal_flip"]})
    data = prepare_data(cfg, DATA, input_shape=(1, 28, 28))
    clean_cfg, _ = with_overrides({}, base)
    assert evaluate(augmented.model, data, cfg) == evaluate(augmented.model, data, clean_cfg)


@needs_data
def test_fgsm_adversarial_training_changes_the_updates(tmp_path):
    spec = write(tmp_path, SOFTMAX)
    base = {"epochs": 1, "limit": 256, "test_limit": 64, "batch_size": 64}
    clean = train(spec, base, quiet())
    adversarial = train(spec, {**base, "adversarial": {"eps": 0.1, "mix": 0.5}}, quiet())
    assert math.isfinite(adversarial.summary["train_loss"])
    assert adversarial.summary["train_loss"] > clean.summary["train_loss"]  # half of each batch is harder


@needs_data
def test_resize_on_the_fly_to_the_spec_input(tmp_path):
    spec = write(tmp_path, SOFTMAX.replace("[1, 28, 28]", "[1, 32, 32]"))
    result = train(spec, {"epochs": 1, "limit": 256, "test_limit": 64, "resize": 32, "batch_size": 64}, quiet())
    assert result.model.get_submodule("1").in_features == 32 * 32
    with pytest.raises(Exception, match="resize is 40"):
        train(spec, {"epochs": 1, "resize": 40}, quiet())


def test_bf16_autocast_on_cpu_trains(tmp_path):
    result = train(write(tmp_path, SYNTH_MLP), {"epochs": 1}, quiet(amp="bf16"))
    assert math.isfinite(result.summary["train_loss"])


# ------------------------------------------------------------------ CLI messages and exit codes
def test_unknown_override_gets_did_you_mean(tmp_path):
    spec = write(tmp_path, SYNTH_MLP)
    result = run_cli("train", spec, "--lrr", "0.1")
    assert result.exit_code == 2
    assert "--lrr" in result.output and "--lr" in result.output and "Did you mean" in result.output
    nested = run_cli("train", spec, "--set", "optimizer.momentm=0.5", "--quiet")
    assert nested.exit_code == 2
    assert "unknown key 'momentm' (did you mean 'momentum'?)" in nested.output
    bad_value = run_cli("train", spec, "--epochs", "zero")
    assert bad_value.exit_code == 2 and "--epochs:" in bad_value.output and "Traceback" not in bad_value.output


def test_cli_refuses_missing_cuda_and_bad_combinations(tmp_path):
    spec = write(tmp_path, SYNTH_MLP)
    if not torch.cuda.is_available():
        result = run_cli("train", spec, "--device", "cuda", "--quiet")
        assert result.exit_code == 2 and "CUDA is not available" in result.output
    result = run_cli("train", spec, "--amp", "fp16", "--device", "cpu", "--quiet")
    assert result.exit_code == 2 and "fp16 needs a CUDA device" in result.output
    assert run_cli("train").exit_code == 2
    assert run_cli("eval", spec).exit_code == 2  # no weights


def test_every_train_field_is_a_cli_option():
    from netspec.commands.train import eval_, train as train_command

    for command in (train_command, eval_):
        names = {opt for p in command.params for opt in getattr(p, "opts", [])}
        for field in TrainConfig.model_fields:
            assert f"--{field.replace('_', '-')}" in names and f"--{field}" in names


# ------------------------------------------------------------------ the train: section
def test_overrides_keep_the_rest_of_a_section():
    cfg, merged = with_overrides({"optimizer": {"name": "sgd", "lr": 0.9, "momentum": 0.5}}, {"optimizer": "adamw"})
    assert (cfg.optimizer.name, cfg.optimizer.lr) == ("adamw", 0.9)
    cfg, _ = with_overrides({"optimizer": "sgd", "lr": 0.9}, {"optimizer.momentum": 0.9})
    assert (cfg.optimizer.lr, cfg.optimizer.momentum) == (0.9, 0.9)
    with pytest.raises(SpecError, match=r"--lr: .*greater than 0"):
        with_overrides({}, {"lr": -1})


def test_schema_accepts_shorthand_names_for_editors():
    train_schema = json_schema()["$defs"]["TrainConfig"]["properties"]
    for key in ("optimizer", "schedule", "dataset"):
        assert any(alt.get("type") == "string" for alt in train_schema[key]["anyOf"])


# ------------------------------------------------------------------ robustness: bad input is one line, exit 2, no data lost
TINY = """
name: tiny
input: [2]
layers:
  - {op: linear, out: 1}
train:
  dataset: {name: synthetic_regression, examples: 40}
  batch_size: 10
  epochs: 2
  lr: 0.03
  loss: mse
"""


def refused(result, *phrases: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    for phrase in phrases:
        assert phrase in result.output, result.output


@pytest.mark.parametrize(
    "augment, phrase",
    [
        ({"random_crop": {"padding": -1}}, "random_crop.padding"),
        ({"random_erasing": {"p": 2}}, "random_erasing.p"),
        ({"random_erasing": {"scale": [0.9, 0.1]}}, "scale[0] <= scale[1]"),
        ({"horizontal_flip": {"p": -3}}, "horizontal_flip.p"),
        ("random_flip", "did you mean 'random_crop'"),
        ({"random_crop": {"pad": 4}}, "did you mean 'padding'"),
    ],
)
def test_bad_augment_parameters_are_spec_errors_in_check_and_train(tmp_path, augment, phrase):
    spec = write(tmp_path, MLP.replace("train: {", "train: {augment: [" + json.dumps(augment) + "], "))
    refused(run_cli("check", spec), phrase, "spec.yaml:")  # with its location, like every other error
    refused(run_cli("train", spec, "--augment", json.dumps([augment]), "--out", tmp_path / "run"), phrase)
    assert not (tmp_path / "run").exists()


def test_augment_shorthands_fill_in_the_runtime_defaults():
    import inspect

    from netspec.runtime.data.augment import AUGMENTATIONS

    cfg, _ = with_overrides({}, {"augment": ["horizontal_flip", {"random_erasing": None}]})
    items = [step.as_item() for step in cfg.augment]
    for item in items:
        ((name, params),) = item.items()
        defaults = {k: p.default for k, p in inspect.signature(AUGMENTATIONS[name]).parameters.items() if k in params}
        assert {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()} == {
            k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in defaults.items()
        }


@pytest.mark.parametrize(
    "option, value, phrase",
    [
        ("--lr", "1e308", "at most 1000000"),
        ("--lr", "1.0e39", "at most 1000000"),
        ("--lr", ".inf", "finite"),
        ("--weight-decay", "1.0e308", "at most 1000000"),
        ("--grad-clip", ".nan", "finite"),
        ("--set", "schedule.min_lr=.inf", "finite"),
    ],
)
def test_non_finite_and_huge_rates_are_refused(tmp_path, option, value, phrase):
    refused(run_cli("train", write(tmp_path, TINY), option, value, "--out", tmp_path / "run", "-q"), phrase)
    assert not (tmp_path / "run").exists()


def test_set_of_an_unknown_key_names_set_not_a_missing_option(tmp_path):
    result = run_cli("train", write(tmp_path, TINY), "--set", "nonexistent=1", "-q")
    refused(result, "--set nonexistent: unknown key")
    refused(run_cli("train", write(tmp_path, TINY), "--set", "epoch=1", "-q"), "--set epoch:", "did you mean 'epochs'")


def test_out_never_overwrites_a_folder_of_the_users_own_files(tmp_path):
    own = tmp_path / "own"
    own.mkdir()
    for name in ("spec.yaml", "summary.json", "metrics.jsonl"):
        (own / name).write_text(f"mine: {name}\n")
    refused(run_cli("train", write(tmp_path, TINY), "--out", own, "-q"), "not empty", "--resume")
    assert all((own / n).read_text() == f"mine: {n}\n" for n in ("spec.yaml", "summary.json", "metrics.jsonl"))
    refused(run_cli("train", write(tmp_path, TINY), "--out", "", "-q"), "--out")


def test_out_may_reuse_a_run_folder_where_no_epoch_completed(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "spec.yaml").write_text("# resolved by netspec train from x\nname: x\n")
    (out / "metrics.jsonl").write_text("")
    assert run_cli("train", write(tmp_path, TINY), "--out", out, "-q").exit_code == 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_resume_allows_only_more_epochs_and_never_rewrites_spec_to_what_did_not_run(tmp_path):
    run = tmp_path / "run"
    assert run_cli("train", write(tmp_path, TINY), "--out", run, "-q").exit_code == 0
    recorded = (run / "spec.yaml").read_text()
    weights = (run / "model.safetensors").read_bytes()
    refused(run_cli("train", "--resume", run, "--lr", "0.1", "-q"), "only --epochs", "--lr")
    refused(run_cli("train", "--resume", run, "--set", "optimizer.momentum=0.5", "-q"), "--set optimizer.momentum")
    refused(run_cli("train", "--resume", run, "--out", tmp_path / "other", "-q"), "drop --out")
    refused(run_cli("train", "--resume", run, "--epochs", "1", "-q"), "already completed 2 epochs")
    assert (run / "spec.yaml").read_text() == recorded and (run / "model.safetensors").read_bytes() == weights
    assert not (tmp_path / "other").exists()
    assert run_cli("train", "--resume", run, "--epochs", "3", "-q").exit_code == 0
    assert "epochs: 3" in (run / "spec.yaml").read_text()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3


def test_resume_of_a_run_without_a_completed_epoch_says_start_again(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "spec.yaml").write_text(write(tmp_path, TINY).read_text())
    refused(run_cli("train", "--resume", run, "-q"), "no epoch of this run completed", "start it again")


def test_data_dir_that_does_not_exist_is_a_data_error(tmp_path):
    refused(run_cli("train", write(tmp_path, MLP), "--data-dir", tmp_path / "nosuchdir", "-q"), "nosuchdir")
    (tmp_path / "afile").write_text("")
    refused(run_cli("train", write(tmp_path, MLP), "--data-dir", tmp_path / "afile", "-q"), "afile", "not a folder")


@pytest.mark.parametrize("name", ["metrics.jsonl", "curves.png", "model.safetensors", "summary.json"])
def test_a_directory_in_place_of_a_run_file_is_refused_before_training(tmp_path, name):
    run = tmp_path / "run"
    assert run_cli("train", write(tmp_path, TINY), "--out", run, "-q").exit_code == 0
    weights = (run / "model.safetensors").read_bytes()
    blocked = run / name
    blocked.unlink()
    blocked.mkdir()
    refused(run_cli("train", "--resume", run, "--epochs", "3", "-q"), f"{blocked}", "is a directory")
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 2
    if name != "model.safetensors":
        assert (run / "model.safetensors").read_bytes() == weights


def test_a_failing_picture_keeps_the_weights_of_a_finished_run(tmp_path, monkeypatch):
    from netspec.runtime.run import metrics

    def broken(*args, **kwargs):
        raise IsADirectoryError(21, "Is a directory")

    monkeypatch.setattr(metrics, "plot_curves", broken)
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match="curves.png: cannot write .*weights are in"):
        train(write(tmp_path, TINY), {}, quiet(run))
    model = compile_spec(run / "spec.yaml")
    load_weights(model, run)  # the finished run's weights are there
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 2


def test_interrupt_after_a_checkpoint_prints_how_to_resume(tmp_path, monkeypatch, capsys):
    from netspec.runtime.train.trainer import Trainer

    real = Trainer.train_epoch

    def interrupted_in_epoch_2(self, progress):
        if self.epoch == 1:
            raise KeyboardInterrupt
        return real(self, progress)

    monkeypatch.setattr(Trainer, "train_epoch", interrupted_in_epoch_2)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):  # the library says where, and prints nothing
        train(write(tmp_path, TINY), {}, quiet(run))
    assert capsys.readouterr().err == ""
    result = run_cli("train", write(tmp_path, TINY), "--out", tmp_path / "run2", "-q")
    assert result.exit_code == 130
    assert f"resume with: netspec train --resume {tmp_path / 'run2'}" in result.output


def test_csv_with_an_empty_test_split_is_refused(tmp_path):
    (tmp_path / "small.csv").write_text("a,b,y\n1,2,0\n3,4,1\n")
    spec = write(tmp_path, "name: c\ninput: [2]\nlayers:\n  - {op: linear, out: 2}\n"
                 "train: {dataset: {name: csv, path: small.csv, target: y}, batch_size: 1, epochs: 1}\n")
    refused(run_cli("train", spec, "--out", tmp_path / "run", "-q"), "test split is empty")


@needs_data
def test_fgsm_adversarial_training_makes_the_model_more_robust(tmp_path):
    """What `train.adversarial` is for: under FGSM at the training ε, the adversarially
    trained MLP keeps clearly more accuracy than the same MLP trained on clean images."""
    from netspec.runtime.attack.attacks import evaluate_attack

    spec = write(tmp_path, MLP)
    base = {"epochs": 3, "limit": 3000, "test_limit": 1000, "batch_size": 64, "lr": 0.1, "seed": 0}
    clean = train(spec, base, quiet())
    robust = train(spec, {**base, "adversarial": {"eps": 0.1, "mix": 0.5}}, quiet())
    cfg, _ = with_overrides({}, base)
    data = prepare_data(cfg, DATA, input_shape=(1, 28, 28))
    x, y = data.test_x[:1000], data.test_y[:1000]
    under_attack = [evaluate_attack(r.model, x, y, [0.1], prepare=data.inputs).adv_acc[0] for r in (clean, robust)]
    assert under_attack[1] > under_attack[0] + 0.05, under_attack  # measured: 0.34 -> 0.44
