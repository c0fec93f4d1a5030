"""From a spec's `train:` section to tensors the network can eat.

`prepare_data` loads the dataset the section names, carves the training subset (`limit`),
the validation split (`val_fraction`) and the test subset (`test_limit`), and checks the
examples against the network's input shape *before* anything is trained. Examples stay as
stored (uint8 images, ~47 MB for Fashion-MNIST) and `Prepared.inputs` turns a batch into
the model's input on the batch's own device: x/255, bilinear resize to the spec's H×W,
reshaping to the input shape (e.g. flat [784]). So resizing costs nothing until a batch is used, and the
whole dataset can sit on the GPU.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from netspec import datasets
from netspec.compiler.train_schema import TrainConfig
from netspec.errors import DataError
from netspec.runtime import data as D
from netspec.runtime.data import batching as B

__all__ = ["Prepared", "load_test_split", "prepare_data"]


@dataclass(frozen=True, eq=False)
class Prepared:
    """Train/val/test examples as stored, and how to turn them into model inputs.

    `size` is the H×W images are resized to (None: as stored); `reshape` makes each example
    the network's input shape (N×F rows for an input [F], features laid out as C×H×W).
    """

    name: str
    task: str  # classification | regression
    classes: tuple[str, ...]
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor | None
    val_y: torch.Tensor | None
    test_x: torch.Tensor
    test_y: torch.Tensor
    input_shape: tuple[int, ...]
    size: tuple[int, int] | None = None
    reshape: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def is_image(self) -> bool:
        return self.train_x.dim() == 4 and len(self.input_shape) == 3

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """A batch as stored -> float32 model input, on the batch's device."""
        x = D.to_float(x)
        if self.size is not None:
            x = D.resize(x, self.size)
        return x.reshape(len(x), *self.input_shape) if self.reshape else x

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = {"train": (self.train_x, self.train_y), "val": (self.val_x, self.val_y), "test": (self.test_x, self.test_y)}
        if name not in pairs or pairs[name][0] is None:
            raise DataError(f"no {name!r} split (have: {', '.join(k for k, v in pairs.items() if v[0] is not None)})")
        return pairs[name]  # type: ignore[return-value]

    def test_inputs(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """The whole test split as float model inputs (resized) and labels, on `device`."""
        return self.inputs(self.test_x.to(device)), self.test_y.to(device)

    def to(self, device: torch.device) -> "Prepared":
        """Every split moved to `device` once (through pinned memory for CUDA)."""
        from netspec.runtime.train.device import to_device

        moved = {
            k: (to_device(getattr(self, k), device) if getattr(self, k) is not None else None)
            for k in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")
        }
        return replace(self, **moved)

    @property
    def nbytes(self) -> int:
        tensors = (self.train_x, self.train_y, self.val_x, self.val_y, self.test_x, self.test_y)
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)

    def with_validation(self, train_idx: torch.Tensor, val_idx: torch.Tensor) -> "Prepared":
        """Train on train_x[train_idx], validate on train_x[val_idx] (for k-fold)."""
        x, y = self.train_x, self.train_y
        return replace(self, train_x=x[train_idx], train_y=y[train_idx], val_x=x[val_idx], val_y=y[val_idx])


def _load(cfg: TrainConfig, data_dir: str | os.PathLike[str] | None, spec_dir: Path | None) -> D.Splits:
    """The dataset's loader, as the table (netspec.datasets) names it."""
    load = datasets.get(cfg.dataset.name).load_function()
    return load(cfg.dataset, seed=cfg.seed, data_dir=data_dir, spec_dir=spec_dir)


def check_data_dir(cfg: TrainConfig, data_dir: str | os.PathLike[str] | None) -> None:
    """Before launching: a --data-dir (or $NETSPEC_DATA) that is missing or empty is a typo,
    for datasets read from local files; looking elsewhere instead would hide it."""
    if datasets.get(cfg.dataset.name).local_files:
        D.check_given_folder(data_dir)


