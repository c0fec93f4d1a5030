"""The `netspec` command line: check, compile, schema, and (from their modules) train, eval,
draw, attack.

Errors a user can cause are `NetspecError`s: printed as one line each, exit code 2, never
a traceback. Heavy imports (torch) happen inside the commands that need them.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from netspec.commands.variants import print_variants, variant_option
from netspec.errors import Diagnostic, NetspecError, SpecError


def fail(message: str, code: int = 2) -> None:
    click.echo(f"error: {message}" if "\n" not in message and ":" not in message.split(" ")[0] else message, err=True)
    sys.exit(code)


class NetspecGroup(click.Group):
    """Runs a command and turns user errors into clean messages and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NetspecError as exc:
            click.echo(str(exc), err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError:  # `netspec check specs/ | head -1`: the reader left; say nothing
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(141)
        except OSError as exc:  # the environment, not a bug: a full disk, a read-only folder, ...
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            click.echo(f"error: {where}{exc.strerror or exc}", err=True)
            ctx.exit(2)
        except MemoryError:
            click.echo("error: out of memory (try a smaller --batch-size or input size)", err=True)
            ctx.exit(2)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug: say so in one line, traceback only on request
            if os.environ.get("NETSPEC_DEBUG"):
                raise
            if isinstance(exc, RuntimeError) and "allocate" in str(exc):  # torch's out-of-memory
                click.echo(f"error: out of memory: {str(exc).splitlines()[0][:200]} (try a smaller --batch-size or input size)", err=True)
                ctx.exit(2)
            click.echo(f"netspec: internal error: {type(exc).__name__}: {exc} (set NETSPEC_DEBUG=1 for the traceback)", err=True)
            ctx.exit(1)


@click.group(cls=NetspecGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="netspec")
def main() -> None:
    """netspec: neural networks written down as YAML, checked before they run."""


# ------------------------------------------------------------------ check
def _escape(text: str, *, property: bool = False) -> str:
    """GitHub workflow-command escaping (messages: % CR LF; properties also : and ,)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if property else text


def _github(d: Diagnostic) -> str:
    if d.location is None:
        return f"::error::{_escape(d.message)}"
    loc = d.location
    return f"::error file={_escape(loc.file, property=True)},line={loc.line},col={loc.col}::{_escape(d.message)}"


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "github", "json"]), default="text", show_default=True,
              help="github: workflow annotations at the spec line; json: one object per file.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
@variant_option
def check(paths: tuple[Path, ...], fmt: str, quiet: bool, variant: str | None) -> None:
    """Validate specs (files or folders, recursively) without running them; every variant
    a spec declares is checked too (only NAME with --variant).

    Exit code 0 when every spec is valid, 2 when any has an error.
    """
    from netspec.api import check as check_paths
    from netspec.compiler.graph import Graph

    results = check_paths(paths, variant=variant)  # a missing path is reported like any invalid spec
    if not results:
        if fmt == "json":
            click.echo("[]")
        raise SpecError([Diagnostic(None, f"no .yaml specs found in {', '.join(map(str, paths))}")])
    failed = 0
    report = []
    for path, result in results.items():
        ok = isinstance(result, Graph)
        failed += not ok
        if fmt == "json":
            entry: dict[str, Any] = {"file": str(path), "ok": ok}
            if ok:
                entry.update(layers=len(result) - 1, params=result.total_params, macs=result.total_macs)
            else:
                entry["errors"] = [
                    {"message": d.message, **({"line": d.location.line, "col": d.location.col} if d.location else {})}
                    for d in result
                ]
            report.append(entry)
        elif ok:
            if not quiet and fmt == "text":
                layers = len(result) - 1
                click.echo(f"ok  {path}  ({layers} layer{'s' * (layers != 1)}, {result.total_params:,} params)")
        else:
            for d in result:
                click.echo(_github(d) if fmt == "github" else str(d), err=fmt == "text")
    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
    elif not quiet and fmt == "text":
        click.echo(f"{len(results) - failed} of {len(results)} specs valid", err=bool(failed))
    sys.exit(2 if failed else 0)


# ------------------------------------------------------------------ compile
@main.command("compile")
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write model.py (standalone PyTorch source) or model.onnx.")
@click.option("--depth", type=click.IntRange(min=0), help="Fold blocks nested deeper than this into one row.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@variant_option
@click.option("--variants", "all_variants", is_flag=True, help="Print params and MACs of every variant instead.")
def compile_(spec: Path, output: Path | None, depth: int | None, as_json: bool, variant: str | None, all_variants: bool) -> None:
    """Show the layer table of SPEC (shapes, parameters, MACs); with -o, write code."""
    from netspec.api import build_graph, summary

    if all_variants:
        print_variants(spec)
        return
    graph = build_graph(spec, variant=variant)
    if output is not None:
        _write_output(graph, output)
    if as_json:
        click.echo(json.dumps(summary(graph), indent=2))
        return
    _print_table(graph, depth)
    if output is not None:
        click.echo(f"wrote {output}")


def _write_output(graph: Any, output: Path) -> None:
    from netspec.compiler.codegen.export import write

    write(graph, output)


def _print_table(graph: Any, depth: int | None) -> None:
    from rich.console import Console
    from rich.table import Table

    from netspec.compiler.shapes import fmt
    from netspec.compiler.table import rows

    table = Table(title=f"{graph.name}  (input {fmt(graph.input_shape)})", title_justify="left", header_style="bold")
    table.add_column("layer", no_wrap=True)
    table.add_column("op")
    table.add_column("output shape", justify="right")
    table.add_column("params", justify="right")
    table.add_column("MACs", justify="right")
    for row in rows(graph, depth):
        table.add_row(row.name, row.op, fmt(row.shape), f"{row.params:,}" if row.params else "-", f"{row.macs:,}" if row.macs else "-")
    console = Console(width=max(100, Console().width))
    console.print(table)
    mb = graph.total_params * 4 / 2**20
    console.print(f"total params: {graph.total_params:,} ({mb:.2f} MiB as float32)")
    console.print(f"trainable params: {graph.total_params:,}")
    console.print(f"MACs per example: {graph.total_macs:,} ({_si(graph.total_macs)}); output {fmt(graph.output_shape)}")


def _si(count: int) -> str:
    """416520 -> '416.5 K', 4089184256 -> '4.09 G'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return str(count)


# ------------------------------------------------------------------ schema
@main.command()
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write to a file instead of stdout.")
def schema(output: Path | None) -> None:
    """Print the JSON Schema of the spec language (for editors)."""
    from netspec.compiler.schema import json_schema

    text = json.dumps(json_schema(), indent=2)
    if output:
        from netspec.compiler.codegen.export import write_text_atomically

        write_text_atomically(output, text + "\n")
    else:
        click.echo(text)


def _register_commands() -> None:
    """Commands that live with their subsystem; each imports torch only when run."""
    import importlib

    for module_name in ("train", "draw", "attack", "ops"):
        try:
            module = importlib.import_module(f"netspec.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"netspec.commands.{module_name}":
                raise
            continue
        for command in module.COMMANDS:
            main.add_command(command)


_register_commands()


if __name__ == "__main__":
    main()
