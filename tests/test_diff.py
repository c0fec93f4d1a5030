"""`netspec diff`: pairs of zoo specs, checked against counts torch makes of the built models.

Parameters come from the real modules (`numel` of each named submodule's parameters), MACs
from torch's FlopCounterMode (FLOPs / 2) on meta tensors, so no number under test is produced
by netspec's own counting rules.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from netspec.api import build_graph
from netspec.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_counts import meta_flops  # noqa: E402  (tests/ is not a package)

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"


def _torch_counts(spec: Path) -> tuple[torch.nn.Module, int, int]:
    model, flops = meta_flops(build_graph(spec))
    return model, sum(p.numel() for p in model.parameters()), flops // 2


def _diff_json(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["diff", *args, "--format", "json"])
    return result.exit_code, json.loads(result.output)


def _layer_params(model: torch.nn.Module, name: str) -> int:
    return sum(p.numel() for p in model.get_submodule(name).parameters())


@pytest.mark.parametrize("a, b", [("lenet.yaml", "lenet_bn.yaml"), ("vgg11_small.yaml", "vgg11.yaml"), ("mlp.yaml", "mlp_dropout.yaml")])
def test_diff_totals_and_layers_match_torch(a: str, b: str) -> None:
    code, report = _diff_json(str(SPECS / a), str(SPECS / b))
    assert code == 0
    model_a, params_a, macs_a = _torch_counts(SPECS / a)
    model_b, params_b, macs_b = _torch_counts(SPECS / b)
    assert report["totals"]["params"] == [params_a, params_b]
    assert report["totals"]["macs"] == [macs_a, macs_b]
    assert report["layers"], "the specs differ"
    for change in report["layers"]:
        for side, model in (("before", model_a), ("after", model_b)):
            layer = change[side]
            if layer is not None and layer["op"] not in ("add", "concat"):
                assert layer["params"] == _layer_params(model, layer["name"]), (side, layer)
    blocks = report["blocks"]
    for name, counts in blocks.items():
        if name != "(top level)":
            assert counts["params"] == [_layer_params(model_a, name), _layer_params(model_b, name)]


def test_inserted_layers_are_added_not_shifted() -> None:
    """lenet_bn is lenet without padding plus four batch norms: exactly four layers are added."""
    _, report = _diff_json(str(SPECS / "lenet.yaml"), str(SPECS / "lenet_bn.yaml"))
    added = [c["after"] for c in report["layers"] if c["status"] == "added"]
    assert [a["op"] for a in added] == ["batchnorm"] * 4
    assert not [c for c in report["layers"] if c["status"] == "removed"]
    assert report["totals"]["layers"] == [12, 16]


NAMED = textwrap.dedent(
    """\
    name: named
    input: [3, 8, 8]
    layers:
      - {op: conv2d, name: stem, out: 8, kernel: 3, padding: 1}
      - {op: relu, name: act}
      - {op: conv2d, name: body, out: 8, kernel: 3, padding: 1}
      - global_avgpool
      - flatten
      - {op: linear, name: head, out: 10}
    """
)


def test_named_layers_match_by_name(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text(NAMED)
    b.write_text(NAMED.replace("name: body, out: 8", "name: body, out: 16").replace("name: head", "name: classifier"))
    _, report = _diff_json(str(a), str(b))
    by_status = {(c["status"], (c["after"] or c["before"])["op"]) for c in report["layers"]}
    assert ("changed", "conv2d") in by_status
    assert ("renamed", "linear") in by_status
    body = next(c for c in report["layers"] if c["after"] and c["after"]["name"] == "body")
    # 8·8·3·3 + 8 -> 16·8·3·3 + 16, by hand
    assert (body["before"]["params"], body["after"]["params"]) == (8 * 8 * 9 + 8, 16 * 8 * 9 + 16)
    head = next(c for c in report["layers"] if c["status"] == "renamed")
    assert (head["before"]["params"], head["after"]["params"]) == (8 * 10 + 10, 16 * 10 + 10)


def test_identical_specs_have_no_changes() -> None:
    code, report = _diff_json(str(SPECS / "resnet18.yaml"), str(SPECS / "resnet18.yaml"))
    assert code == 0 and report["layers"] == [] and report["blocks"] == {}
    assert report["unchanged_layers"] == len(list(build_graph(SPECS / "resnet18.yaml").ops()))


@pytest.mark.parametrize(
    "budget, order, code",
    [
        ("params:+5%", ("vgg11_small.yaml", "vgg11.yaml"), 1),
        ("params:+5%", ("vgg11.yaml", "vgg11_small.yaml"), 0),  # shrinking is within a growth budget
        ("params:5%", ("vgg11.yaml", "vgg11_small.yaml"), 1),  # no sign: either way
        ("params:+200%,macs:+2000%", ("vgg11_small.yaml", "vgg11.yaml"), 0),  # +198.9 % and +1373.6 %
        ("macs:+1000%", ("vgg11_small.yaml", "vgg11.yaml"), 1),
    ],
)
def test_fail_on_budgets(budget: str, order: tuple[str, str], code: int) -> None:
    result = CliRunner().invoke(main, ["diff", *(str(SPECS / s) for s in order), "--fail-on", budget, "--format", "markdown"])
    assert result.exit_code == code, result.output
    assert ("budget crossed" in result.output) == bool(code)


def test_bad_budget_is_one_line() -> None:
    result = CliRunner().invoke(main, ["diff", str(SPECS / "mlp.yaml"), str(SPECS / "mlp.yaml"), "--fail-on", "parms:+5"])
    assert result.exit_code == 2
    assert "parms:+5" in result.output and "Traceback" not in result.output


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=cwd, check=True, capture_output=True)


def test_rev_path_reads_from_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "net.yaml"
    spec.write_text((SPECS / "lenet.yaml").read_text())
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "net.yaml")
    _git(tmp_path, "commit", "-qm", "lenet")
    spec.write_text((SPECS / "lenet_bn.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    code, report = _diff_json("HEAD:net.yaml", "net.yaml")
    assert code == 0
    assert report["totals"]["params"] == [_torch_counts(SPECS / "lenet.yaml")[1], _torch_counts(SPECS / "lenet_bn.yaml")[1]]
    missing = CliRunner().invoke(main, ["diff", "HEAD:nope.yaml", "net.yaml"])
    assert missing.exit_code == 2 and len(missing.output.strip().splitlines()) == 1, missing.output
    option = CliRunner().invoke(main, ["diff", "--output=x:net.yaml", "net.yaml"])  # never passed to git as an option
    assert option.exit_code == 2


def test_diff_does_not_import_torch() -> None:
    code = (
        "import sys\nfrom netspec.cli import main\n"
        f"try:\n    main(['diff', {str(SPECS / 'resnet18.yaml')!r}, {str(SPECS / 'googlenet.yaml')!r}, '--format', 'markdown'])\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print('torch' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "False"
    assert "| layer | status |" in done.stdout


def test_diff_counts_flops_when_asked() -> None:
    code, report = _diff_json(str(SPECS / "lenet.yaml"), str(SPECS / "resnet18.yaml"), "--count", "flops")
    assert code == 0 and report["count"] == {"unit": "flops", "policy": "core"}
    assert report["totals"]["flops"] == [2 * _torch_counts(SPECS / "lenet.yaml")[2], 2 * _torch_counts(SPECS / "resnet18.yaml")[2]]
