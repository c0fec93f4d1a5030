"""Training and evaluation of a spec: `train`, `evaluate`, `evaluate_spec`.

One run = one process or one rank of a torchrun group. The data sit in memory as tensors
(on the GPU when they fit); a batch is an index slice turned into model input on the device
(`Prepared.inputs`: x/255, resize), augmented there for training only. The step never
waits for the host: loss sums, correct counts and the first non-finite batch are kept in
device tensors and read every `refresh` batches. Each epoch ends with an atomic checkpoint
(model, optimizer, scheduler, RNG states of every rank, history), so `--resume` continues
exactly where the last complete epoch left off.

The run folder (rank 0 writes it): spec.yaml (overrides applied), metrics.jsonl,
summary.json, curves.png, model.safetensors, checkpoint.pt [, grad_norms.png].
"""
from __future__ import annotations

import math
import os
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from netspec.compiler.graph import Graph
from netspec.compiler.pipeline import LoadedSpec
from netspec.compiler.train_schema import TrainConfig, plain, with_overrides
from netspec.errors import CheckpointError, Diagnostic, SpecError, TrainingError
from netspec.runtime import checkpoint as ckpt
from netspec.runtime import distributed as dist
from netspec.runtime import metrics
from netspec.runtime.augment import Augment, build_augment
from netspec.runtime.data import Batches, kfold_indices
from netspec.runtime.device import DeviceSetup, pick_device, setup as setup_device, to_device
from netspec.runtime.optim import build_optimizer, build_scheduler, loss_function
from netspec.runtime.prepare import Prepared, check_data_dir, load_test_split, prepare_data
from netspec.runtime.progress import Progress

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

SPEC_FILE = "spec.yaml"
GPU_DATA_FRACTION = 0.25  # keep the dataset on the GPU when it takes at most this much free memory


@dataclass
class RunOptions:
    """How to run (not what to train: that is the spec's `train:` section)."""

    device: str = "auto"
    amp: str | None = None
    channels_last: bool | None = None  # None: on for CUDA
    compile: bool = False
    deterministic: bool = False
    out: Path | None = None  # run folder; default runs/<spec name>/<timestamp>
    resume: Path | None = None
    data_dir: Path | None = None
    kfold: int | None = None
    grad_norms: bool = False
    save: bool = True  # write a run folder (False: train in memory only)
    quiet: bool = False
    bar: bool | None = None  # None: when stderr is a terminal
    threads: int | None = None  # CPU threads per process (torch.set_num_threads); None: torch's default


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
    if cfg.dataset.name == "csv" and cfg.dataset.path and not Path(cfg.dataset.path).is_absolute():
        anchored = Path(loaded.path).parent / cfg.dataset.path
        if not Path(cfg.dataset.path).exists() and anchored.exists():  # record the file, not the spec's folder
            merged["dataset"] = {**plain(merged["dataset"]), "path": str(anchored.resolve())}
            cfg = cfg.model_copy(update={"dataset": cfg.dataset.model_copy(update={"path": str(anchored.resolve())})})
    tree = plain(loaded.raw)
    tree["train"] = merged
    return loaded, build_graph(loaded), cfg, tree


RUN_FILES = (SPEC_FILE, ckpt.CHECKPOINT, ckpt.WEIGHTS, metrics.METRICS, metrics.SUMMARY, metrics.CURVES, metrics.GRAD_NORMS)
_HEADER = "# resolved by netspec train"


@contextmanager
def writing(path: Path, note: str = "") -> Iterator[None]:
    """Turn an OSError while writing `path` (a read-only folder, a directory in the way, a full
    disk) into one line naming the file; `note` says what was kept."""
    try:
        yield
    except OSError as exc:
        raise TrainingError(f"{path}: cannot write ({exc.strerror or exc}){note}") from None


def _new_run_dir(name: str) -> Path:
    base = Path("runs") / name / datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(1, 1000):
        candidate = base if i == 1 else base.with_name(f"{base.name}-{i}")
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            continue
        except OSError as exc:
            raise TrainingError(f"cannot create the run folder {candidate} ({exc.strerror or exc}); give a writable one with --out") from None
    raise TrainingError(f"cannot create a run folder under {base.parent}")


