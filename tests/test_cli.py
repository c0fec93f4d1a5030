"""The command line: `netspec check`, `netspec compile`, `netspec schema`.

Counts printed by the CLI are compared with hand-written PyTorch twins of the test specs;
locations with the positions in the spec text; `check` must work without importing torch.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from netspec.cli import main

LENET = textwrap.dedent(
    """\
    name: lenet
    description: LeNet-5 (D2L 7.6)
    input: [1, 28, 28]
    layers:
      - {op: conv2d, name: c1, out: 6, kernel: 5, padding: 2}
      - sigmoid
      - {op: avgpool, kernel: 2, stride: 2}
      - {op: conv2d, name: c2, out: 16, kernel: 5}
      - sigmoid
      - {op: avgpool, kernel: 2, stride: 2}
      - flatten
      - {op: linear, name: f1, out: 120}
      - sigmoid
      - {op: linear, name: f2, out: 84}
      - sigmoid
      - {op: linear, name: f3, out: 10}
    """
)


def lenet_twin() -> nn.Module:
    """D2L's LeNet, written by hand."""
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, 10),
    )  # fmt: skip


NESTED = textwrap.dedent(
    """\
    name: nested
    input: [3, 16, 16]
    layers:
      - {op: conv2d, name: stem, out: 8, kernel: 3, padding: 1}
      - {op: residual, out: 16, stride: 2, name: r1}
      - op: sequential
        name: grp
        layers:
          - {op: conv2d, out: 16, kernel: 3, padding: 1}
          - relu
      - global_avgpool
      - flatten
      - {op: linear, out: 10, name: head}
    """
)

BROKEN = textwrap.dedent(
    """\
    name: broken
    input: [1, 28, 28]
    layers:
      - {op: conv2d, out: 6, kernal: 5}
      - sigmod
    """
)


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def residual_twin_params(c_in: int, c_out: int) -> int:
    return params(nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, stride=2), nn.BatchNorm2d(c_out),
        nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.Conv2d(c_in, c_out, 1, stride=2),
    ))  # fmt: skip


def nested_twin_params() -> int:
    return (
        params(nn.Conv2d(3, 8, 3, padding=1))
        + residual_twin_params(8, 16)
        + params(nn.Conv2d(16, 16, 3, padding=1))
        + params(nn.Linear(16, 10))
    )


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "lenet.yaml").write_text(LENET, encoding="utf-8")
    (tmp_path / "deep" / "er" / "nested.yml").write_text(NESTED, encoding="utf-8")
    (tmp_path / "deep" / "notes.txt").write_text("not a spec", encoding="utf-8")
    return tmp_path


def where(text: str, needle: str) -> tuple[int, int]:
    index = text.index(needle)
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


# --------------------------------------------------------------------------- check

def test_check_valid_file(runner: CliRunner, specs: Path) -> None:
    result = runner.invoke(main, ["check", str(specs / "lenet.yaml")])
    assert result.exit_code == 0, result.output
    assert f"{params(lenet_twin()):,} params" in result.stdout


def test_check_folder_recursively(runner: CliRunner, specs: Path) -> None:
    result = runner.invoke(main, ["check", str(specs)])
    assert result.exit_code == 0, result.output
    assert "nested.yml" in result.stdout and "lenet.yaml" in result.stdout and "notes.txt" not in result.output
    assert "2 of 2 specs valid" in result.output


def test_check_reports_errors_with_locations_and_exit_2(runner: CliRunner, specs: Path) -> None:
    bad = specs / "deep" / "broken.yaml"
    bad.write_text(BROKEN, encoding="utf-8")
    result = runner.invoke(main, ["check", str(specs)])
    assert result.exit_code == 2
    line, col = where(BROKEN, "kernal")
    assert f"{bad}:{line}:{col}: layers[0].kernal: unknown key 'kernal' (did you mean 'kernel'?)" in result.stderr
    line, col = where(BROKEN, "sigmod")
    assert f"{bad}:{line}:{col}: unknown op 'sigmod' (did you mean 'sigmoid'?)" in result.stderr
    assert "2 of 3 specs valid" in result.output
    assert "Traceback" not in result.output


def test_check_github_format(runner: CliRunner, specs: Path) -> None:
    bad = specs / "broken.yaml"
    bad.write_text(BROKEN, encoding="utf-8")
    result = runner.invoke(main, ["check", "--format", "github", str(bad), str(specs / "lenet.yaml")])
    assert result.exit_code == 2
    line, col = where(BROKEN, "sigmod")
    assert f"::error file={bad},line={line},col={col}::unknown op 'sigmod' (did you mean 'sigmoid'?); `netspec ops` lists the ops and blocks" in result.stdout.splitlines()
    annotations = [ln for ln in result.stdout.splitlines() if ln.startswith("::error")]
    assert len(annotations) == 3  # missing kernel, unknown key kernal, unknown op sigmod
    assert all(re.match(r"^::error file=[^,]+,line=\d+,col=\d+::.+$", ln) for ln in annotations)


