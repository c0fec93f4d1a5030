"""Tests for netspec.runtime.attack.attacks (FGSM, PGD, evaluation) and `netspec attack` (fast)."""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

import netspec
from netspec.cli import main
from netspec.runtime import data as D
from netspec.runtime.attack.attacks import evaluate_attack, fgsm_perturb, pgd_perturb

from shared_data import FASHION_MNIST as SHARED, needs_fashion_mnist as needs_shared, trust_copy  # noqa: E402

MLP = """
name: tiny_mlp
input: [1, 28, 28]
layers:
  - flatten
  - {op: linear, out: 64}
  - relu
  - {op: linear, out: 10}
"""
EPS = [0.0, 0.01, 0.02, 0.05, 0.1, 0.2]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models on shared cores: one thread avoids oversubscription stalls (10x here)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def fmnist():
    if not all((SHARED / f).is_file() for f in D.DATASETS["fashion_mnist"].idx.files.values()):
        pytest.skip(f"real Fashion-MNIST files not present in {SHARED}")
    return D.load_dataset("fashion_mnist", data_dir=SHARED, download=False)


@pytest.fixture(scope="module")
def trained(fmnist):
    """A 784-64-10 MLP trained for 300 SGD steps with a plain torch loop (~83% test accuracy)."""
    model = netspec.compile(netspec.load("tiny_mlp.yaml", text=MLP), seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        idx = torch.randint(0, len(fmnist.train_x), (128,), generator=g)
        loss = F.cross_entropy(model(D.to_float(fmnist.train_x[idx])), fmnist.train_y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    return model.eval()


@pytest.fixture(scope="module")
def test_batch(fmnist):
    return fmnist.test_x[:1000], fmnist.test_y[:1000]


# --------------------------------------------------------------------------- on real data

def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(D.to_float(x)).argmax(1) == y).float().mean().item()


@needs_shared
@pytest.mark.parametrize("method", ["fgsm", "pgd"])
def test_attack_lowers_accuracy_monotonically(trained, test_batch, method):
    x, y = test_batch
    r = evaluate_attack(trained, x, y, EPS, method=method, steps=5, batch_size=300)
    assert r.examples == 1000 and r.eps == EPS and len(r.adv_acc) == len(EPS)
    assert r.clean_acc == pytest.approx(_accuracy(trained, x, y))  # a plain forward pass
    assert r.clean_acc > 0.75, "the fixture model should have learnt something"
    assert r.adv_acc[0] == r.clean_acc  # ε = 0 changes nothing
    assert all(a >= b for a, b in zip(r.adv_acc, r.adv_acc[1:])), r.adv_acc
    assert r.adv_acc[EPS.index(0.1)] < r.clean_acc - 0.3, r.adv_acc


@needs_shared
def test_pgd_is_at_least_as_strong_as_fgsm(trained, test_batch):
    x, y = test_batch
    fgsm = evaluate_attack(trained, x, y, [0.05, 0.1], method="fgsm")
    pgd = evaluate_attack(trained, x, y, [0.05, 0.1], method="pgd", steps=10)
    assert all(p <= f for p, f in zip(pgd.adv_acc, fgsm.adv_acc)), (pgd.adv_acc, fgsm.adv_acc)


@needs_shared
@pytest.mark.parametrize("eps", [0.0, 0.03, 0.1, 0.3])
def test_perturbation_within_eps_and_pixels_valid(trained, test_batch, eps):
    x, y = D.to_float(test_batch[0][:200]), test_batch[1][:200]
    for x_adv in (
        fgsm_perturb(trained, x, y, eps),
        pgd_perturb(trained, x, y, eps, steps=5, generator=torch.Generator().manual_seed(1)),
        pgd_perturb(trained, x, y, eps, alpha=eps, steps=3, random_start=False),
    ):
        delta = (x_adv - x).abs().max().item()
        assert delta <= eps + 1e-6
        assert x_adv.min() >= 0 and x_adv.max() <= 1
        if eps > 0:
            assert delta >= eps * 0.99  # the attack does use its budget
        else:
            assert torch.equal(x_adv, x)


@needs_shared
def test_attacked_batch_is_misclassified_more_than_clean(trained, test_batch):
    x, y = D.to_float(test_batch[0][:500]), test_batch[1][:500]
    x_adv = fgsm_perturb(trained, x, y, 0.1)
    with torch.no_grad():
        clean = (trained(x).argmax(1) == y).float().mean()
        adv = (trained(x_adv).argmax(1) == y).float().mean()
    assert adv < clean - 0.3


# --------------------------------------------------------------------------- exactness

LINEAR = """
name: linear
input: [5]
layers:
  - {op: linear, out: 3}
"""


def test_fgsm_equals_hand_computed_sign_step():
    """∇x CE(Wx + b, y) = Wᵀ(softmax(Wx + b) − onehot(y)), computed here in float64 numpy."""
    model = netspec.compile(netspec.load("linear.yaml", text=LINEAR), seed=3)
    state = model.state_dict()
    w, b = state["0.weight"].double().numpy(), state["0.bias"].double().numpy()
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, (16, 5))
    y = rng.integers(0, 3, 16)
    z = x @ w.T + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad = (p - np.eye(3)[y]) @ w  # per-example gradient; the batch mean only scales it
    eps = 0.07
    expected = np.clip(x + eps * np.sign(grad), 0.0, 1.0)
    got = fgsm_perturb(model, torch.tensor(x, dtype=torch.float32), torch.tensor(y), eps)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)
    unclamped = fgsm_perturb(model, torch.tensor(x, dtype=torch.float32), torch.tensor(y), eps, clamp=None)
    np.testing.assert_allclose(unclamped.numpy(), x + eps * np.sign(grad), atol=1e-6)
    # PGD with one full step from x is the same attack
    pgd = pgd_perturb(model, torch.tensor(x, dtype=torch.float32), torch.tensor(y), eps, alpha=eps, steps=1,
                      random_start=False)
    np.testing.assert_allclose(pgd.numpy(), expected, atol=1e-6)