def _is_unfinished_run(folder: Path) -> bool:
    """A run folder of ours in which no epoch completed (safe to start again in)."""
    try:
        names = {p.name for p in folder.iterdir()}
        header = (folder / SPEC_FILE).read_text(encoding="utf-8", errors="replace")[: len(_HEADER)]
    except OSError:
        return False
    return header == _HEADER and ckpt.CHECKPOINT not in names and names <= set(RUN_FILES)


def check_out_folder(out: Path) -> None:
    """Refuse an --out that would overwrite something: a run (use --resume) or a folder of the user's own files."""
    if str(out).strip() == "":
        raise TrainingError("--out: empty folder name; give the run folder to create")
    if out.exists() and not out.is_dir():
        raise TrainingError(f"--out {out}: is a file, not a folder")
    if (out / ckpt.CHECKPOINT).exists():
        raise TrainingError(f"--out {out}: already holds a run; use --resume {out} to continue it, or another folder")
    if out.is_dir() and any(out.iterdir()) and not _is_unfinished_run(out):
        raise TrainingError(f"--out {out}: folder is not empty and not a netspec run folder; give a new folder (or --resume RUN_DIR to continue a run)")


def check_writable(run_dir: Path) -> None:
    """Before training: every file the run writes can be written (no directory in its place,
    the folder accepts files), so a finished run is never lost to a write error."""
    for name in RUN_FILES:
        if (run_dir / name).is_dir():
            raise TrainingError(f"{run_dir / name}: is a directory; the run writes a file there (move it away)")
    try:
        probe = tempfile.NamedTemporaryFile(dir=run_dir, prefix=".netspec-probe-")
        probe.close()
    except OSError as exc:
        raise TrainingError(f"{run_dir}: cannot write in the run folder ({exc.strerror or exc})") from None


def _spec_text(tree: dict[str, Any], source: str) -> str:
    return f"{_HEADER} from {source} (command-line overrides applied)\n" + yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)


