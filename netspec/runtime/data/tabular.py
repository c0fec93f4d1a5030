"""CSV files: a header row, numeric feature columns and a target column."""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import torch

from netspec.errors import DataError
from netspec.files import read_regular
from netspec.runtime.data.splits import Splits

__all__ = ["MAX_CSV_BYTES", "load_csv"]

MAX_CSV_BYTES = 1 << 30  # 1 GiB: a CSV held in memory as floats; more is refused before reading


def _split_rows(n: int, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = round(n * test_fraction)
    return perm[n_test:], perm[:n_test]


def load_csv(
    path: str | os.PathLike[str],
    target: str,
    task: str = "regression",
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Splits:
    """Read a CSV with a header row: numeric feature columns plus the `target` column.

    For `task="classification"` the target may be any text (or integers); classes are its
    distinct values, sorted numerically when they are all numbers, and labels index them.
    Rows are split into train/test by a seeded permutation.
    """
    path = Path(path)
    if task not in ("regression", "classification"):
        raise DataError(f"{path}: task must be 'regression' or 'classification', not {task!r}")
    if not 0.0 <= test_fraction < 1.0:
        raise DataError(f"{path}: test_fraction must be in [0, 1), got {test_fraction}")
    try:
        text = read_regular(path, MAX_CSV_BYTES).decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read CSV ({e.strerror or e})") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read CSV ({e})") from None
    rows = [r for r in rows if any(c.strip() for c in r)]  # ignore blank lines
    if not rows:
        raise DataError(f"{path}: empty file (expected a header row)")
    header = [h.strip() for h in rows[0]]
    if target not in header:
        raise DataError(f"{path}: no column {target!r}; columns are {', '.join(header)}")
    t_col = header.index(target)
    features: list[list[float]] = []
    targets: list[str] = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(f"{path}: row {line} has {len(row)} fields, header has {len(header)}")
        values = []
        for col, cell in enumerate(row):
            if col == t_col:
                targets.append(cell.strip())
                continue
            try:
                values.append(float(cell))
            except ValueError:
                raise DataError(f"{path}: row {line}, column {header[col]!r}: {cell!r} is not a number") from None
        features.append(values)
    if not features:
        raise DataError(f"{path}: no data rows after the header")
    x = torch.tensor(features, dtype=torch.float32).reshape(len(features), len(header) - 1)

    classes: tuple[str, ...] = ()
    if task == "regression":
        try:
            y = torch.tensor([float(v) for v in targets], dtype=torch.float32).unsqueeze(1)
        except ValueError:
            line = next(i for i, v in enumerate(targets, start=2) if not _is_number(v))
            raise DataError(f"{path}: row {line}, column {target!r}: {targets[line - 2]!r} is not a number") from None
    else:
        distinct = set(targets)
        numeric = all(_is_number(v) for v in distinct)
        classes = tuple(sorted(distinct, key=float if numeric else str))
        index = {c: i for i, c in enumerate(classes)}
        y = torch.tensor([index[v] for v in targets], dtype=torch.int64)

    train, test = _split_rows(len(x), test_fraction, seed)
    if len(train) == 0:
        raise DataError(f"{path}: {len(x)} rows leave no training data with test_fraction={test_fraction}")
    return Splits(path.stem, task, x[train], y[train], x[test], y[test], classes)


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True
