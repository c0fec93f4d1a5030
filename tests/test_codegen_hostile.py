"""Generated code never carries attacker text (issue 8 §1).

Hostile strings (quotes, triple quotes, backslashes, `\\N{...}`, line breaks of every kind,
unicode, non-UTF-8 path bytes) go into every text field of a spec and into its file path.
The truth is Python's own parser and a fresh interpreter: the ejected model.py parses, its
top level only defines (no statement that could run code), the text lands intact inside a
string literal, importing it in a new process creates no marker file, and the module builds
and computes what the compiled one computes. The same for DOT labels (read back through
Graphviz's SVG) and ONNX files (no spec text inside).
"""
from __future__ import annotations

import ast
import math
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netspec
from netspec.compiler.codegen.export import write
from netspec.compiler.codegen.source import docstring, literal, to_source
from netspec.errors import NetspecError, SpecError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ejected import import_file, network_class  # noqa: E402  (tests/ is not a package)

ROOT = Path(__file__).resolve().parents[1]

# Pieces that have broken generated source somewhere: string ends, escapes, line ends Python
# or YAML treat specially, comment starts, and code that would leave a mark if it ever ran.
NASTY = [
    '"""', "'''", '"', "'", "\\", "\\N{BULLET}", "\\N{", "\\x", "\\u", "\n", "\r", "\r\n", "\x0b", "\x0c",
    "\x85", "\u2028", "\u2029", "#", "{", "}", "{x}", "%s", "é", "ﬁ", "😀", "\t", " ",
    "\nimport os;os.system('touch pwned')\n", '""";import os;os.system("touch pwned");"""',
    "\\'''", "\\\"\"\"", "</b>", "<b>", "&amp;", "]", "\\l", "\\G",
]
# Any character but NUL and the lone surrogates (which no UTF-8 file can hold).
CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
HOSTILE = st.lists(st.one_of(st.sampled_from(NASTY), st.text(CHARS, max_size=6)), min_size=1, max_size=8).map("".join)
FILENAME = HOSTILE.map(lambda s: s.replace("/", "\\").strip() or "x").filter(
    lambda s: s not in (".", "..") and len(s.encode("utf-8")) <= 150
)


def _top_level_only_defines(tree: ast.Module) -> None:
    """Importing the module runs nothing but its docstring, `import torch`/`from torch import nn`
    (and `from collections import OrderedDict`, for named nn.Sequential) and class definitions
    whose bodies hold only a docstring and method definitions."""
    body = tree.body
    assert isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)
    for stmt in body[1:]:
        if isinstance(stmt, ast.Import):
            assert [a.name for a in stmt.names] == ["torch"]
        elif isinstance(stmt, ast.ImportFrom):
            assert (stmt.module, [a.name for a in stmt.names]) in (("torch", ["nn"]), ("collections", ["OrderedDict"]))
        else:
            assert isinstance(stmt, ast.ClassDef), ast.dump(stmt)
            assert not stmt.decorator_list and all(isinstance(b, ast.Attribute) for b in stmt.bases)
            for i, item in enumerate(stmt.body):
                is_doc = i == 0 and isinstance(item, ast.Expr) and isinstance(item.value, ast.Constant)
                assert is_doc or (isinstance(item, ast.FunctionDef) and not item.decorator_list), ast.dump(item)
                if isinstance(item, ast.FunctionDef):
                    assert all(d is None or isinstance(d, ast.Constant) for d in item.args.defaults)


