"""`netspec diff A B`: what a change did to a network, for a terminal, a PR comment or CI.

No torch: both sides are compiled only as far as the counted graph.
"""
from __future__ import annotations

import json
import sys

import click

from netspec.compiler.counting import POLICIES, UNITS


@click.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True,
              help="markdown: a pull-request comment; json: the whole comparison as data.")
@click.option("--count", "unit", type=click.Choice(UNITS), default="macs", show_default=True,
              help="Count multiply-accumulates or FLOPs (2 per MAC).")
@click.option("--policy", type=click.Choice(POLICIES), default="core", show_default=True,
              help="core: conv/linear work only; all: also bias, norm, pooling, activations (docs/counting.md).")
@click.option("--fail-on", "fail_on", metavar="BUDGETS", default=None,
              help="Exit 1 when a change crosses a budget, e.g. params:+5%,macs:+10% (+ growth, - shrinkage, none: either way).")
def diff_command(a: str, b: str, fmt: str, unit: str, policy: str, fail_on: str | None) -> None:
    """Compare two specs: A and B are files or REV:path read from git (HEAD~1:specs/lenet.yaml).

    Layers are matched by name, then by position; every changed layer is shown with its
    output shape, params and MACs before -> after, with block subtotals and totals.
    Exit code 0, 1 when a --fail-on budget is crossed, 2 for a bad spec.
    """
    from netspec.compiler.diff import crossed_budgets, diff, markdown, parse_budgets

    budgets = parse_budgets(fail_on) if fail_on else []
    result = diff(a, b, unit=unit, policy=policy)  # type: ignore[arg-type]
    problems = crossed_budgets(result, budgets)
    if fmt == "json":
        click.echo(json.dumps({**result.as_dict(), "budgets_crossed": problems}, indent=2))
    elif fmt == "markdown":
        click.echo(markdown(result, problems), nl=False)
    else:
        _print_text(result)
        for problem in problems:
            click.echo(f"budget crossed: {problem}", err=True)
    sys.exit(1 if problems else 0)


def _print_text(d) -> None:  # type: ignore[no-untyped-def]
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from netspec.compiler.diff import _unit_label, block_rows, rows, total_rows

    console = Console(width=max(100, Console().width), highlight=False)
    totals = Table(title=escape(f"{d.a} → {d.b}"), title_justify="left", header_style="bold")
    for column, justify in (("", "left"), ("before", "right"), ("after", "right"), ("change", "right")):
        totals.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in total_rows(d):
        totals.add_row(*map(escape, row))
    console.print(totals)
    if d.blocks:
        blocks = Table(title="blocks", title_justify="left", header_style="bold")
        for column in ("block", "params", "change", _unit_label(d), "change"):
            blocks.add_column(column, justify="left" if column == "block" else "right")
        for row in block_rows(d):
            blocks.add_row(*map(escape, row))
        console.print(blocks)
    if d.changes:
        layers = Table(title="changed layers", title_justify="left", header_style="bold")
        for column in ("layer", "status", "op", "output shape", "params", _unit_label(d)):
            layers.add_column(column, justify="right" if column in ("output shape", "params") or column == _unit_label(d) else "left")
        for row in rows(d):
            layers.add_row(*map(escape, row))
        console.print(layers)
    console.print(f"{len(d.changes)} layer(s) changed, {d.unchanged} unchanged")


COMMANDS = [diff_command]
