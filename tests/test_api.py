"""The notebook API: every entry point takes a path, YAML text or a dict, and `help(netspec)`
lists it with its docstrings although it is imported lazily."""
from __future__ import annotations

import pydoc
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import netspec
from netspec.errors import SpecError

ROOT = Path(__file__).resolve().parents[1]
LENET = ROOT / "specs" / "lenet.yaml"
TEXT = LENET.read_text()
DICT = yaml.safe_load(TEXT)
LENET_PARAMS = (1 * 6 * 25 + 6) + (6 * 16 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)


@pytest.mark.parametrize("spec", [LENET, str(LENET), TEXT, DICT], ids=["path", "str", "text", "dict"])
def test_every_entry_point_takes_every_form(spec: object, tmp_path: Path) -> None:
    assert netspec.load(spec).spec.name == "lenet"  # type: ignore[arg-type]
    (result,) = netspec.check(spec).values()  # type: ignore[arg-type]
    assert not isinstance(result, list) and result.total_params == LENET_PARAMS
    info = netspec.summary(spec, batch=8)  # type: ignore[arg-type]
    assert info["params"] == LENET_PARAMS and info["memory"]["batch"] == 8
    model = netspec.compile(spec, seed=0)  # type: ignore[arg-type]
    assert sum(p.numel() for p in model.parameters()) == LENET_PARAMS
    assert netspec.draw(spec, tmp_path / "lenet.dot").read_text().startswith(("digraph", "strict digraph"))  # type: ignore[arg-type]
    d = netspec.diff(spec, ROOT / "specs" / "lenet_bn.yaml")  # type: ignore[arg-type]
    assert d.before.params == LENET_PARAMS and [c.after.op for c in d.changes if c.status == "added"] == ["batchnorm"] * 4


def test_dicts_and_text_are_as_strict_as_files() -> None:
    bad = dict(DICT, layers=[*DICT["layers"][:-1], {"op": "linear", "out": "10"}])
    with pytest.raises(SpecError, match="expected a positive integer"):
        netspec.load(bad)  # the string "10" stays a string
    (diagnostics,) = netspec.check(TEXT.replace("op: conv2d", "op: conv2x", 1)).values()
    assert isinstance(diagnostics, list) and "conv2x" in diagnostics[0].message
    with pytest.raises(SpecError, match="no such file"):
        netspec.load("specs/nope.yaml")  # one line without a newline is a path, not text


def test_help_lists_the_lazy_api_with_docstrings() -> None:
    text = pydoc.render_doc(netspec, renderer=pydoc.plaintext)
    functions = text[text.index("FUNCTIONS"):]
    for name in ("load", "check", "build_graph", "compile", "summary", "draw", "diff"):
        doc = (getattr(netspec, name).__doc__ or "").strip().splitlines()[0]
        assert f"{name}(" in functions and doc in functions, name
    assert set(netspec.__all__) <= set(dir(netspec))


def test_import_and_check_a_dict_without_torch() -> None:
    code = (
        "import sys, netspec\n"
        f"r = netspec.check({DICT!r})\n"
        "assert not isinstance(next(iter(r.values())), list)\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
