"""LeNet training throughput on Fashion-MNIST (CPU): netspec's trainer against two references.

- **plain loop**: `DataLoader(TensorDataset(x, y), batch_size=256, shuffle=True)` over float
  images already in memory, the same network (D2L's LeNet, xavier init) and optimizer (SGD,
  lr 0.9), `loss.item()` once per batch: what a PyTorch user writes by hand;
- **d2l loop**: the textbook's `load_data_fashion_mnist` (a per-item Dataset that turns each
  image into a PIL image and then a tensor with ToTensor's code, 4 worker processes) and
  `train_epoch_ch3` (host reads of loss and accuracy every batch).

netspec's `Trainer` runs the same spec (specs/lenet.yaml) on the same examples; only the
training epochs are timed (no evaluation, no start-up). The three alternate, in rotated order,
for `--rounds` rounds, at each of `--threads`; the figures are medians. Both CPU time (this
process and the exited DataLoader workers, user + sys) and wall time are printed: on a busy
shared machine read the CPU-time figures at 1 thread, the wall figures need a quiet one.

    python benchmarks/train_throughput.py                         # 10,000 images, 3 rounds, 1 and 2 threads
    python benchmarks/train_throughput.py --threads 1 --rounds 5 --limit 20000
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from netspec.runtime import data as D  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fashion-mnist"
LENET = ROOT / "specs" / "lenet.yaml"


class Clock:
    """CPU seconds (this process + exited children) and wall seconds since creation."""

    def __init__(self) -> None:
        self.cpu, self.wall = self._cpu(), time.perf_counter()

    @staticmethod
    def _cpu() -> float:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    def read(self) -> tuple[float, float]:
        return self._cpu() - self.cpu, time.perf_counter() - self.wall


@dataclass
class Timing:
    examples: int = 0
    cpu: float = 0.0
    wall: float = 0.0
    rates: dict[str, float] = field(default_factory=dict)

    def add(self, examples: int, cpu: float, wall: float) -> None:
        self.examples, self.cpu, self.wall = self.examples + examples, self.cpu + cpu, self.wall + wall

    def rate(self, kind: str) -> float:
        return self.examples / (self.cpu if kind == "cpu" else self.wall)


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


def d2l_run(images: torch.Tensor, labels: torch.Tensor, epochs: int, workers: int, seed: int) -> Timing:
    """d2l.train_ch6's training part: `load_data_fashion_mnist`'s loader and `train_epoch_ch3`.

    Workers are not persistent, so each epoch's workers exit at its end and their CPU time
    is counted (RUSAGE_CHILDREN) with this process's."""
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(FashionMNISTItems(images, labels), batch_size=256, shuffle=True, num_workers=workers)
    net = reference_net()
    loss = nn.CrossEntropyLoss(reduction="none")
    updater = torch.optim.SGD(net.parameters(), lr=0.9)
    timing = Timing()
    for _ in range(epochs):
        net.train()
        metric = [0.0, 0.0, 0]
        clock = Clock()
        for X, y in loader:
            y_hat = net(X)
            l = loss(y_hat, y)
            updater.zero_grad()
            l.mean().backward()
            updater.step()
            metric[0] += float(l.sum())
            metric[1] += float((y_hat.argmax(axis=1).type(y.dtype) == y).type(y.dtype).sum())
            metric[2] += y.numel()
        timing.add(metric[2], *clock.read())
    return timing


def plain_run(images: torch.Tensor, labels: torch.Tensor, epochs: int, seed: int) -> Timing:
    """The plain PyTorch loop: DataLoader(TensorDataset(...)) over float images already in memory,
    the same network and optimizer, the loss read once per batch."""
    torch.manual_seed(seed)
    dataset = torch.utils.data.TensorDataset(images.unsqueeze(1).float().div(255), labels)
    loader = torch.utils.data.DataLoader(dataset, batch_size=256, shuffle=True)
    net = reference_net()
    updater = torch.optim.SGD(net.parameters(), lr=0.9)
    timing = Timing()
    for _ in range(epochs):
        net.train()
        total, n = 0.0, 0
        clock = Clock()
        for X, y in loader:
            l = nn.functional.cross_entropy(net(X), y)
            updater.zero_grad()
            l.backward()
            updater.step()
            total += l.item() * len(y)
            n += len(y)
        timing.add(n, *clock.read())
    return timing


# ------------------------------------------------------------------ netspec
def netspec_run(spec: Path, data_dir: Path, limit: int, epochs: int, seed: int) -> Timing:
    """netspec's Trainer on the same examples (`limit` drawn with the same seed), epochs timed alone."""
    from netspec.runtime.train.device import setup as setup_device
    from netspec.runtime.train.distributed import DistContext
    from netspec.runtime.run.options import RunOptions
    from netspec.runtime.train.prepare import prepare_data
    from netspec.runtime.train.progress import Progress
    from netspec.runtime.train.entry import resolve
    from netspec.runtime.train.trainer import Trainer

    _, graph, cfg, _ = resolve(spec, {"epochs": epochs, "limit": limit, "seed": seed, "test_limit": 256})
    data = prepare_data(cfg, data_dir, input_shape=graph.input_shape)
    trainer = Trainer(graph, cfg, data, setup_device(torch.device("cpu")), DistContext(), RunOptions(device="cpu", save=False, quiet=True))
    progress = Progress(enabled=False)
    timing = Timing()
    for _ in range(epochs):
        clock = Clock()
        stats = trainer.train_epoch(progress)
        trainer.epoch += 1
        timing.add(stats.examples, *clock.read())
    return timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=10_000, help="training images (default 10,000)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per timed run")
    parser.add_argument("--workers", type=int, default=4, help="d2l DataLoader workers (the book uses 4)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch intra-op threads (each measured)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three runs, order rotated; medians")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)  # 4 workers on 2 cores; float() of a graph tensor

    splits = D.load_dataset("fashion_mnist", args.data_dir)
    keep = torch.randperm(len(splits.train_x), generator=torch.Generator().manual_seed(args.seed))[: args.limit]
    images, labels = splits.train_x[keep, 0], splits.train_y[keep]
    runs = {
        "netspec": lambda: netspec_run(LENET, args.data_dir, args.limit, args.epochs, args.seed),
        "plain loop": lambda: plain_run(images, labels, args.epochs, args.seed),
        "d2l loop": lambda: d2l_run(images, labels, args.epochs, args.workers, args.seed),
    }
    print(f"LeNet, Fashion-MNIST, {len(labels):,} images x {args.epochs} epoch(s), batch 256, SGD lr 0.9, torch {torch.__version__}, "
          f"{args.rounds} rounds (rotated order), medians; d2l with {args.workers} workers")
    for threads in args.threads:
        torch.set_num_threads(threads)
        results: dict[str, list[Timing]] = {name: [] for name in runs}
        names = list(runs)
        for r in range(args.rounds):
            for name in names[r % 3:] + names[: r % 3]:
                results[name].append(runs[name]())
        print(f"\n{threads} thread(s)          examples/CPU-s   examples/wall-s   netspec / this (CPU, wall)")
        med = {name: {kind: statistics.median(t.rate(kind) for t in ts) for kind in ("cpu", "wall")} for name, ts in results.items()}
        for name in runs:
            ratio = f"{med['netspec']['cpu'] / med[name]['cpu']:.2f}x, {med['netspec']['wall'] / med[name]['wall']:.2f}x"
            print(f"  {name:<20}{med[name]['cpu']:>14,.0f}{med[name]['wall']:>18,.0f}   {ratio}")


if __name__ == "__main__":
    main()
