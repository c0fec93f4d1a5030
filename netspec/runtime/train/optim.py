"""Optimizer, learning-rate schedule and loss, built from a validated `TrainConfig`.

Schedules are one pure function of the step number (`lr_factor`) inside a `LambdaLR`, so a
checkpoint only needs the step count to resume them, and every schedule is stepped per
batch (step decay still changes only at epoch boundaries).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from netspec.compiler.train_schema import ScheduleSpec, TrainConfig

ONECYCLE_DIV = 25.0  # start at lr/25, like torch's OneCycleLR
ONECYCLE_FINAL_DIV = 1e4  # end at lr/25/1e4


def build_optimizer(params: Iterable[Any], cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """SGD (with momentum, Nesterov's or not), Adam or AdamW; fused kernels on CUDA, foreach
    (multi-tensor) on CPU. `params` are parameters or parameter groups (`recipe.param_groups`)."""
    spec = cfg.optimizer
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    params = list(params)
    if spec.name == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay, nesterov=spec.nesterov, **fast)
    cls = torch.optim.Adam if spec.name == "adam" else torch.optim.AdamW
    return cls(params, lr=spec.lr, weight_decay=spec.weight_decay, **fast)


def lr_factor(spec: ScheduleSpec, base_lr: float, steps_per_epoch: int, epochs: int) -> Callable[[int], float]:
    """The multiplier of the base learning rate at step t (0-based), for `LambdaLR`."""
    total = max(1, steps_per_epoch * epochs)
    warmup = spec.warmup * steps_per_epoch

    def warm(t: int) -> float:
        return min(1.0, (t + 1) / warmup) if warmup > 0 else 1.0

    if spec.name == "constant":
        return warm
    if spec.name == "step":
        return lambda t: warm(t) * spec.gamma ** (t // steps_per_epoch // spec.step_size)
    if spec.name == "cosine":
        floor = min(1.0, spec.min_lr / base_lr)

        def cosine(t: int) -> float:
            progress = min(1.0, max(0.0, (t - warmup) / max(1.0, total - warmup)))
            return warm(t) * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))

        return cosine
    # onecycle (as torch's OneCycleLR): cosine from lr/25 up to lr at step pct_start·total - 1,
    # then cosine down to lr/25/1e4 at the last step
    peak = spec.pct_start * total - 1
    start, end = 1 / ONECYCLE_DIV, 1 / ONECYCLE_DIV / ONECYCLE_FINAL_DIV

    def onecycle(t: int) -> float:
        if t <= peak:
            return end_cos(start, 1.0, t / peak if peak > 0 else 1.0)
        return end_cos(1.0, end, min(1.0, (t - peak) / max(1e-9, total - 1 - peak)))

    return onecycle


def end_cos(a: float, b: float, p: float) -> float:
    """Cosine interpolation from a (p=0) to b (p=1)."""
    return b + (a - b) * 0.5 * (1 + math.cos(math.pi * p))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    factor = lr_factor(cfg.schedule, cfg.optimizer.lr, steps_per_epoch, cfg.epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def loss_function(cfg: TrainConfig, num_classes: int, training: bool = False) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Mean loss over the batch. MSE on class labels compares with one-hot targets. Label
    smoothing is part of the training loss only: evaluation reports the plain cross-entropy."""
    if cfg.task == "segmentation":
        from netspec.runtime.data import segmentation

        return segmentation.loss
    if cfg.loss == "cross_entropy":
        if training and cfg.label_smoothing:
            return functools.partial(F.cross_entropy, label_smoothing=cfg.label_smoothing)
        return F.cross_entropy
    if cfg.task == "classification":
        return lambda out, y: F.mse_loss(out.float(), F.one_hot(y, num_classes).to(torch.float32))
    return lambda out, y: F.mse_loss(out.float(), y)
