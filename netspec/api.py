"""The Python API: `load`, `check`, `build_graph`, `compile`, `summary`, `draw`.

Functions accept a spec path, a `LoadedSpec` or a `Graph`, so each can be given whatever the
previous step produced. Only `compile` imports torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Union

from netspec.compiler.graph import Graph
from netspec.compiler.pipeline import LoadedSpec, build_graph as _build_graph, load_spec
from netspec.errors import Diagnostic, NetspecError, SpecError

if TYPE_CHECKING:
    from torch import fx

SpecLike = Union[str, Path, LoadedSpec, Graph]


def load(path: str | Path, *, text: str | None = None, variant: str | None = None) -> LoadedSpec:
    """Load and validate a spec (raises `SpecError` listing every problem); `variant` picks
    a member of its `variants:` (default: the spec's `variant:`, else the spec as written)."""
    return load_spec(path, text=text, variant=variant)


def build_graph(spec: SpecLike, *, variant: str | None = None) -> Graph:
    """The shaped, counted graph IR of a spec (of its `variant`, for a path)."""
    if isinstance(spec, Graph):
        return spec
    return _build_graph(spec if isinstance(spec, LoadedSpec) else load(spec, variant=variant))


def spec_files(paths: Iterable[str | Path]) -> list[Path]:
    """Spec files named directly or found (recursively) in folders, sorted."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file())
        else:
            found.append(path)
    return found


def check(paths: Iterable[str | Path] | str | Path, *, variant: str | None = None) -> dict[Path, list[Diagnostic] | Graph]:
    """Check files and folders; each file maps to its graph or its diagnostics.

    Without `variant`, every variant a spec declares is built too (a family member whose
    shapes do not work is an error of the file); with it, only that one.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    results: dict[Path, list[Diagnostic] | Graph] = {}
    for path in spec_files(paths):
        try:
            loaded = load(path, variant=variant)
            results[path] = build_graph(loaded)
            if variant is None:
                _check_variants(loaded)
        except SpecError as exc:
            results[path] = exc.diagnostics
        except NetspecError as exc:
            results[path] = [Diagnostic(None, f"{path}: {exc}")]
    return results


def _check_variants(loaded: LoadedSpec) -> None:
    from netspec.compiler.pipeline import with_variant

    problems: list[Diagnostic] = []
    for name in loaded.spec.variants:
        if name == loaded.variant:
            continue
        try:
            build_graph(with_variant(loaded, name))
        except SpecError as exc:
            problems += [Diagnostic(d.location, f"variant {name!r}: {d.message}") for d in exc.diagnostics]
    if problems:
        raise SpecError(problems)


def compile(spec: SpecLike, *, seed: int | None = None, variant: str | None = None) -> "fx.GraphModule":
    """A `torch.nn.Module` (a torch.fx GraphModule) for the spec, freshly initialised."""
    import torch

    from netspec.compiler.codegen.torch_fx import to_graph_module

    graph = build_graph(spec, variant=variant)
    if seed is not None:
        torch.manual_seed(seed)
    return to_graph_module(graph)


def summary(spec: SpecLike) -> dict[str, Any]:
    """The layer table as data: shapes (without the batch), parameters, MACs."""
    graph = build_graph(spec)
    return {
        "name": graph.name,
        "input_shape": list(graph.input_shape),
        "output_shape": list(graph.output_shape),
        "params": graph.total_params,
        "trainable_params": graph.total_params,
        "macs": graph.total_macs,
        "layers": [
            {"name": n.name, "op": n.op, "output_shape": list(n.shape or ()), "params": n.params, "macs": n.macs}
            for n in graph.ops()
        ],
    }


def draw(spec: SpecLike, path: str | Path, **options: Any) -> Path:
    """Render the network's diagram to `path` (.svg, .png, .pdf or .dot)."""
    from netspec.compiler.draw import render

    return render(build_graph(spec), Path(path), **options)
