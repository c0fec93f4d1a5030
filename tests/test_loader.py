"""The YAML loader: positions, safety (tags, duplicate keys, hostile files), file errors.

Expected locations are computed from the test's own text (`where`), never copied from the
loader's output; a hostile file must fail with a `SpecError` within a budget of function calls
(`work.call_budget`: counted, not timed), and a file that could crash the interpreter is
loaded in a subprocess so that the crash is a test failure.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import netspec
from netspec.compiler.yaml_loader import YDict, YList, load_yaml_file, load_yaml_text
from netspec.errors import Location, NetspecError, SpecError
from work import call_budget

F = "x.yaml"


def where(text: str, needle: str, nth: int = 1) -> tuple[int, int]:
    """1-based (line, col) of the nth occurrence of `needle` in `text`."""
    index = -1
    for _ in range(nth):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, col


def at(text: str, needle: str, nth: int = 1) -> Location:
    return Location(F, *where(text, needle, nth))


def spec_error(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_yaml_text(text, F)
    return info.value


# --------------------------------------------------------------------------- positions

BLOCK_STYLE = textwrap.dedent(
    """\
    name: demo          # a comment
    input: [1, 28, 28]
    layers:
      - op: conv2d
        out: 6
      - relu
      - {op: linear, out: 10}
    """
)


def test_mapping_knows_where_its_keys_and_values_are() -> None:
    data = load_yaml_text(BLOCK_STYLE, F)
    assert isinstance(data, YDict)
    assert data.loc == Location(F, 1, 1)
    assert data.key_locs["input"] == at(BLOCK_STYLE, "input")
    assert data.value_locs["input"] == at(BLOCK_STYLE, "[1, 28, 28]")
    assert data.value_locs["name"] == at(BLOCK_STYLE, "demo")


def test_sequence_knows_where_its_items_are() -> None:
    data = load_yaml_text(BLOCK_STYLE, F)
    layers = data["layers"]
    assert isinstance(layers, YList)
    assert layers.item_locs == [at(BLOCK_STYLE, "op: conv2d"), at(BLOCK_STYLE, "relu"), at(BLOCK_STYLE, "{op: linear")]
    conv = layers[0]
    assert conv.loc == at(BLOCK_STYLE, "op: conv2d")
    assert conv.key_locs["out"] == at(BLOCK_STYLE, "out: 6")
    assert conv.value_locs["out"] == at(BLOCK_STYLE, "6\n")
    flow = layers[2]
    assert flow.value_locs["out"] == at(BLOCK_STYLE, "10}")


def test_values_are_plain_python_values() -> None:
    data = load_yaml_text(BLOCK_STYLE, F)
    assert data == {
        "name": "demo",
        "input": [1, 28, 28],
        "layers": [{"op": "conv2d", "out": 6}, "relu", {"op": "linear", "out": 10}],
    }


def test_crlf_line_endings_keep_positions() -> None:
    text = BLOCK_STYLE.replace("\n", "\r\n")
    data = load_yaml_text(text, F)
    assert data["layers"][2].value_locs["out"] == at(BLOCK_STYLE, "10}")
    assert data == load_yaml_text(BLOCK_STYLE, F)


def test_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + b"name: t\ninput: [2]\nlayers: [relu]\n")
    assert netspec.build_graph(path).output_shape == (2,)


def test_anchors_and_merge_keys_still_work() -> None:
    text = "base: &conv {op: conv2d, kernel: 3}\nlayers:\n  - {<<: *conv, out: 8}\n  - *conv\n"
    data = load_yaml_text(text, F)
    assert data["layers"][0] == {"op": "conv2d", "kernel": 3, "out": 8}
    assert data["layers"][1] == {"op": "conv2d", "kernel": 3}


# --------------------------------------------------------------------------- safety

def test_duplicate_keys_are_refused_at_the_second() -> None:
    text = "name: a\ninput: [2]\nname: b\n"
    err = spec_error(text)
    [d] = err.diagnostics
    assert d.location == at(text, "name", 2)
    assert "duplicate key 'name'" in d.message and "line 1" in d.message


def test_nested_duplicate_keys_are_refused() -> None:
    text = "layers:\n  - {op: conv2d, out: 3, out: 4}\n"
    [d] = spec_error(text).diagnostics
    assert d.location == at(text, "out", 2)
    assert "duplicate key 'out'" in d.message


@pytest.mark.parametrize(
    "tagged",
    [
        "!!python/object/apply:os.system ['touch {marker}']",
        "!!python/object/new:os.system ['touch {marker}']",
        "!!python/name:os.system",
        "!!python/module:os",
        "!!python/object/apply:subprocess.check_output [['touch', '{marker}']]",
    ],
)
def test_python_tags_are_refused_and_never_run(tagged: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = "name: t\nevil: " + tagged.format(marker=marker) + "\n"
    [d] = spec_error(text).diagnostics
    assert d.location is not None and d.location.line == 2
    assert "Python tags are not allowed" in d.message
    assert not marker.exists()


def test_non_scalar_keys_are_refused() -> None:
    text = "name: t\n? [1, 2]\n: 3\n"
    [d] = spec_error(text).diagnostics
    assert "keys must be plain scalars" in d.message
    assert d.location is not None and d.location.line == 2


def test_yaml_syntax_error_points_at_the_problem() -> None:
    text = "name: t\ninput: [1, 2\nlayers: [relu]\n"
    [d] = spec_error(text).diagnostics
    assert d.message.startswith("YAML syntax error")
    assert d.location is not None and d.location.line == 3  # where the missing ']' is noticed


def test_tab_indentation_is_a_located_syntax_error() -> None:
    text = "name: t\nlayers:\n\t- relu\n"
    [d] = spec_error(text).diagnostics
    assert d.location == Location(F, 3, 1)


def test_control_characters_are_refused() -> None:
    assert "control characters" in str(spec_error("name: t\x00\n"))


def test_several_documents_are_refused() -> None:
    err = spec_error("name: a\n---\nname: b\n")
    assert err.diagnostics[0].location == Location(F, 2, 1)


def billion_laughs(levels: int = 9, fan: int = 9) -> str:
    lines = ["l0: &l0 [" + ", ".join(["lol"] * fan) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fan) + "]")
    return "\n".join(lines) + "\n"


def _warm() -> None:
    load_yaml_text("a: 1\n", F)


# The loader stops an alias bomb after walking at most 200,000 values (about five calls each);
# expanding the 9**9 = 387 million values of `billion_laughs()` would take about 2e9 calls.
ALIAS_BOMB_CALLS = 4_000_000


def test_alias_bomb_fails_fast() -> None:
    _warm()
    with call_budget(ALIAS_BOMB_CALLS):
        err = spec_error(billion_laughs())
    assert "spec too large" in str(err) and "aliases" in str(err)


def test_alias_bomb_inside_a_spec_fails_fast_through_the_api() -> None:
    text = billion_laughs(7, 10) + "name: t\ninput: [2]\nlayers: [relu]\n"
    _warm()
    with call_budget(ALIAS_BOMB_CALLS), pytest.raises(SpecError, match="spec too large"):
        netspec.load(F, text=text)


def test_moderate_nesting_is_refused_with_a_location() -> None:
    text = "a: " + "[" * 70 + "]" * 70 + "\n"
    _warm()
    with call_budget(2_000):
        [d] = spec_error(text).diagnostics
    assert "nested too deeply" in d.message
    assert d.location is not None and d.location.file == F


@pytest.mark.parametrize(
    "text", ["a: " + "[" * 2000 + "]" * 2000, "a: " + "{a: " * 2000 + "1" + "}" * 2000], ids=["lists", "maps"]
)
def test_deep_nesting_is_refused_fast(text: str) -> None:
    # a scan of the text (a call per bracket) and at most 65 levels of parse events; composing
    # the 2000 levels first (and refusing the tree afterwards) costs ten times more
    _warm()
    with call_budget(10_000):
        assert "nested too deeply" in str(spec_error(text))


_DEEP_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[3])
from work import WorkExceeded, call_budget
from netspec.compiler.yaml_loader import load_yaml_text
from netspec.errors import SpecError
load_yaml_text("a: 1", "x.yaml")
n = int(sys.argv[1])
text = "a: " + "{a: " * n + "1" + "}" * n if sys.argv[2] == "map" else "a: " + "[" * n + "]" * n
try:
    with call_budget(2 * n + 10_000):  # linear in the text, however deep it goes
        load_yaml_text(text, "x.yaml")
except SpecError as exc:
    print("SpecError", str(exc))
except WorkExceeded as exc:
    print("WorkExceeded", str(exc))
"""


