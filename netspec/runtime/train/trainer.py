"""One training run's model, optimizer, schedule and data, and the loop over its epochs.

The step never waits for the host: loss sums, correct counts and the first non-finite batch
are kept in device tensors and read every `refresh` batches. Each epoch ends with an atomic
checkpoint (model, optimizer, scheduler, RNG states of every rank, history), so a resume
continues exactly where the last complete epoch left off.
"""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netspec.compiler.graph import Graph
from netspec.compiler.train_schema import TrainConfig
from netspec.errors import CheckpointError, Diagnostic, SpecError, TrainingError
from netspec.runtime.run import checkpoint as ckpt
from netspec.runtime.train import distributed as dist
from netspec.runtime.data.augment import Augment, build_augment
from netspec.runtime.data.batching import Batches
from netspec.runtime.train.device import DeviceSetup, to_device
from netspec.runtime.train.ema import EMA
from netspec.runtime.train.evaluation import batch_inputs, evaluate
from netspec.runtime.train.optim import build_optimizer, build_scheduler, loss_function
from netspec.runtime.run.options import RunOptions
from netspec.runtime.train.prepare import Prepared
from netspec.runtime.train.progress import Progress
from netspec.runtime.train.recipe import param_groups
from netspec.runtime.run.run_dir import RunDir

__all__ = ["EpochStats", "Trainer", "check_batch_split", "closed_form", "fit", "history_row"]

GPU_DATA_FRACTION = 0.25  # keep the dataset on the GPU when it takes at most this much free memory


@dataclass
class EpochStats:
    loss: float
    acc: float | None
    examples: int
    seconds: float
    lr: float
    grad_norms: dict[str, float] | None = None


