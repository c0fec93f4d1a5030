"""D2L's LeNet (and LeNet + batch norm): netspec's run of the spec against the book's own code.

The book's code is d2l-en 0.17's `train_ch6` as printed: the network of tests/twins.py, every
Conv2d and Linear weight re-drawn with `xavier_uniform_`, plain SGD, `nn.CrossEntropyLoss()`,
a shuffled DataLoader of batch 256 over the pixels scaled to [0, 1] (the book's `ToTensor`),
the last partial batch kept, `net.eval()` for the test accuracy. Both read the same real
Fashion-MNIST and start from `torch.manual_seed(seed)`; seeds are run one after the other, the
book's loop and netspec alternating. What it answers: does netspec's run of the spec give what
the book's code gives on this machine — whatever the book printed for its one run on a GPU.

    python benchmarks/lenet_d2l.py --spec lenet --seeds 0 1 2 3 4 5 6 --data-dir ../shared/data
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import twins  # noqa: E402

from netspec.runtime.data.idx import load_dataset  # noqa: E402
from netspec.runtime.train.entry import RunOptions, train  # noqa: E402

SETTINGS = {"lenet": (twins.lenet, 0.9), "lenet_bn": (twins.lenet_bn, 1.0)}  # D2L 7.6 and 8.5: lr


def book(spec: str, seed: int, data_dir: str | None, epochs: int) -> dict[str, float]:
    """`d2l.train_ch6(net, train_iter, test_iter, num_epochs, lr, device)` on the CPU."""
    build, lr = SETTINGS[spec]
    splits = load_dataset("fashion_mnist", data_dir, download=False)
    train_x, test_x = splits.train_x.float() / 255, splits.test_x.float() / 255
    torch.manual_seed(seed)
    net = build()

    def init_weights(m: nn.Module) -> None:
        if type(m) == nn.Linear or type(m) == nn.Conv2d:  # noqa: E721 (the book's test)
            nn.init.xavier_uniform_(m.weight)

    net.apply(init_weights)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss = nn.CrossEntropyLoss()
    train_iter = DataLoader(TensorDataset(train_x, splits.train_y), batch_size=256, shuffle=True)
    for _ in range(epochs):
        total_loss = total_correct = total = 0.0
        net.train()
        for X, y in train_iter:
            optimizer.zero_grad()
            y_hat = net(X)
            l = loss(y_hat, y)
            l.backward()
            optimizer.step()
            with torch.no_grad():
                total_loss += l.item() * X.shape[0]
                total_correct += (y_hat.argmax(1) == y).sum().item()
                total += X.shape[0]
    net.eval()
    with torch.no_grad():
        correct = sum((net(test_x[i:i + 256]).argmax(1) == splits.test_y[i:i + 256]).sum().item()
                      for i in range(0, len(test_x), 256))
    return {"train_loss": total_loss / total, "train_acc": total_correct / total, "test_acc": correct / len(test_x)}


def ours(spec: str, seed: int, data_dir: str | None, epochs: int) -> dict[str, float]:
    result = train(ROOT / "specs" / f"{spec}.yaml", {"seed": seed, "epochs": epochs},
                   RunOptions(device="cpu", quiet=True, save=False, data_dir=data_dir))
    return {k: result.summary[k] for k in ("train_loss", "train_acc", "test_acc")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", choices=sorted(SETTINGS), default="lenet")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for n, seed in enumerate(args.seeds):  # alternate which runs first
        pair = [("book", book), ("netspec", ours)]
        done = dict((name, run(args.spec, seed, args.data_dir, args.epochs)) for name, run in (pair if n % 2 == 0 else pair[::-1]))
        rows.append((seed, done["netspec"], done["book"]))
        print(f"seed {seed}: netspec {done['netspec']}  book's code {done['book']}", flush=True)
    print(f"{args.spec}, {args.epochs} epochs, CPU, 1 thread, torch {torch.__version__}")
    print(f"{'seed':>4}  {'netspec loss / train / test':>28}  {'book code loss / train / test':>30}")
    for seed, a, b in rows:
        print(f"{seed:>4}  {a['train_loss']:8.3f} {a['train_acc']:8.3f} {a['test_acc']:8.3f}    "
              f"{b['train_loss']:8.3f} {b['train_acc']:8.3f} {b['test_acc']:8.3f}")
    for label, index in (("mean", statistics.mean), ("min", min), ("max", max)):
        a = [index(r[1][k] for r in rows) for k in ("train_loss", "train_acc", "test_acc")]
        b = [index(r[2][k] for r in rows) for k in ("train_loss", "train_acc", "test_acc")]
        print(f"{label:>4}  {a[0]:8.3f} {a[1]:8.3f} {a[2]:8.3f}    {b[0]:8.3f} {b[1]:8.3f} {b[2]:8.3f}")


if __name__ == "__main__":
    main()
