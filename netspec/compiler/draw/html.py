"""The interactive viewer (`netspec draw SPEC -o model.html`): one self-contained HTML page.

The page holds the shaped graph IR as JSON plus a small script (viewer.js) and style sheet
(viewer.css), all inline: it opens from disk with no network. The script lays the graph out
(blocks as nested boxes, ranked by longest path inside each block), draws only what is
expanded *and* on screen, so a 10,000-layer network costs no more DOM than a small one.

Safety: spec text (names, kinds, arguments) reaches the page only as JSON inside
`<script type="application/json">`, with `<`, `>`, `&` and U+2028/U+2029 escaped, and the
script shows it with `textContent`, never as markup.
"""
from __future__ import annotations

import json
from html import escape
from importlib import resources
from typing import Any

from netspec.compiler.draw import style
from netspec.compiler.draw.plan import Planner, _family, _label
from netspec.compiler.graph import Graph
from netspec.compiler.registry import Part
from netspec.compiler.shapes import fmt

# Expanded on opening: blocks level by level while at most this many boxes show.
OPEN_BOXES = 40

_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def script_json(data: Any) -> str:
    """JSON that is safe inside a `<script>` element: it can never close the element or
    start a comment, and JavaScript reads it exactly as JSON.parse would."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return "".join(_JSON_ESCAPES.get(ch, ch) for ch in text)


def _plain(value: Any) -> Any:
    """Op arguments as JSON values (tuples as lists, anything else as its text)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _part(part: Part) -> dict[str, Any]:
    """One step of an op drawn as a cluster: `inputs` are the op's input indices (numbers)
    or earlier steps' ids (strings), `shape` the step's output as the edges show it."""
    return {"id": part.id, "label": part.label, "family": part.family, "inputs": list(part.inputs), "shape": fmt(part.shape)}


def viewer_data(graph: Graph) -> dict[str, Any]:
    """The graph as the page's script reads it: scopes (the drawn blocks and named groups, a
    tree), nodes (primitive ops in topological order, each with its chain of scopes; an op
    with `OpDef.parts` lists its steps, drawn as a cluster as in the DOT pictures) and shares
    (`share:` as [sharing node, owner node] pairs: dashed lines, not data flow)."""
    planner = Planner(graph, depth=None, fold_repeats=False, merge_activations=False)
    order = [p for p in graph.scopes if p in planner.drawn and p in planner.parent]
    index = {p: i for i, p in enumerate(order)}
    nodes = planner.nodes
    position = {n.name: i for i, n in enumerate(nodes)}
    scopes = []
    for path in order:
        members = planner.members[path]
        ins = [graph.node(s).shape or () for s in planner.external_inputs(path)]
        outs = [graph.node(s).shape or () for s in planner.exits(path)]
        scope = graph.scopes[path]
        title, aside = style.scope_title([scope])
        parent = planner.parent[path]
        scopes.append({
            "path": path,
            "kind": scope.kind,
            "title": title,
            "aside": aside,
            "parent": -1 if parent is None else index[parent],
            "args": _plain(scope.params),
            "params": sum(n.params for n in members),
            "macs": sum(n.macs for n in members),
            "size": len(members),
            "in": style.shapes_text(ins),
            "out": style.shapes_text(outs),
        })
    out_nodes = []
    for node in nodes:
        entry: dict[str, Any] = {
            "name": node.name,
            "op": node.op,
            "label": "input" if node.op == "input" else _label(node),
            "family": "input" if node.op == "input" else _family(node),
            "attrs": _plain(node.attrs),
            "shape": fmt(node.shape or ()),
            "params": node.params,
            "macs": node.macs,
            "chain": [index[p] for p in planner.chain[node.name]],
            "inputs": [position[s] for s in node.inputs],
        }
        if node.name in planner.parts:
            entry["parts"] = [_part(p) for p in planner.parts[node.name]]
        out_nodes.append(entry)
    shares = sorted({(position[n.name], position[owner]) for n in nodes for owner in n.meta.get("shares", {}).values()})
    colours = dict(style.FAMILY_COLOURS, input="#ffffff", other=style.OTHER_COLOUR, block=style.BLOCK_FILL)
    return {
        "name": graph.name,
        "input": fmt(graph.input_shape),
        "output": position[graph.output],
        "output_shape": fmt(graph.output_shape),
        "params": graph.total_params,
        "macs": graph.total_macs,
        "scopes": scopes,
        "nodes": out_nodes,
        "shares": [list(pair) for pair in shares],
        "colours": colours,
        "open_boxes": OPEN_BOXES,
    }


def _asset(name: str) -> str:
    return resources.files("netspec.compiler.draw").joinpath(name).read_text(encoding="utf-8")


def page(graph: Graph, title: str | None = None, depth: int | None = None) -> str:
    """The whole HTML page for `graph`; `depth` N opens blocks nested less than N deep on
    opening (None: as many levels as keep about `OPEN_BOXES` boxes on the page)."""
    data = viewer_data(graph)
    data["title"] = title or graph.name
    data["open_depth"] = depth
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        f"<title>{escape(data['title'])} · netspec</title>\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<style>\n{_asset('viewer.css')}</style>\n</head><body>\n"
        "<header><h1 id=\"title\"></h1><span id=\"facts\"></span>"
        "<span class=\"tools\"><input id=\"search\" type=\"search\" placeholder=\"find a layer…\" autocomplete=\"off\">"
        "<button id=\"expand-all\" type=\"button\">expand all</button>"
        "<button id=\"collapse-all\" type=\"button\">collapse all</button></span>"
        "<ul id=\"matches\" hidden></ul></header>\n"
        "<main id=\"view\"><div id=\"canvas\"><svg id=\"edges\"></svg></div></main>\n"
        "<div id=\"tip\" hidden></div>\n"
        f"<script type=\"application/json\" id=\"netspec-data\">{script_json(data)}</script>\n"
        f"<script>\n{_asset('viewer.js')}</script>\n</body></html>\n"
    )
