"""Diagrams (`netspec draw`): the drawn structure is read back from the DOT source and the SVG
and compared with the shaped graph IR and with the spec's own layer structure.

Each drawn op box lists the graph nodes it stands for in its tooltip, each collapsed block
box the block instances it stands for; from those, the expected edges and their shape labels
follow from the graph's own edges and inferred shapes, and the expected number of boxes at
a `--depth` follows from the spec's YAML (counted here without the drawing code).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import netspec
from netspec.cli import main
from netspec.compiler import registry
from netspec.compiler.graph import Graph
from netspec.compiler.shapes import fmt
from netspec.compiler.draw import GraphvizNotFound, style
from netspec.errors import NetspecError

ROOT = Path(__file__).resolve().parents[1]
ZOO = sorted((ROOT / "specs").rglob("*.yaml"))
HAS_DOT = shutil.which("dot") is not None
OUTPUT_ID = "netspec/output"

# A spec of our own that uses every way of grouping: a user block with a `when:` shortcut,
# a named repeat, an unnamed repeat, a named parallel, a named sequential holding the
# built-in blocks, an unnamed repeated sequential, activations of several kinds.
MIXED = """
name: mixed
input: [3, 32, 32]
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
  - {op: conv2d, out: 16, kernel: 3, padding: 1}
  - leaky_relu
  - {op: basic, out: 16, repeat: 3, name: stage1}
  - {op: basic, out: 32, stride: 2}
  - {op: basic, out: 32, repeat: 2}
  - op: parallel
    name: fork
    merge: concat
    branches:
      a: [{op: conv2d, out: 8, kernel: 1}, tanh]
      b: [{op: maxpool, kernel: 3, stride: 1, padding: 1}]
  - op: sequential
    name: head
    layers:
      - {op: inception, c1: 8, c2: [8, 16], c3: [4, 8], c4: 8}
      - {op: vgg_block, convs: 2, out: 16}
      - {op: nin_block, out: 16, kernel: 3, padding: 1}
  - {op: sequential, repeat: 2, layers: [{op: conv2d, out: 16, kernel: 3, padding: 1}, gelu]}
  - global_avgpool
  - flatten
  - {op: dropout, p: 0.1}
  - {op: linear, out: 10}
  - softmax
