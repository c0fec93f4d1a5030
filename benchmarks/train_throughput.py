"""LeNet training throughput on Fashion-MNIST (CPU): netspec's trainer against the textbook loop.

The reference is Dive into Deep Learning's recipe: `load_data_fashion_mnist` (a torch
DataLoader over a per-item Dataset that turns each image into a PIL image and then a float
tensor with ToTensor's code, 4 worker processes) and `train_epoch_ch3` (CrossEntropyLoss with
reduction='none', `float(l.sum())` and an accuracy count on the host every batch). netspec
keeps the uint8 images in one tensor, slices batches by index, converts per batch, and
reads its sums from the device once per refresh. Same network, initialisation, optimizer,
batch size, thread count and examples; only the training time of each epoch is counted
(netspec's evaluation is excluded, the reference does none).

    python benchmarks/train_throughput.py                  # 1 epoch on 10,000 images (< 2 min)
    python benchmarks/train_throughput.py --limit 60000 --epochs 2
    python benchmarks/train_throughput.py --full           # + netspec's test accuracy after
                                                           #   the textbook's 10 epochs on all data
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from netspec.runtime import data as D  # noqa: E402
from netspec.runtime.train import RunOptions, train  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fashion-mnist"
LENET = ROOT / "specs" / "lenet.yaml"
# ------------------------------------------------------------------ the textbook reference
def to_tensor(pic) -> torch.Tensor:
    """torchvision.transforms.ToTensor for a PIL 'L' image, as the textbook's loader runs it."""
    img = torch.from_numpy(np.array(pic, np.uint8, copy=True))
    img = img.view(pic.size[1], pic.size[0], 1).permute((2, 0, 1)).contiguous()
    return img.to(dtype=torch.get_default_dtype()).div(255)


class FashionMNISTItems(torch.utils.data.Dataset):
    """torchvision.datasets.FashionMNIST's __getitem__: uint8 tensor -> PIL image -> ToTensor."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        from PIL import Image

        img = Image.fromarray(self.images[index].numpy(), mode="L")
        return to_tensor(img), int(self.labels[index])


def reference_net() -> nn.Module:
    net = nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, 10),
    )

    def init_weights(m: nn.Module) -> None:
        if type(m) in (nn.Linear, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)

    net.apply(init_weights)
    return net


def reference_run(images: torch.Tensor, labels: torch.Tensor, epochs: int, workers: int, seed: int) -> float:
    """d2l.train_ch6's training part; returns examples/s over the timed epochs."""
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        FashionMNISTItems(images, labels), batch_size=256, shuffle=True, num_workers=workers,
        persistent_workers=workers > 0,
    )
    net = reference_net()
    loss = nn.CrossEntropyLoss(reduction="none")
    updater = torch.optim.SGD(net.parameters(), lr=0.9)
    examples, seconds = 0, 0.0
    for _ in range(epochs):
        net.train()
        metric = [0.0, 0.0, 0]
        start = time.perf_counter()
        for X, y in loader:
            y_hat = net(X)
            l = loss(y_hat, y)
            updater.zero_grad()
            l.mean().backward()
            updater.step()
            metric[0] += float(l.sum())
            metric[1] += float((y_hat.argmax(axis=1).type(y.dtype) == y).type(y.dtype).sum())
            metric[2] += y.numel()
        seconds += time.perf_counter() - start
        examples += metric[2]
    return examples / seconds


# ------------------------------------------------------------------ netspec
def netspec_run(spec: Path, data_dir: Path, limit: int, epochs: int, seed: int, test_limit: int | None = 256) -> dict:
    overrides = {"epochs": epochs, "limit": limit, "seed": seed}
    if test_limit is not None:
        overrides["test_limit"] = test_limit
    result = train(spec, overrides, RunOptions(device="cpu", quiet=True, save=False, data_dir=data_dir))
    return result.summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=10_000, help="training images (default 10,000)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--workers", type=int, default=4, help="reference DataLoader workers (d2l uses 4)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads for both (default: torch's)")
    parser.add_argument("--repeat", type=int, default=1, help="alternate the two runs this many times; best of each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true", help="also train netspec's LeNet for the textbook's 10 epochs on all 60,000 images")
    args = parser.parse_args()
    # the textbook's 4 workers on a small machine, and its float(l.sum()) on a graph tensor, warn
    warnings.filterwarnings("ignore", category=UserWarning)

    if args.threads:
        torch.set_num_threads(args.threads)
    spec = LENET
    splits = D.load_dataset("fashion_mnist", args.data_dir)
    keep = torch.randperm(len(splits.train_x), generator=torch.Generator().manual_seed(args.seed))[: args.limit]
    images, labels = splits.train_x[keep, 0], splits.train_y[keep]

    print(f"LeNet, Fashion-MNIST, {len(labels):,} training images × {args.epochs} epoch(s), batch 256, "
          f"{torch.get_num_threads()} thread(s), reference with {args.workers} DataLoader workers")
    ours, theirs = [], []
    for _ in range(args.repeat):
        theirs.append(reference_run(images, labels, args.epochs, args.workers, args.seed))
        ours.append(netspec_run(spec, args.data_dir, args.limit, args.epochs, args.seed)["examples_per_s"])
    best_ours, best_ref = max(ours), max(theirs)
    print(f"textbook loop (DataLoader + per-item ToTensor): {best_ref:10,.0f} examples/s   runs: {', '.join(f'{v:,.0f}' for v in theirs)}")
    print(f"netspec trainer (tensor slicing, on-device sums): {best_ours:10,.0f} examples/s   runs: {', '.join(f'{v:,.0f}' for v in ours)}")
    print(f"ratio: {best_ours / best_ref:.2f}x")

    if args.full:
        summary = netspec_run(spec, args.data_dir, 60_000, 10, args.seed, test_limit=None)
        print(f"netspec LeNet after 10 epochs on 60,000 images: loss {summary['train_loss']:.3f}, "
              f"train acc {summary['train_acc']:.3f}, test acc {summary['test_acc']:.3f} "
              f"({summary['examples_per_s']:,.0f} examples/s)")


if __name__ == "__main__":
    main()