def _strings(tree: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def hostile_spec(description: str, block_doc: str, param_doc: str, tag_default: str, tag: str) -> str:
    """A spec with hostile text in every free-text field: description, a block's description,
    a parameter's doc, a str parameter's default and the value a call passes."""
    spec = {
        "name": "hostile",
        "description": description,
        "input": [3, 6, 6],
        "init": {"weight": "normal", "std": 0.02, "bias": "zeros"},
        "blocks": {
            "tagged": {
                "description": block_doc,
                "params": {"out": "int", "tag": {"type": "str", "default": tag_default, "doc": param_doc}},
                "layers": [{"op": "conv2d", "name": "conv", "out": "$out", "kernel": 3, "padding": 1}, "relu"],
            }
        },
        "layers": [
            {"op": "tagged", "name": "t1", "out": 4, "tag": tag},
            {"op": "tagged", "name": "t2", "out": 4},
            "flatten",
            {"op": "linear", "out": 3},
        ],
    }
    return yaml.safe_dump(spec, allow_unicode=False)


def _check_generated(source_path: Path, graph, texts: list[str]) -> None:
    text = source_path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    _top_level_only_defines(tree)
    strings = _strings(tree)
    for t in texts:  # each hostile text arrived whole, inside one string literal
        assert any(t in s for s in strings), (t, strings[:3])
    module = import_file(source_path)
    torch.manual_seed(5)
    ejected = network_class(module)()
    compiled = netspec.compile(graph, seed=5)
    for key, value in compiled.state_dict().items():
        assert torch.equal(ejected.state_dict()[key], value), key
    x = torch.randn(2, *graph.input_shape, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ejected(x), compiled(x), rtol=0, atol=0)


# --------------------------------------------------------------------------- literals

@settings(max_examples=300, deadline=None)
@given(HOSTILE)
def test_docstring_is_one_string_literal_holding_the_text(text: str) -> None:
    for indent in ("", "    "):
        tree = ast.parse(docstring(text, indent).strip() if indent else docstring(text))
        [stmt] = tree.body
        assert isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
        assert stmt.value.value in (text, text + "\n" + indent)


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | HOSTILE,
    lambda inner: st.lists(inner, max_size=3) | st.lists(inner, max_size=3).map(tuple) | st.dictionaries(HOSTILE, inner, max_size=2),
    max_leaves=8,
)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return type(b) is dict and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_literal_evaluates_to_the_value_and_calls_only_float(value) -> None:
    source = literal(value)
    tree = ast.parse(source, mode="eval")
    allowed = (ast.Expression, ast.Constant, ast.Tuple, ast.List, ast.Dict, ast.UnaryOp, ast.USub, ast.Load, ast.Name, ast.Call)
    for node in ast.walk(tree):
        assert isinstance(node, allowed), ast.dump(node)
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name) and node.func.id == "float" and not node.keywords
            assert [a.value for a in node.args] in (["nan"], ["inf"], ["-inf"])
        if isinstance(node, ast.Name):
            assert node.id == "float"
    assert _same(value, eval(compile(tree, "<literal>", "eval"), {"__builtins__": {"float": float}}))


# --------------------------------------------------------------------------- model.py, end to end

@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(description=HOSTILE, block_doc=HOSTILE, param_doc=HOSTILE, tag_default=HOSTILE, tag=HOSTILE, folder=FILENAME, stem=FILENAME)
def test_hostile_text_in_every_field_and_the_path_stays_text(description, block_doc, param_doc, tag_default, tag, folder, stem) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp) / folder
        where.mkdir(parents=True, exist_ok=True)
        spec_path = where / f"{stem}.yaml"
        spec_path.write_text(hostile_spec(description, block_doc, param_doc, tag_default, tag), encoding="utf-8")
        graph = netspec.build_graph(spec_path)
        assert graph.description == description
        out = write(graph, where / "model.py")
        # the path as it was named, the spec's description, the str parameter values (repr'd in the class docstring)
        _check_generated(out, graph, [str(spec_path), description, block_doc])
        assert not any(p.name == "pwned" for p in Path(tmp).rglob("*")) and not Path("pwned").exists()


def test_non_finite_floats_are_written_as_float_calls_and_build(tmp_path: Path) -> None:
    """`nan`/`inf` were bare names (NameError on import): now `float('nan')`. Set on the graph
    directly, so the check holds whatever the schema accepts."""
    text = "name: nf\ninput: [4]\ninit: {weight: normal, std: 0.5}\nlayers:\n  - {op: linear, out: 3}\n  - {op: leaky_relu, negative_slope: 0.1}\n"
    graph = netspec.build_graph(netspec.load("nf.yaml", text=text))
    linear, act = [n for n in graph.ops()]
    for slope, mean in ((math.nan, math.inf), (math.inf, -math.inf), (-math.inf, math.nan)):
        act.attrs["negative_slope"] = slope
        linear.init = linear.init.model_copy(update={"mean": mean})
        source = to_source(graph)
        assert "float('nan')" in source or "float('inf')" in source or "float('-inf')" in source
        namespace: dict = {}
        exec(compile(source, "model.py", "exec"), namespace)
        net = namespace["Nf"]()
        got = net.get_submodule("1").negative_slope
        assert (math.isnan(got) and math.isnan(slope)) or got == slope
        w = net.get_submodule("0").weight
        assert (torch.isnan(w).all() if math.isnan(mean) else torch.isinf(w).all())


@pytest.mark.parametrize("name", ['a"b', "x\ny", "a.b", "é", "ﬁ", "class", "a b", "0a"])
def test_names_that_are_not_plain_identifiers_are_refused(name: str) -> None:
    """Spec, block and layer names become class and attribute names: the schema lets only
    ASCII identifiers through (NFKC would fold `ﬁ` into `fi`), so they never need quoting."""
    for text in (
        f"name: {json_str(name)}\ninput: [2]\nlayers: [relu]\n",
        f"name: n\ninput: [2]\nlayers:\n  - {{op: relu, name: {json_str(name)}}}\n",
        f"name: n\ninput: [2]\nblocks:\n  {json_str(name)}:\n    layers: [relu]\nlayers: [relu]\n",
    ):
        with pytest.raises(SpecError):
            netspec.load("n.yaml", text=text)


