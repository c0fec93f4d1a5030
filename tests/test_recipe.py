"""The recipe knobs of `train:` against independent references.

Truths: a hand-written PyTorch loop (same batches) using torch's own SGD (nesterov, parameter
groups) and `F.cross_entropy(label_smoothing=)`; an EMA average rolled by hand over 3 steps;
flip test-time augmentation computed by hand; gradient accumulation against one big batch;
an uninterrupted run against an interrupted + resumed one with every knob on (bitwise).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import netspec
from netspec.api import compile as compile_spec
from netspec.compiler.train_schema import TrainConfig, with_overrides
from netspec.errors import SpecError, TrainingError
from netspec.runtime.data import batching as B
from netspec.runtime.train import ema as ema_module
from netspec.runtime.train.evaluation import evaluate
from netspec.runtime.train.prepare import prepare_data
from netspec.runtime.train.entry import RunOptions, train

from shared_data import FASHION_MNIST as DATA, needs_fashion_mnist as needs_data  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

# flat input: BN (norm params) and biases, no dropout, so a hand loop can follow it exactly
FLAT = """
name: flat
input: [784]
layers:
  - {op: linear, out: 32}
  - batchnorm
  - relu
  - {op: linear, out: 10}
train:
  dataset: fashion_mnist
  limit: %(limit)d
  test_limit: 200
  batch_size: %(batch)d
  epochs: %(epochs)d
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9, weight_decay: 0.01}
"""

CONV = """
name: conv
input: [1, 28, 28]
layers:
  - {op: conv2d, out: 4, kernel: 3, padding: 1}
  - batchnorm
  - relu
  - {op: maxpool, kernel: 2, stride: 2}
  - flatten
  - {op: dropout, p: 0.2}
  - {op: linear, out: 10}
train:
  dataset: fashion_mnist
  limit: 384
  test_limit: 128
  batch_size: 32
  epochs: 2