class Trainer:
    """Model, optimizer, schedule and data of one run, and the loop over its epochs."""

    def __init__(self, graph: Graph, cfg: TrainConfig, data: Prepared, setup: DeviceSetup, ctx: dist.DistContext, options: RunOptions) -> None:
        from netspec.api import compile as compile_model

        check_batch_split(cfg, ctx.world_size)
        self.cfg, self.setup, self.ctx, self.options = cfg, setup, ctx, options
        self.device = setup.device
        self.data = self._place(data)
        self.model = compile_model(graph, seed=cfg.seed).to(self.device)
        if setup.channels_last and self.data.is_image:
            self.model = self.model.to(memory_format=torch.channels_last)
        if cfg.sync_bn and ctx.enabled:
            self.model = dist.sync_batchnorm(self.model, self.device)
        self.batches = Batches(self.data.train_x, self.data.train_y, cfg.batch_size // ctx.world_size, shuffle=True, seed=cfg.seed, rank=ctx.rank, world_size=ctx.world_size)
        self.steps = len(self.batches)
        if self.steps == 0:
            raise TrainingError(f"{len(self.data.train_x)} training examples make no batch of {cfg.batch_size}")
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.param_names = [n for n, p in self.model.named_parameters() if p.requires_grad]
        groups = param_groups(self.model, cfg.optimizer.weight_decay, cfg.no_decay_norm_bias)
        self.optimizer = build_optimizer(groups, cfg, self.device)
        self.updates = math.ceil(self.steps / cfg.accumulate)  # optimizer steps per epoch
        self.scheduler = build_scheduler(self.optimizer, cfg, self.updates)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=setup.needs_scaler)
        self.loss_fn = loss_function(cfg, self.data.num_classes, training=True)
        self.ema = EMA(self.model, cfg.ema) if cfg.ema is not None else None
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
        self._ddp = self.run_model if ctx.enabled else None
        if options.compile:
            self.run_model = torch.compile(self.run_model)
        self.eval_model = self.run_model if not ctx.enabled else self.model
        if self.ema is not None:
            self.eval_model = self.ema.module
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

    @property
    def final_model(self) -> nn.Module:
        """What the run evaluates and saves: the EMA of the weights when `ema` is set."""
        return self.ema.module if self.ema is not None else self.model

    def _no_sync(self, skip: bool) -> Any:
        """DDP's no_sync for the batches of an accumulation group before its last one."""
        return self._ddp.no_sync() if skip and self._ddp is not None else contextlib.nullcontext()

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
            **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
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
            if self.ema is not None:
                if "ema" not in state:
                    raise CheckpointError(f"{source}: the run keeps an EMA of the weights but the checkpoint holds none")
                ckpt.check_state_dict(self.ema.module, state["ema"], source)
                self.ema.load_state_dict(state["ema"])
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
    def train_epoch(self, progress: Progress) -> EpochStats:
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
        k = cfg.accumulate  # batches per optimizer step; a group never spans two epochs
        lr = self.optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        for i, (xb, yb) in enumerate(self.batches):
            yb = to_device(yb, device)
            x = batch_inputs(self.data, xb, setup)
            if self.augment.steps:
                x = self.augment(x, self.aug_gen)
            if cfg.adversarial is not None:
                x = self._adversarial(x, yb)
            group = min(k, self.steps - i + i % k)  # batches in this accumulation group
            last = i % k == group - 1
            if i % k == 0:
                self.optimizer.zero_grad(set_to_none=True)
            with self._no_sync(not last):
                with setup.autocast():
                    out = self.run_model(x)
                    loss = self.loss_fn(out, yb)
                self.scaler.scale(loss / group if group > 1 else loss).backward()
            if last:
                lr = self._update(norms)
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
            grad_norms = dict(zip(self.param_names, (norms / self.updates).tolist()))
        n = totals[2]
        return EpochStats(totals[0] / n, totals[1] / n if classify else None, int(n), seconds, lr, grad_norms)

    def _update(self, norms: torch.Tensor | None) -> float:
        """One optimizer step on the accumulated gradients (clipped, recorded), then the
        schedule and the EMA; returns the learning rate the step used."""
        if self.cfg.grad_clip is not None or norms is not None:
            self.scaler.unscale_(self.optimizer)
        if norms is not None:
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
            norms += torch.stack(torch._foreach_norm(grads)).float()
        if self.cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip, foreach=True)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update()
        return lr

    def _adversarial(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """FGSM adversarial training: the first `mix` of the batch replaced by its FGSM images.

        The perturbation uses the plain module (not DDP's wrapper), so its extra backward
        does not take part in gradient averaging; images stay in [0, 1].
        """
        from netspec.runtime.attack.attacks import PIXELS, fgsm_perturb

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


def history_row(trainer: Trainer, stats: EpochStats, val: dict[str, Any] | None, test: dict[str, Any] | None) -> dict[str, Any]:
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


def fit(
    trainer: Trainer, progress: Progress, run: RunDir | None, evaluate_test: bool = True
) -> list[dict[str, Any]]:
    """Train the remaining epochs; after each, evaluate and hand the run folder the epoch."""
    run_dir = run.path if run is not None else None
    if run is not None:
        run.open_board(trainer.cfg.model_dump(mode="json"), resumed_after=trainer.epoch)
    try:
        return _epochs(trainer, progress, run, run_dir, evaluate_test)
    finally:
        if run is not None:
            run.close_board()


def _epochs(trainer: Trainer, progress: Progress, run: RunDir | None, run_dir: Path | None, evaluate_test: bool) -> list[dict[str, Any]]:
    cfg, ctx = trainer.cfg, trainer.ctx
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
        row = history_row(trainer, stats, val, test)
        trainer.history.append(row)
        if run is not None:
            run.write_epoch(trainer.state())  # state() is a collective: every rank takes part
        progress.end_epoch(row, cfg.epochs)
    return trainer.history


def closed_form(trainer: Trainer) -> list[dict[str, Any]]:
    """Least squares on the whole training set, recorded as one 'epoch'."""
    from netspec.runtime.train.regression import solve_closed_form

    start = time.perf_counter()
    data = trainer.data
    solve_closed_form(trainer.model, data.inputs(data.train_x), data.train_y)
    seconds = time.perf_counter() - start
    train = evaluate(trainer.model, data, trainer.cfg, trainer.setup, "train")
    trainer.epoch = 1
    stats = EpochStats(train["loss"], train["acc"], len(data.train_x), seconds, 0.0)
    val = evaluate(trainer.model, data, trainer.cfg, trainer.setup, "val") if data.val_x is not None else None
    test = evaluate(trainer.model, data, trainer.cfg, trainer.setup, "test")
    trainer.history = [history_row(trainer, stats, val, test)]
    trainer.history[0]["examples_per_s"] = None
    return trainer.history


def check_batch_split(cfg: TrainConfig, world_size: int) -> None:
    if cfg.batch_size % world_size:
        raise TrainingError(
            f"batch_size {cfg.batch_size} does not split evenly over {world_size} processes; give a multiple of {world_size} with --batch-size"
        )