def test_check_json_format(runner: CliRunner, specs: Path) -> None:
    (specs / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    result = runner.invoke(main, ["check", "--format", "json", str(specs)])
    assert result.exit_code == 2
    report = {Path(entry["file"]).name: entry for entry in json.loads(result.stdout)}
    assert set(report) == {"broken.yaml", "lenet.yaml", "nested.yml"}
    assert report["lenet.yaml"]["ok"] is True and report["lenet.yaml"]["params"] == params(lenet_twin())
    assert report["nested.yml"]["params"] == nested_twin_params()
    broken = report["broken.yaml"]
    assert broken["ok"] is False
    line, col = where(BROKEN, "sigmod")
    assert {"message": "unknown op 'sigmod' (did you mean 'sigmoid'?); `netspec ops` lists the ops and blocks", "line": line, "col": col} in broken["errors"]


def test_check_missing_path_is_one_line_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["check", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == f"{tmp_path / 'nope.yaml'}: no such file"


def test_check_reports_a_missing_path_beside_the_others(runner: CliRunner, tmp_path: Path) -> None:
    """One missing path does not stop the others being checked; JSON stays JSON."""
    good = tmp_path / "good.yaml"
    good.write_text("name: g\ninput: [2]\nlayers: [relu]\n")
    result = runner.invoke(main, ["check", "--format", "json", str(good), str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    report = {Path(e["file"]).name: e for e in json.loads(result.stdout)}
    assert report["good.yaml"]["ok"] is True and report["nope.yaml"]["ok"] is False


def test_check_folder_without_specs(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["check", str(tmp_path)])
    assert result.exit_code == 2 and "no .yaml specs found" in result.stderr


def test_check_does_not_import_torch(specs: Path) -> None:
    bad = specs / "broken.yaml"
    bad.write_text(BROKEN, encoding="utf-8")
    script = textwrap.dedent(
        """\
        import sys
        from netspec.cli import main
        codes = []
        for args in (["check", sys.argv[1]], ["check", sys.argv[2]], ["check", "--format", "json", sys.argv[3]]):
            try:
                main(args)
            except SystemExit as exc:
                codes.append(exc.code)
        print("codes", codes, "torch" in sys.modules)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(specs / "lenet.yaml"), str(bad), str(specs)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "codes [0, 2, 2] False"


# --------------------------------------------------------------------------- compile

def test_compile_table_names_layers_and_counts_params(runner: CliRunner, specs: Path) -> None:
    result = runner.invoke(main, ["compile", str(specs / "lenet.yaml")])
    assert result.exit_code == 0, result.output
    for name in ("c1", "c2", "f1", "f2", "f3"):
        assert re.search(rf"│ {name}\s+│", result.stdout), name
    total = params(lenet_twin())
    assert f"total params: {total:,}" in result.stdout
    assert f"trainable params: {total:,}" in result.stdout
    assert re.search(r"│ f3\s+│ linear\s+│\s+10 │\s+850 │", result.stdout)


def test_compile_depth_0_folds_blocks_and_named_groups(runner: CliRunner, specs: Path) -> None:
    path = specs / "deep" / "er" / "nested.yml"
    full = runner.invoke(main, ["compile", str(path)])
    folded = runner.invoke(main, ["compile", str(path), "--depth", "0"])
    assert full.exit_code == folded.exit_code == 0, folded.output
    assert "r1.conv1" in full.stdout and "grp.0" in full.stdout
    assert "r1.conv1" not in folded.stdout and "grp.0" not in folded.stdout
    assert re.search(rf"│ r1\s+│ residual\s+│\s+16×8×8 │\s+{residual_twin_params(8, 16):,} │", folded.stdout), folded.stdout
    assert re.search(r"│ grp\s+│", folded.stdout)
    assert f"total params: {nested_twin_params():,}" in folded.stdout


def test_compile_json(runner: CliRunner, specs: Path) -> None:
    result = runner.invoke(main, ["compile", str(specs / "lenet.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"name", "input_shape", "output_shape", "params", "trainable_params", "macs", "layers"} <= set(data)
    assert data["name"] == "lenet"
    assert data["input_shape"] == [1, 28, 28] and data["output_shape"] == [10]
    twin = lenet_twin()
    assert data["params"] == params(twin)
    assert data["trainable_params"] == sum(p.numel() for p in twin.parameters() if p.requires_grad)
    assert all({"name", "op", "output_shape", "params"} <= set(layer) for layer in data["layers"])
    assert sum(layer["params"] for layer in data["layers"]) == data["params"]
    x = torch.zeros(1, 1, 28, 28)
    shapes = []
    for module in twin:
        x = module(x)
        shapes.append(list(x.shape[1:]))
    assert [layer["output_shape"] for layer in data["layers"]] == shapes
    assert [layer["name"] for layer in data["layers"]][:3] == ["c1", "1", "2"]
    # MACs of conv and linear layers, counted by hand: out_channels·in_channels·k²·H·W and in·out
    macs = 6 * 1 * 25 * 28 * 28 + 16 * 6 * 25 * 10 * 10 + 400 * 120 + 120 * 84 + 84 * 10
    assert data["macs"] == macs


def test_compile_output_python(runner: CliRunner, specs: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.py"
    result = runner.invoke(main, ["compile", str(specs / "lenet.yaml"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stdout
    namespace: dict = {}
    exec(compile(out.read_text(encoding="utf-8"), str(out), "exec"), namespace)  # noqa: S102 (our generated file)
    model = namespace["Lenet"]()
    assert params(model) == params(lenet_twin())
    assert tuple(model(torch.zeros(2, 1, 28, 28)).shape) == (2, 10)


def test_compile_unknown_output_suffix_exits_2(runner: CliRunner, specs: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.unknown"
    result = runner.invoke(main, ["compile", str(specs / "lenet.yaml"), "-o", str(out)])
    assert result.exit_code == 2
    assert "unknown output format" in result.stderr and "Traceback" not in result.output
    assert not out.exists()


def test_compile_invalid_spec_exits_2_with_locations(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text(BROKEN, encoding="utf-8")
    result = runner.invoke(main, ["compile", str(bad)])
    assert result.exit_code == 2
    line, col = where(BROKEN, "sigmod")
    assert f"{bad}:{line}:{col}: unknown op 'sigmod'" in result.stderr
    assert "Traceback" not in result.output


def test_compile_missing_file_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["compile", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "no such file" in result.stderr


# --------------------------------------------------------------------------- schema

def schema_of(runner: CliRunner) -> dict:
    result = runner.invoke(main, ["schema"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_schema_is_a_json_schema_of_the_language(runner: CliRunner) -> None:
    schema = schema_of(runner)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["type"] == "object"
    assert {"name", "input", "layers"} <= set(schema["required"])
    assert {"name", "description", "input", "init", "blocks", "layers", "train"} <= set(schema["properties"])
    assert schema.get("additionalProperties") is False
    text = json.dumps(schema)
    for op in ("conv2d", "maxpool", "linear", "batchnorm", "concat"):
        assert f'"{op}"' in text


def test_schema_written_to_a_file(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "netspec.schema.json"
    result = runner.invoke(main, ["schema", "-o", str(out)])
    assert result.exit_code == 0
    assert json.loads(out.read_text(encoding="utf-8")) == schema_of(runner)


def test_schema_is_valid_draft_2020_12_and_refuses_bad_specs(runner: CliRunner) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    schema = schema_of(runner)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    spec = yaml.safe_load(LENET)
    assert list(validator.iter_errors({**spec, "bogus": 1}))
    assert list(validator.iter_errors({k: v for k, v in spec.items() if k != "input"}))


def _validation_errors(runner: CliRunner, text: str) -> list[str]:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    validator = jsonschema.Draft202012Validator(schema_of(runner))
    return [e.message[:200] for e in validator.iter_errors(yaml.safe_load(text))]


@pytest.mark.parametrize("text", [LENET, NESTED], ids=["lenet", "nested"])
def test_schema_accepts_valid_specs_written_with_mappings(runner: CliRunner, text: str) -> None:
    text = re.sub(r"^(\s+)- (\w+)$", r"\1- {op: \2}", text, flags=re.M)
    assert _validation_errors(runner, text) == []


def test_schema_accepts_bare_op_names(runner: CliRunner) -> None:
    assert _validation_errors(runner, "name: t\ninput: [3]\nlayers: [relu, flatten]\n") == []


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0 and re.search(r"\d+\.\d+", result.stdout)


def test_unwritable_outputs_are_one_line_errors(runner: CliRunner, tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\ninput: [2]\nlayers: [relu]\n")
    (tmp_path / "dir.py").mkdir()
    for args in (["compile", str(spec), "-o", str(tmp_path / "dir.py")],
                 ["compile", str(spec), "-o", str(tmp_path / "no" / "x.py")],
                 ["schema", "-o", str(tmp_path / "no" / "s.json")]):
        result = runner.invoke(main, args)
        assert result.exit_code == 2, args
        assert "cannot write" in result.stderr and "Traceback" not in result.output
    assert not list(tmp_path.glob("*.tmp"))


def test_github_annotations_escape_their_properties_and_message(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "a,b=c::d.yaml"
    bad.write_text("name: t\ninput: [2]\nlayers: [sigmod]\n")
    result = runner.invoke(main, ["check", "--format", "github", str(bad)])
    line = result.stdout.strip()
    assert line.startswith("::error file=") and "a%2Cb=c%3A%3Ad.yaml,line=3,col=" in line


def test_source_of_a_huge_network_needs_no_memory_for_weights(runner: CliRunner, tmp_path: Path) -> None:
    """-o model.py writes the layers' settings; 90 G parameters are never allocated."""
    spec = tmp_path / "big.yaml"
    spec.write_text("name: big\ninput: [300000]\nlayers: [{op: linear, out: 300000}]\n")
    result = runner.invoke(main, ["compile", str(spec), "-o", str(tmp_path / "big.py")])
    assert result.exit_code == 0, result.output
    assert "nn.Linear(300000, 300000)" in (tmp_path / "big.py").read_text()
