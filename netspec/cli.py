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
from netspec.errors import Diagnostic, Location, NetspecError, SpecError


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
    if os.environ.get("NETSPEC_DUMP_PASSES"):  # the graph after every compiler pass, and its time
        import logging

        logger = logging.getLogger("netspec.passes")
        logger.handlers = [logging.StreamHandler(sys.stderr)]  # this process's stderr (once per run)
        logger.handlers[0].setFormatter(logging.Formatter("netspec: %(message)s"))
        logger.setLevel(logging.DEBUG)


# ------------------------------------------------------------------ check
def _size(what: str):  # type: ignore[no-untyped-def]
    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
        if value is None:
            return None
        from netspec.compiler.budget import parse_size

        try:
            return parse_size(value.replace("_", ""), what)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return convert


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "github", "json", "sarif", "junit"]), default="text", show_default=True,
              help="github: workflow annotations at the spec line; json: one object per file; sarif: SARIF 2.1.0"
                   " (code scanning); junit: JUnit XML, one testcase per spec.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
@click.option("--max-params", metavar="N", callback=_size("a parameter count"), help="Fail when a spec has more parameters (25M, 1.5G, 25000000).")
@click.option("--max-macs", metavar="N", callback=_size("a MAC count"), help="Fail when a spec needs more MACs (or --count flops) per example.")
@click.option("--max-memory", metavar="SIZE", callback=_size("a memory size"),
              help="Fail when training at --batch needs more memory (8GiB, 512MB): weights, gradients, optimizer state, saved activations.")
@click.option("--batch", type=click.IntRange(min=1, max=10**9), default=None, help="Batch size for --max-memory (default: the spec's budget, else 1).")
@click.option("--optimizer", type=click.Choice(["sgd", "momentum", "adam", "adamw"]), default=None, help="Optimizer state for --max-memory (default sgd).")
@click.option("--count", "unit", type=click.Choice(["macs", "flops"]), default="macs", show_default=True, help="What --max-macs counts.")
@click.option("--policy", type=click.Choice(["core", "all"]), default="core", show_default=True, help="core: conv/linear only; all: every op's work (docs/counting.md).")
@variant_option
def check(paths: tuple[Path, ...], fmt: str, quiet: bool, max_params: int | None, max_macs: int | None, max_memory: int | None,
          batch: int | None, optimizer: str | None, unit: str, policy: str, variant: str | None) -> None:
    """Validate specs (files or folders, recursively) without running them; every variant
    a spec declares is checked too (only NAME with --variant).

    Budgets come from the options or a spec's `budget:` section (options win). Exit code 0
    when every spec is valid and within budget, 1 when a valid spec crosses a budget, 2 when
    any spec has an error.
    """
    from netspec.api import check as check_paths
    from netspec.commands import check_report as report_fmt
    from netspec.compiler.budget import Limits, problems
    from netspec.compiler.graph import Graph

    results = check_paths(paths, variant=variant)  # a missing path is reported like any invalid spec
    if not results:
        if fmt == "json":
            click.echo("[]")
        raise SpecError([Diagnostic(None, f"no .yaml specs found in {', '.join(map(str, paths))}")])
    reports = []
    for path, result in results.items():
        if isinstance(result, Graph):
            limits = (result.limits or Limits()).override(
                max_params=max_params, max_macs=max_macs, max_memory=max_memory, batch=batch, optimizer=optimizer, unit=unit, policy=policy
            )
            findings = [report_fmt.Finding(p.rule, p.level, p.message, p.location or Location(str(path), 1, 1)) for p in problems(result, limits)]
            summary = {"layers": len(result) - 1, "params": result.total_params, "macs": result.total_macs}
            reports.append(report_fmt.FileReport(path, True, findings, summary))
        else:
            findings = [report_fmt.Finding("spec-error", "error", d.message, d.location) for d in result]
            reports.append(report_fmt.FileReport(path, False, findings, {}))
    invalid = sum(not r.ok for r in reports)
    over = sum(r.ok and r.failed for r in reports)
    if fmt == "json":
        click.echo(report_fmt.as_json(reports))
    elif fmt == "sarif":
        from importlib.metadata import PackageNotFoundError, version

        try:
            ours = version("netspec")
        except PackageNotFoundError:
            ours = "0"
        click.echo(report_fmt.sarif(reports, ours))
    elif fmt == "junit":
        click.echo(report_fmt.junit(reports))
    else:
        for r in reports:
            if r.ok and not r.failed and not quiet and fmt == "text":
                layers = r.summary["layers"]
                click.echo(f"ok  {r.path}  ({layers} layer{'s' * (layers != 1)}, {r.summary['params']:,} params)")
            for f in r.findings:
                if fmt == "github":
                    click.echo(report_fmt.github(r, f))
                elif f.level == "error" and not r.ok:
                    click.echo(f"{f.location}: {f.message}" if f.location else f.message, err=True)
                else:
                    click.echo(f"{f.level}: {f.location}: {f.message}", err=True)
        if not quiet and fmt == "text":
            click.echo(f"{len(results) - invalid} of {len(results)} specs valid" + (f", {over} over budget" if over else ""), err=bool(invalid or over))
    sys.exit(2 if invalid else 1 if over else 0)


