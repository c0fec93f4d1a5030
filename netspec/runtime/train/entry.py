"""Training and evaluation of a spec: `train`, `evaluate`, `evaluate_spec`.

One run = one process or one rank of a torchrun group. The data sit in memory as tensors
(on the GPU when they fit); a batch is an index slice turned into model input on the device
(`Prepared.inputs`: x/255, resize), augmented there for training only. This module resolves
the spec, sets up the device, data and run folder, and drives a `Trainer` (trainer.py) or
k of them (--kfold); the run folder lives in run_dir.py, resume rules in resume.py and
evaluation in evaluation.py.
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netspec import datasets
from netspec.compiler.graph import Graph
from netspec.compiler.pipeline import LoadedSpec
from netspec.compiler.train_schema import TrainConfig, plain, with_overrides
from netspec.errors import TrainingError
from netspec.runtime.run import checkpoint as ckpt
from netspec.runtime.train import distributed as dist
from netspec.runtime.run.autoresume import AUTO, decide
from netspec.runtime.data.batching import kfold_indices
from netspec.runtime.train.device import DeviceSetup, pick_device, setup as setup_device
from netspec.runtime.train.evaluation import evaluate
from netspec.runtime.run.options import RunOptions
from netspec.runtime.train.prepare import Prepared, check_data_dir, load_test_split, prepare_data
from netspec.runtime.train.progress import Progress
from netspec.runtime.train.recipe import check_cpu_bf16, pick_amp
from netspec.runtime.run.resume import check_resume, load_resume_state
from netspec.runtime.run.run_dir import SPEC_FILE, RunDir, RunInterrupted, check_out_folder, writing
from netspec.runtime.train.trainer import Trainer, check_batch_split, closed_form, fit

__all__ = [
    "RunOptions",
    "TrainResult",
    "evaluate",
    "evaluate_spec",
    "load_test_split",
    "prepare_data",
    "resolve",
    "train",
]


@dataclass
class TrainResult:
    """The trained (unwrapped) model, the per-epoch rows and the summary."""

    model: nn.Module
    history: list[dict[str, Any]]
    summary: dict[str, Any]
    run_dir: Path | None = None
    config: TrainConfig | None = None


# ------------------------------------------------------------------ spec + overrides
def resolve(
    spec: str | os.PathLike[str] | LoadedSpec, overrides: Mapping[str, Any] | None = None
) -> tuple[LoadedSpec, Graph, TrainConfig, dict[str, Any]]:
    """Load a spec, apply `{field: value}` overrides to its train section, build the graph.

    Returns (spec, graph, config, resolved YAML tree with the overrides in `train:`).
    """
    from netspec.api import build_graph, load

    loaded = spec if isinstance(spec, LoadedSpec) else load(Path(spec))
    section = loaded.raw.get("train") if isinstance(loaded.raw, Mapping) else None
    cfg, merged = with_overrides(section, overrides or {})
    if datasets.get(cfg.dataset.name).needs_path and cfg.dataset.path and not Path(cfg.dataset.path).is_absolute():
        anchored = Path(loaded.path).parent / cfg.dataset.path
        if not Path(cfg.dataset.path).exists() and anchored.exists():  # record the file, not the spec's folder
            merged["dataset"] = {**plain(merged["dataset"]), "path": str(anchored.resolve())}
            cfg = cfg.model_copy(update={"dataset": cfg.dataset.model_copy(update={"path": str(anchored.resolve())})})
    tree = plain(loaded.raw)
    tree["train"] = merged
    if loaded.variant is not None:  # the run folder's spec.yaml builds the same variant
        tree["variant"] = loaded.variant
    return loaded, build_graph(loaded), cfg, tree



# ------------------------------------------------------------------ the public entry
def _check_output(graph: Graph, data: Prepared, cfg: TrainConfig) -> None:
    out = tuple(graph.output_shape)
    if data.task == "segmentation":
        from netspec.runtime.data import segmentation

        return segmentation.check_output(out, tuple(data.train_y.shape[1:]))
    if data.task == "classification":
        if out != (data.num_classes,):
            raise TrainingError(f"the network outputs {'×'.join(map(str, out))} values per example but {data.name} has {data.num_classes} class{'es' * (data.num_classes != 1)}")
    elif out != tuple(data.train_y.shape[1:]):
        raise TrainingError(f"the network outputs {'×'.join(map(str, out))} values per example but {data.name} has {data.train_y.shape[1]} targets")


def _summary(graph: Graph, cfg: TrainConfig, trainer: Trainer, history: list[dict[str, Any]], wall: float, run_dir: Path | None) -> dict[str, Any]:
    last = history[-1] if history else {}
    trained = [r for r in history if r.get("seconds")]
    examples = sum(r.get("examples", 0) for r in trained)
    seconds = sum(r["seconds"] for r in trained)
    return {
        "spec": graph.name,
        "run_dir": str(run_dir) if run_dir else None,
        "epochs": trainer.epoch,
        "train_loss": last.get("train_loss"),
        "train_acc": last.get("train_acc"),
        "val_acc": last.get("val_acc"),
        "val_loss": last.get("val_loss"),
        "test_loss": last.get("test_loss"),
        "test_acc": last.get("test_acc"),
        "examples_per_s": examples / seconds if seconds and cfg.solver == "sgd" else None,
        "params": graph.total_params,
        "device": trainer.setup.describe(),
        "processes": trainer.ctx.world_size,
        "solver": cfg.solver,
        "train_seconds": trainer.elapsed,
        "wall_seconds": wall,
    }


def train(
    spec: str | os.PathLike[str] | LoadedSpec | None = None,
    overrides: Mapping[str, Any] | None = None,
    options: RunOptions | None = None,
) -> TrainResult:
    """Train a spec as its `train:` section says (with `overrides`), under torchrun or alone.

    `options.resume` continues a run folder (its spec.yaml, plus any overrides, e.g. more
    epochs). Raises `TrainingError` for a NaN/infinite loss naming the epoch and batch,
    `CheckpointError` for a damaged or mismatched checkpoint, `DataError`/`SpecError` for
    bad data or settings.
    """
    options = options or RunOptions()
    wall = time.perf_counter()
    if options.resume is not None and str(options.resume) == AUTO:
        spec, overrides, options = decide(spec, overrides or {}, options)
    if options.resume is not None:
        check_resume(options, overrides or {})
        spec = Path(options.resume) / SPEC_FILE
    if spec is None:
        raise TrainingError("give a spec, or --resume RUN_DIR")
    loaded, graph, cfg, tree = resolve(spec, overrides)
    from netspec.compiler.budget import require_training_fits, training_optimizer

    require_training_fits(graph, cfg.batch_size, training_optimizer(cfg.optimizer), options.amp)  # before any allocation
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    ctx = dist.env_context()
    device = pick_device(options.device, ctx.local_rank)
    dist.init(ctx, device)
    try:
        return _train(loaded, graph, cfg, tree, ctx, device, options, wall)
    except RuntimeError as exc:
        if ctx.enabled and dist.is_peer_loss(exc):
            raise dist.PeerLost(f"rank {ctx.rank}: another process of the run stopped; this one stops too ({str(exc).splitlines()[0][:160]})") from None
        raise
    finally:
        dist.shutdown()



def precheck(
    spec: str | os.PathLike[str] | LoadedSpec | None, overrides: Mapping[str, Any] | None, options: RunOptions, world_size: int
) -> None:
    """What `train` would refuse, checked before launching `world_size` processes for it:
    the spec, the overrides, resume rules, --out, --data-dir and the batch split."""
    overrides = overrides or {}
    if options.resume is not None and str(options.resume) == AUTO:
        spec, overrides, options = decide(spec, overrides, options)
    if options.resume is not None:
        check_resume(options, overrides)
        spec = Path(options.resume) / SPEC_FILE
    if spec is None:
        raise TrainingError("give a spec, or --resume RUN_DIR")
    _, graph, cfg, _ = resolve(spec, overrides)
    check_batch_split(cfg, world_size)
    if cfg.sync_bn and world_size > 1 and pick_device(options.device).type != "cuda":
        dist.sync_batchnorm(None, torch.device("cpu"))  # refuses, naming why
    device = options.device.strip().lower()
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):  # no CUDA set up in the launcher
        _amp(graph, cfg, options, torch.device("cpu"))  # refuses bf16 autocast where torch cannot run it
    if options.out is not None:
        check_out_folder(Path(options.out))
    check_data_dir(cfg, options.data_dir)



def _amp(graph: Graph, cfg: TrainConfig, options: RunOptions, device: torch.device) -> str | None:
    """The autocast choice, RunOptions over the spec's `train:`, refused where this machine cannot run it."""
    amp = pick_amp(options.amp if options.amp is not None else cfg.amp, device)
    check_cpu_bf16(graph, amp, device)
    return amp


