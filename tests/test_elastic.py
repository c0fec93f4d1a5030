"""Scale-out: `--resume auto`, a dying rank, torchrun restarts and two "nodes" on one machine.

Truths: an uninterrupted run of the same spec (bitwise equal weights on CPU), and the exit
code the test makes a rank die with. A rank is killed by a `sitecustomize` put on its
PYTHONPATH (only in the first attempt of the group, and only in the rank named): it waits for
the run's first checkpoint, so it dies during epoch 2.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from netspec.errors import TrainingError
from netspec.runtime.train import trainer as trainer_module
from netspec.runtime.train.entry import RunOptions, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ddp import ddp_mlp, free_port  # noqa: E402  (tests/ is not a package)

ROOT = Path(__file__).resolve().parents[1]


KILLER = textwrap.dedent(
    """
    import os, threading, time
    if os.environ.get("NETSPEC_TEST_DIE_RANK") == os.environ.get("RANK") and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0":
        def watch():
            while not os.path.exists(os.environ["NETSPEC_TEST_DIE_AFTER"]):
                time.sleep(0.005)
            open(os.environ["NETSPEC_TEST_DIE_AFTER"] + ".killed", "w").close()
            os._exit(7)
        threading.Thread(target=watch, daemon=True).start()
    """
)

pytestmark = pytest.mark.usefixtures("one_thread")


def spec_file(tmp_path: Path, examples: int = 256) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(ddp_mlp(examples, epochs=3))
    return path


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    (tmp_path / "site").mkdir(exist_ok=True)
    (tmp_path / "site" / "sitecustomize.py").write_text(KILLER)
    e = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "NETSPEC_LAUNCHED")}
    e.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), str(ROOT), e.get("PYTHONPATH", "")]), **extra)
    return e


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args]


def netspec_args(spec: Path, out: Path, *more: str) -> list[str]:
    return ["-m", "netspec", "train", str(spec), "--out", str(out), "--device", "cpu", "-q", *more]


def same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


# ------------------------------------------------------------------ --resume auto (in process)
def test_resume_auto_starts_then_continues_and_refuses_another_run(tmp_path, monkeypatch):
    spec = spec_file(tmp_path)
    whole = train(spec, {}, RunOptions(device="cpu", quiet=True, out=tmp_path / "whole"))
    auto = RunOptions(device="cpu", quiet=True, out=tmp_path / "run", resume=Path("auto"))
    original = trainer_module.Trainer.train_epoch

    def stop_in_epoch_two(self, progress):
        if self.epoch == 1:
            raise KeyboardInterrupt
        return original(self, progress)

    monkeypatch.setattr(trainer_module.Trainer, "train_epoch", stop_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(spec, {}, auto)  # no checkpoint yet: starts the run in --out
    monkeypatch.setattr(trainer_module.Trainer, "train_epoch", original)
    with pytest.raises(TrainingError, match=r"--resume auto: the run in .* different train\.lr"):
        train(spec, {"lr": 0.1}, auto)
    resumed = train(spec, {}, auto)  # a checkpoint: continues it
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    same_weights(tmp_path / "whole", tmp_path / "run")
    assert resumed.summary["train_loss"] == whole.summary["train_loss"]


def test_resume_auto_needs_a_spec_and_out(tmp_path):
    with pytest.raises(TrainingError, match="needs a SPEC and --out"):
        train(spec_file(tmp_path), {}, RunOptions(device="cpu", quiet=True, resume=Path("auto")))


# ------------------------------------------------------------------ processes
@pytest.mark.slow
def test_a_dying_rank_ends_the_run_with_one_line_naming_it(tmp_path):
    spec = spec_file(tmp_path, examples=4096)
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, *netspec_args(spec, out, "--nproc-per-node", "2")],
        env=env(tmp_path, NETSPEC_TEST_DIE_RANK="1", NETSPEC_TEST_DIE_AFTER=str(out / "checkpoint.pt")),
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["rank 1 of 2 exited with code 7; the other ranks were stopped"], result.stderr
    assert "internal error" not in result.stdout + result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_torchrun_restart_with_resume_auto_ends_with_the_uninterrupted_weights(tmp_path):
    spec = spec_file(tmp_path, examples=4096)  # 128 steps per epoch
    ref, run = tmp_path / "reference", tmp_path / "killed"
    common = ["--standalone", "--nproc-per-node", "2", "--max-restarts", "1"]
    reference = subprocess.run(torchrun(*common, *netspec_args(spec, ref)), env=env(tmp_path), capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stderr
    killed = subprocess.run(
        torchrun(*common, *netspec_args(spec, run, "--resume", "auto")),
        env=env(tmp_path, NETSPEC_TEST_DIE_RANK="1", NETSPEC_TEST_DIE_AFTER=str(run / "checkpoint.pt")),
        capture_output=True, text=True, timeout=300,
    )
    assert killed.returncode == 0, killed.stderr
    assert (run / "checkpoint.pt.killed").exists(), "rank 1 was never killed"
    same_weights(ref, run)
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3


@pytest.mark.slow
def test_two_torchrun_nodes_on_one_machine_equal_one_node_with_two_processes(tmp_path):
    spec = spec_file(tmp_path, examples=512)
    one = subprocess.run(
        torchrun("--standalone", "--nproc-per-node", "2", *netspec_args(spec, tmp_path / "one")), env=env(tmp_path),
        capture_output=True, text=True, timeout=300,
    )
    assert one.returncode == 0, one.stderr
    port = free_port()
    nodes = [
        subprocess.Popen(
            torchrun(
                "--nnodes", "2", "--node-rank", str(rank), "--nproc-per-node", "1", "--rdzv-backend", "c10d",
                "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "netspec-test", "--rdzv-conf", f"is_host={int(rank == 0)}",
                *netspec_args(spec, tmp_path / "two"),
            ),
            env=env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for rank in range(2)
    ]
    try:
        outputs = [p.communicate(timeout=300)[0] for p in nodes]
    finally:
        for p in nodes:
            p.kill()
    assert all(p.returncode == 0 for p in nodes), "\n".join(outputs)
    same_weights(tmp_path / "one", tmp_path / "two")