"""


@pytest.fixture(scope="module")
def mixed_spec(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("specs") / "mixed.yaml"
    path.write_text(MIXED, encoding="utf-8")
    return path


def spec_params():
    """Every zoo spec, plus our own (the zoo may still be empty)."""
    return [pytest.param(p, id=str(p.relative_to(ROOT / "specs"))) for p in ZOO] + [pytest.param(None, id="mixed")]


def resolve_spec(spec: Path | None, mixed_spec: Path) -> Path:
    return mixed_spec if spec is None else spec


# ---------------------------------------------------------------------- reading drawings back
@dataclass
class Drawing:
    """Nodes (id -> class, tooltip, label, fill), edges ((tail, head) -> label), cluster names."""

    nodes: dict[str, dict[str, str]] = field(default_factory=dict)
    edges: dict[tuple[str, str], str | None] = field(default_factory=dict)
    clusters: list[str] = field(default_factory=list)
    cluster_tooltips: dict[str, str] = field(default_factory=dict)
    source: str = ""

    def of_class(self, kind: str) -> list[str]:
        return [i for i, a in self.nodes.items() if a.get("class", "").split()[:1] == [kind]]


_ID = r'"(?:[^"\\]|\\.)*"|[^\s\[\]"{};=]+'
_NODE = re.compile(rf"^\s*({_ID})\s*\[(.*)\]\s*$")
_EDGE = re.compile(rf"^\s*({_ID})\s*->\s*({_ID})\s*(?:\[(.*)\])?\s*$")
_CLUSTER = re.compile(rf"^\s*subgraph\s+({_ID})\s*\{{")


def _unquote(text: str) -> str:
    return text[1:-1].replace('\\"', '"') if text.startswith('"') else text


def _attr(attrs: str, key: str) -> str | None:
    match = re.search(rf'(?:^|\s){key}=("(?:[^"\\]|\\.)*"|[^\s"<][^\s\]]*)', attrs)
    return _unquote(match.group(1)) if match else None


def parse_dot(source: str) -> Drawing:
    drawing = Drawing(source=source)
    pending: str | None = None  # a cluster whose attribute line comes next
    for line in source.splitlines():
        if m := _CLUSTER.match(line):
            pending = _unquote(m.group(1))
            drawing.clusters.append(pending)
            continue
        if pending is not None:
            drawing.cluster_tooltips[pending] = _attr(line, "tooltip") or ""
            pending = None
        if (m := _EDGE.match(line)) and _attr(m.group(3) or "", "class") == "share":  # `share:`, not data flow
            continue
        if m := _EDGE.match(line):
            drawing.edges[(_unquote(m.group(1)), _unquote(m.group(2)))] = _attr(m.group(3) or "", "label")
        elif (m := _NODE.match(line)) and m.group(1) not in {"graph", "node", "edge"}:
            attrs = m.group(2)
            drawing.nodes[_unquote(m.group(1))] = {
                k: v for k in ("class", "tooltip", "label", "fillcolor") if (v := _attr(attrs, k)) is not None
            }
    return drawing


SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"


def parse_svg(path: Path) -> Drawing:
    drawing = Drawing()
    for g in ET.parse(path).getroot().iter(f"{SVG}g"):
        classes = (g.get("class") or "").split()
        title = g.findtext(f"{SVG}title")
        texts = [t.text or "" for t in g.iter(f"{SVG}text")]
        if classes[:1] == ["cluster"]:
            drawing.clusters.append(title)
        elif classes[:1] == ["node"]:
            link = g.find(f".//{SVG}a")
            info = {"class": " ".join(classes[1:]), "label": " ".join(texts)}
            if link is not None and link.get(f"{XLINK}title"):
                info["tooltip"] = link.get(f"{XLINK}title")
            drawing.nodes[title] = info
        elif classes[:1] == ["edge"] and "share" not in classes:  # `share:` lines are not data flow (tests/test_share.py)
            tail, head = title.split("->")
            drawing.edges[(tail, head)] = texts[0] if texts else None
    return drawing


# ---------------------------------------------------------------------- checks against the graph
def part_units(drawing: Drawing) -> dict[str, str]:
    """Step box -> the op it belongs to (an op drawn as a cluster of steps: `OpDef.parts`),
    from the tooltips ("node: step")."""
    return {box: drawing.nodes[box]["tooltip"].split(": ")[0] for box in drawing.of_class("part")}


def represented(drawing: Drawing, graph: Graph) -> dict[str, str]:
    """Graph node -> drawn box (or, for an op drawn as steps, the op itself), from the
    tooltips; each node must be drawn exactly once."""
    rep: dict[str, str] = {"input": "input"}
    for name in set(part_units(drawing).values()):
        rep[name] = name
    for box in drawing.of_class("op"):
        names = drawing.nodes[box]["tooltip"].split(" (")[0].split(" + ")
        for name in names:
            assert name not in rep, f"{name} drawn twice"
            rep[name] = box
    for box in drawing.of_class("block"):
        paths = set(drawing.nodes[box]["tooltip"].split(", "))
        for node in graph.ops():
            if paths & set(node.scopes):
                assert node.name not in rep, f"{node.name} drawn twice"
                rep[node.name] = box
    return rep


def check_against_graph(drawing: Drawing, graph: Graph, shapes: bool = True) -> None:
    """Every op drawn once with its registry label; edges are exactly the graph's, shape-labelled."""
    rep = represented(drawing, graph)
    assert set(rep) == {n.name for n in graph.nodes()}
    for box in drawing.of_class("op"):
        names = drawing.nodes[box]["tooltip"].split(" (")[0].split(" + ")
        nodes = [graph.node(n) for n in names]
        assert drawing.nodes[box]["label"].split(" + ") == [registry.get(n.op).label(n.attrs) for n in nodes]
        assert all(registry.get(n.op).family == "activation" for n in nodes[1:])
    expected: dict[tuple[str, str], set[str]] = defaultdict(set)
    for node in graph.nodes():
        for src in node.inputs:
            if rep[src] != rep[node.name]:
                expected[(rep[src], rep[node.name])].add(fmt(graph.node(src).shape))
    expected[(rep[graph.output], OUTPUT_ID)].add(fmt(graph.output_shape))
    units = part_units(drawing)  # an op's steps stand for the op; edges between them are its own
    drawn: dict[tuple[str, str], set[str | None]] = defaultdict(set)
    for (tail, head), label in drawing.edges.items():
        pair = (units.get(tail, tail), units.get(head, head))
        if pair[0] != pair[1]:
            drawn[pair].add(label)
    assert set(drawn) == set(expected)
    for pair, labels in drawn.items():
        if shapes:
            assert labels == expected[pair], pair
        else:
            assert labels <= {None, ""}, pair


