"""Data-parallel training: 2 CPU processes with gloo against the 1-process run.

Each process is started the way torchrun starts it (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR/PORT in its environment) and calls the public `train`; the ranks must end with
identical weights (DDP averaged their gradients) equal to one process on the same global
batches (data.shard splits each global batch between ranks).
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

from netspec.runtime.train.distributed import DistContext
from netspec.runtime.train.evaluation import part as _part
from netspec.runtime.train.entry import RunOptions, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ddp import ddp_mlp, free_port  # noqa: E402  (tests/ is not a package)

ROOT = Path(__file__).resolve().parents[1]

SPEC = ddp_mlp(256, epochs=2, extra="  grad_clip: 1.0\n")

WORKER = textwrap.dedent(
    """
    import os, sys, torch
    from safetensors.torch import save_file
    from netspec.runtime.train.entry import RunOptions, train
    result = train(sys.argv[1], {}, RunOptions(device="cpu", quiet=True, out=sys.argv[2]))
    state = {k: v.contiguous() for k, v in result.model.state_dict().items()}
    save_file(state, os.path.join(sys.argv[3], f"rank{os.environ['RANK']}.safetensors"))
    print("summary", result.summary["train_loss"], result.summary["processes"])
    """
)


def test_two_gloo_processes_match_one_process(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    port = free_port()
    procs = []
    for rank in range(2):
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
        env.update(
            RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
            OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        )
        procs.append(subprocess.Popen([sys.executable, str(worker), str(spec), str(tmp_path / "run"), str(tmp_path)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    for p in procs:
        try:
            outputs.append(p.communicate(timeout=90)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("distributed run did not finish in 90 s")
    assert all(p.returncode == 0 for p in procs), "\n".join(outputs)
    assert all("summary" in o and o.strip().endswith(" 2") for o in outputs)

    rank0, rank1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    for k in rank0:
        assert torch.equal(rank0[k], rank1[k]), k
    # only rank 0 wrote the run folder, and what it wrote is rank 0's model
    assert torch.equal(load_file(tmp_path / "run" / "model.safetensors")["0.weight"], rank0["0.weight"])

    torch.set_num_threads(1)
    single = train(spec, {}, RunOptions(device="cpu", quiet=True, save=False)).model.state_dict()
    for k, v in single.items():
        torch.testing.assert_close(rank0[k], v, rtol=1e-5, atol=1e-6)
    # ... and the 1-process run is not trivially equal to any run: the ranks really trained
    assert not torch.equal(single["0.weight"], torch.zeros_like(single["0.weight"]))


def test_evaluation_parts_cover_every_example_once():
    for n in (0, 1, 7, 10, 1001):
        for world in (1, 2, 3, 8):
            parts = [_part(n, DistContext(rank, world)) for rank in range(world)]
            covered = [i for start, stop in parts for i in range(start, stop)]
            assert covered == list(range(n))


@pytest.mark.slow
def test_cli_nproc_per_node_relaunches_through_torchrun(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run(
        [sys.executable, "-m", "netspec", "train", str(spec), "--nproc-per-node", "2", "--out", str(tmp_path / "run"), "--device", "cpu"],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "× 2 processes" in result.stdout
    torch.set_num_threads(1)
    single = train(spec, {}, RunOptions(device="cpu", quiet=True, save=False)).model.state_dict()
    saved = load_file(tmp_path / "run" / "model.safetensors")
    for k, v in single.items():
        torch.testing.assert_close(saved[k], v, rtol=1e-5, atol=1e-6)


def test_nproc_per_node_checks_everything_once_before_launching(tmp_path, monkeypatch):
    """A bad spec or batch split is one error from the parent, no torchrun, no run folder."""
    from click.testing import CliRunner

    from netspec.cli import main
    from netspec.runtime.train import distributed

    launched = []
    monkeypatch.setattr(distributed, "relaunch", lambda *a: launched.append(a) or 0)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: tiny\ninput: [2]\nlayers:\n  - {op: linear, out: 1}\n"
        "train: {dataset: {name: synthetic_regression, examples: 40}, batch_size: 10, epochs: 1, loss: mse}\n"
    )
    out = tmp_path / "run"

    def cli(*args):
        return CliRunner().invoke(main, ["train", str(spec), "--out", str(out), "-q", *map(str, args)])

    result = cli("--nproc-per-node", 3)
    assert result.exit_code == 2 and result.output.count("does not split evenly over 3 processes") == 1, result.output
    result = cli("--nproc-per-node", 2, "--set", "epoch=1")
    assert result.exit_code == 2 and result.output.count("did you mean 'epochs'") == 1, result.output
    assert cli("--nproc-per-node", 5000).exit_code == 2
    assert not launched and not out.exists()
    assert cli("--nproc-per-node", 2).exit_code == 0 and len(launched) == 1  # a good run is launched
