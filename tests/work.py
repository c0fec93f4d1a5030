"""Work budgets for tests: bound what a call does by counting, never by the clock.

A wall-clock limit fails on a busy machine (two cores shared by many processes) and passes on
a fast one whatever the code does; a count of work does neither. `call_budget` counts the
function calls a block makes in this thread (Python functions and the C functions they call:
`isinstance`, `list.pop`, LibYAML's `get_event`, ...), so even a loop inside one Python frame
is counted. `count_calls` counts calls of one named function (layers expanded, nodes added).
Both stop the block with `WorkExceeded` as soon as the budget is spent, so code whose
protection was removed fails at once instead of hanging the suite.

`WorkExceeded` is a `BaseException`, so code under test that catches `Exception` (to turn
it into a diagnostic) cannot swallow it; the budget is checked again on exit in case it was.
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class WorkExceeded(BaseException):
    """The block did more work than its budget allows."""


class CallCounter:
    """A profile function that counts calls and raises once `limit` is passed."""

    def __init__(self, limit: int, what: str = "function calls"):
        self.limit = limit
        self.what = what
        self.calls = 0

    @property
    def exceeded(self) -> bool:
        return self.calls > self.limit

    def tick(self) -> None:
        self.calls += 1
        if self.calls == self.limit + 1:
            raise WorkExceeded(f"more than {self.limit:,} {self.what}")

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call" or event == "c_call":
            self.tick()


@contextmanager
def call_budget(limit: int) -> Iterator[CallCounter]:
    """Run the block with at most `limit` function calls (Python and C) in this thread."""
    counter = CallCounter(limit)
    previous = sys.getprofile()
    sys.setprofile(counter)
    try:
        yield counter
    finally:
        sys.setprofile(previous)
    assert not counter.exceeded, f"more than {limit:,} function calls (an exception was swallowed)"


@contextmanager
def count_calls(monkeypatch: Any, owner: Any, name: str, limit: int) -> Iterator[CallCounter]:
    """Count calls of `owner.name` (a function or method) in the block; stop past `limit`."""
    counter = CallCounter(limit, f"calls of {getattr(owner, '__name__', owner)}.{name}")
    original = getattr(owner, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        counter.tick()
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    try:
        yield counter
    finally:
        monkeypatch.setattr(owner, name, original)
    assert not counter.exceeded, f"more than {limit:,} {counter.what} (an exception was swallowed)"