def drawn_scopes(graph: Graph) -> set[str]:
    """Clusters we expect: every block instance, every group the spec named, every op drawn as its steps."""
    return {p for p, s in graph.scopes.items() if s.is_block or not p.rsplit(".", 1)[-1].isdigit()} | {
        n.name for n in graph.ops() if registry.get(n.op).parts is not None}


# ---------------------------------------------------------------------- every spec, DOT and SVG
@pytest.mark.parametrize("spec", spec_params())
def test_dot_structure_matches_graph(spec, mixed_spec, tmp_path):
    spec = resolve_spec(spec, mixed_spec)
    graph = netspec.build_graph(spec)
    out = netspec.draw(graph, tmp_path / "net.dot", fold_repeats=False)
    drawing = parse_dot(out.read_text(encoding="utf-8"))
    check_against_graph(drawing, graph)
    assert sorted(drawing.clusters) == sorted(f"cluster_{p}" for p in drawn_scopes(graph))
    assert drawing.nodes["input"]["label"] == f"input\\n{fmt(graph.input_shape)}"
    for box in drawing.of_class("op"):
        family = drawing.nodes[box]["class"].split()[1]
        assert drawing.nodes[box]["fillcolor"] == style.family_colour(family)


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot program is not installed")
@pytest.mark.parametrize("spec", spec_params())
def test_svg_structure_matches_graph(spec, mixed_spec, tmp_path):
    spec = resolve_spec(spec, mixed_spec)
    graph = netspec.build_graph(spec)
    drawing = parse_svg(netspec.draw(graph, tmp_path / "net.svg", fold_repeats=False))
    check_against_graph(drawing, graph)
    assert sorted(drawing.clusters) == sorted(f"cluster_{p}" for p in drawn_scopes(graph))


def published_count(spec: Path) -> str | None:
    """The parameter count a spec's description quotes ("11,689,512 parameters"), if any."""
    description = yaml.safe_load(spec.read_text(encoding="utf-8")).get("description") or ""
    match = re.search(r"(\d[\d,]*) parameters", description)
    return match.group(1) if match else None


def test_some_zoo_specs_quote_their_published_parameter_count():
    """The next test checks the quotes; it must have some to check."""
    assert [p for p in ZOO if published_count(p)], "no zoo spec quotes its published parameter count"


@pytest.mark.parametrize("spec", [p for p in ZOO if published_count(p)])
def test_title_shows_the_published_parameter_count(spec, tmp_path):
    """Specs that quote their published size show exactly that many parameters in the title."""
    source = netspec.draw(spec, tmp_path / "net.dot").read_text(encoding="utf-8")
    assert f"{published_count(spec)} params" in source