# ------------------------------------------------------------------ compile
@main.command("compile")
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write model.py (standalone PyTorch source) or model.onnx.")
@click.option("--depth", type=click.IntRange(min=0), help="Fold blocks nested deeper than this into one row.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--memory", is_flag=True, help="Also print the training memory plan (weights, gradients, optimizer state, saved activations).")
@click.option("--batch", type=click.IntRange(min=1, max=10**9), default=1, show_default=True, help="Batch size of the memory plan.")
@click.option("--optimizer", type=click.Choice(["sgd", "momentum", "adam", "adamw"]), default="sgd", show_default=True, help="Optimizer state of the memory plan.")
@click.option("--amp", type=click.Choice(["bf16", "fp16"]), default=None, help="Memory plan under autocast (activations in 2 bytes).")
@click.option("--count", "unit", type=click.Choice(["macs", "flops"]), default="macs", show_default=True, help="Count MACs or FLOPs (2 per MAC).")
@click.option("--policy", type=click.Choice(["core", "all"]), default="core", show_default=True,
              help="core: conv/linear work only; all: also bias, norm, pooling, activations (docs/counting.md).")
@variant_option
@click.option("--variants", "all_variants", is_flag=True, help="Print params and MACs of every variant instead.")
def compile_(spec: Path, output: Path | None, depth: int | None, as_json: bool, memory: bool, batch: int, optimizer: str,
             amp: str | None, unit: str, policy: str, variant: str | None, all_variants: bool) -> None:
    """Show the layer table of SPEC (shapes, parameters, MACs); with -o, write code."""
    from netspec.api import build_graph, summary
    from netspec.commands.plan import memory_lines, with_counts

    if all_variants:
        print_variants(spec)
        return
    graph = build_graph(spec, variant=variant)
    if output is not None:
        _write_output(graph, output)
    if as_json:
        data = with_counts(summary(graph), graph, unit, policy)
        if memory:
            from netspec.compiler.memory import plan

            data["memory"] = plan(graph, batch, optimizer, amp).as_dict()
        click.echo(json.dumps(data, indent=2))
        return
    _print_table(graph, depth, unit, policy)
    if memory:
        for line in memory_lines(graph, batch, optimizer, amp):
            click.echo(line)
    if output is not None:
        click.echo(f"wrote {output}")


def _write_output(graph: Any, output: Path) -> None:
    from netspec.compiler.codegen.export import write

    if output.suffix.lower() != ".py":  # model.py holds no weights; ONNX export builds the model
        from netspec.compiler.budget import require_weights_fit

        require_weights_fit(graph, f"writing {output.name}")

    write(graph, output)


def _print_table(graph: Any, depth: int | None, unit: str = "macs", policy: str = "core") -> None:
    from rich.console import Console
    from rich.table import Table

    from netspec.compiler.shapes import fmt
    from netspec.compiler.table import rows

    table = Table(title=f"{graph.name}  (input {fmt(graph.input_shape)})", title_justify="left", header_style="bold")
    table.add_column("layer", no_wrap=True)
    table.add_column("op")
    table.add_column("output shape", justify="right")
    table.add_column("params", justify="right")
    from netspec.compiler.counting import Rule, node_count, total

    rule = Rule(unit, policy)  # type: ignore[arg-type]
    table.add_column(str(rule), justify="right")
    for row in rows(graph, depth, lambda n: node_count(graph, n, rule.unit, rule.policy)):
        params = f"{row.params:,}" if row.params else "-"
        if row.shared:  # `share:`: its tied tensors are counted at their owner
            params = ("" if not row.params else f"{row.params:,} + ") + f"shared with {', '.join(row.shared)}"
        table.add_row(row.name, row.op, fmt(row.shape), params, f"{row.macs:,}" if row.macs else "-")
    console = Console(width=max(100, Console().width))
    console.print(table)
    mb = graph.total_params * 4 / 2**20
    console.print(f"total params: {graph.total_params:,} ({mb:.2f} MiB as float32)")
    counted = total(graph, rule.unit, rule.policy)
    console.print(f"{rule} per example: {counted:,} ({_si(counted)}); output {fmt(graph.output_shape)}")


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

    for module_name in ("train", "draw", "attack", "diff", "runs", "ops"):
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
