"""A run folder tells the truth after a failure at ANY write point (netspec.files' fault hook).

Deterministic fault injection, not sleeps: a clean run counts the write points (each atomic
write has two: temporary complete, target replaced); then for every k, a run fails at point
k (an exception in-process; os._exit in a subprocess; SIGINT), is recovered the way a user
would (`--resume` when checkpoint.pt exists, else the same `train --out` again), and the
folder must agree with itself (summary.json, model.safetensors, checkpoint.pt and
metrics.jsonl describe the same epoch) and with the truth: the weights of an uninterrupted
run, bit for bit.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from netspec import files
from netspec.cli import main
from netspec.errors import NetspecError
from netspec.runtime.train.entry import RunOptions, train

ROOT = Path(__file__).resolve().parents[1]

SGD = """
name: tiny
input: [6]
layers:
  - {op: linear, out: 8}
  - relu
  - {op: dropout, p: 0.2}
  - {op: linear, out: 1}
train:
  dataset: {name: synthetic_regression, true_w: [1, -2, 0.5, 3, 0, 1], true_b: 0.5, examples: 64}
  loss: mse
  batch_size: 16
  epochs: 2
  lr: 0.01
  momentum: 0.9
"""

CLOSED = """
name: ls
input: [2]
layers:
  - {op: linear, out: 1}
train:
  dataset: {name: synthetic_regression, examples: 64}
  loss: mse
  solver: closed_form
"""

pytestmark = pytest.mark.usefixtures("one_thread")


class Fault(Exception):
    """The injected failure."""


def spec_file(tmp_path: Path, text: str = SGD) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def options(out: Path | None = None, resume: Path | None = None) -> RunOptions:
    return RunOptions(device="cpu", quiet=True, out=out, resume=resume, save=True)


def write_points(monkeypatch, spec: Path, out: Path) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    monkeypatch.setattr(files, "_hook", lambda point, path: seen.append((point, path.name)))
    train(spec, {}, options(out))
    monkeypatch.setattr(files, "_hook", None)
    return seen


def recover(spec: Path, run: Path) -> None:
    """What the user does after a failed run: resume it, or (no epoch was recorded) start it again."""
    if (run / "summary.json").exists() and not (run / "checkpoint.pt").exists():
        return  # a finished closed-form run: nothing to do
    if (run / "checkpoint.pt").exists():
        train(None, {}, options(resume=run))
    else:
        train(spec, {}, options(out=run))


def assert_truthful(run: Path, epochs: int, reference: dict[str, torch.Tensor] | None = None) -> None:
    """Every file of a finished run describes the same last epoch (and holds the truth)."""
    leftovers = [p.name for p in run.iterdir() if p.name.endswith(files.TEMP_SUFFIX)]
    assert leftovers == [], leftovers
    summary = json.loads((run / "summary.json").read_text())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    weights = load_file(run / "model.safetensors")
    assert summary["epochs"] == epochs == len(rows) == rows[-1]["epoch"]
    assert summary["train_loss"] == rows[-1]["train_loss"] and summary["test_loss"] == rows[-1]["test_loss"]
    if (run / "checkpoint.pt").exists():
        state = torch.load(run / "checkpoint.pt", weights_only=True)
        assert state["epoch"] == epochs
        assert [r["train_loss"] for r in state["history"]] == [r["train_loss"] for r in rows]
        assert weights.keys() == state["model"].keys()
        assert all(torch.equal(weights[k], state["model"][k]) for k in weights)
    if reference is not None:
        assert weights.keys() == reference.keys()
        assert all(torch.equal(weights[k], reference[k]) for k in weights), "weights differ from the uninterrupted run"


def reference_run(tmp_path: Path, monkeypatch, text: str) -> tuple[Path, list[tuple[str, str]], dict[str, torch.Tensor]]:
    spec = spec_file(tmp_path, text)
    points = write_points(monkeypatch, spec, tmp_path / "reference")
    return spec, points, load_file(tmp_path / "reference" / "model.safetensors")


def test_write_order_is_checkpoint_then_derived_files_and_summary_last(tmp_path, monkeypatch):
    _, points, _ = reference_run(tmp_path, monkeypatch, SGD)
    replaced = [name for point, name in points if point == "replaced"]
    epoch = ["checkpoint.pt", "model.safetensors", "metrics.jsonl"]
    assert replaced == ["spec.yaml", "metrics.jsonl", *epoch, *epoch, "curves.png", "summary.json"]
    assert len(points) == 2 * len(replaced)


@pytest.mark.parametrize("text", [SGD, CLOSED], ids=["sgd", "closed_form"])
def test_an_exception_at_every_write_point_then_recovery_gives_a_truthful_folder(tmp_path, monkeypatch, text):
    spec, points, reference = reference_run(tmp_path, monkeypatch, text)
    epochs = 2 if text is SGD else 1
    for k in range(len(points)):
        run = tmp_path / f"run{k}"
        calls = iter(range(len(points)))

        def fail_at_k(point, path, k=k):
            if next(calls) == k:
                raise Fault(f"{point} {path.name}")

        monkeypatch.setattr(files, "_hook", fail_at_k)
        with pytest.raises(Fault):
            train(spec, {}, options(run))
        monkeypatch.setattr(files, "_hook", None)
        recover(spec, run)
        assert_truthful(run, epochs, reference)


_KILLER = """
import os, sys
from netspec import files
from netspec.runtime.train.entry import RunOptions, train
import torch
torch.set_num_threads(1)
k = int(sys.argv[3]); count = [0]
def hook(point, path):
    if count[0] == k:
        os._exit(9)
    count[0] += 1