def test_perturb_leaves_model_mode_and_grads_alone():
    """What adversarial training needs: no .grad on parameters, no mode switch, even inside no_grad."""
    model = netspec.compile(netspec.load("linear.yaml", text=LINEAR), seed=0)
    x, y = torch.rand(8, 5), torch.randint(0, 3, (8,))
    for mode in (True, False):
        model.train(mode)
        with torch.no_grad():
            x_adv = fgsm_perturb(model, x, y, 0.1)
        assert model.training is mode
        assert all(p.grad is None for p in model.parameters())
        assert not x_adv.requires_grad and x_adv.grad_fn is None
    F.cross_entropy(model(x), y).backward()  # a trainer's gradients in flight survive untouched
    before = [p.grad.clone() for p in model.parameters()]
    pgd_perturb(model, x, y, 0.1, steps=2)
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), before))


def test_bad_arguments_raise():
    model = netspec.compile(netspec.load("linear.yaml", text=LINEAR), seed=0)
    x, y = torch.rand(2, 5), torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match="eps"):
        fgsm_perturb(model, x, y, -0.1)
    with pytest.raises(ValueError, match="method"):
        evaluate_attack(model, x, y, [0.1], method="cw")


# --------------------------------------------------------------------------- CLI

SMALL_CNN = """
name: small_cnn
input: [1, 16, 16]
layers:
  - {op: conv2d, out: 4, kernel: 3, padding: 1}
  - relu
  - {op: maxpool, kernel: 2}
  - flatten
  - {op: linear, out: 10}
train: {dataset: fashion_mnist, resize: 16}
"""


def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape) + array.tobytes()


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch) -> Path:
    """A fake 12×12 Fashion-MNIST (so no download), a spec with a 16×16 input, saved weights."""
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    parts = {"train_x": rng.integers(0, 256, (20, 12, 12), dtype=np.uint8),
             "train_y": (np.arange(20) % 10).astype(np.uint8),
             "test_x": rng.integers(0, 256, (30, 12, 12), dtype=np.uint8),
             "test_y": (np.arange(30) % 10).astype(np.uint8)}
    for part, fname in D.DATASETS["fashion_mnist"].idx.files.items():
        (data / fname).write_bytes(gzip.compress(_idx(parts[part])))
    trust_copy(monkeypatch, data)
    (tmp_path / "small_cnn.yaml").write_text(SMALL_CNN)
    model = netspec.compile(tmp_path / "small_cnn.yaml", seed=0)
    run = tmp_path / "runs" / "small_cnn" / "run1"
    run.mkdir(parents=True)
    save_file(model.state_dict(), str(run / "model.safetensors"))
    return tmp_path


def _invoke(ws: Path, *args: str):
    return CliRunner().invoke(main, ["attack", str(ws / "small_cnn.yaml"), "--data-dir", str(ws / "data"), *args])


