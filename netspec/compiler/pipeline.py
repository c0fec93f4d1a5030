"""The front of the compiler as one call: path or text -> validated spec -> checked graph."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netspec.compiler.graph import Graph
from netspec.compiler.passes import run_passes
from netspec.compiler.passes.calls import call_diagnostics
from netspec.compiler.passes.expand import expand, prelude
from netspec.compiler.schema import Spec, validate_spec
from netspec.compiler.yaml_loader import load_yaml_file, load_yaml_text, locate


@dataclass
class LoadedSpec:
    """A validated spec together with its raw YAML tree (which knows every location)."""

    spec: Spec
    raw: Any
    path: str


def load_spec(source: str | Path, *, text: str | None = None) -> LoadedSpec:
    """Load and validate a spec from a file (or from `text`, named `source` in messages)."""
    name = str(source)
    raw = load_yaml_text(text, name) if text is not None else load_yaml_file(source)
    builtin = {block.name: block.definition.params for block in prelude().values()}
    spec = validate_spec(raw, name, set(builtin), call_diagnostics(raw, builtin))
    return LoadedSpec(spec, raw, name)


def build_graph(loaded: LoadedSpec) -> Graph:
    """Expand blocks and run the passes (lint, shapes, counts)."""
    graph = run_passes(expand(loaded.spec, loaded.raw, loaded.path))
    if loaded.spec.budget is not None:
        from netspec.compiler.budget import Limits

        where = {k: locate(loaded.raw, ("budget", k)) for k in ("max_params", "max_macs", "max_memory")}
        graph.limits = Limits.from_spec(loaded.spec.budget, where)
    return graph
