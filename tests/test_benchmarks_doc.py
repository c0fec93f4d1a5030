"""docs/benchmarks.md against the repository: the commands it shows name specs that exist,
and the d2l table says what the specs hold and what its own figures imply.

Nothing here trains: the accuracies are measurements recorded by hand; this checks that the
table's rows stay true to the specs (a changed lr or epoch count makes the row stale) and
that each row's arithmetic ("within a point", mean inside its min–max) holds.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
D2L_HEADING = "### The d2l specs against the book's printed figures"


def _d2l_rows() -> list[dict[str, str]]:
    """The table under D2L_HEADING as dicts keyed by its header cells."""
    assert D2L_HEADING in DOC, f"docs/benchmarks.md has no {D2L_HEADING!r}"
    table: list[str] = []
    for line in DOC.split(D2L_HEADING, 1)[1].splitlines()[1:]:
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    assert table, f"no table under {D2L_HEADING!r}"
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in table]
    header, rows = cells[0], cells[2:]
    return [dict(zip(header, row)) for row in rows]


def test_every_train_command_in_the_doc_names_a_spec_that_exists() -> None:
    paths = set(re.findall(r"netspec train (specs/[\w/.-]+\.yaml)", DOC))
    assert paths, "docs/benchmarks.md shows no `netspec train specs/...` command"
    missing = sorted(p for p in paths if not (ROOT / p).is_file())
    assert not missing, f"docs/benchmarks.md names specs that do not exist: {missing}"


def test_d2l_table_covers_the_five_cpu_specs() -> None:
    names = [row["spec"].strip("`") for row in _d2l_rows()]
    assert names == ["softmax_regression", "mlp", "mlp_dropout", "lenet", "lenet_bn"]


@pytest.mark.parametrize("row", _d2l_rows(), ids=lambda r: r["spec"].strip("`"))
def test_d2l_row_matches_its_spec(row: dict[str, str]) -> None:
    name = row["spec"].strip("`")
    spec_path = ROOT / "specs" / f"{name}.yaml"
    assert f"specs/{name}.yaml" in row["command"]
    train = yaml.safe_load(spec_path.read_text(encoding="utf-8"))["train"]
    settings = row["book's settings"]
    lr = float(re.search(r"lr ([\d.]+)", settings).group(1))
    epochs = int(re.search(r"(\d+) epochs", settings).group(1))
    batch = int(re.search(r"batch (\d+)", settings).group(1))
    assert (train["lr"], train["epochs"], train["batch_size"]) == (lr, epochs, batch), f"{name}: the row says lr {lr}, {epochs} epochs, batch {batch}"


@pytest.mark.parametrize("row", _d2l_rows(), ids=lambda r: r["spec"].strip("`"))
def test_d2l_row_arithmetic(row: dict[str, str]) -> None:
    measured = row[next(k for k in row if k.startswith("netspec"))]
    mean, low, high = (float(x) for x in re.search(r"([\d.]+)\D+([\d.]+)[–-]([\d.]+)", measured).groups())
    assert low <= mean <= high
    book = re.search(r"\b0\.\d{3}\b", row["book's test acc"].split("MXNet")[0])  # the edition-matched figure comes first
    verdict = row["within a point?"].lower()
    if book is None:
        assert verdict.startswith("—"), "no printed figure, so no verdict"
        return
    within = abs(float(book.group()) - mean) <= 0.01 + 1e-9
    assert verdict.startswith("yes" if within else "no"), f"book {book.group()} vs mean {mean}"