def _setup(device: torch.device, cfg: TrainConfig, options: RunOptions, graph: Graph) -> DeviceSetup:
    """Autocast and memory format: RunOptions (the Python API's) over the spec's `train:`."""
    amp = _amp(graph, cfg, options, device)
    channels_last = options.channels_last if options.channels_last is not None else cfg.channels_last
    return setup_device(device, amp, channels_last, options.deterministic)


def _train(loaded: LoadedSpec, graph: Graph, cfg: TrainConfig, tree: dict[str, Any], ctx: dist.DistContext, device: torch.device, options: RunOptions, wall: float) -> TrainResult:
    setup = _setup(device, cfg, options, graph)
    data = prepare_data(cfg, options.data_dir, input_shape=graph.input_shape, spec_dir=Path(loaded.path).parent)
    _check_output(graph, data, cfg)
    if cfg.solver == "closed_form" and options.kfold:
        raise TrainingError("--kfold trains by SGD; drop it or use solver: sgd")
    check_batch_split(cfg, ctx.world_size)  # before a run folder is made
    state: dict[str, Any] | None = None
    rewrite_spec = True
    if options.resume is not None:
        state, rewrite_spec = load_resume_state(options, loaded, cfg)
    run: RunDir | None = None
    if options.save and ctx.is_main:
        if options.resume is not None:
            run = RunDir.reopen(Path(options.resume), tree if rewrite_spec else None, loaded.path)
        else:
            run = RunDir.create(options, graph.name, tree, loaded.path)
    if options.save and not ctx.is_main:
        run = RunDir(dist.broadcast_object(None, ctx), writes=False)
    elif options.save:
        dist.broadcast_object(run.path if run is not None else None, ctx)
    run_dir = run.path if run is not None else None
    progress = Progress(enabled=ctx.is_main and not options.quiet, bar=options.bar)
    if options.kfold:
        return _kfold(graph, cfg, data, setup, ctx, options, progress, run, wall)

    trainer = Trainer(graph, cfg, data, setup, ctx, options)
    if options.resume is not None:
        assert state is not None
        source = str(Path(options.resume) / ckpt.CHECKPOINT)
        for warning in trainer.load(state, source):
            progress.message(f"warning: {warning}")
        if run is not None:
            run.restore(state, cfg.epochs)
        progress.message(f"resuming {run_dir} after epoch {trainer.epoch} of {cfg.epochs}")
    try:
        with progress:
            history = closed_form(trainer) if cfg.solver == "closed_form" else fit(trainer, progress, run)
        summary = _summary(graph, cfg, trainer, history, time.perf_counter() - wall, run_dir)
        if data.task == "segmentation" and ctx.is_main:  # pixel accuracy, mean IoU, a picture (runtime/segmentation.py)
            from netspec.runtime.data import segmentation

            summary.update(segmentation.evaluate(trainer.final_model, trainer.data, setup.device))
            if run is not None:  # before summary.json, which marks the run finished
                with writing(run.file(segmentation.PICTURE)):
                    segmentation.draw(trainer.final_model, trainer.data, setup.device, run.file(segmentation.PICTURE))
        if run is not None:
            run.finish(trainer.final_model, graph, cfg, history, summary, options.grad_norms)
    except KeyboardInterrupt:
        raise RunInterrupted(run_dir, run is not None and run.resumable) from None
    dist.barrier(ctx)
    return TrainResult(trainer.final_model, history, summary, run_dir, cfg)


