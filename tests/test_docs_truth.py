"""Committed documents that are generated must equal what the code generates now."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from netspec.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_committed_json_schema_is_what_netspec_schema_prints() -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0, result.output
    committed = (ROOT / "docs" / "netspec.schema.json").read_text(encoding="utf-8")
    assert json.loads(committed) == json.loads(result.stdout), "docs/netspec.schema.json is stale: run `netspec schema -o docs/netspec.schema.json`"
    assert committed == result.stdout  # byte for byte, so a regenerated file shows no diff
