"""A dataset in memory: the tensors every loader returns."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["Splits"]


@dataclass(frozen=True, eq=False)
class Splits:
    """A dataset in memory: train and test tensors plus what the model needs to know.

    Images are uint8 N×C×H×W (convert per batch with `to_float`), class labels int64 N,
    regression targets float32 N×1. Tensors may be shared between loads of the same
    files in one process: treat them as read-only (indexing a batch copies anyway).
    """

    name: str
    task: str  # "classification" | "regression"
    train_x: torch.Tensor = field(repr=False)
    train_y: torch.Tensor = field(repr=False)
    test_x: torch.Tensor = field(repr=False)
    test_y: torch.Tensor = field(repr=False)
    classes: tuple[str, ...] = field(default=(), repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, without the batch dimension."""
        return tuple(self.train_x.shape[1:])

    def __repr__(self) -> str:
        return (
            f"Splits({self.name!r}, {self.task}, train={tuple(self.train_x.shape)}, "
            f"test={tuple(self.test_x.shape)}, classes={self.num_classes})"
        )
