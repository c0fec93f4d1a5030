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
from netspec.compiler.variants import select
from netspec.compiler.yaml_loader import load_yaml_file, load_yaml_text, locate
from netspec.errors import Diagnostic, SpecError


@dataclass
class LoadedSpec:
    """A validated spec together with its raw YAML tree (which knows every location)."""

    spec: Spec  # with the variant's input shape
    raw: Any
    path: str
    variant: str | None = None  # the variant built; None: the spec as written

    @property
    def values(self) -> dict[str, Any]:
        """What the variant gives the spec's top-level expressions (width_mult, depth_mult)."""
        return select(self.spec.variants, self.variant).values()


def load_spec(source: str | Path, *, text: str | None = None, variant: str | None = None) -> LoadedSpec:
    """Load and validate a spec from a file (or from `text`, named `source` in messages);
    `variant` (else the spec's `variant:`) picks a member of its `variants:`."""
    name = str(source)
    raw = load_yaml_text(text, name) if text is not None else load_yaml_file(source)
    builtin = {block.name: block.definition.params for block in prelude().values()}
    spec = validate_spec(raw, name, set(builtin), call_diagnostics(raw, builtin))
    return with_variant(LoadedSpec(spec, raw, name), variant)


def with_variant(loaded: LoadedSpec, variant: str | None) -> LoadedSpec:
    """The same spec as `variant` (else its own `variant:`), without reading it again."""
    spec, raw, name = loaded.spec, loaded.raw, loaded.path
    chosen = variant if variant is not None else spec.variant
    try:
        member = select(spec.variants, chosen)
    except KeyError as exc:
        where = None if variant is not None else raw.value_locs.get("variant")
        prefix = f"{name}: --variant: " if variant is not None else ""
        raise SpecError([Diagnostic(where, prefix + str(exc.args[0]))]) from None
    if member.input is not None:
        spec = spec.model_copy(update={"input": member.input})
    return LoadedSpec(spec, raw, name, chosen)


def build_graph(loaded: LoadedSpec) -> Graph:
    """Expand blocks and run the passes (lint, shapes, counts)."""
    graph = run_passes(expand(loaded.spec, loaded.raw, loaded.path, loaded.values))
    if loaded.spec.budget is not None:
        from netspec.compiler.budget import Limits

        where = {k: locate(loaded.raw, ("budget", k)) for k in ("max_params", "max_macs", "max_memory")}
        graph.limits = Limits.from_spec(loaded.spec.budget, where)
    return graph
