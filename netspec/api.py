"""The Python API: `load`, `check`, `build_graph`, `compile`, `summary`, `draw`, `diff`, `train`.

Functions accept a spec as a path, YAML text (a string with a newline), a dict (the parsed
YAML), a `LoadedSpec` or a `Graph`, so each can be given whatever the previous step produced
or whatever a notebook has at hand. Only `compile` and `train` import torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Union

from netspec.compiler.graph import Graph
from netspec.compiler.pipeline import LoadedSpec, build_graph as _build_graph, load_spec, with_variant
from netspec.errors import Diagnostic, NetspecError, SpecError

if TYPE_CHECKING:
    from torch import fx

    from netspec.compiler.diff import NetworkDiff

SpecLike = Union[str, Path, Mapping[str, Any], LoadedSpec, Graph]


def _is_text(spec: Any) -> bool:
    return isinstance(spec, str) and "\n" in spec


def load(spec: str | Path | Mapping[str, Any] | LoadedSpec, *, text: str | None = None, variant: str | None = None) -> LoadedSpec:
    """Load and validate a spec: a path, YAML text, or a dict (raises `SpecError` listing every problem).

    `load("specs/lenet.yaml")`, `load("name: t\ninput: [4]\nlayers: [relu]\n")`,
    `load({"name": "t", "input": [4], "layers": ["relu"]})`; `text=` names the text `spec`; `variant` picks a member of its
    `variants:` (default: the spec's `variant:`, else the spec as written).
    """
    if isinstance(spec, LoadedSpec):
        return spec if variant is None else with_variant(spec, variant)
    if isinstance(spec, Mapping):
        import yaml

        return load_spec("<dict>", text=yaml.safe_dump(dict(spec), sort_keys=False), variant=variant)
    if text is None and _is_text(spec):
        return load_spec("<text>", text=spec, variant=variant)  # type: ignore[arg-type]
    return load_spec(spec, text=text, variant=variant)  # type: ignore[arg-type]


def build_graph(spec: SpecLike, *, variant: str | None = None) -> Graph:
    """The shaped, counted graph IR of a spec (path, YAML text, dict, LoadedSpec or Graph),
    of its `variant` where one is named."""
    if isinstance(spec, Graph):
        return spec
    return _build_graph(load(spec, variant=variant))


def spec_files(paths: Iterable[str | Path]) -> list[Path]:
    """Spec files named directly or found (recursively) in folders, sorted."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file())
        else:
            found.append(path)
    return found


def check(paths: Iterable[str | Path] | str | Path | Mapping[str, Any], *, variant: str | None = None) -> dict[Path, list[Diagnostic] | Graph]:
    """Check files and folders (or one spec as YAML text or a dict, named `<text>`/`<dict>`);
    each maps to its graph or its diagnostics. Never raises for a bad spec.

    Without `variant`, every variant a spec declares is built too (a family member whose
    shapes do not work is an error of the file); with it, only that one.
    """
    if isinstance(paths, Mapping) or _is_text(paths):
        name = Path("<dict>" if isinstance(paths, Mapping) else "<text>")
        try:
            return {name: build_graph(paths, variant=variant)}  # type: ignore[arg-type]
        except SpecError as exc:
            return {name: exc.diagnostics}
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
    if torch.empty(0).device.type != "meta":  # a model on the meta device allocates nothing
        from netspec.compiler.budget import require_weights_fit

        require_weights_fit(graph, "the model")
    if seed is not None:
        torch.manual_seed(seed)
    return to_graph_module(graph)


def summary(spec: SpecLike, *, batch: int | None = None, optimizer: str = "sgd", amp: str | None = None) -> dict[str, Any]:
    """The layer table as data: shapes (without the batch), parameters, MACs; with `batch`,
    also the training memory plan (`memory`: params, grads, optimizer, activations, total bytes).

    Every parameter trains (specs cannot freeze any), so there is one count, `params`.
    """
    graph = build_graph(spec)
    if batch is not None:
        from netspec.compiler.memory import plan

        return {**summary(graph), "memory": plan(graph, batch, optimizer, amp).as_dict()}
    return {
        "name": graph.name,
        "input_shape": list(graph.input_shape),
        "output_shape": list(graph.output_shape),
        "params": graph.total_params,
        "macs": graph.total_macs,
        "layers": [
            {"name": n.name, "op": n.op, "output_shape": list(n.shape or ()), "params": n.params, "macs": n.macs,
             **({"shares": dict(n.meta["shares"])} if n.meta.get("shares") else {})}  # parameter -> owning layer
            for n in graph.ops()
        ],
    }


def draw(spec: SpecLike, path: str | Path, **options: Any) -> Path:
    """Render the network's diagram to `path` (.svg, .png, .pdf or .dot)."""
    from netspec.compiler.draw import render

    return render(build_graph(spec), Path(path), **options)


def diff(a: SpecLike, b: SpecLike, *, count: str = "macs", policy: str = "core") -> "NetworkDiff":
    """What changed from spec `a` to spec `b`: each may be a path, `"REV:path"` read from git,
    YAML text, a dict or a graph. `.as_dict()` gives the JSON `netspec diff` prints;
    `netspec.compiler.diff.markdown(d)` a PR comment."""
    from netspec.compiler import diff as _diff

    def side(spec: SpecLike) -> Any:  # a file or REV:path is read by diff itself
        return spec if isinstance(spec, (str, Path)) and not _is_text(spec) else build_graph(spec)

    return _diff.diff(side(a), side(b), unit=count, policy=policy)  # type: ignore[arg-type]


def train(spec: str | Path | LoadedSpec | None = None, **settings: Any) -> Any:
    """Train a spec with the CLI's trainer; returns the run (`TrainResult`: `run_dir`, `summary`,
    `history`, `model`, `config`).

    Keywords are `train:` overrides (`epochs=3`, `lr=0.1`, `**{"optimizer.momentum": 0.9}`)
    and how to run (`out`, `resume`, `device`, `data_dir`, `threads`, `compile`, `quiet`,
    `save`, ...: the fields of `RunOptions`), exactly as `netspec train SPEC --epochs 3 --out DIR`.
    """
    from dataclasses import fields

    from netspec.compiler.train_schema import TrainConfig
    from netspec.runtime.run.options import RunOptions
    from netspec.runtime.train.entry import train as run_train

    run_fields = {f.name for f in fields(RunOptions)} - set(TrainConfig.model_fields)  # amp, channels_last: train:
    options = RunOptions(**{k: settings.pop(k) for k in list(settings) if k in run_fields})
    for key in ("out", "resume", "data_dir"):
        value = getattr(options, key)
        if value is not None and not isinstance(value, Path):
            setattr(options, key, Path(value))
    return run_train(spec, settings, options)