files._hook = hook
train(sys.argv[1], {}, RunOptions(device="cpu", quiet=True, out=sys.argv[2], save=True))
"""


def kill_at(spec: Path, run: Path, k: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-c", _KILLER, str(spec), str(run), str(k)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 9, done.stderr


def _kill_and_recover(tmp_path: Path, monkeypatch, choose) -> None:
    spec, points, reference = reference_run(tmp_path, monkeypatch, SGD)
    for k in choose(points):
        run = tmp_path / f"killed{k}"
        kill_at(spec, run, k)
        recover(spec, run)
        assert_truthful(run, 2, reference)


def _around_the_last_weights(points: list[tuple[str, str]]) -> list[int]:
    """Its temporary complete but not yet renamed, and renamed but metrics.jsonl not yet written."""
    last = max(i for i, (_, name) in enumerate(points) if name == "model.safetensors")
    return [last - 1, last]


def test_os_exit_around_the_final_epochs_weights_write_then_resume_agrees(tmp_path, monkeypatch):
    """The issue's case: killed while the last epoch's model.safetensors is written."""
    _kill_and_recover(tmp_path, monkeypatch, _around_the_last_weights)


@pytest.mark.slow
def test_os_exit_at_every_write_point_then_recovery_agrees(tmp_path, monkeypatch):
    _kill_and_recover(tmp_path, monkeypatch, lambda points: range(len(points)))


def test_sigint_at_every_write_point_exits_130_with_a_truthful_folder(tmp_path, monkeypatch):
    """Ctrl-C during a write waits for the write (and the rest of its group) to finish."""
    spec, points, reference = reference_run(tmp_path, monkeypatch, SGD)
    for k in range(len(points)):
        run = tmp_path / f"int{k}"
        calls = iter(range(len(points)))

        def interrupt_at_k(point, path, k=k):
            if next(calls) == k:
                os.kill(os.getpid(), signal.SIGINT)

        monkeypatch.setattr(files, "_hook", interrupt_at_k)
        result = CliRunner().invoke(main, ["train", str(spec), "--out", str(run), "-q"])
        monkeypatch.setattr(files, "_hook", None)
        assert result.exit_code == 130, (k, result.output)
        assert "Traceback" not in result.output
        assert [p.name for p in run.iterdir() if p.name.endswith(files.TEMP_SUFFIX)] == []
        if (run / "checkpoint.pt").exists():
            state = torch.load(run / "checkpoint.pt", weights_only=True)
            weights = load_file(run / "model.safetensors")  # the interrupted epoch's files are complete
            assert all(torch.equal(weights[n], state["model"][n]) for n in weights)
            assert len((run / "metrics.jsonl").read_text().splitlines()) == state["epoch"]
        recover(spec, run)
        assert_truthful(run, 2, reference)


# ------------------------------------------------------------------ never overwrite
def test_a_finished_closed_form_run_is_never_overwritten(tmp_path):
    spec = spec_file(tmp_path, CLOSED)
    run = tmp_path / "run"
    train(spec, {}, options(run))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert "checkpoint.pt" not in before and "summary.json" in before
    result = CliRunner().invoke(main, ["train", str(spec), "--out", str(run), "-q"])
    assert result.exit_code == 2 and "finished run" in result.output, result.output
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_a_finished_sgd_run_is_never_overwritten_by_out(tmp_path):
    spec = spec_file(tmp_path)
    run = tmp_path / "run"
    train(spec, {}, options(run))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    result = CliRunner().invoke(main, ["train", str(spec), "--out", str(run), "-q"])
    assert result.exit_code == 2 and "--resume" in result.output
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_resume_for_more_epochs_drops_the_old_summary_before_training(tmp_path, monkeypatch):
    """While the longer run trains, the folder does not claim the old finish."""
    spec = spec_file(tmp_path)
    run = tmp_path / "run"
    train(spec, {}, options(run))
    seen = []
    monkeypatch.setattr(files, "_hook", lambda point, path: seen.append((path.name, (run / "summary.json").exists())))
    train(None, {"epochs": 3}, options(resume=run))
    first_checkpoint = next(i for i, (name, _) in enumerate(seen) if name == "checkpoint.pt")
    assert not any(exists for _, exists in seen[: first_checkpoint + 1])
    assert json.loads((run / "summary.json").read_text())["epochs"] == 3


# ------------------------------------------------------------------ the helper itself
def test_atomic_write_keeps_the_old_file_and_leaves_no_temporary_on_error(tmp_path):
    target = tmp_path / "f.bin"
    files.atomic_write(target, b"good")

    def crash(f):
        f.write(b"half")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError):
        files.atomic_write(target, crash)
    assert target.read_bytes() == b"good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_atomic_write_uses_unique_temporary_names(tmp_path, monkeypatch):
    names = []
    real_open = os.open

    def spy(path, flags, *args):
        names.append(os.path.basename(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(files.os, "open", spy)
    for _ in range(3):
        files.atomic_write(tmp_path / "model.py", b"x")
    temporaries = [n for n in names if n.endswith(files.TEMP_SUFFIX)]
    assert len(temporaries) == 3 == len(set(temporaries))
    assert all(n.startswith(".model.py.") for n in temporaries)


def test_stale_temporaries_of_dead_processes_are_cleaned(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".out.json.{dead}-0badcafe{files.TEMP_SUFFIX}"
    stale.write_bytes(b"half")
    mine = tmp_path / f".out.json.{os.getpid()}-12345678{files.TEMP_SUFFIX}"  # a live writer's: kept
    mine.write_bytes(b"busy")
    files.atomic_write(tmp_path / "out.json", b"{}")
    assert not stale.exists() and mine.exists()


def test_writes_through_a_symbolic_link_are_refused(tmp_path):
    elsewhere = tmp_path / "precious.txt"
    elsewhere.write_text("keep")
    link = tmp_path / "model.py"
    link.symlink_to(elsewhere)
    with pytest.raises(NetspecError, match="symbolic link"):
        files.atomic_write(link, b"x")
    assert elsewhere.read_text() == "keep" and link.is_symlink()
    result = CliRunner().invoke(main, ["compile", str(ROOT / "specs" / "mlp.yaml"), "-o", str(link)])
    assert result.exit_code == 2 and "symbolic link" in result.output
    assert elsewhere.read_text() == "keep"


def test_a_failed_compile_output_keeps_the_existing_file(tmp_path, monkeypatch):
    from netspec.compiler.codegen import source

    target = tmp_path / "model.py"
    target.write_text("# the user's file\n")

    def broken(graph):
        raise NetspecError("codegen failed")

    monkeypatch.setattr(source, "to_source", broken)
    result = CliRunner().invoke(main, ["compile", str(ROOT / "specs" / "mlp.yaml"), "-o", str(target)])
    assert result.exit_code == 2
    assert target.read_text() == "# the user's file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.py"]


def test_a_failed_onnx_export_keeps_the_existing_file(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    target = tmp_path / "model.onnx"
    target.write_bytes(b"the user's model")

    def broken(*args, **kwargs):
        raise RuntimeError("unsupported op")

    monkeypatch.setattr(torch.onnx, "export", broken)
    result = CliRunner().invoke(main, ["compile", str(ROOT / "specs" / "mlp.yaml"), "-o", str(target)])
    assert result.exit_code == 2 and "ONNX export failed" in result.output
    assert target.read_bytes() == b"the user's model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
