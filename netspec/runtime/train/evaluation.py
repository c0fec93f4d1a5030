"""Evaluation: mean loss and accuracy of a model on a split, each rank taking its own
contiguous part so that every example counts exactly once."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from netspec.compiler.train_schema import TrainConfig
from netspec.runtime.train import distributed as dist
from netspec.runtime.train.device import DeviceSetup, to_device
from netspec.runtime.train.optim import loss_function
from netspec.runtime.train.prepare import Prepared
from netspec.runtime.train.recipe import tta_forward

__all__ = ["batch_inputs", "evaluate", "part"]


def batch_inputs(data: Prepared, xb: torch.Tensor, setup: DeviceSetup) -> torch.Tensor:
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
    start, stop = part(len(x), ctx)
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
                out = tta_forward(model, batch_inputs(data, xb, setup), cfg.tta)
            sums[0] += loss_fn(out, yb).double() * len(yb)
            if classify:
                sums[1] += (out.argmax(1) == yb).sum()
            sums[2] += len(yb)
    finally:
        model.train(was_training)
    loss_n, correct, n = dist.all_reduce_sum(sums, ctx).tolist()
    return {"loss": loss_n / n if n else math.nan, "acc": (correct / n if n else math.nan) if classify else None, "examples": int(n)}


def part(n: int, ctx: dist.DistContext) -> tuple[int, int]:
    per, extra = divmod(n, ctx.world_size)
    start = ctx.rank * per + min(ctx.rank, extra)
    return start, start + per + (ctx.rank < extra)
