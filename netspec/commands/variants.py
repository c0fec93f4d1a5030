"""`--variant NAME` for every command, and the table `netspec compile --variants` prints."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

variant_option: Callable[[Any], Any] = click.option(
    "--variant", metavar="NAME", default=None,
    help="Build this member of the spec's variants: (width/depth multipliers, input size).",
)


def load_variant(spec: Any, variant: str | None) -> Any:
    """The spec path as given, or (with a variant) the spec loaded as that variant."""
    if variant is None or spec is None:
        return spec
    from netspec.api import load

    return load(Path(spec), variant=variant)


def print_variants(spec: Path) -> None:
    """Params and MACs of the spec as written and of each of its variants."""
    from rich.console import Console
    from rich.table import Table

    from netspec.api import build_graph, load
    from netspec.compiler.shapes import fmt

    loaded = load(spec)
    table = Table(title=f"{loaded.spec.name}: variants", title_justify="left", header_style="bold")
    for column, justify in (("variant", "left"), ("width", "right"), ("depth", "right"), ("input", "right"), ("params", "right"), ("MACs", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    members: list[tuple[str | None, str]] = [(None, "(as written)")] + [(name, name) for name in loaded.spec.variants]
    for name, label in members:
        graph = build_graph(spec, variant=name)
        values = load(spec, variant=name).values
        table.add_row(
            label + (" *" if name is not None and name == loaded.spec.variant else ""),
            f"{values['width_mult']:g}", f"{values['depth_mult']:g}", fmt(graph.input_shape),
            f"{graph.total_params:,}", f"{graph.total_macs:,}",
        )
    console = Console(width=max(100, Console().width))
    console.print(table)
    if loaded.spec.variant is not None:
        console.print(f"* built by default (the spec's variant: {loaded.spec.variant})")
