"""The interactive viewer (`netspec draw SPEC -o model.html`), in a real headless browser.

What the page shows is compared with the graph IR: the ops inside a block (from each node's
scopes), their shapes, parameter and MAC counts. The page must open from disk with no
network request, show spec text as text, and stay within a bounded number of DOM nodes at
10,000 layers (counted, never timed).
"""
from __future__ import annotations

import json
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser import browser, missing  # noqa: E402,F401  (tests/ is not a package; `browser` is a fixture)

from netspec.api import build_graph  # noqa: E402
from netspec.cli import main  # noqa: E402
from netspec.compiler.draw import render  # noqa: E402
from netspec.compiler.draw.html import script_json, viewer_data  # noqa: E402
from netspec.compiler.shapes import fmt  # noqa: E402

NET = """
name: tiny_resnet
input: [3, 16, 16]
blocks:
  basic:
    params: {out: int, stride: {type: int, default: 1}}
    layers:
      - {op: conv2d, name: conv1, out: $out, kernel: 3, padding: 1, stride: $stride, bias: false}
      - {op: batchnorm, name: bn1}
      - {op: relu, name: r1}
      - {op: conv2d, name: conv2, out: $out, kernel: 3, padding: 1, bias: false}
      - {op: batchnorm, name: bn2}
      - {op: conv2d, name: down, from: input, out: $out, kernel: 1, stride: $stride, when: "in_channels != out or stride != 1"}
      - {op: add, name: add, from: [bn2, down]}
      - relu
layers:
  - {op: conv2d, name: stem, out: 8, kernel: 3, padding: 1}
  - {op: sequential, name: stage1, layers: [{op: basic, out: 8, repeat: 3}]}
  - {op: sequential, name: stage2, layers: [{op: basic, out: 16, stride: 2}, {op: basic, out: 16, repeat: 2}]}
  - global_avgpool
  - flatten
  - {op: linear, name: head, out: 10}
"""

# 10,000 layers: 50 named groups of 50 residual blocks of 4 ops (+ the head).
BIG = """
name: big
input: [16]
blocks:
  res:
    params: {w: int}
    layers:
      - {op: linear, name: a, out: $w}
      - {op: relu, name: r}
      - {op: linear, name: b, out: $w}
      - {op: add, name: add, from: [b, input]}
layers:
  - {op: sequential, repeat: 50, name: body, layers: [{op: res, w: 16, repeat: 50}]}
  - {op: linear, name: head, out: 10}
"""
HOSTILE = '<img src=x onerror="window.pwned=1"></script><!-- & \u2028\u2029'
DOM_BOUND = 2500  # elements in the whole document, at any size of network


@pytest.fixture(scope="module")
def specs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("viewer")
    out = {}
    for name, text in (("net", NET), ("big", BIG)):
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
        out[name] = folder / f"{name}.yaml"
    return out


@pytest.fixture(scope="module")
def pages(specs, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pages")
    out = {}
    for name, spec in specs.items():
        result = CliRunner().invoke(main, ["draw", str(spec), "-o", str(folder / f"{name}.html"), "--title", HOSTILE])
        assert result.exit_code == 0, result.output
        out[name] = folder / f"{name}.html"
    return out


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.tags: list[str] = []
        self._open: dict[str, str | None] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "script":
            self._open = dict(attrs)
            self.scripts.append((self._open, ""))

    def handle_data(self, data):
        if self._open is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)

    def handle_endtag(self, tag):
        if tag == "script":
            self._open = None


def members(graph, path: str) -> list[str]:
    """The ops inside a block instance, from the IR's scopes (not from the viewer's data)."""
    return [n.name for n in graph.nodes() if path in n.scopes]


