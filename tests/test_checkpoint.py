"""Checkpoints: atomic writes, safe loading, clear refusals, and resume after SIGKILL.

Truths: an uninterrupted run of the same spec (resume must reproduce it bit for bit on CPU),
the model's own state dict (what a mismatch message must name), and a pickle that would run
code if it were unpickled unsafely.
"""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from netspec.api import compile as compile_spec
from netspec.cli import main
from netspec.errors import CheckpointError, TrainingError
from netspec.files import atomic_write
from netspec.runtime.run import checkpoint as ckpt
from netspec.runtime.train.entry import RunOptions, train

ROOT = Path(__file__).resolve().parents[1]

# Dropout and augmentation exercise the RNG states a resume has to restore.
MLP = """
name: tiny
input: [1, 8, 8]
layers:
  - flatten
  - {op: linear, out: 32}
  - relu
  - {op: dropout, p: 0.2}
  - {op: linear, out: 1}
train:
  dataset: {name: synthetic_regression, true_w: [%s], true_b: 0.5, examples: %d}
  loss: mse
  batch_size: 16
  epochs: %d
  lr: 0.01
  momentum: 0.9
"""


def tiny_spec(tmp_path: Path, examples: int = 256, epochs: int = 3, name: str = "spec.yaml") -> Path:
    w = ", ".join(f"{(i % 7 - 3) / 10}" for i in range(64))
    path = tmp_path / name
    path.write_text(MLP % (w, examples, epochs))
    return path


pytestmark = pytest.mark.usefixtures("one_thread")


def options(out: Path | None, **kw) -> RunOptions:
    return RunOptions(device="cpu", quiet=True, out=out, save=out is not None, **kw)


def subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    return env


# ------------------------------------------------------------------ atomic writes
def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write(target, lambda f: f.write(b"good"))

    def crash(f):
        f.write(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, crash)
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temp file left behind


# ------------------------------------------------------------------ load_weights
def test_load_weights_from_folder_file_and_checkpoint(tmp_path):
    spec = tiny_spec(tmp_path, epochs=1)
    result = train(spec, {}, options(tmp_path / "run"))
    expected = result.model.state_dict()
    for source in (tmp_path / "run", tmp_path / "run" / "model.safetensors", tmp_path / "run" / "checkpoint.pt"):
        fresh = compile_spec(spec, seed=123)
        ckpt.load_weights(fresh, source)
        for k, v in fresh.state_dict().items():
            assert torch.equal(v, expected[k]), (source, k)


def test_mismatched_weights_name_keys_and_shapes(tmp_path):
    spec = tiny_spec(tmp_path)
    model = compile_spec(spec)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["4.weight"] = torch.zeros(1, 99)  # wrong shape
    del state["1.bias"]  # missing
    state["extra.weight"] = torch.zeros(2)  # unexpected
    save_file(state, tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError) as err:
        ckpt.load_weights(model, tmp_path / "bad.safetensors")
    message = str(err.value)
    assert "missing keys: 1.bias" in message
    assert "unexpected keys: extra.weight" in message
    assert "4.weight (1, 99) vs model (1, 32)" in message
    assert "bad.safetensors" in message


