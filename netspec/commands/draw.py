"""`netspec draw`: a diagram of a spec's network (SVG, PNG, PDF or DOT), from the graph IR alone."""
from __future__ import annotations

from pathlib import Path

import click

from netspec.commands.variants import variant_option


@click.command("draw")
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Picture to write: .svg, .png, .pdf, .dot (DOT source, needs no Graphviz), or .html "
                   "(an interactive page: blocks expand on click, hover for details, search; any size). "
                   "Default: SPEC's name with .svg, in the current folder.")
@click.option("--depth", type=click.IntRange(min=0), metavar="N",
              help="Draw blocks nested N deep as one box each (with their in → out shapes): 0 = every "
                   "top-level block or named group is one box, 1 = their inner blocks are, ... "
                   "Default: every op is drawn.")
@click.option("--rankdir", type=click.Choice(["TB", "LR"], case_sensitive=False), default="TB", show_default=True, metavar="TB|LR",
              help="Flow top to bottom or left to right.")
@click.option("--no-shapes", is_flag=True, help="Leave tensor shapes off the edges and boxes.")
@click.option("--title", help="Title above the picture (default: the spec's name).")
@click.option("--no-fold", is_flag=True,
              help="Draw every instance of repeated identical blocks instead of one box marked ×n.")
@click.option("--max-boxes", type=click.IntRange(min=1), metavar="N",
              help="Refuse .svg/.png/.pdf pictures of more boxes than this (Graphviz takes minutes past it). "
                   "Default: 1000.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop Graphviz after this long. Default: 120.")
@variant_option
def draw(spec: Path, output: Path | None, depth: int | None, rankdir: str, no_shapes: bool,
         title: str | None, no_fold: bool, max_boxes: int | None, timeout: float | None, variant: str | None) -> None:
    """Draw SPEC's network: every op with its parameters, every edge with its tensor shape.

    Blocks and named groups are boxed clusters titled with their kind and parameter count;
    activations join the op before them ("conv 5×5, 6 + sigmoid"); consecutive identical
    blocks (same kind, arguments and shapes, shape in = shape out) are drawn once, marked ×n.
    Rendering .svg/.png/.pdf needs Graphviz's `dot` program; without it the .dot source is
    written and the command exits with code 2. Pictures of more than --max-boxes boxes are
    refused (use --depth or .html), and Graphviz is stopped after --timeout seconds.
    """
    from netspec.api import build_graph
    from netspec.compiler.draw import DOT_TIMEOUT_S, MAX_BOXES, render

    graph = build_graph(spec, variant=variant)
    stem = spec.stem if variant is None else f"{spec.stem}_{variant}"
    target = output if output is not None else Path(stem).with_suffix(".svg")
    written = render(graph, target, depth=depth, rankdir=rankdir.upper(), shapes=not no_shapes, title=title,
                     fold_repeats=not no_fold,
                     max_boxes=MAX_BOXES if max_boxes is None else max_boxes,
                     timeout=DOT_TIMEOUT_S if timeout is None else timeout)
    click.echo(f"wrote {written}")


COMMANDS = [draw]
