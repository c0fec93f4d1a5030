"""`netspec.train(spec, **overrides)`: the CLI's trainer from Python, returning the run.

Truth: the run folder the CLI writes for the same spec and options (same weights, bitwise).
"""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import netspec
from netspec.cli import main
from netspec.errors import SpecError

SPEC = """
name: tiny
input: [2]
layers:
  - {op: linear, out: 8}
  - tanh
  - {op: linear, out: 1}
train: {dataset: {name: synthetic_regression, examples: 128}, batch_size: 16, epochs: 3, lr: 0.05, loss: mse}
"""

pytestmark = pytest.mark.usefixtures("one_thread")


def test_python_train_is_the_cli_run(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    run = netspec.train(spec, epochs=2, momentum=0.9, **{"optimizer.weight_decay": 0.01}, out=tmp_path / "py", device="cpu", quiet=True)
    assert run.run_dir == tmp_path / "py"
    assert json.loads((run.run_dir / "summary.json").read_text()) == json.loads(json.dumps(run.summary))
    assert run.summary["epochs"] == 2 and run.config.optimizer.momentum == 0.9 and run.config.optimizer.weight_decay == 0.01
    cli = CliRunner().invoke(
        main, ["train", str(spec), "--epochs", "2", "--momentum", "0.9", "--set", "optimizer.weight_decay=0.01", "--out", str(tmp_path / "cli"), "--device", "cpu", "-q"]
    )
    assert cli.exit_code == 0, cli.output
    a, b = load_file(tmp_path / "py" / "model.safetensors"), load_file(tmp_path / "cli" / "model.safetensors")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_python_train_names_a_misspelt_setting(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    with pytest.raises(SpecError, match="did you mean 'epochs'"):
        netspec.train(spec, epoch=2, save=False, quiet=True, device="cpu")
