"""The Python API: `load`, `check`, `build_graph`, `compile`, `summary`, `draw`, `train`.

Functions accept a spec path, a `LoadedSpec` or a `Graph`, so each can be given whatever the
previous step produced. Only `compile` and `train` import torch.
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


def load(path: str | Path, *, text: str | None = None) -> LoadedSpec:
    """Load and validate a spec (raises `SpecError` listing every problem)."""
    return load_spec(path, text=text)


def build_graph(spec: SpecLike) -> Graph:
    """The shaped, counted graph IR of a spec."""
    if isinstance(spec, Graph):
        return spec
    return _build_graph(spec if isinstance(spec, LoadedSpec) else load(spec))


def spec_files(paths: Iterable[str | Path]) -> list[Path]:
    """Spec files named directly or found (recursively) in folders, sorted."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file())
        else:
            found.append(path)
    return found


def check(paths: Iterable[str | Path] | str | Path) -> dict[Path, list[Diagnostic] | Graph]:
    """Check files and folders; each file maps to its graph or its diagnostics."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    results: dict[Path, list[Diagnostic] | Graph] = {}
    for path in spec_files(paths):
        try:
            results[path] = build_graph(path)
        except SpecError as exc:
            results[path] = exc.diagnostics
        except NetspecError as exc:
            results[path] = [Diagnostic(None, f"{path}: {exc}")]
    return results


def compile(spec: SpecLike, *, seed: int | None = None) -> "fx.GraphModule":
    """A `torch.nn.Module` (a torch.fx GraphModule) for the spec, freshly initialised."""
    import torch

    from netspec.compiler.codegen.torch_fx import to_graph_module

    graph = build_graph(spec)
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


def train(spec: str | Path | LoadedSpec | None = None, **settings: Any) -> Any:
    """Train a spec with the CLI's trainer; returns the run (`TrainResult`: `run_dir`, `summary`,
    `history`, `model`, `config`).

    Keywords are `train:` overrides (`epochs=3`, `lr=0.1`, `**{"optimizer.momentum": 0.9}`)
    and how to run (`out`, `resume`, `device`, `data_dir`, `threads`, `compile`, `quiet`,
    `save`, ...: the fields of `RunOptions`), exactly as `netspec train SPEC --epochs 3 --out DIR`.
    """
    from dataclasses import fields

    from netspec.compiler.train_schema import TrainConfig
    from netspec.runtime.options import RunOptions
    from netspec.runtime.train import train as run_train

    run_fields = {f.name for f in fields(RunOptions)} - set(TrainConfig.model_fields)  # amp, channels_last: train:
    options = RunOptions(**{k: settings.pop(k) for k in list(settings) if k in run_fields})
    for key in ("out", "resume", "data_dir"):
        value = getattr(options, key)
        if value is not None and not isinstance(value, Path):
            setattr(options, key, Path(value))
    return run_train(spec, settings, options)