def _one_line_error(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    message = result.stderr.strip()
    assert message and "\n" not in message and "Traceback" not in message, message
    return message


def test_cli_end_to_end_pgd(workspace):
    ws = workspace
    out = ws / "out"
    weights = ws / "runs" / "small_cnn" / "run1" / "model.safetensors"
    result = _invoke(ws, "-w", str(weights), "--eps", "0,0.1", "--eps", "0.05", "--method", "pgd", "--steps", "2",
                     "--limit", "25", "--batch-size", "8", "--device", "cpu", "-o", str(out))
    assert result.exit_code == 0, (result.output, result.stderr)
    record = json.loads((out / "attack.json").read_text())
    assert record["eps"] == [0.0, 0.05, 0.1] and record["method"] == "pgd" and record["steps"] == 2
    assert record["examples"] == 25 and len(record["adv_acc"]) == 3
    assert record["alpha"] == pytest.approx([0.0, 2.5 * 0.05 / 2, 2.5 * 0.1 / 2])
    # clean accuracy from an independent forward pass: x/255, bilinear 12 -> 16, argmax
    model = netspec.compile(ws / "small_cnn.yaml")
    model.load_state_dict(load_file(str(weights)))
    images = D.load_dataset("fashion_mnist", data_dir=ws / "data", download=False)
    x = F.interpolate(images.test_x[:25].float() / 255, size=(16, 16), mode="bilinear", align_corners=False)
    with torch.no_grad():
        expected = (model(x).argmax(1) == images.test_y[:25]).float().mean().item()
    assert record["clean_acc"] == pytest.approx(expected)
    assert record["adv_acc"][0] == record["clean_acc"]
    for name in ("attack.png", "attack_curve.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "adversarial acc" in result.stdout and "0.05" in result.stdout


def test_cli_writes_into_the_run_folder_by_default(workspace):
    run = workspace / "runs" / "small_cnn" / "run1"
    result = _invoke(workspace, "-w", str(run), "--limit", "10", "--samples", "3")
    assert result.exit_code == 0, (result.output, result.stderr)
    record = json.loads((run / "attack.json").read_text())
    assert record["method"] == "fgsm" and record["eps"] == [0.1] and record["steps"] == 1
    assert (run / "attack.png").is_file() and (run / "attack_curve.png").is_file()


@pytest.mark.parametrize("eps", ["-0.1", "1.5", "0.1,abc"])
def test_cli_rejects_bad_eps(workspace, eps):
    message = _one_line_error(_invoke(workspace, "-w", str(workspace / "runs" / "small_cnn" / "run1"), "--eps", eps))
    assert "--eps" in message


def test_cli_rejects_mismatched_weights(workspace):
    other = netspec.compile(netspec.load("tiny_mlp.yaml", text=MLP), seed=0)
    path = workspace / "mlp.safetensors"
    save_file(other.state_dict(), str(path))
    message = _one_line_error(_invoke(workspace, "-w", str(path)))
    assert "mlp.safetensors" in message


def test_cli_rejects_corrupt_weights(workspace):
    path = workspace / "broken.safetensors"
    path.write_bytes(b"not a safetensors file")
    message = _one_line_error(_invoke(workspace, "-w", str(path)))
    assert "broken.safetensors" in message


@pytest.mark.parametrize("out,train", [
    (1, "{dataset: synthetic_regression, loss: mse}"),  # one output: not class scores
    (10, "{dataset: fashion_mnist, loss: mse}"),  # class-shaped but trained as regression
])
def test_cli_rejects_a_regression_spec(tmp_path, out, train):
    spec = tmp_path / "linreg.yaml"
    spec.write_text(f"name: linreg\ninput: [2]\nlayers:\n  - {{op: linear, out: {out}}}\ntrain: {train}\n")
    weights = tmp_path / "w.safetensors"
    save_file(netspec.compile(spec).state_dict(), str(weights))
    result = CliRunner().invoke(main, ["attack", str(spec), "-w", str(weights)])
    assert "cannot attack" in _one_line_error(result)


def test_cli_rejects_steps_with_fgsm(workspace):
    result = _invoke(workspace, "-w", str(workspace / "runs" / "small_cnn" / "run1"), "--method", "fgsm", "--steps", "3")
    assert "--steps" in _one_line_error(result)


# ------------------------------------------------------------------ robustness of the command
def _run(ws: Path) -> Path:
    return ws / "runs" / "small_cnn" / "run1"


@pytest.mark.parametrize("seed", ["-1", "99999999999999999999999", str(2**63)])
def test_cli_rejects_out_of_range_seed(workspace, seed):
    result = _invoke(workspace, "-w", str(_run(workspace)), "--seed", seed)
    assert result.exit_code == 2, (result.output, result.exception)
    assert "--seed" in result.stderr and "Traceback" not in result.output + result.stderr


def test_cli_accepts_the_largest_seed(workspace):
    result = _invoke(workspace, "-w", str(_run(workspace)), "--method", "pgd", "--steps", "1", "--limit", "4",
                     "--seed", str(2**63 - 1), "--device", "cpu")
    assert result.exit_code == 0, (result.output, result.stderr)


def test_cli_accepts_a_run_folder_as_spec_like_eval(workspace):
    """`netspec attack RUN` = `netspec attack RUN/spec.yaml -w RUN` (as `netspec eval RUN`)."""
    run = _run(workspace)
    (run / "spec.yaml").write_text(SMALL_CNN)
    args = ["--data-dir", str(workspace / "data"), "--limit", "12", "--device", "cpu"]
    by_folder = CliRunner().invoke(main, ["attack", str(run), *args, "-o", str(workspace / "a")])
    assert by_folder.exit_code == 0, (by_folder.output, by_folder.stderr)
    explicit = CliRunner().invoke(main, ["attack", str(run / "spec.yaml"), "-w", str(run), *args, "-o", str(workspace / "b")])
    assert explicit.exit_code == 0, (explicit.output, explicit.stderr)
    a, b = (json.loads((workspace / d / "attack.json").read_text()) for d in "ab")
    assert a["clean_acc"] == b["clean_acc"] and a["adv_acc"] == b["adv_acc"]
    # the default output folder is the run folder, as with -w RUN
    default = CliRunner().invoke(main, ["attack", str(run), *args])
    assert default.exit_code == 0 and (run / "attack.json").is_file()


def test_cli_needs_weights_unless_spec_is_a_run_folder(workspace):
    result = _invoke(workspace)
    assert result.exit_code == 2 and "--weights" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("dtype,word", [(torch.int8, "int8"), (torch.float64, "float64")])
def test_cli_rejects_weights_of_another_dtype(workspace, dtype, word):
    state = load_file(str(_run(workspace) / "model.safetensors"))
    save_file({k: v.to(dtype) for k, v in state.items()}, str(workspace / "cast.safetensors"))
    message = _one_line_error(_invoke(workspace, "-w", str(workspace / "cast.safetensors")))
    assert "cast.safetensors" in message and word in message and "float32" in message


def test_cli_rejects_nan_weights(workspace):
    state = load_file(str(_run(workspace) / "model.safetensors"))
    save_file({k: torch.full_like(v, float("nan")) for k, v in state.items()}, str(workspace / "nan.safetensors"))
    message = _one_line_error(_invoke(workspace, "-w", str(workspace / "nan.safetensors")))
    first = next(iter(netspec.compile(workspace / "small_cnn.yaml").state_dict()))  # the model's first parameter
    assert "nan.safetensors" in message and "NaN" in message and f": {first} holds" in message


def test_cli_refuses_an_output_name_taken_by_a_folder_before_attacking(workspace, monkeypatch):
    out = workspace / "atk7"
    (out / "attack.json").mkdir(parents=True)
    import netspec.runtime.attack.attacks as A

    def never(*args, **kwargs):
        raise AssertionError("attacked although the results could not be written")

    monkeypatch.setattr(A, "evaluate_attack", never)
    message = _one_line_error(_invoke(workspace, "-w", str(_run(workspace)), "--out", str(out)))
    assert "attack.json" in message
    assert (out / "attack.json").is_dir() and not (out / "attack_curve.png").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write into read-only folders")
def test_cli_refuses_a_read_only_run_folder_before_attacking(workspace):
    run = _run(workspace)
    run.chmod(0o555)
    try:
        message = _one_line_error(_invoke(workspace, "-w", str(run)))
    finally:
        run.chmod(0o755)
    assert str(run) in message and not (run / "attack.json").exists()


def test_cli_write_failure_is_one_line_and_keeps_the_old_file(workspace, monkeypatch):
    """A disk that fills up after the attack: one line naming the file, old picture intact."""
    import errno

    from matplotlib.figure import Figure

    out = workspace / "out"
    out.mkdir()
    (out / "attack_curve.png").write_bytes(b"old picture")

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", full)
    result = _invoke(workspace, "-w", str(_run(workspace)), "--limit", "4", "--samples", "2", "--device", "cpu", "-o", str(out))
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]  # after the attack's progress bar
    assert message.startswith(str(out / "attack")) and "cannot write (No space left on device)" in message
    assert (out / "attack_curve.png").read_bytes() == b"old picture"
    assert json.loads((out / "attack.json").read_text())["examples"] == 4  # what was written is complete


def test_cli_class_count_mismatch_reads_well(tmp_path):
    """A 2-output network on a CSV with a single class: '1 class', not '1 classes'."""
    csv = tmp_path / "one.csv"
    csv.write_text("a,b,label\n" + "".join(f"{i},{i + 1},x\n" for i in range(10)))
    spec = tmp_path / "two.yaml"
    spec.write_text("name: two\ninput: [2]\nlayers:\n  - {op: linear, out: 2}\n"
                    "train: {dataset: {name: csv, path: one.csv, target: label}}\n")
    save_file(netspec.compile(spec).state_dict(), str(tmp_path / "w.safetensors"))
    result = CliRunner().invoke(main, ["attack", str(spec), "-w", str(tmp_path / "w.safetensors"), "--device", "cpu"])
    message = _one_line_error(result)
    assert "2 classes" in message and "1 class" in message and "1 classes" not in message
