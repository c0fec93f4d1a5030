"""Attention and transformer blocks in diagrams (issue 10 §8), read back from the DOT source:
each transformer block is a cluster, each attention op inside it a cluster of its steps
(projections, the heads' softmax(QKᵀ/√d)·V, the output projection), and every edge carries
the `T×D` shape that inference gives (the projections' widths are nn.MultiheadAttention's)."""
from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

import netspec
from netspec.compiler.graph import Graph
from netspec.compiler.shapes import fmt

ROOT = Path(__file__).resolve().parents[1]
from test_draw import _CLUSTER, _EDGE, _ID, _unquote  # the DOT grammar the drawing tests share

_NODE = re.compile(rf"^\s*({_ID})\s*\[")


def read_dot(source: str) -> tuple[dict[str, list[str]], dict[tuple[str, str], str]]:
    """(node -> the clusters around it, outermost first; (tail, head) -> edge label)."""
    stack: list[str] = []
    where: dict[str, list[str]] = {}
    edges: dict[tuple[str, str], str] = {}
    for line in source.splitlines():
        if m := _CLUSTER.match(line):
            stack.append(_unquote(m.group(1)))
        elif line.strip() == "}":
            if stack:
                stack.pop()
        elif m := _EDGE.match(line):
            label = re.search(r'label="?([^"\]]*)"?', m.group(3) or "")
            edges[(_unquote(m.group(1)), _unquote(m.group(2)))] = label.group(1) if label else ""
        elif (m := _NODE.match(line)) and m.group(1) not in {"graph", "node", "edge"}:
            where[_unquote(m.group(1))] = list(stack)
    return where, edges


def dot_of(graph: Graph, tmp_path: Path, **options) -> str:
    return netspec.draw(graph, tmp_path / "net.dot", **options).read_text(encoding="utf-8")


def graph_of(layers: list, input_) -> Graph:
    text = yaml.safe_dump({"name": "s", "input": input_, "layers": layers}, sort_keys=False)
    return netspec.build_graph(netspec.load("s.yaml", text=text))


def test_the_encoder_decoder_is_drawn_as_nested_clusters_with_sequence_shapes(tmp_path) -> None:
    graph = netspec.build_graph(ROOT / "specs" / "transformer_decoder.yaml")
    where, edges = read_dot(dot_of(graph, tmp_path))
    t, d = graph.node("decoder.attention1").shape
    # every attention step sits in its op's cluster, inside its transformer block's cluster
    for block, attention in (("encoder", "encoder.attention"), ("decoder", "decoder.attention1"), ("decoder", "decoder.attention2")):
        steps = [n for n in where if n.startswith(attention + "/")]
        assert steps and all(where[n] == [f"cluster_{block}", f"cluster_{attention}"] for n in steps), attention
    assert where["decoder.ln3"] == ["cluster_decoder"] and where["columns"] == []
    # self-attention: one packed projection [T, 3·D]; cross-attention: q from the queries, k and v from the memory
    assert edges[("tgt_dropout", "decoder.attention1/qkv")] == fmt(graph.node("tgt_dropout").shape) == f"{t}×{d}"
    assert edges[("decoder.attention1/qkv", "decoder.attention1/heads")] == f"{t}×{3 * d}"
    assert edges[("decoder.ln1", "decoder.attention2/q")] == f"{t}×{d}"
    memory = graph.node("encoder.ln2").shape
    assert edges[("encoder.ln2", "decoder.attention2/kv")] == fmt(memory)
    assert edges[("decoder.attention2/kv", "decoder.attention2/heads")] == f"{memory[0]}×{2 * d}"
    assert edges[("decoder.attention2/out", "decoder.dropout2")] == fmt(graph.node("decoder.attention2").shape)
    # every edge between graph nodes carries its tail's inferred shape
    names = {n.name for n in graph.nodes()}
    for (tail, head), label in edges.items():
        if tail in names:
            assert label == fmt(graph.node(tail).shape), (tail, head)


def test_the_drawn_projection_widths_are_torchs() -> None:
    """The packed q, k, v weight of nn.MultiheadAttention has 3·D rows, as the drawing says."""
    graph = netspec.build_graph(ROOT / "specs" / "transformer_decoder.yaml")
    model = netspec.compile(graph, seed=0)
    _, d = graph.node("decoder.attention1").shape
    assert tuple(model.get_submodule("decoder.attention1").in_proj_weight.shape) == (3 * d, d)
    assert tuple(model.get_submodule("decoder.attention2").in_proj_weight.shape) == (3 * d, d)


def test_a_padding_mask_goes_to_the_heads(tmp_path) -> None:
    graph = graph_of([{"op": "embedding", "name": "emb", "dim": 8},
                      {"op": "multihead_attention", "name": "attn", "from": ["emb", "input"], "heads": 2, "causal": True}],
                     {"tokens": 5, "vocab": 4})
    source = dot_of(graph, tmp_path)
    where, edges = read_dot(source)
    assert edges[("input", "attn/heads")] == "5 token ids (vocab 4)"
    assert edges[("emb", "attn/qkv")] == "5×8" and edges[("attn/qkv", "attn/heads")] == "5×24"
    assert where["attn/out"] == ["cluster_attn"]
    assert "softmax(QKᵀ/√4)·V ×2 causal · key padding" in source


def test_folded_and_collapsed_transformer_blocks(tmp_path) -> None:
    """ViT's two identical blocks are drawn once (×2) with their attention's steps; at depth 0
    the decoder is one box showing both its inputs' shapes."""
    vit = netspec.build_graph(ROOT / "specs" / "vit.yaml")
    source = dot_of(vit, tmp_path)
    where, edges = read_dot(source)
    assert "vit_block ×2" in source
    assert where["blks.0.attention/heads"] == ["cluster_blks", "cluster_blks.0", "cluster_blks.0.attention"]
    assert not any(n.startswith("blks.1.") for n in where)
    assert edges[("blks.0.ln1", "blks.0.attention/qkv")] == "37×512"

    graph = netspec.build_graph(ROOT / "specs" / "transformer_decoder.yaml")
    where, edges = read_dot(dot_of(graph, tmp_path, depth=0))
    assert "block/decoder" in where and not any(n.startswith("decoder.") for n in where)
    assert edges[("tgt_dropout", "block/decoder")] == "28×64" and edges[("block/encoder", "block/decoder")] == "28×64"
    assert "28×64, 28×64 → 28×64" in dot_of(graph, tmp_path, depth=0)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
def test_the_svg_has_the_clusters(tmp_path) -> None:
    graph = netspec.build_graph(ROOT / "specs" / "transformer_decoder.yaml")
    root = ET.parse(netspec.draw(graph, tmp_path / "net.svg")).getroot()
    svg = "{http://www.w3.org/2000/svg}"
    clusters = {g.findtext(f"{svg}title") for g in root.iter(f"{svg}g") if (g.get("class") or "").startswith("cluster")}
    assert {"cluster_encoder", "cluster_decoder", "cluster_decoder.attention1", "cluster_decoder.attention2"} <= clusters
