"""`netspec check`: budgets (options and the spec's `budget:` section), SARIF 2.1.0, JUnit XML,
the default size warning, and the shipped pre-commit hook's scope.

Parameter counts in the expectations are written out by hand from the layer sizes; SARIF is
validated against the 2.1.0 structure (the OASIS schema's required properties, value ranges
and closed objects for every object netspec emits), JUnit parsed as XML.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from netspec.cli import main

ROOT = Path(__file__).resolve().parents[1]

MLP = """\
name: mlp
input: [784]
layers:
  - {op: linear, out: 256}
  - relu
  - {op: linear, out: 10}
"""
MLP_PARAMS = 784 * 256 + 256 + 256 * 10 + 10  # 203,530
MLP_MACS = 784 * 256 + 256 * 10

BUDGETED = MLP + """\
budget:
  max_params: 200K
  max_macs: 100K
"""

HOSTILE = 'x"<&>\'\n]]>'  # ends up in a message through an unknown op's name

# The parts of the SARIF 2.1.0 schema (docs.oasis-open.org/sarif/sarif/v2.1.0) that netspec's
# output uses: required properties, enums and ranges as the standard states them.
_MESSAGE = {"type": "object", "properties": {"text": {"type": "string"}}, "anyOf": [{"required": ["text"]}, {"required": ["id"]}]}
SARIF_2_1_0 = {
    "type": "object",
    "required": ["version", "runs"],
    "properties": {
        "$schema": {"type": "string", "format": "uri"},
        "version": {"enum": ["2.1.0"]},
        "runs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["tool"],
                "properties": {
                    "tool": {
                        "type": "object",
                        "required": ["driver"],
                        "properties": {
                            "driver": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "version": {"type": "string"},
                                    "informationUri": {"type": "string", "format": "uri"},
                                    "rules": {
                                        "type": "array",
                                        "uniqueItems": True,
                                        "items": {
                                            "type": "object",
                                            "required": ["id"],
                                            "properties": {"id": {"type": "string"}, "shortDescription": _MESSAGE},
                                            "additionalProperties": False,
                                        },
                                    },
                                },
                                "additionalProperties": False,
                            }
                        },
                        "additionalProperties": False,
                    },
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["message"],
                            "properties": {
                                "ruleId": {"type": "string"},
                                "ruleIndex": {"type": "integer", "minimum": -1},
                                "level": {"enum": ["none", "note", "warning", "error"]},
                                "message": _MESSAGE,
                                "locations": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "physicalLocation": {
                                                "type": "object",
                                                "required": ["artifactLocation"],
                                                "properties": {
                                                    "artifactLocation": {
                                                        "type": "object",
                                                        "properties": {"uri": {"type": "string", "format": "uri-reference"}},
                                                        "additionalProperties": False,
                                                    },
                                                    "region": {
                                                        "type": "object",
                                                        "properties": {
                                                            "startLine": {"type": "integer", "minimum": 1},
                                                            "startColumn": {"type": "integer", "minimum": 1},
                                                        },
                                                        "additionalProperties": False,
                                                    },
                                                },
                                                "additionalProperties": False,
                                            }
                                        },
                                        "additionalProperties": False,
                                    },
                                },
                            },
                            "additionalProperties": False,
                        },
                    },
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    (tmp_path / "mlp.yaml").write_text(MLP)
    (tmp_path / "budgeted.yaml").write_text(BUDGETED)
    (tmp_path / "bad.yaml").write_text(f"name: bad\ninput: [4]\nlayers:\n  - {{op: linear, out: 3}}\n  - {json.dumps(HOSTILE)}\n")
    return tmp_path


def _run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["check", *args])


def test_max_params_option_fails_with_exit_1(specs: Path) -> None:
    ok = _run(str(specs / "mlp.yaml"), "--max-params", str(MLP_PARAMS))
    assert ok.exit_code == 0, ok.output
    over = _run(str(specs / "mlp.yaml"), "--max-params", str(MLP_PARAMS - 1))
    assert over.exit_code == 1
    assert f"{MLP_PARAMS:,} parameters exceed the budget of {MLP_PARAMS - 1:,}" in over.output


def test_spec_budget_section_is_reported_at_its_line(specs: Path) -> None:
    result = _run(str(specs / "budgeted.yaml"), "--format", "json")
    assert result.exit_code == 1
    entry = json.loads(result.stdout)[0]
    assert entry["ok"] is False
    lines = BUDGETED.splitlines()
    found = {e["rule"]: e["line"] for e in entry["errors"]}
    assert found == {
        "budget-params": next(i for i, l in enumerate(lines, 1) if "max_params" in l),
        "budget-macs": next(i for i, l in enumerate(lines, 1) if "max_macs" in l),
    }
    # the command line wins over the spec
    assert _run(str(specs / "budgeted.yaml"), "--max-params", "1M", "--max-macs", "1M").exit_code == 0


def test_flops_budget_counts_two_per_mac(specs: Path) -> None:
    assert _run(str(specs / "mlp.yaml"), "--max-macs", str(MLP_MACS)).exit_code == 0
    assert _run(str(specs / "mlp.yaml"), "--max-macs", str(MLP_MACS), "--count", "flops").exit_code == 1
    assert _run(str(specs / "mlp.yaml"), "--max-macs", str(2 * MLP_MACS), "--count", "flops").exit_code == 0


def test_max_memory_with_batch(specs: Path) -> None:
    """Training memory at batch 100 with SGD: weights + gradients (2 × 4 bytes per parameter)
    plus the saved activations: the input (784) and the ReLU output (256), float32."""
    need = 2 * 4 * MLP_PARAMS + 100 * (784 + 256) * 4
    assert _run(str(specs / "mlp.yaml"), "--max-memory", str(need), "--batch", "100").exit_code == 0
    over = _run(str(specs / "mlp.yaml"), "--max-memory", str(need - 1), "--batch", "100")
    assert over.exit_code == 1 and f"({need:,} bytes)" in over.output
    # adam keeps two more float32 tensors per parameter
    assert _run(str(specs / "mlp.yaml"), "--max-memory", str(need), "--batch", "100", "--optimizer", "adam").exit_code == 1


def test_bad_budget_values_are_one_line(specs: Path) -> None:
    result = _run(str(specs / "mlp.yaml"), "--max-params", "lots")
    assert result.exit_code == 2 and "Traceback" not in result.output
    bad = specs / "b.yaml"
    bad.write_text(MLP + "budget: {max_params: true, batch: 2.0}\n")
    result = _run(str(bad))
    assert result.exit_code == 2 and "max_params" in result.output and "batch" in result.output


def test_default_budget_warns_about_a_trillion_parameters(tmp_path: Path) -> None:
    """1,000,001,000,000 parameters: valid, but a warning (never allocated: check has no torch)."""
    spec = tmp_path / "huge.yaml"
    spec.write_text("name: huge\ninput: [1000000]\nlayers: [{op: linear, out: 1000000}]\n")
    result = _run(str(spec))
    assert result.exit_code == 0
    assert "warning" in result.output and "1,000,001,000,000 parameters" in result.output
    sarif = json.loads(_run(str(spec), "--format", "sarif").stdout)
    assert [r["level"] for r in sarif["runs"][0]["results"]] == ["warning"]
    accepted = _run(str(spec), "--max-params", "2T")
    assert accepted.exit_code == 0 and "warning" not in accepted.output


def test_sarif_is_valid_2_1_0_with_results_at_spec_lines(specs: Path) -> None:
    result = _run(str(specs), "--format", "sarif", "--max-params", "100K")
    assert result.exit_code == 2
    log = json.loads(result.stdout)
    jsonschema.validate(log, SARIF_2_1_0, format_checker=jsonschema.FormatChecker())
    run = log["runs"][0]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    by_file: dict[str, list[dict]] = {}
    for res in run["results"]:
        assert rules[res["ruleIndex"]] == res["ruleId"]
        by_file.setdefault(Path(res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]).name, []).append(res)
    assert set(by_file) == {"bad.yaml", "mlp.yaml", "budgeted.yaml"}
    bad = by_file["bad.yaml"][0]
    assert bad["ruleId"] == "spec-error" and bad["level"] == "error"
    assert bad["locations"][0]["physicalLocation"]["region"]["startLine"] == 5  # the unknown op's line
    assert "<&>" in bad["message"]["text"] and "]]>" in bad["message"]["text"]
    params_line = BUDGETED.splitlines().index("  max_params: 200K") + 1
    budgeted = {r["ruleId"]: r for r in by_file["budgeted.yaml"]}
    # --max-params on the command line replaces the spec's limit: reported at the file's start
    assert budgeted["budget-params"]["locations"][0]["physicalLocation"]["region"]["startLine"] == 1
    assert budgeted["budget-macs"]["locations"][0]["physicalLocation"]["region"]["startLine"] == params_line + 1


def test_junit_one_testcase_per_spec_with_escaped_failures(specs: Path) -> None:
    result = _run(str(specs), "--format", "junit")
    assert result.exit_code == 2
    root = ElementTree.fromstring(result.stdout.encode())  # parses: every string was escaped
    suite = root.find("testsuite")
    assert suite is not None
    cases = {Path(c.get("name")).name: c for c in suite.findall("testcase")}
    assert set(cases) == {"bad.yaml", "mlp.yaml", "budgeted.yaml"}
    assert suite.get("tests") == "3" and suite.get("failures") == "2"
    assert cases["mlp.yaml"].find("failure") is None
    failure = cases["bad.yaml"].find("failure")
    assert failure is not None and "x\"<&>" in failure.text and "]]>" in failure.text
    assert "exceed the budget" in cases["budgeted.yaml"].find("failure").get("message")


def test_github_format_warns_and_errors(specs: Path) -> None:
    result = _run(str(specs / "budgeted.yaml"), "--format", "github")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(re.match(r"^::error file=[^,]+,line=\d+,col=\d+::.+$", ln) for ln in lines)


def test_pre_commit_hook_runs_on_spec_files_only() -> None:
    hook = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())[0]
    pattern = re.compile(hook["files"])
    tracked = subprocess.run(["git", "ls-files", "*.yaml", "*.yml"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    matched = [f for f in tracked if pattern.search(f)]
    assert ".pre-commit-hooks.yaml" not in matched and ".github/workflows/ci.yml" not in matched
    assert not pattern.search("netspec/compiler/prelude.yaml")
    assert "specs/lenet.yaml" in matched and pattern.search("models/resnet.netspec.yaml")
    entry = hook["entry"].split()
    assert entry[:2] == ["netspec", "check"]
    done = subprocess.run([sys.executable, "-m", "netspec", *entry[1:], *matched], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_budget_section_is_in_the_json_schema() -> None:
    from netspec.compiler.schema import json_schema

    validator = jsonschema.Draft202012Validator(json_schema())
    assert not list(validator.iter_errors(yaml.safe_load(BUDGETED)))
    assert list(validator.iter_errors(yaml.safe_load(MLP + "budget: {max_parms: 3}\n")))
    assert list(validator.iter_errors(yaml.safe_load(MLP + "budget: {max_params: true}\n")))
