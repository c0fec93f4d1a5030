"""A `Plan` becomes a `graphviz.Digraph`: nodes, nested clusters, shape-labelled edges, legend.

Node ids are the graph's node names (module paths), collapsed blocks are `block/<path>`,
clusters `cluster_<path>`, so the DOT source and the SVG can be read back by tools (and
tests) without guessing.
"""
from __future__ import annotations

from html import escape

import graphviz

from netspec.compiler.shapes import fmt
from netspec.compiler.draw import style
from netspec.compiler.draw.plan import BlockBox, Cluster, Item, OpBox, PartBox, Plan, Terminal

LEGEND_ID = "netspec/legend"
COLLAPSED = "block"  # legend entry for collapsed blocks


def visible(value: str) -> str:
    """`value` with characters no SVG or XML can hold (controls, separators) shown as U+FFFD;
    line breaks are kept, tabs become spaces."""
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    return "".join(ch if ch == "\n" or ch.isprintable() else "\ufffd" for ch in value)


def html_text(value: str) -> str:
    """Text for an HTML-like label that shows exactly `value`: XML-escaped, plus the characters
    Graphviz still reads there (a lone backslash starts `\\G`-style escapes, `]` trips its lexer)."""
    escaped = escape(visible(value)).replace("\\", "\\\\").replace("[", "&#91;").replace("]", "&#93;")
    return escaped.replace("\n", "<br/>")


def text(value: str) -> str:
    """A plain DOT label or tooltip that shows exactly `value`: backslashes and quotes escaped
    (graphviz's quoting leaves `\\N`, `\\l` and a trailing backslash to DOT), `&` too (DOT
    reads entities like `&amp;` in plain labels), line breaks as
    DOT's `\\n`, and never read as an HTML label even when it looks like `<...>`."""
    escaped = visible(value).replace("&", "&amp;").replace("\\", "\\\\").replace('"', '\\"')
    return graphviz.nohtml(escaped.replace("\n", "\\n"))


def _op_node(box: OpBox) -> dict[str, str]:
    params = sum(n.params for n in box.nodes)
    tip = " + ".join(n.name for n in box.nodes) + (f" ({params:,} params)" if params else "")
    return {
        "label": text(" + ".join(box.labels)),
        "fillcolor": style.family_colour(box.family),
        "tooltip": text(tip),
        "class": f"op {box.family}",
    }


def _part_node(box: PartBox) -> dict[str, str]:
    """A step of an op drawn as a cluster; the tooltip names the op's node, as op boxes do."""
    return {
        "label": text(box.part.label),
        "fillcolor": style.family_colour(box.family),
        "tooltip": text(f"{box.node.name}: {box.part.label}"),
        "class": f"part {box.family}",
    }


def _block_node(box: BlockBox, shapes: bool) -> dict[str, str]:
    lines = [f"{style.count(box.params)} params"]
    if shapes:
        lines.append(f"{style.shapes_text(box.in_shapes)} → {style.shapes_text(box.out_shapes)}")
    return {
        "label": style.html_title(box.scopes, lines),
        "fillcolor": style.BLOCK_FILL,
        "penwidth": "1.4",
        "tooltip": text(", ".join(s.path for s in box.scopes)),
        "class": COLLAPSED,
    }


def _terminal_node(box: Terminal, shapes: bool) -> dict[str, str]:
    label = text(box.role) + (f"\\n{fmt(box.shape)}" if shapes else "")  # DOT's own line break
    return {"label": label, "shape": "oval", "fillcolor": "white", "class": box.role, "margin": "0.06,0.02"}


def node_attrs(item: Item, shapes: bool) -> dict[str, str]:
    if isinstance(item, OpBox):
        return _op_node(item)
    if isinstance(item, BlockBox):
        return _block_node(item, shapes)
    if isinstance(item, PartBox):
        return _part_node(item)
    return _terminal_node(item, shapes)


def _legend(plan: Plan) -> str | None:
    """A small table of the colours used, in the registry's family order."""
    families: list[str] = []
    collapsed = False
    for item in plan.items.values():
        if isinstance(item, (OpBox, PartBox)) and item.family not in families:
            families.append(item.family)
        collapsed |= isinstance(item, BlockBox)
    order = list(style.FAMILY_COLOURS)
    families.sort(key=lambda f: order.index(f) if f in order else len(order))
    cells = [(f, style.family_colour(f)) for f in families]
    if collapsed:
        cells.append((COLLAPSED, style.BLOCK_FILL))
    if len(cells) < 2:
        return None
    rows = "".join(
        f'<tr><td bgcolor="{colour}" width="14" height="10" border="1"></td>'
        f'<td align="left"><font point-size="9">{escape(name)}</font></td></tr>'
        for name, colour in cells
    )
    return f'<<table border="0" cellborder="0" cellspacing="2" cellpadding="1">{rows}</table>>'


def _emit(target: graphviz.Digraph, cluster: Cluster, plan: Plan, shapes: bool, level: int) -> None:
    for item_id in cluster.items:
        target.node(item_id, **node_attrs(plan.items[item_id], shapes))
    for child in cluster.children:
        with target.subgraph(name=child.id) as sub:
            sub.attr(
                label=style.html_title(child.scopes, [f"{style.count(child.params)} params"], left=True),
                style="rounded,filled",
                fillcolor=style.CLUSTER_FILLS[level % len(style.CLUSTER_FILLS)],
                color=style.CLUSTER_BORDER,
                fontname=style.FONT,
                fontsize="11",
                labeljust="l",
                margin="8",
                tooltip=text(", ".join(s.path for s in child.scopes)),
            )
            _emit(sub, child, plan, shapes, level + 1)


def to_digraph(plan: Plan, *, rankdir: str = "TB", shapes: bool = True, title: str | None = None) -> graphviz.Digraph:
    """The graphviz graph of a plan; `.source` is the DOT text."""
    graph = plan.graph
    dot = graphviz.Digraph(name=graph.name, graph_attr=dict(style.GRAPH_ATTRS, rankdir=rankdir),
                           node_attr=style.NODE_ATTRS, edge_attr=style.EDGE_ATTRS)
    facts = f"{graph.total_params:,} params · {style.count(graph.total_macs)} MACs"
    dot.attr(label=f'<<b>{html_text(title or graph.name)}</b><br/><font point-size="10" color="{style.MUTED}">{escape(facts)}</font>>',
             fontsize="16")
    _emit(dot, plan.root, plan, shapes, 0)
    for edge in plan.edges:
        dot.edge(edge.tail, edge.head, **({"label": fmt(edge.shape)} if shapes else {}))
    for sharer, owner in plan.shares:  # `share:`: beside the data flow, not part of the layout
        dot.edge(sharer, owner, label="shares", style="dashed", arrowhead="none", constraint="false", **{"class": "share"})
    legend = _legend(plan)
    if legend is not None:
        dot.node(LEGEND_ID, label=legend, shape="plain", style="", margin="0", **{"class": "legend"})
    return dot
