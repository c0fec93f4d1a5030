"""`netspec runs`: the run folders under a folder as one table, or two runs side by side."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

DEFAULT_DIR = Path("runs")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {rest:02d} s"


def _best(run: Any, key: str) -> str:
    best = run.best(key)
    return "-" if best is None else f"{_pct(best[0])} (ep {best[1]})"


def _settings(run: Any) -> str:
    s = run.settings
    if not s:
        return "?"
    return f"{s['dataset']} · {s['optimizer']} lr {s['lr']:g} · batch {s['batch_size']}"


def _epochs(run: Any) -> str:
    planned = run.settings.get("epochs")
    done = run.epochs
    return f"{done}/{planned}" if planned is not None and (done != planned or not run.finished) else str(done)


def _record(run: Any) -> dict[str, Any]:
    """A run as JSON (`--json`)."""
    best = run.best("test_acc")
    return {
        "run": str(run.folder),
        "spec": run.spec,
        "settings": run.settings,
        "finished": run.finished,
        "epochs": run.epochs,
        "final_test_acc": run.final("test_acc"),
        "best_test_acc": best[0] if best else None,
        "best_epoch": best[1] if best else None,
        "final_test_loss": run.final("test_loss"),
        "train_seconds": run.seconds,
    }


def _console() -> Any:
    from rich.console import Console

    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=200)  # a pipe: no wrapping


def _list(runs: list[Any], root: Path) -> None:
    from rich.table import Table

    table = Table(title=f"{len(runs)} run{'s' * (len(runs) != 1)} in {root}", title_justify="left", header_style="bold")
    for name, justify in (("run", "left"), ("spec", "left"), ("data", "left"), ("optimizer", "left"), ("batch", "right"),
                          ("epochs", "right"), ("test acc", "right"), ("best test acc", "right"), ("test loss", "right"),
                          ("time", "right")):
        table.add_column(name, justify=justify, no_wrap=name != "run")  # type: ignore[arg-type]
    for run in runs:
        try:
            where = str(run.folder.relative_to(root))
        except ValueError:
            where = str(run.folder)
        table.add_row(
            (where if where != "." else str(run.folder)) + ("" if run.finished else " (unfinished)"),
            run.spec,
            str(run.settings.get("dataset", "?")),
            f"{run.settings['optimizer']} lr {run.settings['lr']:g}" if run.settings else "?",
            str(run.settings.get("batch_size", "?")),
            _epochs(run),
            _pct(run.final("test_acc")),
            _best(run, "test_acc"),
            _num(run.final("test_loss")),
            _time(run.seconds),
        )
    _console().print(table)


def _compare(a: Any, b: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    from netspec.runtime.run.index import spec_diff

    console = _console()
    table = Table(title="metrics", title_justify="left", header_style="bold")
    table.add_column("")
    table.add_column(f"A: {a.folder}", justify="right")
    table.add_column(f"B: {b.folder}", justify="right")
    table.add_column("B − A", justify="right")

    def change(x: float | None, y: float | None, pct: bool) -> str:
        if x is None or y is None:
            return ""
        d = y - x
        return f"{100 * d:+.2f} pts" if pct else f"{d:+.4g}"

    table.add_row("spec", a.spec, b.spec, "")
    table.add_row("settings", _settings(a), _settings(b), "")
    table.add_row("epochs", _epochs(a), _epochs(b), "")
    for key, label, pct in (("test_acc", "final test acc", True), ("test_loss", "final test loss", False),
                            ("train_acc", "final train acc", True), ("train_loss", "final train loss", False)):
        x, y = a.final(key), b.final(key)
        table.add_row(label, _pct(x) if pct else _num(x), _pct(y) if pct else _num(y), change(x, y, pct))
    ba, bb = a.best("test_acc"), b.best("test_acc")
    table.add_row("best test acc", _best(a, "test_acc"), _best(b, "test_acc"),
                  change(ba[0] if ba else None, bb[0] if bb else None, True))
    table.add_row("time", _time(a.seconds), _time(b.seconds), "")
    console.print(table)
    lines = spec_diff(a, b)
    console.print(Text("spec diff (resolved spec.yaml)", style="bold"))
    if not lines:
        console.print("  the same spec")
    for line in lines:
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else "cyan" if line.startswith("@@") else None
        console.print(Text(line, style=style or ""))


@click.command("runs")
@click.argument("folders", nargs=-1, type=click.Path(path_type=Path), metavar="[FOLDER | RUN_A RUN_B]")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON instead of a table.")
def runs(folders: tuple[Path, ...], as_json: bool) -> None:
    """List the training runs under FOLDER (default: runs/), or compare two run folders.

    \b
    netspec runs                 every run under runs/: spec, settings, test accuracy, time
    netspec runs runs/lenet      the runs of one spec
    netspec runs RUN_A RUN_B     the two runs' metrics side by side, then their spec diff
    """
    from netspec.runtime.run.index import RunsError, find_runs, read_run

    if len(folders) > 2:
        raise RunsError(f"give one folder to list, or two run folders to compare (got {len(folders)})")
    if len(folders) == 2:
        a, b = (read_run(f) for f in folders)
        if as_json:
            from netspec.runtime.run.index import spec_diff

            click.echo(json.dumps({"a": _record(a), "b": _record(b), "spec_diff": spec_diff(a, b)}, indent=2))
        else:
            _compare(a, b)
        return
    root = folders[0] if folders else DEFAULT_DIR
    found = find_runs(root)
    if as_json:
        click.echo(json.dumps([_record(r) for r in found], indent=2))
        return
    if not found:
        raise RunsError(f"{root}: no run folders (a run folder holds spec.yaml and metrics.jsonl; `netspec train` makes them)")
    _list(found, root)


COMMANDS = [runs]