def test_graph_families_all_have_a_colour():
    assert {op.family for op in registry.ops().values()} <= set(style.FAMILY_COLOURS)


# ---------------------------------------------------------------------- depth, from the YAML
PRIMITIVES = set(registry.ops())
PRELUDE = yaml.safe_load(resources.files("netspec.compiler").joinpath("prelude.yaml").read_text(encoding="utf-8"))


def yaml_boxes(items: list, depth: int, blocks: dict) -> int:
    """Boxes at `depth` (no folding), counted from the spec's layer lists.

    A block instance or a named group nested `depth` deep is one box; positional groups
    (unnamed sequential/parallel) are not drawn, so their contents count at their level.
    """
    total = 0
    for item in items:
        item = {"op": item} if isinstance(item, str) else item
        op, times, named = item["op"], item.get("repeat", 1), "name" in item
        if op in PRIMITIVES:
            continue
        assert "when" not in item, "this counter does not evaluate when:"
        if op == "sequential":
            body = item["layers"]
        elif op == "parallel":
            branches = item["branches"]
            body = [x for b in (branches.values() if isinstance(branches, dict) else branches) for x in b]
        else:
            body = blocks[op]["layers"]
        if op in ("sequential", "parallel") and not named:
            total += times * yaml_boxes(body, depth, blocks)
        elif named and times > 1:  # a named repeat: one group holding `times` unnamed instances
            instance = {k: v for k, v in item.items() if k not in ("name", "repeat")}
            total += 1 if depth == 0 else yaml_boxes([instance] * times, depth - 1, blocks)
        else:
            total += times * (1 if depth == 0 else yaml_boxes(body, depth - 1, blocks))
    return total


def spec_boxes(spec: Path, depth: int) -> int:
    raw = yaml.safe_load(spec.read_text(encoding="utf-8"))
    return yaml_boxes(raw["layers"], depth, {**PRELUDE, **(raw.get("blocks") or {})})


DEPTH_CASES = [
    ("resnet18.yaml", 0), ("resnet18.yaml", 1),
    ("googlenet.yaml", 0), ("googlenet.yaml", 1), ("googlenet.yaml", 2),
    ("imagenet/resnet18.yaml", 0), ("imagenet/resnet18.yaml", 1),
    ("imagenet/resnet50.yaml", 1),
    ("imagenet/googlenet.yaml", 0), ("imagenet/googlenet.yaml", 1), ("imagenet/googlenet.yaml", 2),
    ("mixed", 0), ("mixed", 1),
]


@pytest.mark.parametrize("name,depth", DEPTH_CASES)
def test_depth_collapses_blocks_into_boxes(name, depth, mixed_spec, tmp_path):
    spec = mixed_spec if name == "mixed" else ROOT / "specs" / name
    assert spec.exists(), f"specs/{name} is named by this test but missing from the zoo"
    graph = netspec.build_graph(spec)
    drawing = parse_dot(netspec.draw(graph, tmp_path / "net.dot", depth=depth, fold_repeats=False).read_text("utf-8"))
    assert len(drawing.of_class("block")) == spec_boxes(spec, depth)
    check_against_graph(drawing, graph)  # boxes stand for whole blocks; edges keep their shapes


def test_depth_zero_googlenet_is_its_five_stages(tmp_path):
    """D2L's GoogLeNet is b1 … b5 then a linear layer: at depth 0, five boxes in a chain."""
    spec = ROOT / "specs" / "googlenet.yaml"
    assert spec.exists(), "specs/googlenet.yaml is named by this test but missing from the zoo"
    drawing = parse_dot(netspec.draw(spec, tmp_path / "g.dot", depth=0).read_text("utf-8"))
    assert sorted(drawing.of_class("block")) == [f"block/b{i}" for i in range(1, 6)]
    assert [drawing.nodes[i]["label"] for i in drawing.of_class("op")] == ["linear 10"]
    assert len(drawing.edges) == 7  # input → b1 → … → b5 → linear → output