"""


def spec_file(tmp_path: Path, text: str, **values) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text % values if values else text)
    return path


def opts(out: Path | None = None, **kw) -> RunOptions:
    return RunOptions(device="cpu", quiet=True, data_dir=DATA, out=out, save=out is not None, **kw)


def flat_batches(spec: Path, batch: int):
    import yaml

    train_cfg = TrainConfig.model_validate(yaml.safe_load(spec.read_text())["train"])
    data = prepare_data(train_cfg, DATA, input_shape=(784,))
    return data, B.Batches(data.train_x, data.train_y, batch, shuffle=True, seed=0)


# ------------------------------------------------------------------ the update rule
@needs_data
def test_smoothing_nesterov_and_no_decay_groups_match_a_handwritten_loop(tmp_path):
    spec = spec_file(tmp_path, FLAT, limit=256, batch=32, epochs=2)
    over = {"label_smoothing": 0.1, "nesterov": True, "no_decay_norm_bias": True}
    result = train(spec, over, opts())
    data, batches = flat_batches(spec, 32)
    model = compile_spec(spec, seed=0)
    norm_or_bias = [p for n, p in model.named_parameters() if n.startswith("1.") or n.endswith("bias")]
    weights = [p for n, p in model.named_parameters() if not (n.startswith("1.") or n.endswith("bias"))]
    assert len(norm_or_bias) == 4 and len(weights) == 2  # BN weight+bias, two linear biases; two linear weights
    opt = torch.optim.SGD(
        [{"params": weights, "weight_decay": 0.01}, {"params": norm_or_bias, "weight_decay": 0.0}], lr=0.1, momentum=0.9, nesterov=True
    )
    for epoch in range(2):
        batches.set_epoch(epoch)
        for xb, yb in batches:
            loss = F.cross_entropy(model(data.inputs(xb)), yb, label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
    for name, value in model.state_dict().items():
        torch.testing.assert_close(result.model.state_dict()[name], value, rtol=1e-5, atol=1e-6)
    # the reported test loss is the plain cross-entropy (smoothing belongs to training only)
    model.eval()
    with torch.no_grad():
        x, y = data.test_x[:200], data.test_y[:200]
        plain = F.cross_entropy(model(data.inputs(x)), y).item()
    assert result.summary["test_loss"] == pytest.approx(plain, rel=1e-5)


@needs_data
def test_accumulating_four_batches_of_8_equals_one_batch_of_32(tmp_path):
    text = FLAT.replace("  - batchnorm\n", "")  # batch statistics would differ between 8 and 32
    spec = spec_file(tmp_path, text, limit=256, batch=8, epochs=2)
    accumulated = train(spec, {"accumulate": 4}, opts()).model.state_dict()
    big = train(spec, {"batch_size": 32}, opts()).model.state_dict()
    small = train(spec, {}, opts()).model.state_dict()
    for k, v in big.items():
        torch.testing.assert_close(accumulated[k], v, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(small["0.weight"], big["0.weight"], atol=1e-4)  # accumulation really changed the run


@needs_data
def test_ema_is_the_hand_rolled_average_and_what_the_run_evaluates_and_saves(tmp_path, monkeypatch):
    spec = spec_file(tmp_path, FLAT, limit=96, batch=32, epochs=1)  # 3 optimizer steps
    states = []
    original = ema_module.EMA.update

    def spy(self):
        original(self)
        states.append({k: v.clone() for k, v in self.source.state_dict().items()})

    monkeypatch.setattr(ema_module.EMA, "update", spy)
    result = train(spec, {"ema": 0.9}, opts(tmp_path / "run"))
    assert len(states) == 3
    initial = compile_spec(spec, seed=0).state_dict()
    for k, v in initial.items():
        if not v.is_floating_point():
            continue
        avg = v.clone()
        for w in states:  # ema <- 0.9 ema + 0.1 w after each step
            avg = 0.9 * avg + 0.1 * w[k]
        torch.testing.assert_close(result.model.state_dict()[k], avg, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(avg, states[-1][k]), k  # the average is not the trained weights
    saved = load_file(tmp_path / "run" / "model.safetensors")
    for k, v in result.model.state_dict().items():
        assert torch.equal(saved[k], v), k
    data = prepare_data(result.config, DATA, input_shape=(784,))
    again = evaluate(result.model, data, result.config)
    assert result.summary["test_acc"] == again["acc"]


@needs_data
def test_flip_tta_averages_the_logits_of_each_image_and_its_mirror(tmp_path):
    spec = spec_file(tmp_path, CONV)
    result = train(spec, {"epochs": 1}, opts())
    model, cfg = result.model.eval(), result.config
    data = prepare_data(cfg, DATA, input_shape=(1, 28, 28))
    x, y = data.inputs(data.test_x), data.test_y
    with torch.no_grad():
        logits = (model(x) + model(torch.flip(x, dims=[3]))) / 2
        plain = model(x)
    by_hand = (logits.argmax(1) == y).float().mean().item()
    tta = evaluate(model, data, cfg.model_copy(update={"tta": "flip"}), batch_size=50)
    assert tta["acc"] == pytest.approx(by_hand, abs=1e-9)
    assert tta["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert evaluate(model, data, cfg)["loss"] == pytest.approx(F.cross_entropy(plain, y).item(), rel=1e-5)


# ------------------------------------------------------------------ resume
ALL_KNOBS = {
    "label_smoothing": 0.1, "nesterov": True, "momentum": 0.9, "weight_decay": 5e-4, "ema": 0.95, "warmup": 0.5,
    "schedule": "cosine", "no_decay_norm_bias": True, "tta": "flip", "accumulate": 2, "amp": "bf16",
    "channels_last": True, "augment": [{"random_crop": {"padding": 2}}, "horizontal_flip"],
}


@needs_data
def test_interrupted_and_resumed_equals_uninterrupted_with_every_knob_on(tmp_path, monkeypatch):
    spec = spec_file(tmp_path, CONV)
    whole = train(spec, ALL_KNOBS, opts(tmp_path / "whole"))
    calls = []
    original = ema_module.EMA.update

    def interrupt_mid_epoch_two(self):
        calls.append(1)
        if len(calls) == 9:  # 6 updates per epoch (12 batches, accumulate 2): the 3rd of epoch 2
            raise KeyboardInterrupt
        original(self)

    monkeypatch.setattr(ema_module.EMA, "update", interrupt_mid_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(spec, ALL_KNOBS, opts(tmp_path / "cut"))
    monkeypatch.setattr(ema_module.EMA, "update", original)
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    resumed = train(None, {}, RunOptions(device="cpu", quiet=True, data_dir=DATA, resume=tmp_path / "cut"))
    a, b = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ca = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    cb = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), k
    assert resumed.summary["test_acc"] == whole.summary["test_acc"]
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in whole.history]
    assert "bf16" in whole.summary["device"] and "channels-last" in whole.summary["device"]


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "over, phrase",
    [
        ({"nesterov": "yes"}, "nesterov"),
        ({"nesterov": True}, "momentum > 0"),
        ({"nesterov": True, "momentum": 0.9, "optimizer": "adam"}, "nesterov needs optimizer sgd"),
        ({"accumulate": 2.0}, "accumulate"),
        ({"accumulate": 0}, "accumulate"),
        ({"ema": 1.0}, "ema"),
        ({"ema": True}, "ema"),
        ({"label_smoothing": 0.1, "loss": "mse"}, "label_smoothing applies to loss cross_entropy"),
        ({"tta": "rotate"}, "tta"),
        ({"amp": "fp32"}, "amp"),
        ({"channels_last": "yes"}, "channels_last"),
        ({"warmup": 1, "schedule": "onecycle"}, "onecycle warms up by itself"),
        ({"no_decay_norm_bias": 1}, "no_decay_norm_bias"),
    ],
)
def test_bad_recipe_values_are_refused(over, phrase):
    with pytest.raises(SpecError) as err:
        with_overrides({}, over)
    assert phrase.replace("_", "-") in str(err.value).replace("_", "-")


def test_warmup_shorthand_sets_the_schedule():
    cfg = with_overrides({"schedule": "cosine"}, {"warmup": 2})[0]
    assert cfg.schedule.warmup == 2 and cfg.schedule.name == "cosine"


def test_sync_bn_is_refused_on_cpu_before_any_batch():
    from netspec.runtime.train.distributed import sync_batchnorm

    with pytest.raises(TrainingError, match="SyncBatchNorm runs on CUDA devices only"):
        sync_batchnorm(torch.nn.Sequential(torch.nn.BatchNorm2d(3)), torch.device("cpu"))


def test_sync_bn_on_cpu_is_refused_once_before_launching_processes(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from netspec.cli import main
    from netspec.runtime.train import distributed

    launched = []
    monkeypatch.setattr(distributed, "relaunch", lambda *a: launched.append(a) or 0)
    spec = spec_file(tmp_path, CONV)
    result = CliRunner().invoke(main, ["train", str(spec), "--sync-bn", "true", "--nproc-per-node", "2", "--device", "cpu", "-q"])
    assert result.exit_code == 2 and result.output.count("SyncBatchNorm runs on CUDA devices only") == 1, result.output
    assert not launched


# --------------------------------------------------------------------------- bf16 on a CPU without it

def _lstm_under_cpu_autocast() -> Exception | None:
    lstm = torch.nn.LSTM(3, 4, batch_first=True)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lstm(torch.randn(2, 5, 3))
    except RuntimeError as exc:
        return exc
    return None


def test_which_ops_need_a_native_bf16_cpu_is_what_torch_does_here():
    """`OpDef.amp_cpu_native` (LSTM) against torch itself: under CPU bf16 autocast its LSTM
    fails on a CPU without oneDNN's bf16 kernels (no AVX-512) and runs on one with them; GRU
    runs on both."""
    from netspec.compiler import registry
    from netspec.runtime.train.recipe import cpu_has_bf16

    assert sorted(n for n, op in registry.ops().items() if op.amp_cpu_native) == ["lstm"]
    assert (_lstm_under_cpu_autocast() is None) is cpu_has_bf16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.nn.GRU(3, 4, batch_first=True)(torch.randn(2, 5, 3))


LSTM_SPEC = """\
name: tiny_lstm
input: [6, 4]
layers:
  - {op: lstm, name: rnn, hidden: 5, output: last}
  - {op: linear, out: 10}
