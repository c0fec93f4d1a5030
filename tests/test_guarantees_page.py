"""docs/guarantees.md names the tests that back each promise: every one must exist."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "guarantees.md"


def _named_tests() -> list[tuple[str, str | None]]:
    refs = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", PAGE.read_text(encoding="utf-8"))
    return [(path, name or None) for path, name in refs]


def test_the_page_names_tests() -> None:
    assert len(_named_tests()) >= 15


def test_every_test_the_page_names_exists() -> None:
    missing = []
    for path, name in _named_tests():
        file = ROOT / path
        if not file.is_file():
            missing.append(path)
            continue
        if name is None:
            continue
        defined = {n.name for n in ast.walk(ast.parse(file.read_text(encoding="utf-8"))) if isinstance(n, ast.FunctionDef)}
        if name not in defined:
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/guarantees.md names tests that do not exist: {missing}"
