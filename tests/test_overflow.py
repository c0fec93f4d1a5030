"""Sizes beyond what any tensor or 64-bit count can hold are spec errors (exit 2, one line),
found before torch is asked for anything; so are integer literals no spec needs."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from netspec.cli import main

BIG = 1_000_000  # the largest dimension an input may have


def run(tmp_path: Path, text: str, *args: str):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, [args[0], str(path), *args[1:]])
    return result


def refused(result, phrase: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and phrase in lines[0], result.output
    assert "internal error" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "layers, phrase",
    [
        ("[flatten, {op: linear, out: 10}]", "1e+19 parameters; no tensor can hold more than 2**60"),
        ("[{op: conv2d, out: 1000000, kernel: 1}]", "1e+24 MACs per example, more than a 64-bit count holds"),
        ("[{op: conv2d, name: a, out: 1000000, kernel: 1, from: input}, {op: conv2d, name: b, out: 1000000, kernel: 1, from: input},"
         " {op: concat, from: [a, b]}]", "output 2000000×1000000×1000000 has 2e+18 elements"),
    ],
)
@pytest.mark.parametrize("command", [("check", "-q"), ("compile", "-o", "model.py"), ("compile", "--json")])
def test_sizes_that_overflow_are_refused(tmp_path: Path, layers: str, phrase: str, command: tuple[str, ...]) -> None:
    channels = 1 if "concat" in layers else BIG
    text = f"name: big\ninput: [{channels}, {BIG}, {BIG}]\nlayers: {layers}\n"
    args = [a if a != "model.py" else str(tmp_path / "model.py") for a in command]
    result = run(tmp_path, text, *args)
    refused(result, phrase)
    assert not (tmp_path / "model.py").exists()


@pytest.mark.parametrize("digits", [41, 4301, 100_000])
@pytest.mark.parametrize("where", ["input: [1, 28, {n}]", "input: [1, 28, 28]\ntrain: {{seed: {n}}}\n#", "input: [1, 28, -{n}]"])
def test_huge_integer_literals_are_refused_at_their_place(tmp_path: Path, digits: int, where: str) -> None:
    number = "9" * digits
    text = "name: a\n" + where.format(n=number) + "\nlayers: [flatten, {op: linear, out: 10}]\n"
    result = run(tmp_path, text, "compile", "-o", str(tmp_path / "model.py"))
    refused(result, "integer literal of")
    line = text[: text.index(number)].count("\n") + 1
    assert f"s.yaml:{line}:" in result.output


def test_the_issues_float_input_is_refused_value_by_value(tmp_path: Path) -> None:
    """`input: [1e6, 1e6, 1e6]` (floats in YAML 1.2) ended in "internal error"; now the schema refuses
    each float, one located line per value."""
    text = "name: big\ninput: [1e6, 1e6, 1e6]\nlayers: [flatten, {op: linear, out: 10}]\n"
    result = run(tmp_path, text, "compile", "-o", str(tmp_path / "model.py"))
    assert result.exit_code == 2 and "internal error" not in result.output and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert [line.split(": ", 1)[1] for line in lines] == [f"input[{i}]: expected an integer, got 1000000.0" for i in range(3)]
    assert not (tmp_path / "model.py").exists()
