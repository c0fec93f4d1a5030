"""`netspec ops` lists every registered op and prelude block with its parameters and defaults,
docs/ops.md is its current output, and unknown-op errors point to it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from netspec.cli import main
from netspec.commands.ops import catalogue, markdown
from netspec.compiler import registry
from netspec.compiler.passes.expand import prelude

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_json_lists_every_op_and_block_with_its_parameters_and_defaults() -> None:
    result = run("ops", "--json")
    assert result.exit_code == 0
    data = json.loads(result.output)
    ops = {o["name"]: o for o in data["ops"]}
    assert set(ops) == set(registry.ops())
    for name, op in registry.ops().items():
        fields = op.params.model_fields
        assert [p["name"] for p in ops[name]["params"]] == list(fields)
        for p in ops[name]["params"]:
            assert p["required"] == fields[p["name"]].is_required()
            if not p["required"]:
                assert p["default"] == fields[p["name"]].default
        assert ops[name]["doc"] == op.doc and ops[name]["family"] == op.family
    blocks = {b["name"]: b for b in data["blocks"]}
    assert set(blocks) == set(prelude())
    residual = {p["name"]: p for p in blocks["residual"]["params"]}
    assert residual["out"]["required"] and residual["shortcut"] == {
        "name": "shortcut", "type": "str", "required": False, "default": "auto", "choices": ["auto", "identity", "conv"]}


def test_text_lists_every_name_with_its_signature() -> None:
    result = run("ops")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    for name in list(registry.ops()) + list(prelude()):
        assert any(line.split()[:1] == [name] for line in lines), name
    assert any(line.split() == ["hardtanh", "min_val=-1.0,", "max_val=1.0"] for line in lines)
    assert any(line.split() == ["conv_transpose2d", "out,", "kernel,", "stride=1,", "padding=0,", "output_padding=0,",
                                "dilation=1,", "groups=1,", "bias=true"] for line in lines)


def test_one_name_shows_types_defaults_and_examples() -> None:
    result = run("ops", "chunk")
    assert result.exit_code == 0
    assert "chunks: integer ≥ 1, required" in result.output and "index: integer ≥ 0, default 0" in result.output
    assert 'example: {"params": {"chunks": 2}, "inputs": [[4, 3, 3]]}' in result.output
    result = run("ops", "chunck")
    assert result.exit_code == 2 and "no op or block 'chunck' (did you mean 'chunk'?)" in result.output


def test_docs_ops_md_is_the_current_catalogue() -> None:
    assert (ROOT / "docs" / "ops.md").read_text(encoding="utf-8") == markdown(catalogue()), (
        "docs/ops.md is stale: netspec ops --markdown > docs/ops.md")


def test_unknown_op_errors_point_to_netspec_ops(tmp_path: Path) -> None:
    spec = tmp_path / "x.yaml"
    spec.write_text("name: x\ninput: [3, 8, 8]\nlayers:\n  - relu7\n", encoding="utf-8")
    result = run("check", str(spec))
    assert result.exit_code == 2
    assert "unknown op 'relu7' (did you mean 'relu'?); `netspec ops` lists the ops and blocks" in result.output


def test_listing_ops_does_not_import_torch() -> None:
    code = "import sys; from netspec.commands.ops import catalogue; catalogue(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