# ---------------------------------------------------------------------- the page itself
def test_page_embeds_spec_text_as_data_only(specs, pages):
    html = pages["net"].read_text(encoding="utf-8")
    parser = _Scripts()
    parser.feed(html)
    data_scripts = [text for attrs, text in parser.scripts if attrs.get("type") == "application/json"]
    assert len(data_scripts) == 1 and len(parser.scripts) == 2
    assert "img" not in parser.tags  # the hostile title made no element
    for bad in ("</script", "<!--", "\u2028", "\u2029", "<img"):
        assert bad not in data_scripts[0]
    data = json.loads(data_scripts[0])
    assert data["title"] == HOSTILE  # read back exactly
    graph = build_graph(specs["net"])
    assert [n["name"] for n in data["nodes"]] == [n.name for n in graph.nodes()]


def test_page_needs_no_network(specs, tmp_path):
    html = render(build_graph(specs["net"]), tmp_path / "m.html").read_text(encoding="utf-8").lower()
    for fetch in ("<link", " src=", " href=", "url(", "@import", "fetch(", "xmlhttprequest", "http://", "https://"):
        assert fetch not in html, fetch


def test_script_json_round_trips_what_json_escapes():
    value = {"a": "</script><!--&>\u2028\u2029", "n": [1, 2.5, None, True]}
    text = script_json(value)
    assert json.loads(text) == value
    assert not set("<>&\u2028\u2029") & set(text)


def test_block_counts_are_the_graphs(specs):
    graph = build_graph(specs["net"])
    data = viewer_data(graph)
    for scope in data["scopes"]:
        names = set(members(graph, scope["path"]))
        assert scope["size"] == len(names)
        assert scope["params"] == sum(graph.node(n).params for n in names)
        assert scope["macs"] == sum(graph.node(n).macs for n in names)
    assert {s["path"] for s in data["scopes"]} >= {"stage1", "stage1.0", "stage2.0", "stage2.1"}


def test_html_takes_the_picture_options_it_can_use(specs, tmp_path):
    page = render(build_graph(specs["net"]), tmp_path / "m.html", depth=1, rankdir="LR", fold_repeats=False)
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


# ---------------------------------------------------------------------- in a browser
def _open(browser, page: Path) -> None:
    browser.get(page.as_uri())
    assert browser.execute_script("return document.body.dataset.ready") == "1"


def _names(browser, selector: str) -> list[str]:
    return browser.execute_script(f"return [...document.querySelectorAll({selector!r})].map(e => e.dataset.name)")


def _dom(browser) -> int:
    return browser.execute_script("return document.getElementsByTagName('*').length")


def test_opens_from_disk_without_requests_or_injection(browser, pages):
    _open(browser, pages["net"])
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert browser.execute_script("return window.pwned === undefined")
    assert browser.execute_script("return document.getElementById('title').textContent") == HOSTILE
    assert browser.execute_script("return document.querySelectorAll('#title *').length") == 0


def test_click_expands_and_collapses_a_block(browser, pages, specs):
    graph = build_graph(specs["net"])
    _open(browser, pages["net"])
    browser.find_element("id", "collapse-all").click()
    assert set(_names(browser, ".box.block")) == {"stage1", "stage2"}
    before = len(_names(browser, ".box"))
    browser.find_element("css selector", '.box.block[data-name="stage2"]').click()
    assert _names(browser, ".box.frame") == ["stage2"]
    assert set(_names(browser, ".box.block")) == {"stage1", "stage2.0", "stage2.1", "stage2.2"}
    browser.find_element("css selector", '.box.block[data-name="stage2.0"]').click()
    shown = set(_names(browser, ".box.op"))
    assert set(members(graph, "stage2.0")) <= shown  # every op of the block, down included
    assert "stage2.0.down" in shown
    assert len(_names(browser, ".box")) > before
    browser.find_element("css selector", '.box.frame[data-name="stage2.0"] .head').click()
    assert not set(members(graph, "stage2.0")) & set(_names(browser, ".box.op"))
    assert "stage2.0" in _names(browser, ".box.block")