def _fit_to_input(splits: D.Splits, cfg: TrainConfig, input_shape: tuple[int, ...]) -> tuple[tuple[int, int] | None, bool]:
    """(resize target, reshape) that turn the stored examples into `input_shape`, or a DataError.

    Images keep their channels and are resized to the input's H×W (which `resize`, when
    given, must equal); otherwise the example's values are laid out in the input's shape,
    so their number must match (a 1×28×28 image feeds an input [784]).
    """
    stored = tuple(splits.train_x.shape[1:])
    shown = "×".join(map(str, input_shape))
    what = f"{splits.name} examples are {'×'.join(map(str, stored))}"
    if hasattr(input_shape, "vocab"):  # shapes.Tokens: `input: {tokens: T, vocab: V}`
        raise DataError(f"the spec's input is {shown} token ids (vocab {input_shape.vocab}) but {what} of pixel values; "
                        "no built-in dataset gives token ids yet")
    size: tuple[int, int] | None = (cfg.resize, cfg.resize) if cfg.resize else None
    if len(stored) == 3 and len(input_shape) == 3:
        if stored[0] != input_shape[0]:
            raise DataError(f"{what} ({stored[0]} channels) but the spec's input is {shown}")
        wanted = (input_shape[1], input_shape[2])
        if size is not None and size != wanted:
            raise DataError(
                f"train.resize is {cfg.resize} but the spec's input is {shown}; "
                f"make input [{input_shape[0]}, {cfg.resize}, {cfg.resize}] or drop resize"
            )
        return (wanted if wanted != stored[1:] else None), False
    if len(stored) == 3 and size is not None:
        stored = (stored[0], *size)
    else:
        size = None
    if math.prod(stored) != math.prod(input_shape):
        raise DataError(f"{what} ({math.prod(stored)} values) but the spec's input is {shown} ({math.prod(input_shape)} values)")
    return size, stored != input_shape


def prepare_data(
    cfg: TrainConfig | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    input_shape: tuple[int, ...] | list[int] | None = None,
    spec_dir: str | os.PathLike[str] | None = None,
) -> Prepared:
    """Load the section's dataset and check it against `input_shape` (the spec's `input`).

    `data_dir` is where Fashion-MNIST/MNIST files are looked for first (then $NETSPEC_DATA,
    the user cache, system copies, and finally a download); `spec_dir` anchors a relative
    csv path. Without `input_shape` examples are used as stored (images resized to `resize`).
    """
    cfg = cfg or TrainConfig()
    splits = _load(cfg, data_dir, Path(spec_dir) if spec_dir is not None else None)
    if cfg.loss == "cross_entropy" and splits.task not in ("classification", "segmentation"):
        raise DataError(f"{splits.name} is a regression dataset; use loss: mse")
    if input_shape is None:
        stored = tuple(splits.train_x.shape[1:])
        input_shape = (stored[0], cfg.resize, cfg.resize) if cfg.resize and len(stored) == 3 else stored
    input_shape = input_shape if isinstance(input_shape, tuple) else tuple(input_shape)  # keeps shapes.Tokens
    size, reshape = _fit_to_input(splits, cfg, input_shape)

    train_x, train_y = splits.train_x, splits.train_y
    if cfg.limit is not None and cfg.limit < len(train_x):
        keep = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(cfg.seed))[: cfg.limit]
        train_x, train_y = train_x[keep], train_y[keep]
    val_x = val_y = None
    if cfg.val_fraction > 0:
        tr, va = B.train_val_split(len(train_x), cfg.val_fraction, cfg.seed)
        if len(va) == 0 or len(tr) == 0:
            raise DataError(f"val_fraction {cfg.val_fraction} of {len(train_x)} examples leaves an empty split")
        train_x, train_y, val_x, val_y = train_x[tr], train_y[tr], train_x[va], train_y[va]
    test_x, test_y = splits.test_x, splits.test_y
    if cfg.test_limit is not None:
        test_x, test_y = test_x[: cfg.test_limit], test_y[: cfg.test_limit]
    if len(train_x) == 0:
        raise DataError(f"{splits.name}: no training examples")
    if len(test_x) == 0:  # every test metric would be nan
        raise DataError(f"{splits.name}: the test split is empty ({len(splits.train_x)} training rows, 0 test rows); give it more rows")
    return Prepared(
        splits.name, splits.task, splits.classes, train_x, train_y, val_x, val_y, test_x, test_y, input_shape, size, reshape
    )


def load_test_split(
    spec: object,
    data_dir: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
    limit: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The test split of a spec's dataset as float model inputs (resized to the spec's input) and labels.

    `spec` is a path or a `LoadedSpec`; a spec without `train:` uses the defaults (Fashion-MNIST).
    """
    from netspec.api import load
    from netspec.compiler.pipeline import LoadedSpec

    loaded = spec if isinstance(spec, LoadedSpec) else load(str(spec))
    cfg = loaded.spec.train or TrainConfig()
    if limit is not None:
        cfg = cfg.model_copy(update={"test_limit": limit})
    prepared = prepare_data(cfg, data_dir, input_shape=loaded.spec.input_shape, spec_dir=Path(loaded.path).parent)
    return prepared.test_inputs(device)