# ---------------------------------------------------------------------- repeated blocks, ×n
def box_runs(drawing: Drawing) -> list[int]:
    """Sizes of folded runs drawn as one collapsed box (its tooltip lists the instances)."""
    return [n for b in drawing.of_class("block") if (n := len(drawing.nodes[b]["tooltip"].split(", "))) > 1]


def cluster_runs(drawing: Drawing) -> list[int]:
    """Sizes of folded runs drawn as one expanded cluster."""
    return [n for t in drawing.cluster_tooltips.values() if (n := len(t.split(", "))) > 1]


# Stage sizes of the published networks; a stage's first block changes the shape (and is
# drawn alone) except in ResNet-18's first stage, where 64 channels stay 64 at stride 1.
FOLD_CASES = [
    ("resnet18.yaml", [2]),  # D2L: b2 is two identical residual(64) blocks
    ("imagenet/resnet18.yaml", [2]),  # [2, 2, 2, 2]: only layer1 keeps its shape throughout
    ("imagenet/resnet50.yaml", [3 - 1, 4 - 1, 6 - 1, 3 - 1]),  # [3, 4, 6, 3] bottlenecks
    ("googlenet.yaml", []),  # every Inception block has its own widths
    ("mixed", [3, 2]),
]


@pytest.mark.parametrize("name,expected", FOLD_CASES)
def test_identical_consecutive_blocks_fold(name, expected, mixed_spec, tmp_path):
    spec = mixed_spec if name == "mixed" else ROOT / "specs" / name
    assert spec.exists(), f"specs/{name} is named by this test but missing from the zoo"
    graph = netspec.build_graph(spec)
    for depth in (None, 1):
        folded = parse_dot(netspec.draw(graph, tmp_path / "f.dot", depth=depth).read_text("utf-8"))
        plain = parse_dot(netspec.draw(graph, tmp_path / "p.dot", depth=depth, fold_repeats=False).read_text("utf-8"))
        assert sorted(box_runs(folded) + cluster_runs(folded)) == sorted(expected)
        assert box_runs(plain) == cluster_runs(plain) == []
        assert sorted(int(n) for n in re.findall(r"×(\d+)</b>", folded.source)) == sorted(expected)
        assert len(plain.of_class("block")) - len(folded.of_class("block")) == sum(n - 1 for n in box_runs(folded))
        assert len(plain.clusters) - len(folded.clusters) >= sum(n - 1 for n in cluster_runs(folded))
        # a folded picture still shows true shapes: each edge's label is the shape of a graph node
        shapes = {fmt(n.shape) for n in graph.nodes()}
        assert all(label in shapes for label in folded.edges.values())


# ---------------------------------------------------------------------- options and output formats
@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot program is not installed")
@pytest.mark.parametrize("suffix,magic", [(".svg", b"<?xml"), (".png", b"\x89PNG"), (".pdf", b"%PDF")])
def test_formats_from_suffix(suffix, magic, mixed_spec, tmp_path):
    out = netspec.draw(mixed_spec, tmp_path / f"net{suffix}")
    assert out.read_bytes().startswith(magic)


def test_no_shapes_rankdir_and_title(mixed_spec, tmp_path):
    graph = netspec.build_graph(mixed_spec)
    source = netspec.draw(graph, tmp_path / "n.dot", shapes=False, rankdir="LR", title="My net",
                          fold_repeats=False).read_text("utf-8")
    drawing = parse_dot(source)
    check_against_graph(drawing, graph, shapes=False)
    assert "rankdir=LR" in source and "<b>My net</b>" in source
    assert "×" not in drawing.nodes["input"]["label"]


