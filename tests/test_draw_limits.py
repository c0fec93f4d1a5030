"""Big graphs: `draw` to a picture refuses what Graphviz would take minutes over, and never
waits on Graphviz forever (bounded by counts and by a stand-in `dot` that never finishes)."""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from netspec.cli import main
from netspec.compiler.draw import DOT_TIMEOUT_S, MAX_BOXES

HAS_DOT = shutil.which("dot") is not None


def branching_spec(blocks_per_group: int, groups: int) -> str:
    """A residual MLP with a shortcut in every block; hidden widths vary so that nothing folds."""
    lines = [
        "name: branching",
        "input: [16]",
        "blocks:",
        "  res:",
        "    params: {w: int}",
        "    layers:",
        "      - {op: linear, name: a, out: $w}",
        "      - {op: relu, name: r}",
        "      - {op: linear, name: b, out: 16}",
        "      - {op: add, name: add, from: [b, input]}",
        "layers:",
    ]
    for g in range(groups):
        inner = ", ".join(f"{{op: res, w: {8 + (g * blocks_per_group + i) % 7}}}" for i in range(blocks_per_group))
        lines.append(f"  - {{op: sequential, name: g{g}, layers: [{inner}]}}")
    lines.append("  - {op: linear, name: head, out: 10}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("big") / "branching.yaml"
    path.write_text(branching_spec(50, 50), encoding="utf-8")  # 10,000 layers
    return path


def test_help_states_the_real_defaults():
    text = CliRunner().invoke(main, ["draw", "--help"]).output
    assert f"Default: {MAX_BOXES}." in text and f"Default: {DOT_TIMEOUT_S:g}." in text


@pytest.mark.parametrize("suffix", [".svg", ".png", ".pdf"])
def test_ten_thousand_layers_are_refused_in_one_line(big, tmp_path, suffix, monkeypatch):
    # No Graphviz may even start: an empty PATH would turn a started `dot` into GraphvizNotFound.
    monkeypatch.setenv("PATH", str(tmp_path))
    out = tmp_path / f"big{suffix}"
    result = CliRunner().invoke(main, ["draw", str(big), "-o", str(out)])
    assert result.exit_code == 2
    message = result.output.strip()
    assert "\n" not in message and "Traceback" not in message
    assert "--depth" in message and "big.html" in message and f"limit {MAX_BOXES:,}" in message
    assert not out.exists() and not out.with_suffix(".dot").exists()


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
def test_the_suggested_depth_draws_it(big, tmp_path):
    out = tmp_path / "big.svg"
    result = CliRunner().invoke(main, ["draw", str(big), "-o", str(out), "--depth", "0"])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").count('class="node block"') == 50


def test_the_suggested_html_draws_it(big, tmp_path):
    out = tmp_path / "big.html"
    assert CliRunner().invoke(main, ["draw", str(big), "-o", str(out)]).exit_code == 0
    assert out.stat().st_size > 0


def test_a_dot_that_never_finishes_is_stopped(tmp_path, monkeypatch):
    spec = tmp_path / "small.yaml"
    spec.write_text(branching_spec(2, 1), encoding="utf-8")
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexec sleep 600\n", encoding="utf-8")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "small.svg"
    (out).write_text("old picture", encoding="utf-8")
    result = CliRunner().invoke(main, ["draw", str(spec), "-o", str(out), "--timeout", "0.5"])
    assert result.exit_code == 2
    assert "did not finish within 0.5 s" in result.output and "small.html" in result.output
    assert out.read_text(encoding="utf-8") == "old picture"  # a failure leaves the old file


def test_max_boxes_can_be_raised_and_lowered(tmp_path):
    spec = tmp_path / "small.yaml"
    spec.write_text(branching_spec(2, 1), encoding="utf-8")
    result = CliRunner().invoke(main, ["draw", str(spec), "-o", str(tmp_path / "s.svg"), "--max-boxes", "3"])
    assert result.exit_code == 2 and "limit 3" in result.output
    assert CliRunner().invoke(main, ["draw", str(spec), "-o", str(tmp_path / "s.dot"), "--max-boxes", "3"]).exit_code == 0