def _kfold(graph: Graph, cfg: TrainConfig, data: Prepared, setup: DeviceSetup, ctx: dist.DistContext, options: RunOptions, progress: Progress, run: RunDir | None, wall: float) -> TrainResult:
    """K trainings from the same initial weights, each validated on its held-out fold."""
    k = options.kfold or 0
    try:
        folds = kfold_indices(len(data.train_x), k, cfg.seed)
    except ValueError as exc:
        raise TrainingError(f"--kfold {k}: {exc}") from None
    results, history = [], []
    trainer: Trainer | None = None
    for i, (tr, va) in enumerate(folds, start=1):
        progress.prefix = f"fold {i}/{k}  "
        trainer = Trainer(graph, cfg, data.with_validation(tr, va), setup, ctx, options)
        with progress:
            rows = fit(trainer, progress, None, evaluate_test=False)
        history += [{"fold": i, **r} for r in rows]
        results.append({"fold": i, "val_loss": rows[-1]["val_loss"], "val_acc": rows[-1]["val_acc"], "train_loss": rows[-1]["train_loss"]})
    assert trainer is not None
    key = "val_acc" if data.task == "classification" else "val_loss"
    values = [r[key] for r in results]
    run_dir = run.path if run is not None else None
    summary = _summary(graph, cfg, trainer, history, time.perf_counter() - wall, run_dir)
    summary.update(
        kfold=k, folds=results, **{f"{key}_mean": statistics.fmean(values), f"{key}_std": statistics.stdev(values) if k > 1 else 0.0}
    )
    if run is not None:
        run.finish_kfold(history, summary)
    return TrainResult(trainer.final_model, history, summary, run_dir, cfg)


# ------------------------------------------------------------------ eval of saved weights
def evaluate_spec(
    spec: str | os.PathLike[str] | LoadedSpec,
    weights: str | os.PathLike[str],
    overrides: Mapping[str, Any] | None = None,
    options: RunOptions | None = None,
    split: str = "test",
) -> dict[str, Any]:
    """Load `weights` (run folder or .safetensors) into the spec's network and evaluate a split."""
    from netspec.api import compile as compile_model

    options = options or RunOptions()
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    loaded, graph, cfg, _ = resolve(spec, overrides)
    setup = _setup(pick_device(options.device), cfg, options, graph)
    data = prepare_data(cfg, options.data_dir, input_shape=graph.input_shape, spec_dir=Path(loaded.path).parent)
    _check_output(graph, data, cfg)
    model = compile_model(graph, seed=cfg.seed)
    ckpt.load_weights(model, weights)
    model = model.to(setup.device)
    if setup.channels_last and data.is_image:
        model = model.to(memory_format=torch.channels_last)
    result = evaluate(model, data, cfg, setup, split)
    if data.task == "segmentation" and split == "test":
        from netspec.runtime.data import segmentation

        result.update(segmentation.evaluate(model, data, setup.device))
    return {"spec": graph.name, "weights": str(weights), "split": split, **result, "device": setup.describe()}