@pytest.mark.parametrize("name", ["model.safetensors", "checkpoint.pt"])
def test_truncated_files_are_refused(tmp_path, name):
    spec = tiny_spec(tmp_path, epochs=1)
    run = tmp_path / "run"
    train(spec, {}, options(run))
    data = (run / name).read_bytes()
    (run / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated|corrupt, truncated") as err:
        ckpt.load_weights(compile_spec(spec), run / name)
    assert "weights_only" not in str(err.value)


def test_truncated_checkpoint_refused_by_cli_resume_and_eval(tmp_path):
    spec = tiny_spec(tmp_path, epochs=1)
    run = tmp_path / "run"
    train(spec, {}, options(run))
    for name in ("checkpoint.pt", "model.safetensors"):
        (run / name).write_bytes((run / name).read_bytes()[:100])
    resumed = CliRunner().invoke(main, ["train", "--resume", str(run), "--epochs", "2", "--quiet", "--device", "cpu"])
    assert resumed.exit_code == 2
    assert "checkpoint.pt: not a valid netspec checkpoint (corrupt, truncated" in resumed.output
    assert "Traceback" not in resumed.output and "weights_only" not in resumed.output
    evaluated = CliRunner().invoke(main, ["eval", str(run), "--device", "cpu"])
    assert evaluated.exit_code == 2
    assert "model.safetensors: corrupt or truncated safetensors file" in evaluated.output


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_checkpoints_never_run_pickled_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"model": _Evil()}, f, protocol=2)
    with pytest.raises(CheckpointError) as err:
        ckpt.load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()
    # torch's own text suggests weights_only=False (arbitrary code execution): never repeated
    assert "contains Python objects" in str(err.value) and "weights_only" not in str(err.value)
    torch.save({"model": {}, "extra": _Evil()}, tmp_path / "evil_zip.pt")  # torch's zip format too
    with pytest.raises(CheckpointError, match="contains Python objects") as err:
        ckpt.load_checkpoint(tmp_path / "evil_zip.pt")
    assert "weights_only" not in str(err.value) and not (tmp_path / "pwned").exists()


