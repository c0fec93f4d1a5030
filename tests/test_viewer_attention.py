"""The interactive viewer draws what the DOT pictures draw (issue 10 §8): attention ops as a
cluster of their steps that opens and closes like a block, the shape on every edge, and
`share:` as a dashed "shares" line that is not data flow.

The truths are outside the viewer: shape inference (each node's shape and its inputs'),
nn.MultiheadAttention's packed projection widths, and, for sharing, which modules of the
compiled model hold the same weight tensor.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser import browser  # noqa: E402,F401  (tests/ is not a package; `browser` is a fixture)
from test_viewer import _Scripts  # noqa: E402

import netspec  # noqa: E402
from netspec.cli import main  # noqa: E402
from netspec.compiler.shapes import fmt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DECODER = ROOT / "specs" / "transformer_decoder.yaml"
TIED = ROOT / "specs" / "mlp_tied.yaml"


def _page(spec: Path, folder: Path) -> Path:
    out = folder / (spec.stem + ".html")
    result = CliRunner().invoke(main, ["draw", str(spec), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def embedded(page: Path) -> dict:
    """The JSON the page carries, read back from its data script (as the browser reads it)."""
    parser = _Scripts()
    parser.feed(page.read_text(encoding="utf-8"))
    (text,) = [t for attrs, t in parser.scripts if attrs.get("type") == "application/json"]
    assert not set("<>&\u2028\u2029") & set(text)
    return json.loads(text)


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("attention_pages")
    return {spec.stem: _page(spec, folder) for spec in (DECODER, TIED)}


# ---------------------------------------------------------------------- the embedded data
def test_attention_steps_and_their_shapes_are_shape_inferences(pages) -> None:
    graph = netspec.build_graph(DECODER)
    data = embedded(pages["transformer_decoder"])
    nodes = {n["name"]: n for n in data["nodes"]}
    attention = [n.name for n in graph.nodes() if n.op == "multihead_attention"]
    assert attention == ["encoder.attention", "decoder.attention1", "decoder.attention2"]
    assert {name for name, n in nodes.items() if "parts" in n} == set(attention)  # no other op has steps
    for name in attention:
        node = graph.node(name)
        (t, d), h = node.shape, node.attrs["heads"]
        parts = {p["id"]: p for p in nodes[name]["parts"]}
        assert nodes[name]["parts"][-1]["id"] == "out" and parts["out"]["shape"] == fmt(node.shape)
        assert parts["heads"]["shape"] == f"{t}×{d}" and f"√{d // h})·V ×{h}" in parts["heads"]["label"]
        assert parts["out"]["inputs"] == ["heads"]
        if len(node.inputs) == 1:  # self-attention: one packed projection of the queries
            assert list(parts) == ["qkv", "heads", "out"]
            assert parts["qkv"] == {**parts["qkv"], "inputs": [0], "shape": f"{t}×{3 * d}"}
            assert parts["heads"]["inputs"] == ["qkv"]
        else:  # cross-attention: q from the queries, k and v from the memory
            s, _ = graph.node(node.inputs[1]).shape
            assert list(parts) == ["q", "kv", "heads", "out"]
            assert (parts["q"]["inputs"], parts["q"]["shape"]) == ([0], f"{t}×{d}")
            assert (parts["kv"]["inputs"], parts["kv"]["shape"]) == ([1], f"{s}×{2 * d}")
            assert parts["heads"]["inputs"] == ["q", "kv"]
    # the packed widths are torch's: in_proj_weight has 3·D rows
    model = netspec.compile(graph, seed=0)
    _, d = graph.node("decoder.attention1").shape
    assert tuple(model.get_submodule("decoder.attention1").in_proj_weight.shape) == (3 * d, d)
    assert data["shares"] == []


def test_the_tied_layer_is_a_share_pair_not_an_input(pages) -> None:
    graph = netspec.build_graph(TIED)
    model = netspec.compile(graph, seed=0)
    linears = [n.name for n in graph.nodes() if n.op == "linear"]
    tied = sorted((a, b) for a in linears for b in linears if a != b
                  and model.get_submodule(a).weight is model.get_submodule(b).weight)
    assert len(tied) == 2  # the model holds one weight for two layers: (x, y) and (y, x)
    data = embedded(pages["mlp_tied"])
    names = [n["name"] for n in data["nodes"]]
    (pair,) = data["shares"]
    sharer, owner = names[pair[0]], names[pair[1]]
    assert owner == "shared" and (sharer, owner) in tied
    assert pair[1] not in data["nodes"][pair[0]]["inputs"]  # not data flow
    assert [names[i] for i in data["nodes"][pair[0]]["inputs"]] == graph.node(sharer).inputs


# ---------------------------------------------------------------------- in a browser
def _open(browser, page: Path) -> None:
    browser.get(page.as_uri())
    assert browser.execute_script("return document.body.dataset.ready") == "1"


def _names(browser, selector: str) -> list[str]:
    return browser.execute_script(f"return [...document.querySelectorAll({selector!r})].map(e => e.dataset.name)")


def _labels(browser, cls: str = "") -> dict[tuple[str, str], str]:
    """(tail, head) -> the label on that edge, for the edges drawn now."""
    where = "#edges text" + (f".{cls}" if cls else ":not(.share)")
    rows = browser.execute_script(f"return [...document.querySelectorAll({where!r})].map(e => [e.dataset.tail, e.dataset.head, e.textContent])")
    return {(a, b): text for a, b, text in rows}


def _paths(browser, cls: str = "") -> set[tuple[str, str]]:
    where = "#edges path" + (f".{cls}" if cls else ":not(.share)")
    return {tuple(r) for r in browser.execute_script(
        f"return [...document.querySelectorAll({where!r})].map(e => [e.dataset.tail, e.dataset.head])")}


def _scrolled_through(browser, selector: str) -> set[str]:
    """The names drawn anywhere on the page: only boxes near the screen are in the DOM."""
    seen: set[str] = set()
    height = browser.execute_script("return document.getElementById('view').scrollHeight")
    for top in range(0, height + 400, 400):
        browser.execute_script(f"document.getElementById('view').scrollTop = {top}")
        browser.execute_script("return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        seen |= set(_names(browser, selector))
    return seen


def test_an_attention_op_expands_into_its_steps_with_shapes_on_the_edges(browser, pages) -> None:
    graph = netspec.build_graph(DECODER)
    _open(browser, pages["transformer_decoder"])
    browser.find_element("id", "collapse-all").click()
    browser.find_element("css selector", '.box.block[data-name="decoder"]').click()
    assert "decoder.attention2" in _names(browser, ".box.op.steps")  # one box, ▸, until clicked
    assert not _names(browser, ".box.step")
    labels = _labels(browser)
    assert labels[("decoder.ln1", "decoder.attention2")] == fmt(graph.node("decoder.ln1").shape)
    assert labels[("encoder", "decoder.attention2")] == fmt(graph.node("encoder.ln2").shape)  # the memory

    browser.find_element("css selector", '.box.op.steps[data-name="decoder.attention2"]').click()
    assert "decoder.attention2" in _names(browser, ".box.frame")
    steps = ["decoder.attention2/" + s for s in ("q", "kv", "heads", "out")]
    assert sorted(_names(browser, ".box.step")) == sorted(steps)
    t, d = graph.node("decoder.attention2").shape
    s, _ = graph.node("encoder.ln2").shape
    labels = _labels(browser)
    assert labels[("decoder.ln1", "decoder.attention2/q")] == f"{t}×{d}"
    assert labels[("encoder", "decoder.attention2/kv")] == f"{s}×{d}"  # the block's exit, still collapsed
    assert labels[("decoder.attention2/q", "decoder.attention2/heads")] == f"{t}×{d}"
    assert labels[("decoder.attention2/kv", "decoder.attention2/heads")] == f"{s}×{2 * d}"
    assert labels[("decoder.attention2/heads", "decoder.attention2/out")] == f"{t}×{d}"
    (after,) = graph.users()["decoder.attention2"]
    assert labels[("decoder.attention2/out", after)] == fmt(graph.node("decoder.attention2").shape)
    assert ("decoder.ln1", "decoder.attention2/kv") not in labels  # each input goes to the steps that read it
    assert set(labels) == _paths(browser)  # one label per drawn edge

    # hovering a step names it; the frame's title closes the cluster again
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).move_to_element(browser.find_element("css selector", '.box.step[data-name="decoder.attention2/kv"]')).perform()
    assert "step of multihead_attention: k, v projections" in browser.find_element("id", "tip").text
    browser.find_element("css selector", '.box.frame[data-name="decoder.attention2"] .head').click()
    assert not _names(browser, ".box.step") and "decoder.attention2" in _names(browser, ".box.op.steps")
    browser.find_element("id", "expand-all").click()
    every = {f"{n.name}/{p}" for n in graph.nodes() if n.op == "multihead_attention"
             for p in (["q", "kv"] if len(n.inputs) == 2 else ["qkv"]) + ["heads", "out"]}
    assert every <= _scrolled_through(browser, ".box.step")


def test_depth_shows_every_visible_attention_as_steps(browser, tmp_path) -> None:
    out = tmp_path / "d1.html"
    assert CliRunner().invoke(main, ["draw", str(DECODER), "-o", str(out), "--depth", "1"]).exit_code == 0
    _open(browser, out)
    assert {"encoder", "decoder", "encoder.attention", "decoder.attention1", "decoder.attention2"} == _scrolled_through(browser, ".box.frame")


def test_the_share_line_is_dashed_labelled_and_no_data_flow(browser, pages) -> None:
    graph = netspec.build_graph(TIED)
    _open(browser, pages["mlp_tied"])
    flow = _paths(browser)
    assert flow == {(a, b) for b in [n.name for n in graph.nodes()] for a in graph.node(b).inputs} | {(graph.output, "output")}
    (sharer,) = [n.name for n in graph.nodes() if n.meta.get("shares")]  # the layer written `share: shared`
    assert _paths(browser, "share") == {(sharer, "shared")}
    assert _labels(browser, "share") == {(sharer, "shared"): "shares"}
    dash = browser.execute_script("return getComputedStyle(document.querySelector('#edges path.share')).strokeDasharray")
    assert dash not in ("", "none")
    assert _labels(browser)[("shared", "4")] == fmt(graph.node("shared").shape)


def test_a_shared_block_is_one_line_while_collapsed_and_one_per_layer_when_open(browser, tmp_path) -> None:
    from test_share import SIAMESE  # the bottom branch's block `e` is written `share: top.e`

    spec = tmp_path / "siamese.yaml"
    spec.write_text(SIAMESE, encoding="utf-8")
    graph = netspec.build_graph(spec)
    _open(browser, _page(spec, tmp_path))
    browser.find_element("id", "collapse-all").click()
    assert not _paths(browser, "share")  # both inside the one collapsed group `pair`
    browser.find_element("css selector", '.box.block[data-name="pair"]').click()
    assert _paths(browser, "share") == {("pair.bottom.e", "pair.top.e")}
    browser.find_element("id", "expand-all").click()
    weights = {(n.name, owner) for n in graph.nodes() for owner in n.meta.get("shares", {}).values()}
    assert _paths(browser, "share") == weights == {("pair.bottom.e.fc", "pair.top.e.fc"), ("pair.bottom.e.proj", "pair.top.e.proj")}