def test_hover_shows_op_parameters_shape_and_counts(browser, pages, specs):
    from selenium.webdriver.common.action_chains import ActionChains

    graph = build_graph(specs["net"])
    _open(browser, pages["net"])
    browser.find_element("id", "collapse-all").click()
    node = graph.node("stem")
    ActionChains(browser).move_to_element(browser.find_element("css selector", '.box.op[data-name="stem"]')).perform()
    tip = browser.find_element("id", "tip")
    assert tip.is_displayed()
    text = tip.text
    for expected in ("stem", "op: conv2d", "kernel: 3", f"output shape: {fmt(node.shape)}",
                     f"params: {node.params:,}", f"MACs: {node.macs:,}"):
        assert expected in text, (expected, text)
    block = browser.find_element("css selector", '.box.block[data-name="stage1"]')
    ActionChains(browser).move_to_element(block).perform()
    params = sum(graph.node(n).params for n in members(graph, "stage1"))
    assert f"params: {params:,}" in tip.text and "block: sequential" in tip.text


def test_depth_sets_how_deep_blocks_start_open(browser, specs, tmp_path):
    out = tmp_path / "d1.html"
    assert CliRunner().invoke(main, ["draw", str(specs["net"]), "-o", str(out), "--depth", "1"]).exit_code == 0
    _open(browser, out)
    assert set(_names(browser, ".box.frame")) == {"stage1", "stage2"}  # nested 0 deep: open
    assert set(_names(browser, ".box.block")) == {"stage1.0", "stage1.1", "stage1.2", "stage2.0", "stage2.1", "stage2.2"}


def test_search_finds_a_layer_inside_collapsed_blocks(browser, pages):
    from selenium.webdriver.common.keys import Keys

    _open(browser, pages["net"])
    browser.find_element("id", "collapse-all").click()
    assert "stage2.1.conv2" not in _names(browser, ".box")
    search = browser.find_element("id", "search")
    search.send_keys("stage2.1.conv")
    listed = browser.execute_script("return [...document.querySelectorAll('#matches li')].map(e => e.textContent)")
    assert any(item.startswith("stage2.1.conv1") for item in listed) and any(item.startswith("stage2.1.conv2") for item in listed)
    search.send_keys("2", Keys.ENTER)
    assert _names(browser, ".box.found") == ["stage2.1.conv2"]
    assert {"stage2", "stage2.1"} <= set(_names(browser, ".box.frame"))
    found = browser.find_element("css selector", ".box.found")
    assert found.is_displayed() and browser.execute_script(
        "const r = arguments[0].getBoundingClientRect(), v = document.getElementById('view').getBoundingClientRect();"
        "return r.top >= v.top && r.bottom <= v.bottom", found)


def test_ten_thousand_layers_stay_within_a_bounded_dom(browser, pages, specs):
    from selenium.webdriver.common.keys import Keys

    graph = build_graph(specs["big"])
    assert len(graph) - 1 == 10_001
    _open(browser, pages["big"])
    assert _dom(browser) < DOM_BOUND
    browser.find_element("css selector", '.box.block[data-name="body"]').click()
    blocks = _names(browser, ".box.block")
    assert "body.0.0" in blocks and 0 < len(blocks) < 2500  # only those near the screen are drawn
    assert _dom(browser) < DOM_BOUND
    browser.find_element("css selector", '.box.block[data-name="body.0.0"]').click()
    assert set(members(graph, "body.0.0")) <= set(_names(browser, ".box.op"))
    browser.find_element("id", "expand-all").click()
    assert _dom(browser) < DOM_BOUND
    search = browser.find_element("id", "search")
    search.send_keys("body.49.49.add", Keys.ENTER)
    assert _names(browser, ".box.found") == ["body.49.49.add"]
    assert _dom(browser) < DOM_BOUND
    browser.execute_script("const v = document.getElementById('view'); v.scrollTop = v.scrollHeight / 2;")
    browser.execute_script("return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    assert 0 < len(_names(browser, ".box.op")) and _dom(browser) < DOM_BOUND
