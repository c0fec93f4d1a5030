"""Reading run folders back (`netspec runs`): what each run trained and how it did.

Only the files a run leaves (spec.yaml, metrics.jsonl, summary.json) are read, with no torch
import, so listing a folder of runs is instant. A run that is still going, or was stopped,
has no summary.json yet: its rows so far are shown.
"""
from __future__ import annotations

import difflib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from netspec.errors import NetspecError

# The names run_dir.py writes (kept here so that reading runs needs no torch; a test checks
# that they agree).
SPEC_FILE = "spec.yaml"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
MAX_RUNS = 10_000  # a folder walk stops here (a mistaken `netspec runs /`)


class RunsError(NetspecError):
    """A folder is not a run folder, or holds none."""


@dataclass
class Run:
    folder: Path
    spec: str
    settings: dict[str, Any]  # dataset, optimizer, lr, batch_size, epochs (planned)
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.summary is not None

    @property
    def epochs(self) -> int:
        return max((int(r.get("epoch", 0)) for r in self.rows if "fold" not in r), default=0)

    def final(self, key: str) -> float | None:
        if self.summary is not None and _num(self.summary.get(key)) is not None:
            return _num(self.summary.get(key))
        values = [_num(r.get(key)) for r in self.rows]
        values = [v for v in values if v is not None]
        return values[-1] if values else None

    def best(self, key: str, lowest: bool = False) -> tuple[float, int] | None:
        """The best value of `key` over the epochs and the epoch it came at."""
        found = [(v, int(r.get("epoch", 0))) for r in self.rows if (v := _num(r.get(key))) is not None]
        if not found:
            return None
        if lowest:
            return min(found, key=lambda p: (p[0], p[1]))  # the lowest, the earliest on ties
        return max(found, key=lambda p: (p[0], -p[1]))

    @property
    def seconds(self) -> float | None:
        if self.summary is not None and _num(self.summary.get("train_seconds")) is not None:
            return _num(self.summary.get("train_seconds"))
        values = [_num(r.get("seconds")) for r in self.rows]
        return sum(v for v in values if v is not None) if any(v is not None for v in values) else None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def is_run(folder: Path) -> bool:
    return (folder / SPEC_FILE).is_file() and ((folder / METRICS).is_file() or (folder / SUMMARY).is_file())


def _rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _settings(tree: Any) -> dict[str, Any]:
    """The key settings of a resolved spec's train section, defaults filled in."""
    from netspec.compiler.train_schema import TrainConfig

    section = tree.get("train") if isinstance(tree, dict) else None
    try:
        cfg = TrainConfig.model_validate(section or {})
    except Exception:  # an old or hand-edited spec.yaml: show what can be read
        return {}
    return {
        "dataset": cfg.dataset.name,
        "optimizer": cfg.optimizer.name,
        "lr": cfg.optimizer.lr,
        "batch_size": cfg.batch_size,
        "epochs": cfg.epochs,
    }


def read_run(folder: Path) -> Run:
    folder = Path(folder)
    if not is_run(folder):
        raise RunsError(f"{folder}: not a run folder (no {SPEC_FILE} with {METRICS} or {SUMMARY})")
    try:
        tree = yaml.safe_load((folder / SPEC_FILE).read_text(encoding="utf-8", errors="replace"))
    except yaml.YAMLError:
        tree = None
    summary = None
    if (folder / SUMMARY).is_file():
        try:
            loaded = json.loads((folder / SUMMARY).read_text(encoding="utf-8", errors="replace"))
            summary = loaded if isinstance(loaded, dict) else None
        except (OSError, json.JSONDecodeError):
            summary = None
    name = (summary or {}).get("spec") or (tree.get("name") if isinstance(tree, dict) else None) or folder.name
    return Run(folder, str(name), _settings(tree), _rows(folder / METRICS), summary)


def find_runs(root: Path) -> list[Run]:
    """Every run folder at or below `root` (not looking inside runs), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise RunsError(f"{root}: no such folder")
    if is_run(root):
        return [read_run(root)]
    found: list[Path] = []
    for here, dirs, _ in os.walk(root):
        path = Path(here)
        if path != root and is_run(path):
            found.append(path)
            dirs.clear()
            if len(found) >= MAX_RUNS:
                break
        dirs.sort()
    return [read_run(p) for p in sorted(found)]


def spec_diff(a: Run, b: Run) -> list[str]:
    """The two runs' resolved spec.yaml files as a unified diff (empty: the same spec).

    A plain text diff for now; a layer-aware `netspec diff` can take its place here."""
    left = (a.folder / SPEC_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    right = (b.folder / SPEC_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    return list(difflib.unified_diff(left, right, str(a.folder / SPEC_FILE), str(b.folder / SPEC_FILE), lineterm=""))
