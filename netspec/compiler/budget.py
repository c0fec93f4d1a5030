"""Size budgets from the static counts: a spec's `budget:` section, `check --max-*`, and the
limits `train` and `compile` apply before they allocate anything.

Everything here is arithmetic on the counted graph; nothing imports torch.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Optional

from pydantic import Field

from netspec.compiler.counting import Policy, Unit, total
from netspec.compiler.graph import Graph
from netspec.compiler.memory import OPTIMIZER_STATES, PARAM_BYTES, human, plan
from netspec.compiler.schema_base import Model, PosInt, value_type
from netspec.errors import Location, NetspecError

# `check` warns above these even without a budget: a network this size is almost surely a typo
DEFAULT_MAX_PARAMS = 10_000_000_000  # 40 GB of float32 weights
MAX_COUNT = 10**18

_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: Any, what: str = "a size") -> int:
    """25_000_000, "25M", "8 GiB", "1.5G" -> an integer; anything else raises ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected {what} (an integer or a string like '25M' or '8 GiB'), got {value!r}")
    if isinstance(value, int):
        number = value
    else:
        match = _SIZE.match(value)
        if not match or match.group(2).lower() not in _UNITS:
            raise ValueError(f"expected {what} like 25M, 1.5G or 8 GiB, got {value!r}")
        number = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if not 0 < number <= MAX_COUNT:
        raise ValueError(f"expected {what} between 1 and {MAX_COUNT:.0e}, got {value!r}")
    return number


def _size_type(name: str, what: str) -> Any:
    def check(v: Any) -> bool:
        try:
            parse_size(v)
        except ValueError:
            return False
        return True

    schema = {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*[a-zA-Z]*\s*$"}]}
    return value_type(name, f"{what} (an integer or a string like 25M or 8 GiB)", check, schema)


class BudgetSpec(Model):
    """Limits a spec sets for itself; `netspec check` fails (exit 1) when one is crossed."""

    max_params: Optional[_size_type("count", "a count")] = Field(None, description="most parameters, e.g. 25M")  # type: ignore[valid-type]
    max_macs: Optional[_size_type("count", "a count")] = Field(None, description="most MACs per example, e.g. 4G")  # type: ignore[valid-type]
    max_memory: Optional[_size_type("size", "a size in bytes")] = Field(  # type: ignore[valid-type]
        None, description="most training memory at `batch` (weights, gradients, optimizer state, saved activations), e.g. 8 GiB"
    )
    batch: PosInt = Field(1, description="batch size for max_memory")
    optimizer: Literal["sgd", "momentum", "adam", "adamw"] = Field("sgd", description="optimizer state for max_memory")


@dataclass(frozen=True)
class Limits:
    """The budgets a check applies, each with where it was set (None: the command line)."""

    max_params: int | None = None
    max_macs: int | None = None
    max_memory: int | None = None
    batch: int = 1
    optimizer: str = "sgd"
    unit: Unit = "macs"
    policy: Policy = "core"
    where: dict[str, Location | None] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, budget: BudgetSpec | None, where: dict[str, Location | None]) -> "Limits":
        if budget is None:
            return cls()
        return cls(
            max_params=None if budget.max_params is None else parse_size(budget.max_params),
            max_macs=None if budget.max_macs is None else parse_size(budget.max_macs),
            max_memory=None if budget.max_memory is None else parse_size(budget.max_memory),
            batch=budget.batch,
            optimizer=budget.optimizer,
            where=where,
        )

    def override(self, **values: Any) -> "Limits":
        """Command-line values win over the spec's; each overridden limit is located at the command line."""
        given = {k: v for k, v in values.items() if v is not None}
        where = {k: v for k, v in self.where.items() if k not in given}
        return replace(self, **given, where=where)


@dataclass(frozen=True)
class Problem:
    """A crossed budget: a rule id, its message, the spec line that set it (if any), error or warning."""

    rule: str
    message: str
    location: Location | None
    level: Literal["error", "warning"] = "error"


RULES = {
    "spec-error": "The spec is invalid (YAML, schema, blocks, shapes or graph).",
    "budget-params": "The network has more parameters than its budget allows.",
    "budget-macs": "The network needs more MACs (or FLOPs) per example than its budget allows.",
    "budget-memory": "Training at the budget's batch size needs more memory than its budget allows.",
    "size-warning": f"The network is larger than {DEFAULT_MAX_PARAMS:,} parameters (set a budget to accept it).",
}