def test_bad_options_are_user_errors(mixed_spec, tmp_path):
    for options in ({"rankdir": "XY"}, {"depth": -1}):
        with pytest.raises(NetspecError):
            netspec.draw(mixed_spec, tmp_path / "n.dot", **options)
    with pytest.raises(NetspecError, match=r"\.jpg"):
        netspec.draw(mixed_spec, tmp_path / "n.jpg")


def test_python_api_draws_repeatedly(mixed_spec, tmp_path):
    """`netspec.draw` stays callable after the drawing package has been imported."""
    import netspec.compiler.draw as package

    assert netspec.draw(mixed_spec, tmp_path / "a.dot").exists()
    assert package.render(netspec.build_graph(mixed_spec), tmp_path / "b.dot").exists()
    assert (tmp_path / "a.dot").read_text() == (tmp_path / "b.dot").read_text()


def test_without_dot_binary_the_source_is_written(mixed_spec, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(GraphvizNotFound) as info:
        netspec.draw(mixed_spec, tmp_path / "net.svg", fold_repeats=False)
    message = str(info.value)
    assert "apt-get install graphviz" in message and "brew install graphviz" in message and "\n" not in message
    assert "net.dot" in message
    check_against_graph(parse_dot((tmp_path / "net.dot").read_text("utf-8")), netspec.build_graph(mixed_spec))
    assert netspec.draw(mixed_spec, tmp_path / "only.dot").exists()  # .dot needs no binary


def test_draw_imports_no_torch(mixed_spec, tmp_path):
    code = (
        "import sys, netspec; from netspec.cli import main; "
        f"netspec.draw({str(mixed_spec)!r}, {str(tmp_path / 'n.dot')!r}); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ---------------------------------------------------------------------- the command line
def test_cli_draws_with_options(mixed_spec, tmp_path):
    out = tmp_path / "n.dot"
    result = CliRunner().invoke(main, ["draw", str(mixed_spec), "-o", str(out), "--depth", "0", "--rankdir", "lr",
                                       "--no-shapes", "--title", "Mixed", "--no-fold"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    source = out.read_text("utf-8")
    assert "rankdir=LR" in source and "<b>Mixed</b>" in source
    assert len(parse_dot(source).of_class("block")) == spec_boxes(mixed_spec, 0)
    # the same picture as from Python
    assert netspec.draw(mixed_spec, tmp_path / "p.dot", depth=0, rankdir="LR", shapes=False, title="Mixed",
                        fold_repeats=False).read_text("utf-8") == source


def test_cli_default_output_name(mixed_spec, tmp_path):
    """Without -o the picture is SPEC's name with .svg, in the current folder."""
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path):
        result = runner.invoke(main, ["draw", str(mixed_spec)])
        written = Path("mixed.svg" if HAS_DOT else "mixed.dot")
        assert written.exists() and result.exit_code == (0 if HAS_DOT else 2), result.output


def test_cli_user_errors_exit_2_in_one_line(mixed_spec, tmp_path, monkeypatch):
    runner = CliRunner()
    (tmp_path / "a_file").write_text("")
    cases = [
        (["draw", str(mixed_spec), "-o", str(tmp_path / "n.jpg")], ".jpg"),
        (["draw", str(mixed_spec), "-o", str(tmp_path / "a_file" / "n.dot")], "cannot write"),
        (["draw", str(tmp_path / "missing.yaml"), "-o", str(tmp_path / "n.svg")], "missing.yaml"),
    ]
    for args, needle in cases:
        result = runner.invoke(main, args)
        assert result.exit_code == 2 and needle in result.output and "Traceback" not in result.output
    assert runner.invoke(main, ["draw", str(mixed_spec), "--depth", "-1"]).exit_code == 2  # click's usage error
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    result = runner.invoke(main, ["draw", str(mixed_spec), "-o", str(tmp_path / "n.png")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "apt-get install graphviz" in result.output and len(result.output.strip().splitlines()) == 1
    assert (tmp_path / "n.dot").exists()
