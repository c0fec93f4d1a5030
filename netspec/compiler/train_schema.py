"""The `train:` section of a spec: how the network is trained, validated like the rest.

Every field can be overridden from the command line under the same name
(`netspec train spec.yaml --lr 0.1 --epochs 3`). It is plain data: the runtime reads it.
"""
from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field

from netspec.compiler.schema_base import Model


class DatasetSpec(Model):
    """Where the examples come from."""

    name: Literal["fashion_mnist", "mnist", "csv", "synthetic_regression"] = "fashion_mnist"
    path: Optional[str] = Field(None, description="csv: the file to read")
    target: Optional[str] = Field(None, description="csv: the target column")
    task: Literal["classification", "regression"] = "classification"
    true_w: list[float] = Field(default_factory=lambda: [2.0, -3.4], description="synthetic_regression: weights")
    true_b: float = Field(4.2, description="synthetic_regression: bias")
    examples: int = Field(1000, gt=0, le=10_000_000, description="synthetic_regression: number of examples")
    noise: float = Field(0.01, ge=0)


class OptimizerSpec(Model):
    """The optimiser and its hyper-parameters."""

    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)


class ScheduleSpec(Model):
    """How the learning rate changes over the run."""

    name: Literal["constant", "step", "cosine", "onecycle"] = "constant"
    step_size: int = Field(10, gt=0, description="step: epochs between decays")
    gamma: float = Field(0.1, gt=0, description="step: decay factor")


class AdversarialSpec(Model):
    """FGSM adversarial training: each batch is replaced by its FGSM perturbation with this eps."""

    eps: float = Field(gt=0, le=1)
    mix: float = Field(0.5, ge=0, le=1, description="fraction of each batch that is adversarial")


class TrainConfig(Model):
    """Training hyper-parameters; the zoo carries the textbook's."""

    dataset: Union[DatasetSpec, Literal["fashion_mnist", "mnist", "synthetic_regression"]] = "fashion_mnist"
    batch_size: int = Field(256, gt=0, le=1_000_000)
    epochs: int = Field(10, gt=0, le=100_000)
    optimizer: Union[OptimizerSpec, Literal["sgd", "adam", "adamw"]] = Field(default_factory=OptimizerSpec)
    lr: Optional[float] = Field(None, gt=0, description="shorthand for optimizer.lr")
    weight_decay: Optional[float] = Field(None, ge=0, description="shorthand for optimizer.weight_decay")
    schedule: Union[ScheduleSpec, Literal["constant", "step", "cosine", "onecycle"]] = "constant"
    loss: Literal["cross_entropy", "mse"] = "cross_entropy"
    grad_clip: Optional[float] = Field(None, gt=0)
    seed: int = 0
    resize: Optional[int] = Field(None, gt=0, le=4096, description="resize images to resize×resize")
    augment: list[dict] = Field(default_factory=list, description="e.g. [{random_crop: {padding: 4}}]")
    val_fraction: float = Field(0.0, ge=0, lt=1)
    solver: Literal["sgd", "closed_form"] = "sgd"
    adversarial: Optional[AdversarialSpec] = None