def json_str(s: str) -> str:
    import json

    return json.dumps(s)


ISSUE_PATH = 'x"""\nimport os;os.system("touch "+chr(47)+"tmp"+chr(47)+"pwn")\n"""y.yaml'


def _marker_variants(marker: Path) -> list[str]:
    """The issue's path, writing its marker into `marker` instead of /tmp/pwn, and relatives."""
    chunks = '"+chr(47)+"'.join(str(marker).split("/"))
    run = f'import os;os.system("touch {chunks}")'
    return [
        ISSUE_PATH.replace('"touch "+chr(47)+"tmp"+chr(47)+"pwn"', f'"touch {chunks}"'),
        f"x'''\n{run}\n'''y.yaml",
        f'x"""\r{run}\r"""y.yaml',
        f'x"""\u2028{run}\u2028"""y.yaml',
        f'x\\"""\n{run}\n"""y.yaml',
        "bad\\N{LATIN SMALL LETTER E WITH ACUTE}\\N{nope}.yaml",
        "ends with a backslash\\",
        'ends with a quote".yaml',
    ]


def test_the_issues_path_runs_nothing_in_a_fresh_process(tmp_path: Path) -> None:
    """`netspec compile "$f" -o m.py && python -c 'import m'` for the issue's file name and its
    relatives (CR, U+2028, escaped quotes, a `\\N{...}` that made a SyntaxError, a trailing
    backslash, and non-UTF-8 bytes): every m.py imports in a fresh interpreter, builds, runs,
    and no marker file appears."""
    marker = tmp_path / "marker" / "pwn"
    marker.parent.mkdir()
    names = _marker_variants(marker)
    folders = []
    mlp = (ROOT / "specs" / "mlp.yaml").read_text(encoding="utf-8")
    for i, name in enumerate(names):
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        (folder / name).write_text(mlp, encoding="utf-8")
        folders.append((folder, name))
    raw = os.fsencode(tmp_path / "case_bytes") + b"/\xff\xfe x.yaml"
    os.makedirs(os.path.dirname(raw))
    with open(raw, "wb") as f:
        f.write(mlp.encode())
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cli = [sys.executable, "-m", "netspec", "compile"]
    # the issue's exact command line, through the CLI
    first = subprocess.run([*cli, name_of(folders[0]), "-o", "m.py"], cwd=folders[0][0], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    for folder, name in folders[1:]:
        write(netspec.build_graph(folder / name), folder / "m.py")
    write(netspec.build_graph(Path(os.fsdecode(raw))), tmp_path / "case_bytes" / "m.py")
    script = textwrap.dedent(
        """\
        import importlib.util, sys, torch
        for path in sys.argv[1:]:
            spec = importlib.util.spec_from_file_location("m", path)
            m = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(m)
            assert "netspec" not in sys.modules
            net = m.Mlp()
            print(tuple(net(torch.zeros(2, 1, 28, 28)).shape))
        """
    )
    files = [str(folder / "m.py") for folder, _ in folders] + [str(tmp_path / "case_bytes" / "m.py")]
    done = subprocess.run([sys.executable, "-c", script, *files], env={k: v for k, v in env.items() if k != "PYTHONPATH"},
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[: len(files)] == ["(2, 10)"] * len(files)
    assert not marker.exists() and not list(marker.parent.iterdir())
    for f in files:
        _top_level_only_defines(ast.parse(Path(f).read_text(encoding="utf-8")))


def name_of(case: tuple[Path, str]) -> str:
    return case[1]


# --------------------------------------------------------------------------- writing files

def test_model_py_replaces_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    graph = netspec.build_graph(ROOT / "specs" / "mlp.yaml")
    target = tmp_path / "model.py"
    target.write_text("old", encoding="utf-8")
    write(graph, target)
    assert target.read_text(encoding="utf-8").startswith('"""mlp') and [p.name for p in tmp_path.iterdir()] == ["model.py"]
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # the user's umask, not mkstemp's private mode


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from netspec import files

    graph = netspec.build_graph(ROOT / "specs" / "mlp.yaml")
    target = tmp_path / "model.py"
    target.write_text("old", encoding="utf-8")

    def no_space(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", no_space)  # every write goes through netspec.files
    with pytest.raises(NetspecError, match="cannot write"):
        write(graph, target)
    assert target.read_text(encoding="utf-8") == "old" and [p.name for p in tmp_path.iterdir()] == ["model.py"]
    with pytest.raises(NetspecError, match="cannot write"):
        write(graph, tmp_path / "missing" / "model.py")


def test_a_failed_onnx_export_keeps_the_old_file(tmp_path: Path) -> None:
    pytest.importorskip("onnx", reason="ONNX export needs the optional 'onnx' package")
    spec = "name: x\ninput: [3, 5, 5]\nlayers:\n  - {op: adaptive_avgpool, size: 2}\n  - flatten\n"
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    with pytest.raises(NetspecError, match="ONNX export failed"):
        write(netspec.build_graph(netspec.load("x.yaml", text=spec)), target)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_onnx_files_carry_no_spec_text(tmp_path: Path) -> None:
    """ONNX metadata is data, not code, but it must not smuggle the spec's free text either:
    names in the file are the module paths (validated identifiers) and fixed strings."""
    onnx = pytest.importorskip("onnx", reason="ONNX export needs the optional 'onnx' package")
    hostile = '"""\nimport os\n\\N{x} <b>'
    folder = tmp_path / hostile.replace("/", "_")
    folder.mkdir()
    path = folder / f"{hostile}.yaml"
    path.write_text(hostile_spec(hostile, hostile, hostile, hostile, hostile), encoding="utf-8")
    out = write(netspec.build_graph(path), folder / "model.onnx")
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    texts = [model.doc_string, model.producer_name, model.graph.name, model.graph.doc_string]
    texts += [p.key + p.value for p in model.metadata_props]
    texts += [n.name + n.doc_string for n in model.graph.node] + [i.name for i in model.graph.initializer]
    assert not any(part in t for t in texts for part in ('"""', "import os", "\\N", "<b>"))


# --------------------------------------------------------------------------- DOT

def _svg_texts(dot_source: str) -> list[str]:
    done = subprocess.run(["dot", "-Tsvg"], input=dot_source, capture_output=True, text=True)
    assert done.returncode == 0 and "Warning" not in done.stderr and "Error" not in done.stderr, done.stderr
    root = ET.fromstring(done.stdout)
    return ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
@settings(max_examples=25, deadline=None)
@given(HOSTILE)
def test_dot_plain_labels_show_exactly_their_text(label: str) -> None:
    import graphviz

    from netspec.compiler.draw.dot import text, visible

    graph = graphviz.Digraph()
    graph.node("n", label=text(label), tooltip=text(label))
    shown = "\n".join(_svg_texts(graph.source))
    assert all(ch == "\n" or ch.isprintable() for ch in visible(label))
    lines = [line.strip() for line in visible(label).split("\n") if line.strip()]
    for line in lines:
        assert " ".join(line.split()) in " ".join(shown.split())


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
@settings(max_examples=40, deadline=None)
@given(HOSTILE)
def test_a_hostile_title_is_escaped_in_the_diagram(title: str) -> None:
    from netspec.compiler.draw import digraph
    from netspec.compiler.draw.dot import visible

    graph = netspec.build_graph(netspec.load("x.yaml", text=hostile_spec("d", "b", "p", "t", "t")))
    shown = " ".join(" ".join(_svg_texts(digraph(graph, title=title, depth=0).source)).split())
    words = visible(title).split()
    assert all(w in shown for w in words)


SEGMENT = HOSTILE.filter(lambda s: "." not in s and s.strip() != "")


@settings(max_examples=25, deadline=None)
@given(st.lists(SEGMENT, min_size=4, max_size=4, unique=True))
def test_hostile_module_names_on_a_hand_built_graph_stay_text(names: list[str]) -> None:
    """The schema lets only identifiers through, but the writer does not rely on it: a graph
    built by hand (the Python API) with arbitrary module names still gives a module whose
    names are string literals (`add_module(...)`, `getattr(...)`), with the same state_dict keys."""
    from dataclasses import replace

    from netspec.compiler.graph import Graph

    text = "name: h\ninput: [4]\nlayers:\n  - {op: sequential, name: g, layers: [{op: linear, out: 3}, relu]}\n  - {op: linear, out: 2}\n"
    old = netspec.build_graph(netspec.load("h.yaml", text=text))
    a, b, c, d = names
    rename = {"input": "input", "g.0": f"{a}.{b}", "g.1": f"{a}.{c}", "1": d}
    graph = Graph(old.name, old.input_shape, source=old.source)
    graph.scopes = {a: replace(old.scopes["g"], path=a)}
    for node in old.nodes():
        graph.add(replace(node, name=rename[node.name], inputs=[rename[i] for i in node.inputs], scopes=tuple(a for _ in node.scopes)))
    graph.output = d
    source = to_source(graph)
    tree = ast.parse(source)
    _top_level_only_defines(tree)
    namespace: dict = {"__name__": "ejected"}
    exec(compile(tree, "model.py", "exec"), namespace)
    net = namespace["H"]()
    assert list(net.state_dict()) == [f"{a}.{b}.weight", f"{a}.{b}.bias", f"{d}.weight", f"{d}.bias"]
    assert tuple(net(torch.zeros(2, 4)).shape) == (2, 2)
