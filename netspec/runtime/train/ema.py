"""An exponential moving average of a model's weights (Polyak averaging with decay d).

After every optimizer step, every floating entry of the state dict (weights and the batch
norms' running statistics) moves towards the trained model's: ema ← d·ema + (1−d)·w; integer
entries (num_batches_tracked) are copied. The average starts at the initial weights. It is
what a run evaluates and saves when `train.ema` is set, and its state is checkpointed so a
resumed run continues the same average.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """A frozen copy of `model` whose state follows the model's as an exponential average."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay, self.source = decay, model
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self._pairs(model)

    def _pairs(self, model: nn.Module) -> None:
        ours, theirs = self.module.state_dict(keep_vars=True), model.state_dict(keep_vars=True)
        seen: set[int] = set()  # a tensor shared by two layers (`share:`) has two keys: average it once
        ours = {k: v for k, v in ours.items() if not (id(v) in seen or seen.add(id(v)))}  # type: ignore[func-returns-value]
        floats = [k for k, v in ours.items() if v.is_floating_point()]
        self._avg = [ours[k] for k in floats]
        self._src = [theirs[k] for k in floats]
        others = [k for k in ours if k not in set(floats)]
        self._copy = [(ours[k], theirs[k]) for k in others]

    @torch.no_grad()
    def update(self) -> None:
        """One step of the average towards the model's current state."""
        if self._avg:
            torch._foreach_lerp_(self._avg, self._src, 1.0 - self.decay)
        for dst, src in self._copy:
            dst.copy_(src)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