def problems(graph: Graph, limits: Limits, *, default_warning: bool = True) -> list[Problem]:
    """Every budget `graph` crosses under `limits` (and the default size warning)."""
    out: list[Problem] = []
    at = limits.where.get
    params = graph.total_params
    if limits.max_params is not None and params > limits.max_params:
        out.append(Problem("budget-params", f"{params:,} parameters exceed the budget of {limits.max_params:,}", at("max_params")))
    elif default_warning and limits.max_params is None and params > DEFAULT_MAX_PARAMS:
        out.append(Problem(
            "size-warning",
            f"{params:,} parameters ({human(params * PARAM_BYTES)} as float32) exceed the default budget of"
            f" {DEFAULT_MAX_PARAMS:,}; pass --max-params or set budget.max_params to accept it",
            None, "warning",
        ))
    if limits.max_macs is not None:
        count = total(graph, limits.unit, limits.policy)
        if count > limits.max_macs:
            what = "MACs" if limits.unit == "macs" else "FLOPs"
            out.append(Problem("budget-macs", f"{count:,} {what} per example exceed the budget of {limits.max_macs:,}", at("max_macs")))
    if limits.max_memory is not None:
        need = plan(graph, limits.batch, limits.optimizer).total_bytes
        if need > limits.max_memory:
            out.append(Problem(
                "budget-memory",
                f"training at batch {limits.batch} with {limits.optimizer} needs an estimated {human(need)} ({need:,} bytes),"
                f" over the budget of {human(limits.max_memory)} ({limits.max_memory:,} bytes)",
                at("max_memory"),
            ))
    return out


# ------------------------------------------------------------------ limits before allocation
def available_memory() -> int | None:
    """Bytes this process may still allocate: $NETSPEC_MEMORY_LIMIT if set, else the system's
    available memory (Linux /proc/meminfo), else None (unknown: no check)."""
    configured = os.environ.get("NETSPEC_MEMORY_LIMIT")
    if configured:
        try:
            return parse_size(configured, "NETSPEC_MEMORY_LIMIT")
        except ValueError as exc:
            raise NetspecError(f"error: NETSPEC_MEMORY_LIMIT: {exc}") from None
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def require_weights_fit(graph: Graph, what: str, limit: int | None = None) -> None:
    """Refuse (exit 2) before building a model whose float32 weights alone exceed the limit."""
    limit = available_memory() if limit is None else limit
    need = graph.total_params * PARAM_BYTES
    if limit is not None and need > limit:
        raise NetspecError(
            f"error: {graph.source or graph.name}: {what} needs {human(need)} for {graph.total_params:,} float32 weights,"
            f" more than the {human(limit)} available (limit: NETSPEC_MEMORY_LIMIT or the free memory); nothing was allocated"
        )


def training_optimizer(optimizer: Any) -> str:
    """The memory plan's name for a train section's optimizer (SGD with momentum keeps a buffer)."""
    name = getattr(optimizer, "name", "sgd")
    return "momentum" if name == "sgd" and getattr(optimizer, "momentum", 0) else name


def require_training_fits(graph: Graph, batch: int, optimizer: str, amp: str | None = None, limit: int | None = None) -> None:
    """Refuse (exit 2) a training run whose estimated memory exceeds the limit, before allocating."""
    limit = available_memory() if limit is None else limit
    if limit is None:
        return
    optimizer = optimizer if optimizer in OPTIMIZER_STATES else "adam"  # unknown: assume the larger state
    memory = plan(graph, batch, optimizer, amp)
    if memory.total_bytes > limit:
        raise NetspecError(
            f"error: {graph.source or graph.name}: training at batch {batch} needs an estimated {human(memory.total_bytes)}"
            f" (weights {human(memory.params_bytes)}, gradients {human(memory.grads_bytes)}, optimizer {human(memory.optimizer_bytes)},"
            f" activations {human(memory.activations_bytes)}), more than the {human(limit)} available"
            " (limit: NETSPEC_MEMORY_LIMIT or the free memory); nothing was allocated"
        )