def _no_unsafe_advice(result) -> str:
    """One line, exit 2, and none of torch's 'set weights_only=False' advice."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    message = result.stderr.strip()
    assert message and "\n" not in message and "Traceback" not in message, message
    assert "weights_only" not in message and "arbitrary code" not in message, message
    return message


@pytest.mark.parametrize("content", [b"hello, these are not weights\n", bytes(range(256)) * 8, b""])
def test_garbage_weights_file_is_not_a_checkpoint_in_eval(tmp_path, content):
    spec = tiny_spec(tmp_path)
    (tmp_path / "file.txt").write_bytes(content)
    result = CliRunner().invoke(main, ["eval", str(spec), "--weights", str(tmp_path / "file.txt"), "--device", "cpu"])
    message = _no_unsafe_advice(result)
    assert "file.txt: not a valid netspec checkpoint" in message


def test_random_checkpoint_refused_by_resume_and_kept(tmp_path):
    spec = tiny_spec(tmp_path, epochs=1)
    run = tmp_path / "run"
    train(spec, {}, options(run))
    garbage = os.urandom(4096)
    (run / "checkpoint.pt").write_bytes(garbage)
    weights = (run / "model.safetensors").read_bytes()
    result = CliRunner().invoke(main, ["train", "--resume", str(run), "--epochs", "2", "--quiet", "--device", "cpu"])
    assert "checkpoint.pt: not a valid netspec checkpoint" in _no_unsafe_advice(result)
    assert (run / "checkpoint.pt").read_bytes() == garbage and (run / "model.safetensors").read_bytes() == weights


# ------------------------------------------------------------------ dtype and finiteness
def _saved_state(tmp_path: Path, change) -> tuple[torch.nn.Module, Path]:
    spec = tiny_spec(tmp_path)
    model = compile_spec(spec, seed=0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    change(state)
    save_file(state, tmp_path / "w.safetensors")
    return compile_spec(spec, seed=1), tmp_path / "w.safetensors"


@pytest.mark.parametrize("dtype", [torch.int8, torch.float64, torch.float16, torch.bool])
def test_weights_of_another_dtype_are_refused(tmp_path, dtype):
    def change(state):
        state["1.weight"] = state["1.weight"].to(dtype)

    model, path = _saved_state(tmp_path, change)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        ckpt.load_weights(model, path)
    message = str(err.value)
    assert "w.safetensors" in message and "1.weight" in message
    assert str(dtype).removeprefix("torch.") in message and "float32" in message
    for k, v in model.state_dict().items():  # nothing half-loaded
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("bad,word", [(float("nan"), "NaN"), (float("inf"), "inf"), (float("-inf"), "inf")])
def test_non_finite_weights_are_refused_naming_the_first_key(tmp_path, bad, word):
    def change(state):
        state["4.weight"][0, 3] = bad  # the later key: the message must name the first one
        state["1.bias"].fill_(bad)

    model, path = _saved_state(tmp_path, change)
    with pytest.raises(CheckpointError) as err:
        ckpt.load_weights(model, path)
    message = str(err.value)
    assert "1.bias" in message and word in message and "4.weight" not in message


def test_cli_eval_refuses_int8_and_nan_weights(tmp_path):
    spec = tiny_spec(tmp_path)
    model = compile_spec(spec, seed=0)
    int8 = {k: v.to(torch.int8) for k, v in model.state_dict().items()}
    nan = {k: torch.full_like(v, float("nan")) for k, v in model.state_dict().items()}
    for name, state, expected in (("int8", int8, "int8"), ("nan", nan, "NaN")):
        save_file(state, tmp_path / f"{name}.safetensors")
        result = CliRunner().invoke(main, ["eval", str(spec), "--weights", str(tmp_path / f"{name}.safetensors"), "--device", "cpu"])
        message = _no_unsafe_advice(result)
        assert f"{name}.safetensors" in message and expected in message and "1.weight" in message


def test_resume_refuses_a_checkpoint_with_nan_weights(tmp_path):
    spec = tiny_spec(tmp_path, epochs=1)
    run = tmp_path / "run"
    train(spec, {}, options(run))
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["model"]["4.bias"] = torch.full_like(state["model"]["4.bias"], float("nan"))
    torch.save(state, run / "checkpoint.pt")
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: 4\.bias holds NaN"):
        train(None, {"epochs": 2}, RunOptions(device="cpu", quiet=True, resume=run))


def test_out_folder_with_a_run_is_not_overwritten(tmp_path):
    spec = tiny_spec(tmp_path, epochs=1)
    train(spec, {}, options(tmp_path / "run"))
    with pytest.raises(TrainingError, match="--resume"):
        train(spec, {}, options(tmp_path / "run"))


# ------------------------------------------------------------------ resume
def test_resume_with_more_epochs_equals_a_longer_run(tmp_path):
    spec = tiny_spec(tmp_path, epochs=3)
    long = train(spec, {}, options(tmp_path / "long"))
    train(spec, {"epochs": 2}, options(tmp_path / "short"))
    resumed = train(None, {"epochs": 3}, RunOptions(device="cpu", quiet=True, resume=tmp_path / "short"))
    for k, v in long.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    assert resumed.history[-1]["train_loss"] == long.history[-1]["train_loss"]
    lines = (tmp_path / "short" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3


def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_weights(tmp_path):
    """A real kill -9 of `python -m netspec train`, then `--resume`: bitwise the same weights."""
    spec = tiny_spec(tmp_path, examples=10000, epochs=3)  # 625 steps per epoch
    reference = train(spec, {}, options(tmp_path / "reference"))
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "netspec", "train", str(spec), "--out", str(run), "--device", "cpu"]
    proc = subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    hang = threading.Timer(600, proc.kill)  # only turns a hang into a failure; no speed is asserted
    hang.start()
    try:  # the line `epoch 1/3 ...` is printed once epoch 1's files are written
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("epoch 1/"):
                break
        else:
            pytest.fail("train ended before epoch 1 did: " + "".join(seen)[-500:])
    finally:  # killed as epoch 2 begins
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        hang.cancel()
    assert proc.returncode == -signal.SIGKILL
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] < 3, "killed too late to test anything"
    resumed = subprocess.run(
        [sys.executable, "-m", "netspec", "train", "--resume", str(run), "--quiet", "--device", "cpu"],
        env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    final = load_file(run / "model.safetensors")
    for k, v in reference.model.state_dict().items():
        assert torch.equal(final[k], v), k
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
