"""Per-pixel garment classes from the real Fashion-MNIST images: a segmentation task.

Fashion-MNIST has no masks, but its images are single garments on a black background, so
a per-pixel label follows from the pixels and the image's class: a pixel brighter than
`THRESHOLD` (32 of 255, ≈ 0.125) belongs to the garment and takes its class + 1
(1 = t-shirt ... 10 = ankle boot); darker pixels are background (0). A network answers with
11 scores per pixel (C×H×W logits) and is trained by per-pixel cross-entropy; it is scored
by pixel accuracy and mean intersection-over-union over the 11 classes (a class absent from
both truth and prediction is left out of the mean).

Hooks elsewhere (kept small, so the runtime's own code stays its own): the dataset name in
`train_schema.DATASETS` and `TrainConfig.task`, the loader in `prepare._load`, the output
check in `train._check_output`, and after training `train._train` adds `test_pixel_acc` and
`test_miou` to the summary and draws `segmentation.png` (image / true mask / prediction).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netspec.errors import TrainingError

NAME = "fashion_mnist_segmentation"
THRESHOLD = 32  # of 255: brighter pixels are garment
PICTURE = "segmentation.png"
GARMENTS = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot")
CLASSES = ("background", *GARMENTS)


def masks(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """uint8 N×1×H×W images and N labels -> uint8 N×H×W masks (0 background, label+1 garment)."""
    garment = images[:, 0] > THRESHOLD
    return (garment * (labels.view(-1, 1, 1) + 1)).to(torch.uint8)


def load_split(ds: Any, *, seed: int, data_dir: str | os.PathLike[str] | None, spec_dir: Any = None, download: bool = True) -> Any:
    """The loader the dataset table (netspec/datasets.py) names."""
    return load(data_dir)


def load(data_dir: str | os.PathLike[str] | None) -> Any:
    """Fashion-MNIST with per-pixel masks as targets (uint8; the loss takes them as long)."""
    from netspec.runtime import data as D

    fm = D.load_dataset("fashion_mnist", data_dir)
    return D.Splits(NAME, "segmentation", fm.train_x, masks(fm.train_x, fm.train_y), fm.test_x, masks(fm.test_x, fm.test_y), CLASSES)


def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel cross-entropy of N×C×H×W logits against N×H×W class masks."""
    return nn.functional.cross_entropy(out, y.long())


def check_output(output_shape: tuple[int, ...], masks_shape: tuple[int, ...]) -> None:
    """The network must give one score per class for every pixel of the mask."""
    wanted = (len(CLASSES), *masks_shape)
    if tuple(output_shape) != wanted:
        got = "×".join(map(str, output_shape))
        raise TrainingError(
            f"the network outputs {got} per example but {NAME} needs {'×'.join(map(str, wanted))} "
            f"({len(CLASSES)} class scores per pixel of the {'×'.join(map(str, masks_shape))} mask; input without resize)"
        )


@torch.no_grad()
def confusion(model: nn.Module, data: Any, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """K×K counts (truth row, prediction column) over every test pixel, in eval mode."""
    k = len(CLASSES)
    counts = torch.zeros(k * k, dtype=torch.int64, device=device)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(data.test_x), batch_size):
            x = data.inputs(data.test_x[start : start + batch_size].to(device))
            y = data.test_y[start : start + batch_size].to(device).long()
            pred = model(x).argmax(1)
            counts += torch.bincount((y * k + pred).flatten(), minlength=k * k)
    finally:
        model.train(was_training)
    return counts.view(k, k).cpu()


def scores(counts: torch.Tensor) -> dict[str, float]:
    """Pixel accuracy and mean IoU (classes seen in truth or prediction) from a confusion matrix."""
    counts = counts.double()
    hit = counts.diag()
    union = counts.sum(0) + counts.sum(1) - hit
    present = union > 0
    return {
        "test_pixel_acc": float(hit.sum() / counts.sum()),
        "test_miou": float((hit[present] / union[present]).mean()),
    }


def evaluate(model: nn.Module, data: Any, device: torch.device) -> dict[str, float]:
    return scores(confusion(model, data, device))


@torch.no_grad()
def draw(model: nn.Module, data: Any, device: torch.device, path: Path, count: int = 6) -> None:
    """Rows of test examples: image, true mask, predicted mask (one colour per class)."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    from netspec.runtime.run.metrics import figure, save, tight

    was_training = model.training
    model.eval()
    try:
        x = data.test_x[:count]
        pred = model(data.inputs(x.to(device))).argmax(1).cpu()
    finally:
        model.train(was_training)
    colours = ListedColormap(["black", *colormaps["tab10"].colors])
    fig = figure(4.8, 1.6 * len(x), dpi=100)
    axes = fig.subplots(len(x), 3, squeeze=False)
    for row, (image, truth, guess) in enumerate(zip(x, data.test_y[:count], pred)):
        for ax, picture, title in (
            (axes[row][0], image[0], "image"),
            (axes[row][1], truth, f"true: {CLASSES[int(truth.max())]}"),
            (axes[row][2], guess, "predicted"),
        ):
            if title == "image":
                ax.imshow(picture.numpy(), cmap="gray", vmin=0, vmax=255)
            else:
                ax.imshow(picture.numpy(), cmap=colours, vmin=0, vmax=len(CLASSES) - 1, interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.suptitle("black: background; colours: garment classes", fontsize=8)
    tight(fig)
    save(fig, path)
