"""The work budgets the other tests rely on (tests/work.py): they count, stop and can't be swallowed."""
from __future__ import annotations

import pytest
from hypothesis import settings

from work import WorkExceeded, call_budget, count_calls


def test_call_budget_counts_c_calls_inside_one_python_frame() -> None:
    with call_budget(1_000) as work:
        for i in range(100):
            max(i, 1)
    assert 100 <= work.calls <= 110


def test_call_budget_stops_a_loop_once_spent() -> None:
    seen = 0
    with pytest.raises(WorkExceeded, match="more than 1,000 function calls"):
        with call_budget(1_000):
            for i in range(10**9):
                seen = max(seen, i)
    assert seen < 1_001


def test_call_budget_cannot_be_swallowed_by_except_exception() -> None:
    def careless() -> str:
        try:
            for i in range(10**9):
                abs(i)
        except Exception:  # what code under test may do to report an error
            return "reported"
        return "done"

    with pytest.raises(WorkExceeded):
        with call_budget(500):
            careless()


def test_count_calls_counts_one_function_and_restores_it(monkeypatch: pytest.MonkeyPatch) -> None:
    class Box:
        def add(self, x: int) -> int:
            return x + 1

    original = Box.add
    with count_calls(monkeypatch, Box, "add", limit=10) as added:
        assert [Box().add(i) for i in range(3)] == [1, 2, 3]
    assert added.calls == 3 and Box.add is original
    with pytest.raises(WorkExceeded, match="more than 10 calls of Box.add"):
        with count_calls(monkeypatch, Box, "add", limit=10):
            for i in range(100):
                Box().add(i)


def test_hypothesis_has_no_deadline_unless_a_test_sets_one() -> None:
    assert settings.default.deadline is None



def test_settings_that_name_no_deadline_inherit_none() -> None:
    assert settings(max_examples=3).deadline is None  # as `@settings(max_examples=...)` in a test file