def _prepare_run_dir(options: RunOptions, name: str, tree: dict[str, Any], source: str, write_spec: bool = True) -> Path:
    run_dir = options.resume or options.out
    if run_dir is None:
        run_dir = _new_run_dir(name)
    elif options.resume is None:
        check_out_folder(Path(run_dir))
        try:
            Path(run_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrainingError(f"--out {run_dir}: cannot create ({exc.strerror or exc})") from None
    run_dir = Path(run_dir)
    check_writable(run_dir)
    if write_spec:
        text = _spec_text(tree, source)
        with writing(run_dir / SPEC_FILE):
            ckpt.atomic_write(run_dir / SPEC_FILE, lambda f: f.write(text.encode()))
    return run_dir


# ------------------------------------------------------------------ evaluation
def _run_batch_inputs(data: Prepared, xb: torch.Tensor, setup: DeviceSetup) -> torch.Tensor:
    x = data.inputs(to_device(xb, setup.device))
    if setup.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Prepared,
    cfg: TrainConfig,
    setup: DeviceSetup | None = None,
    split: str = "test",
    ctx: dist.DistContext | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Mean loss and accuracy (classification) of `model` on a split, summed across ranks.

    Each rank takes a contiguous part of the split, so every example counts exactly once.
    """
    setup = setup or DeviceSetup(next(model.parameters()).device)
    ctx = ctx or dist.DistContext()
    x, y = data.split(split)
    start, stop = _part(len(x), ctx)
    bs = batch_size or cfg.batch_size
    loss_fn = loss_function(cfg, data.num_classes)
    classify = data.task == "classification"
    sums = torch.zeros(3, dtype=torch.float64, device=setup.device)  # loss·n, correct, n
    was_training = model.training
    model.eval()
    try:
        for s in range(start, stop, bs):
            xb, yb = x[s : min(s + bs, stop)], to_device(y[s : min(s + bs, stop)], setup.device)
            with setup.autocast():
                out = model(_run_batch_inputs(data, xb, setup))
            sums[0] += loss_fn(out, yb).double() * len(yb)
            if classify:
                sums[1] += (out.argmax(1) == yb).sum()
            sums[2] += len(yb)
    finally:
        model.train(was_training)
    loss_n, correct, n = dist.all_reduce_sum(sums, ctx).tolist()
    return {"loss": loss_n / n if n else math.nan, "acc": (correct / n if n else math.nan) if classify else None, "examples": int(n)}


def _part(n: int, ctx: dist.DistContext) -> tuple[int, int]:
    per, extra = divmod(n, ctx.world_size)
    start = ctx.rank * per + min(ctx.rank, extra)
    return start, start + per + (ctx.rank < extra)


# ------------------------------------------------------------------ one training run
@dataclass
class _EpochStats:
    loss: float
    acc: float | None
    examples: int
    seconds: float
    lr: float
    grad_norms: dict[str, float] | None = None


class _Trainer:
    """Model, optimizer, schedule and data of one run, and the loop over its epochs."""

    def __init__(self, graph: Graph, cfg: TrainConfig, data: Prepared, setup: DeviceSetup, ctx: dist.DistContext, options: RunOptions) -> None:
        from netspec.api import compile as compile_model

        _check_batch_split(cfg, ctx.world_size)
        self.cfg, self.setup, self.ctx, self.options = cfg, setup, ctx, options
        self.device = setup.device
        self.data = self._place(data)
        self.model = compile_model(graph, seed=cfg.seed).to(self.device)
        if setup.channels_last and self.data.is_image:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.batches = Batches(self.data.train_x, self.data.train_y, cfg.batch_size // ctx.world_size, shuffle=True, seed=cfg.seed, rank=ctx.rank, world_size=ctx.world_size)
        self.steps = len(self.batches)
        if self.steps == 0:
            raise TrainingError(f"{len(self.data.train_x)} training examples make no batch of {cfg.batch_size}")
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.param_names = [n for n, p in self.model.named_parameters() if p.requires_grad]
        self.optimizer = build_optimizer(self.params, cfg, self.device)
        self.scheduler = build_scheduler(self.optimizer, cfg, self.steps)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=setup.needs_scaler)
        self.loss_fn = loss_function(cfg, self.data.num_classes)
        try:
            self.augment: Augment = build_augment([step.as_item() for step in cfg.augment]) if self.data.is_image else Augment()
        except ValueError as exc:
            raise SpecError([Diagnostic(None, f"train.augment: {exc}")]) from None
        if cfg.augment and not self.data.is_image:
            raise SpecError([Diagnostic(None, "train.augment: augmentations apply to images; this network's input is flat")])
        # Dropout and augmentation draw from per-rank streams; weights were seeded identically above.
        torch.manual_seed(cfg.seed + 1 + ctx.rank)
        self.aug_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 7919 * (ctx.rank + 1))
        self.run_model: nn.Module = dist.wrap(self.model, ctx, self.device)
        if options.compile:
            self.run_model = torch.compile(self.run_model)
        self.eval_model = self.run_model if not ctx.enabled else self.model
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.elapsed = 0.0

    def _place(self, data: Prepared) -> Prepared:
        """On CUDA keep the dataset on the GPU when it fits comfortably; otherwise it stays on the
        host and each batch goes over through pinned memory, asynchronously (`to_device`)."""
        if self.device.type != "cuda":
            return data
        free, _ = torch.cuda.mem_get_info(self.device)
        if data.nbytes <= GPU_DATA_FRACTION * free:
            return data.to(self.device)
        return data

    # -------------------------------------------------------------- state
    def _rng_state(self) -> dict[str, Any]:
        state = {"cpu": torch.get_rng_state(), "augment": self.aug_gen.get_state().cpu()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def state(self) -> dict[str, Any]:
        """What `checkpoint.pt` holds (rank 0 writes it; every rank's RNG states are gathered)."""
        return {
            "format": 1,
            "epoch": self.epoch,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": dist.gather_objects(self._rng_state(), self.ctx),
            "history": self.history,
            "elapsed": self.elapsed,
            "seed": self.cfg.seed,
            "world_size": self.ctx.world_size,
        }

    def load(self, state: Mapping[str, Any], source: str) -> list[str]:
        """Restore a checkpoint; returns warnings (e.g. a different number of processes)."""
        warnings = []
        try:
            ckpt.check_state_dict(self.model, state["model"], source)
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            self.epoch = int(state["epoch"])
            self.history = list(state.get("history", []))
            self.elapsed = float(state.get("elapsed", 0.0))
            rngs = state["rng"]
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(f"{source}: checkpoint does not fit this run ({type(exc).__name__}: {exc})") from None
        if int(state.get("seed", self.cfg.seed)) != self.cfg.seed:
            warnings.append(f"the checkpoint was trained with seed {state['seed']}, this run says {self.cfg.seed}")
        if len(rngs) != self.ctx.world_size:
            warnings.append(
                f"resuming {len(rngs)}-process run with {self.ctx.world_size}: data order is kept, dropout/augmentation draws are not"
            )
        rng = rngs[self.ctx.rank % len(rngs)]
        torch.set_rng_state(rng["cpu"])
        self.aug_gen.set_state(rng["augment"])
        if self.device.type == "cuda" and "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        return warnings

    # -------------------------------------------------------------- the loop
    def train_epoch(self, progress: Progress) -> _EpochStats:
        cfg, setup, device = self.cfg, self.setup, self.device
        classify = self.data.task == "classification"
        self.run_model.train()
        self.batches.set_epoch(self.epoch)  # the shuffle of epoch e depends only on (seed, e)
        refresh = max(1, min(25, self.steps // 10))
        sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss·n, correct
        first_bad = torch.full((2,), -1.0, dtype=torch.float64, device=device)  # batch index, loss value
        step_no = torch.zeros((), dtype=torch.float64, device=device)
        norms = torch.zeros(len(self.params), dtype=torch.float32, device=device) if self.options.grad_norms else None
        seen = 0
        start = time.perf_counter()
        for i, (xb, yb) in enumerate(self.batches):
            yb = to_device(yb, device)
            x = _run_batch_inputs(self.data, xb, setup)
            if self.augment.steps:
                x = self.augment(x, self.aug_gen)
            if cfg.adversarial is not None:
                x = self._adversarial(x, yb)
            with setup.autocast():
                out = self.run_model(x)
                loss = self.loss_fn(out, yb)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if cfg.grad_clip is not None or norms is not None:
                self.scaler.unscale_(self.optimizer)
            if norms is not None:
                grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
                norms += torch.stack(torch._foreach_norm(grads)).float()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip, foreach=True)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            lr = self.optimizer.param_groups[0]["lr"]  # the rate this step used
            self.scheduler.step()
            with torch.no_grad():
                value = loss.detach().double()
                bad_now = (~torch.isfinite(value)) & (first_bad[0] < 0)
                first_bad.copy_(torch.where(bad_now, torch.stack([step_no, value]), first_bad))
                step_no += 1
                sums[0] += value * len(yb)
                if classify:
                    sums[1] += (out.detach().argmax(1) == yb).sum()
            seen += len(yb)
            if (i + 1) % refresh == 0 or i + 1 == self.steps:
                loss_n, correct = self._refresh(first_bad, sums)
                rate = seen * self.ctx.world_size / max(1e-9, time.perf_counter() - start)
                progress.update(i + 1, loss_n / seen, correct / seen if classify else None, rate)
        totals = dist.all_reduce_sum(torch.cat([sums, torch.tensor([float(seen)], dtype=torch.float64, device=device)]), self.ctx).tolist()
        seconds = time.perf_counter() - start
        grad_norms = None
        if norms is not None:
            grad_norms = dict(zip(self.param_names, (norms / self.steps).tolist()))
        n = totals[2]
        return _EpochStats(totals[0] / n, totals[1] / n if classify else None, int(n), seconds, lr, grad_norms)

    def _adversarial(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """FGSM adversarial training: the first `mix` of the batch replaced by its FGSM images.

        The perturbation uses the plain module (not DDP's wrapper), so its extra backward
        does not take part in gradient averaging; images stay in [0, 1].
        """
        from netspec.runtime.attack import PIXELS, fgsm_perturb

        spec = self.cfg.adversarial
        assert spec is not None
        k = round(spec.mix * len(x))
        if k == 0:
            return x
        with self.setup.autocast():
            adv = fgsm_perturb(self.model, x[:k], y[:k], spec.eps, self.loss_fn, PIXELS if self.data.is_image else None)
        return torch.cat([adv, x[k:]]) if k < len(x) else adv

    def _refresh(self, first_bad: torch.Tensor, sums: torch.Tensor) -> tuple[float, float]:
        """The one host read per refresh: this rank's (loss·n, correct) so far; raises `_NonFinite`
        on every rank together when any rank has seen a NaN or infinite loss."""
        local = torch.where(first_bad[:1] < 0, torch.full_like(first_bad[:1], math.inf), first_bad[:1])
        lowest = -dist.all_reduce_max(-local.clone(), self.ctx)
        first, mine, value, loss_n, correct = torch.cat([lowest, local, first_bad[1:], sums]).tolist()
        if math.isfinite(first):
            lr = self.optimizer.param_groups[0]["lr"]
            raise _NonFinite(self.epoch + 1, int(first) + 1, value if mine == first else math.nan, lr)
        return loss_n, correct


class _NonFinite(Exception):
    def __init__(self, epoch: int, batch: int, value: float, lr: float) -> None:
        self.epoch, self.batch, self.value, self.lr = epoch, batch, value, lr


def _row(trainer: _Trainer, stats: _EpochStats, val: dict[str, Any] | None, test: dict[str, Any] | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "epoch": trainer.epoch,
        "train_loss": stats.loss,
        "train_acc": stats.acc,
    }
    if val is not None:
        row.update(val_loss=val["loss"], val_acc=val["acc"])
    if test is not None:
        row.update(test_loss=test["loss"], test_acc=test["acc"])
    row.update(
        lr=stats.lr,
        examples_per_s=stats.examples / max(stats.seconds, 1e-9),
        seconds=stats.seconds,
        examples=stats.examples,
    )
    if stats.grad_norms is not None:
        row["grad_norms"] = stats.grad_norms
    return row


def _fit(
    trainer: _Trainer, progress: Progress, run_dir: Path | None, evaluate_test: bool = True
) -> list[dict[str, Any]]:
    """Train the remaining epochs; after each, evaluate and (rank 0) checkpoint atomically."""
    cfg, ctx = trainer.cfg, trainer.ctx
    log = metrics.MetricsLog(run_dir) if run_dir is not None and ctx.is_main else None
    while trainer.epoch < cfg.epochs:
        progress.start_epoch(trainer.epoch + 1, cfg.epochs, trainer.steps)
        try:
            stats = trainer.train_epoch(progress)
        except _NonFinite as bad:
            kind = "NaN" if math.isnan(bad.value) else "infinite"
            kept = (
                f"the last good checkpoint (epoch {trainer.epoch}) is in {run_dir}"
                if run_dir is not None and trainer.epoch > 0
                else "no checkpoint was written (no epoch completed)"
            )
            raise TrainingError(
                f"epoch {bad.epoch}, batch {bad.batch}: loss is {kind} (learning rate {bad.lr:g}); training stopped, {kept}"
            ) from None
        trainer.epoch += 1
        trainer.elapsed += stats.seconds
        val = evaluate(trainer.eval_model, trainer.data, cfg, trainer.setup, "val", ctx) if trainer.data.val_x is not None else None
        test = evaluate(trainer.eval_model, trainer.data, cfg, trainer.setup, "test", ctx) if evaluate_test else None
        row = _row(trainer, stats, val, test)
        trainer.history.append(row)
        if run_dir is not None:
            state = trainer.state()  # a collective: every rank takes part
            if ctx.is_main:
                kept = f"; the last good checkpoint is epoch {trainer.epoch - 1}" if trainer.epoch > 1 else ""
                with writing(run_dir / ckpt.CHECKPOINT, kept):
                    ckpt.save_checkpoint(run_dir / ckpt.CHECKPOINT, state)
                with writing(run_dir / ckpt.WEIGHTS):
                    ckpt.save_weights(trainer.model, run_dir / ckpt.WEIGHTS)
                assert log is not None
                with writing(log.path):
                    log.append(row)
        progress.end_epoch(row, cfg.epochs)
    return trainer.history


def _closed_form(trainer: _Trainer) -> list[dict[str, Any]]:
    """Least squares on the whole training set, recorded as one 'epoch'."""
    from netspec.runtime.regression import solve_closed_form

    start = time.perf_counter()
    data = trainer.data
    solve_closed_form(trainer.model, data.inputs(data.train_x), data.train_y)
    seconds = time.perf_counter() - start
    train = evaluate(trainer.model, data, trainer.cfg, trainer.setup, "train")
    trainer.epoch = 1
    stats = _EpochStats(train["loss"], train["acc"], len(data.train_x), seconds, 0.0)
    val = evaluate(trainer.model, data, trainer.cfg, trainer.setup, "val") if data.val_x is not None else None
    test = evaluate(trainer.model, data, trainer.cfg, trainer.setup, "test")
    trainer.history = [_row(trainer, stats, val, test)]
    trainer.history[0]["examples_per_s"] = None
    return trainer.history


# ------------------------------------------------------------------ the public entry
def _check_output(graph: Graph, data: Prepared, cfg: TrainConfig) -> None:
    out = tuple(graph.output_shape)
    if data.task == "classification":
        if out != (data.num_classes,):
            raise TrainingError(f"the network outputs {'×'.join(map(str, out))} values per example but {data.name} has {data.num_classes} class{'es' * (data.num_classes != 1)}")
    elif out != tuple(data.train_y.shape[1:]):
        raise TrainingError(f"the network outputs {'×'.join(map(str, out))} values per example but {data.name} has {data.train_y.shape[1]} targets")


def _summary(graph: Graph, cfg: TrainConfig, trainer: _Trainer, history: list[dict[str, Any]], wall: float, run_dir: Path | None) -> dict[str, Any]:
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
    if options.resume is not None:
        _check_resume(options, overrides or {})
        spec = Path(options.resume) / SPEC_FILE
    if spec is None:
        raise TrainingError("give a spec, or --resume RUN_DIR")
    loaded, graph, cfg, tree = resolve(spec, overrides)
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    ctx = dist.env_context()
    device = pick_device(options.device, ctx.local_rank)
    dist.init(ctx, device)
    try:
        return _train(loaded, graph, cfg, tree, ctx, device, options, wall)
    finally:
        dist.shutdown()


def _write_results(run_dir: Path, model: nn.Module, graph: Graph, cfg: TrainConfig, history: list[dict[str, Any]], summary: dict[str, Any], options: RunOptions) -> None:
    """After training, weights first, pictures last: a failed picture never costs the weights."""
    if cfg.solver == "closed_form":
        with writing(run_dir / ckpt.WEIGHTS):
            ckpt.save_weights(model, run_dir / ckpt.WEIGHTS)
    kept = f"; the trained weights are in {run_dir / ckpt.WEIGHTS}"
    if cfg.solver == "closed_form":
        with writing(run_dir / metrics.METRICS, kept):
            metrics.MetricsLog(run_dir).rewrite(history)
    with writing(run_dir / metrics.SUMMARY, kept):
        metrics.write_json(run_dir / metrics.SUMMARY, summary)
    with writing(run_dir / metrics.CURVES, kept):
        metrics.plot_curves(history, run_dir / metrics.CURVES, title=graph.name)
    if options.grad_norms:
        with writing(run_dir / metrics.GRAD_NORMS, kept):
            metrics.plot_grad_norms(history, run_dir / metrics.GRAD_NORMS, title=f"{graph.name}: gradient norm per layer")


def _check_batch_split(cfg: TrainConfig, world_size: int) -> None:
    if cfg.batch_size % world_size:
        raise TrainingError(
            f"batch_size {cfg.batch_size} does not split evenly over {world_size} processes; give a multiple of {world_size} with --batch-size"
        )


def precheck(
    spec: str | os.PathLike[str] | LoadedSpec | None, overrides: Mapping[str, Any] | None, options: RunOptions, world_size: int
) -> None:
    """What `train` would refuse, checked before launching `world_size` processes for it:
    the spec, the overrides, resume rules, --out, --data-dir and the batch split."""
    overrides = overrides or {}
    if options.resume is not None:
        _check_resume(options, overrides)
        spec = Path(options.resume) / SPEC_FILE
    if spec is None:
        raise TrainingError("give a spec, or --resume RUN_DIR")
    _, _, cfg, _ = resolve(spec, overrides)
    _check_batch_split(cfg, world_size)
    if options.out is not None:
        check_out_folder(Path(options.out))
    if cfg.dataset.name in ("fashion_mnist", "mnist"):
        check_data_dir(options.data_dir)


def _check_resume(options: RunOptions, overrides: Mapping[str, Any]) -> None:
    """A resume continues the run exactly as its spec.yaml records it: only more epochs may be asked for."""
    folder = Path(options.resume or "")
    if options.kfold:
        raise TrainingError("--resume and --kfold do not go together (k-fold runs keep no checkpoints)")
    if options.out is not None:
        raise TrainingError("--resume continues the run in its own folder; drop --out (copy the folder first to branch a run)")
    other = [k for k in overrides if k != "epochs"]
    if other:
        named = ", ".join(f"--{k.replace('_', '-')}" if "." not in k else f"--set {k}" for k in other)
        raise TrainingError(
            f"--resume continues the run as its {SPEC_FILE} records it; only --epochs may be changed (to train longer), not {named}; "
            "start a new run to change settings"
        )
    if not (folder / SPEC_FILE).is_file():
        raise TrainingError(f"--resume {folder}: not a run folder (no {SPEC_FILE})")
    if not (folder / ckpt.CHECKPOINT).exists():
        raise TrainingError(f"--resume {folder}: no epoch of this run completed (no {ckpt.CHECKPOINT}); start it again")


def _completed_epochs(state: Mapping[str, Any]) -> int | None:
    try:
        return int(state["epoch"])
    except (KeyError, TypeError, ValueError):
        return None  # Trainer.load reports the damage


def _train(loaded: LoadedSpec, graph: Graph, cfg: TrainConfig, tree: dict[str, Any], ctx: dist.DistContext, device: torch.device, options: RunOptions, wall: float) -> TrainResult:
    setup = setup_device(device, options.amp, options.channels_last, options.deterministic)
    data = prepare_data(cfg, options.data_dir, input_shape=graph.input_shape, spec_dir=Path(loaded.path).parent)
    _check_output(graph, data, cfg)
    if cfg.solver == "closed_form" and options.kfold:
        raise TrainingError("--kfold trains by SGD; drop it or use solver: sgd")
    _check_batch_split(cfg, ctx.world_size)  # before a run folder is made
    state: dict[str, Any] | None = None
    rewrite_spec = True
    if options.resume is not None:
        state = ckpt.load_checkpoint(options.resume)
        done = _completed_epochs(state)
        if done is not None and cfg.epochs < done:
            raise TrainingError(f"--epochs {cfg.epochs}: this run already completed {done} epochs; give more to train longer")
        recorded = with_overrides(loaded.raw.get("train") if isinstance(loaded.raw, Mapping) else None, {})[0]
        rewrite_spec = cfg.epochs != recorded.epochs  # spec.yaml changes only by what will run
    run_dir = None
    if options.save and ctx.is_main:
        run_dir = _prepare_run_dir(options, graph.name, tree, loaded.path, write_spec=rewrite_spec)
    run_dir = dist.broadcast_object(run_dir, ctx) if options.save else None
    if run_dir is not None and ctx.is_main and options.resume is None:
        with writing(run_dir / metrics.METRICS):
            metrics.MetricsLog(run_dir).rewrite([])
    progress = Progress(enabled=ctx.is_main and not options.quiet, bar=options.bar)
    if options.kfold:
        return _kfold(graph, cfg, data, setup, ctx, options, progress, run_dir, wall)

    trainer = _Trainer(graph, cfg, data, setup, ctx, options)
    if options.resume is not None:
        assert state is not None
        source = str(Path(options.resume) / ckpt.CHECKPOINT)
        for warning in trainer.load(state, source):
            progress.message(f"warning: {warning}")
        if ctx.is_main and run_dir is not None:
            with writing(run_dir / metrics.METRICS):
                metrics.MetricsLog(run_dir).rewrite(trainer.history)
        progress.message(f"resuming {run_dir} after epoch {trainer.epoch} of {cfg.epochs}")
    try:
        with progress:
            history = _closed_form(trainer) if cfg.solver == "closed_form" else _fit(trainer, progress, run_dir)
    except KeyboardInterrupt:
        if run_dir is not None and ctx.is_main and (run_dir / ckpt.CHECKPOINT).exists():
            print(f"resume with: netspec train --resume {run_dir}", file=sys.stderr, flush=True)
        raise
    summary = _summary(graph, cfg, trainer, history, time.perf_counter() - wall, run_dir)
    if run_dir is not None and ctx.is_main:
        _write_results(run_dir, trainer.model, graph, cfg, history, summary, options)
    dist.barrier(ctx)
    return TrainResult(trainer.model, history, summary, run_dir, cfg)


def _kfold(graph: Graph, cfg: TrainConfig, data: Prepared, setup: DeviceSetup, ctx: dist.DistContext, options: RunOptions, progress: Progress, run_dir: Path | None, wall: float) -> TrainResult:
    """K trainings from the same initial weights, each validated on its held-out fold."""
    k = options.kfold or 0
    try:
        folds = kfold_indices(len(data.train_x), k, cfg.seed)
    except ValueError as exc:
        raise TrainingError(f"--kfold {k}: {exc}") from None
    results, history = [], []
    trainer: _Trainer | None = None
    for i, (tr, va) in enumerate(folds, start=1):
        progress.prefix = f"fold {i}/{k}  "
        trainer = _Trainer(graph, cfg, data.with_validation(tr, va), setup, ctx, options)
        with progress:
            rows = _fit(trainer, progress, None, evaluate_test=False)
        history += [{"fold": i, **r} for r in rows]
        results.append({"fold": i, "val_loss": rows[-1]["val_loss"], "val_acc": rows[-1]["val_acc"], "train_loss": rows[-1]["train_loss"]})
    assert trainer is not None
    key = "val_acc" if data.task == "classification" else "val_loss"
    values = [r[key] for r in results]
    summary = _summary(graph, cfg, trainer, history, time.perf_counter() - wall, run_dir)
    summary.update(
        kfold=k, folds=results, **{f"{key}_mean": statistics.fmean(values), f"{key}_std": statistics.stdev(values) if k > 1 else 0.0}
    )
    if run_dir is not None and ctx.is_main:
        with writing(run_dir / metrics.METRICS):
            metrics.MetricsLog(run_dir).rewrite(history)
        with writing(run_dir / metrics.SUMMARY):
            metrics.write_json(run_dir / metrics.SUMMARY, summary)
    return TrainResult(trainer.model, history, summary, run_dir, cfg)


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
    setup = setup_device(pick_device(options.device), options.amp, options.channels_last, options.deterministic)
    data = prepare_data(cfg, options.data_dir, input_shape=graph.input_shape, spec_dir=Path(loaded.path).parent)
    _check_output(graph, data, cfg)
    model = compile_model(graph, seed=cfg.seed)
    ckpt.load_weights(model, weights)
    model = model.to(setup.device)
    if setup.channels_last and data.is_image:
        model = model.to(memory_format=torch.channels_last)
    result = evaluate(model, data, cfg, setup, split)
    return {"spec": graph.name, "weights": str(weights), "split": split, **result, "device": setup.describe()}