train: {dataset: fashion_mnist, epochs: 1}
"""


def test_bf16_on_a_cpu_without_it_is_refused_for_an_lstm_before_a_run_folder(tmp_path, monkeypatch):
    """One line naming the layer, exit 2, no run folder (torch would fail at the first batch
    with oneDNN's "could not create a primitive descriptor"); without --amp it is not refused."""
    from click.testing import CliRunner

    from netspec.cli import main
    from netspec.runtime.train import recipe

    monkeypatch.setattr(recipe, "cpu_has_bf16", lambda: False)
    spec = tmp_path / "tiny_lstm.yaml"
    spec.write_text(LSTM_SPEC)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", str(spec), "--amp", "bf16", "--out", str(out), "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 2, result.output
    assert "layer 'rnn' (lstm)" in result.output and "AVX-512" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()
    graph = netspec.build_graph(netspec.load("s.yaml", text=LSTM_SPEC))
    recipe.check_cpu_bf16(graph, None, torch.device("cpu"))  # no autocast: nothing to refuse
    recipe.check_cpu_bf16(graph, "bf16", torch.device("cuda"))  # CUDA's bf16 LSTM is cuDNN's
    monkeypatch.setattr(recipe, "cpu_has_bf16", lambda: True)
    recipe.check_cpu_bf16(graph, "bf16", torch.device("cpu"))


def test_bf16_for_an_lstm_on_such_a_cpu_is_refused_once_before_launching_processes(tmp_path, monkeypatch):
    """torchrun's launcher (`--nproc-per-node`) checks it before starting the processes."""
    from netspec.runtime.train import entry, recipe

    monkeypatch.setattr(recipe, "cpu_has_bf16", lambda: False)
    spec = tmp_path / "tiny_lstm.yaml"
    spec.write_text(LSTM_SPEC)
    with pytest.raises(TrainingError, match="layer 'rnn' \\(lstm\\)"):
        entry.precheck(str(spec), {}, RunOptions(amp="bf16", device="cpu"), 2)
    entry.precheck(str(spec), {}, RunOptions(device="cpu"), 2)  # without autocast: nothing to refuse