@pytest.mark.parametrize(
    "depth,kind",
    [
        pytest.param(20_000, "map", id="20k-maps"),
        pytest.param(100_000, "list", id="100k-lists"),
    ],
)
def test_hostile_deep_nesting_fails_cleanly_within_a_call_budget(depth: int, kind: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _DEEP_SCRIPT, str(depth), kind, str(Path(__file__).parent)],
        capture_output=True, text=True, timeout=300,  # only turns a hang into a failure
    )
    assert proc.returncode == 0, f"interpreter died with code {proc.returncode}: {proc.stderr[-300:]}"
    kind_, message = proc.stdout.split(" ", 1)
    assert kind_ == "SpecError" and "nested too deeply" in message, proc.stdout


def test_wide_but_legal_spec_is_fine() -> None:
    text = "name: t\ninput: [4]\nlayers:\n" + "  - relu\n" * 2000
    assert len(netspec.build_graph(netspec.load(F, text=text))) == 2001


# --------------------------------------------------------------------------- files

def test_file_too_large(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * 1_000_100 + "\nname: t\n", encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_yaml_file(path)
    [d] = info.value.diagnostics
    assert d.location == Location(str(path), 1, 1)
    assert "larger than" in d.message


def test_text_too_large() -> None:
    assert "larger than" in str(spec_error("a: '" + "x" * 1_000_100 + "'\n"))


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as info:
        netspec.load(path)
    assert str(path) in str(info.value) and "no such file" in str(info.value)


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: t\ndescription: Gödel\n".encode("latin-1"))
    with pytest.raises(SpecError) as info:
        netspec.load(path)
    [d] = info.value.diagnostics
    assert d.location is not None and d.location.file == str(path)
    assert "UTF-8" in d.message


def test_directory_given(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        netspec.load(tmp_path)
    assert "is a directory" in str(info.value) and str(tmp_path) in str(info.value)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- relu\n", "42\n", "just text\n"])
def test_a_spec_must_be_a_mapping(text: str) -> None:
    with pytest.raises(SpecError) as info:
        netspec.load(F, text=text)
    assert "must be a mapping" in str(info.value)
    assert all(d.location is not None for d in info.value.diagnostics)


def test_every_loader_error_is_a_netspec_error() -> None:
    assert issubclass(SpecError, NetspecError)
