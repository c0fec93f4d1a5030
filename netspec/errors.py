"""Errors that reach the user as one line each, with a location and exit code 2.

Every failure a user can cause (bad YAML, bad shapes, missing files, corrupt checkpoints)
is a `NetspecError`; the CLI prints its message and exits with its `exit_code`, never a
traceback. Errors are plain data so that the YAML loader, the compiler and the runtime
can all raise them without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Location:
    """A place in a spec file, 1-based like editors show it."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a spec: where it is and what is wrong."""

    location: Location | None
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class NetspecError(Exception):
    """Base of every error meant for the user; carries its process exit code."""

    exit_code = 2


class SpecError(NetspecError):
    """One or more problems in a spec, reported all at once."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = sorted(
            diagnostics, key=lambda d: (d.location or Location("", 0, 0))
        )
        super().__init__("\n".join(str(d) for d in self.diagnostics))

    @classmethod
    def at(cls, location: Location | None, message: str) -> "SpecError":
        return cls([Diagnostic(location, message)])


class DataError(NetspecError):
    """A dataset is missing, corrupt or does not fit the spec."""


class CheckpointError(NetspecError):
    """A checkpoint or weights file is missing, corrupt or does not match the model."""


class TrainingError(NetspecError):
    """A run cannot go on (non-finite loss, bad resume folder, ...)."""
