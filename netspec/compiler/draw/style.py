"""How diagrams look: colours per op family, fonts, and the small text formats they use.

Kept apart from the layout decisions so that restyling never changes what is drawn.
"""
from __future__ import annotations

from html import escape

from netspec.compiler.graph import Scope
from netspec.compiler.shapes import Shape, fmt

FONT = "Helvetica"

# Pastel fills (ColorBrewer Paired/Set3), one per `OpDef.family`; unknown families get OTHER.
FAMILY_COLOURS: dict[str, str] = {
    "conv": "#a6cee3",
    "pool": "#fdbf6f",
    "linear": "#b2df8a",
    "norm": "#cab2d6",
    "activation": "#fb9a99",
    "merge": "#ffffb3",
    "reshape": "#e5e5e5",
    "regularization": "#fccde5",
    "sequence": "#8dd3c7",
    "attention": "#bebada",
}
OTHER_COLOUR = "#ffffff"
BLOCK_FILL = "#dfe6ee"  # a collapsed block
CLUSTER_FILLS = ("#f5f7fa", "#eaeef3", "#dfe5ec")  # by nesting level, repeating
CLUSTER_BORDER = "#8a97a6"
EDGE_COLOUR = "#555555"
MUTED = "#555555"

GRAPH_ATTRS = {
    "fontname": FONT,
    "labelloc": "t",
    "labeljust": "c",
    "nodesep": "0.25",
    "ranksep": "0.32",
    "newrank": "true",
    "bgcolor": "white",
    "pad": "0.2",
}
NODE_ATTRS = {
    "fontname": FONT,
    "fontsize": "11",
    "shape": "box",
    "style": "rounded,filled",
    "color": "#4d4d4d",
    "penwidth": "0.8",
    "height": "0.32",
    "margin": "0.12,0.04",
}
EDGE_ATTRS = {
    "fontname": FONT,
    "fontsize": "9",
    "fontcolor": MUTED,
    "color": EDGE_COLOUR,
    "arrowsize": "0.6",
    "penwidth": "0.8",
}


def family_colour(family: str) -> str:
    return FAMILY_COLOURS.get(family, OTHER_COLOUR)


def count(n: int) -> str:
    """Parameter counts as people write them in papers: 864, 61.7k, 11.18M."""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1e3:.1f}k"
    if n < 1_000_000_000:
        return f"{n / 1e6:.2f}M"
    return f"{n / 1e9:.2f}G"


def shapes_text(shapes: list[Shape]) -> str:
    return ", ".join(fmt(s) for s in shapes)


def scope_title(scopes: list[Scope]) -> tuple[str, str]:
    """(main, secondary) words naming a block or group, or a run of them.

    A block is named by its kind ("residual") with its module path aside; a named group
    by its name ("b3"), with "sequential" aside. A run adds `×n` and the path range.
    """
    first, last = scopes[0], scopes[-1]
    if first.is_block:
        main, aside = first.kind, first.path
    else:
        main, aside = first.path.rsplit(".", 1)[-1], first.kind
        if first.kind == "repeat" and "times" in first.params:
            aside = f"repeat ×{first.params['times']}"
    if len(scopes) > 1:
        main += f" ×{len(scopes)}"
        aside = f"{first.path} – {last.path}"
    return main, aside


def html_title(scopes: list[Scope], lines: list[str], *, left: bool = False) -> str:
    """An HTML-like graphviz label: bold title, grey aside, then small lines.

    `left` aligns every line left (cluster titles); otherwise lines are centred (boxes).
    """
    main, aside = scope_title(scopes)
    rows = [f"<b>{escape(main)}</b>  <font color=\"{MUTED}\">{escape(aside)}</font>"]
    rows += [f"<font point-size=\"9\" color=\"{MUTED}\">{escape(line)}</font>" for line in lines]
    if left:
        return "<" + "".join(row + '<br align="left"/>' for row in rows) + ">"
    return "<" + "<br/>".join(rows) + ">"
