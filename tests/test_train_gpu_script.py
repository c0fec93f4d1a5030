"""benchmarks/train_gpu.py, run for real on CPU with a tiny size: the prepared GPU command
trains ResNet-18 (96×96) through netspec's trainer and then attacks it with FGSM.

Truth: the
figures the script writes must be those of its own run folder (summary.json), and its FGSM
clean accuracy must equal an independent evaluation of the saved weights.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared_data import FASHION_MNIST as DATA, needs_fashion_mnist as needs_data  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@needs_data
def test_train_gpu_script_runs_tiny_on_cpu(tmp_path):
    out, figures = tmp_path / "run", tmp_path / "figures.json"
    cmd = [
        sys.executable, str(ROOT / "benchmarks" / "train_gpu.py"), "--device", "cpu", "--no-compile", "--epochs", "1",
        "--limit", "32", "--batch-size", "16", "--test-limit", "32", "--data-dir", str(DATA), "--out", str(out), "--json", str(figures),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "FGSM on 32 test images" in result.stdout
    got = json.loads(figures.read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert got["test_acc"] == summary["test_acc"] and got["epochs"] == 1 and "amp bf16" in got["device"]
    assert len(got["fgsm"]["adv_acc"]) == 4 and got["fgsm"]["examples"] == 32

    import torch

    from netspec.runtime.train.entry import RunOptions, evaluate_spec

    torch.set_num_threads(1)
    clean = evaluate_spec(out / "spec.yaml", out, options=RunOptions(device="cpu", data_dir=DATA))
    assert got["fgsm"]["clean_acc"] == pytest.approx(clean["acc"])


def test_train_gpu_script_refuses_cuda_without_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_gpu.py")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "needs a CUDA GPU" in result.stderr and "Traceback" not in result.stderr
