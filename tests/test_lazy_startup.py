"""What start-up leaves for later stays lazy: counted in a fresh process, never timed.

`netspec check` builds the layer model of an op only when a spec names it, never imports
torch or matplotlib; the prelude's layers are checked when a call expands them, and are
checked here, in full, as the BlockDefs users write.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from netspec.compiler.passes.expand import PRELUDE_FILE, prelude_text
from netspec.compiler.schema import BlockDef
from netspec.compiler.yaml_loader import load_yaml_text

ROOT = Path(__file__).resolve().parents[1]


def _fresh(code: str, *argv: str) -> dict:
    """Run `code` in a fresh interpreter at the repository root; it prints one JSON object."""
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


CHECK = """
import json, sys
from click.testing import CliRunner
import netspec.cli
from netspec.compiler import schema
result = CliRunner().invoke(netspec.cli.main, ["check", *sys.argv[1:]])
print(json.dumps({"exit": result.exit_code, "members": sorted(schema._members),
                  "modules": sorted(m for m in ("torch", "matplotlib", "networkx", "torch._dynamo") if m in sys.modules)}))
"""


def test_check_builds_only_the_layer_models_a_spec_names() -> None:
    got = _fresh(CHECK, "specs/mlp.yaml")
    assert got["exit"] == 0
    assert got["members"] == ["flatten", "linear", "relu"]  # the ops specs/mlp.yaml names, nothing else
    assert got["modules"] == []


def test_check_of_the_zoo_imports_neither_torch_nor_matplotlib() -> None:
    got = _fresh(CHECK, "specs")
    assert got["exit"] == 0
    assert got["modules"] == []


def test_a_layer_of_an_op_never_named_before_is_still_checked_in_full() -> None:
    """Laziness changes when a model is built, not what it refuses."""
    got = _fresh(
        "import json\nimport netspec\nfrom netspec.errors import SpecError\n"
        "try:\n    netspec.load('t.yaml', text='name: t\\ninput: [3, 8, 8]\\nlayers:\\n  - {op: group_norm, groups: 2.0, kernel: 3}\\n')\n"
        "except SpecError as exc:\n    print(json.dumps({'errors': [str(d) for d in exc.diagnostics]}))\n"
    )
    assert got["errors"] == [
        "t.yaml:4:30: layers[0].groups: expected a positive integer (at most 1,000,000), got 2.0",
        "t.yaml:4:35: layers[0].kernel: unknown key 'kernel'",
    ]


def test_the_prelude_is_valid_as_users_blocks_are() -> None:
    """Start-up no longer validates the prelude's layers (each call does, after substitution):
    here every layer of every block is, including those a `when:` may skip."""
    raw = load_yaml_text(prelude_text(), PRELUDE_FILE)
    blocks = TypeAdapter(dict[str, BlockDef]).validate_python(raw)
    assert set(blocks) == set(raw) and all(b.layers for b in blocks.values())
    # and the same check does refuse a bad layer in a block (the test can fail)
    name = next(iter(raw))
    broken = dict(raw)
    broken[name] = dict(raw[name], layers=list(raw[name]["layers"]) + [{"op": "linear", "out": 0}])
    with pytest.raises(ValidationError, match="positive integer"):
        TypeAdapter(dict[str, BlockDef]).validate_python(broken)


TRAIN = """
import json, sys
from click.testing import CliRunner
import netspec.cli
result = CliRunner().invoke(netspec.cli.main, ["train", sys.argv[1], "--out", sys.argv[2], "-q"])
print(json.dumps({"exit": result.exit_code, "output": result.output[-2000:],
                  "modules": sorted(m for m in ("matplotlib", "matplotlib.pyplot") if m in sys.modules)}))
"""


def test_a_run_draws_its_curves_without_pyplot(tmp_path: Path) -> None:
    """curves.png comes from a bare Figure on the Agg canvas: pyplot (its import, its global
    figures, its GUI backend choice) is never loaded by a run."""
    spec = tmp_path / "reg.yaml"
    spec.write_text("name: reg\ninput: [2]\nlayers:\n  - {op: linear, out: 1}\n"
                    "train: {dataset: {name: synthetic_regression, examples: 64}, loss: mse, epochs: 1, batch_size: 32, lr: 0.01}\n")
    got = _fresh(TRAIN, str(spec), str(tmp_path / "run"))
    assert got["exit"] == 0, got["output"]
    assert (tmp_path / "run" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert got["modules"] == ["matplotlib"]
