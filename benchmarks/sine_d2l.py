"""D2L 9.1's sine-wave MLP: netspec's run of specs/sine_mlp.yaml against the book's own loop.

For each seed both train on the same series (netspec's `sine_wave`, seeded), the book's way
being its code verbatim: `get_net()` (tests/twins_series.py), a shuffled DataLoader of batch
16, Adam lr 0.01, `nn.MSELoss(reduction='none')` with `l.sum().backward()`, 5 epochs. Printed:
the training MSE after epoch 5 (the book's `evaluate_loss(net, train_iter, loss)`, what it
prints as `epoch 5, loss: ...`) and the test MSE of the 396 later examples, per seed and median.

    python benchmarks/sine_d2l.py --seeds 5
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
from twins_series import sine_mlp  # noqa: E402

from netspec.runtime.data.synthetic import sine_wave  # noqa: E402
from netspec.runtime.train.entry import RunOptions, train  # noqa: E402
from netspec.runtime.train.evaluation import evaluate  # noqa: E402
from netspec.runtime.train.prepare import prepare_data  # noqa: E402

SPEC = ROOT / "specs" / "sine_mlp.yaml"


def book(seed: int) -> tuple[float, float]:
    """The book's training loop on the seed's series: (train MSE, test MSE) after 5 epochs."""
    data = sine_wave(seed=seed)
    torch.manual_seed(seed)
    net = sine_mlp()
    loader = DataLoader(TensorDataset(data.train_x, data.train_y), batch_size=16, shuffle=True)
    loss = nn.MSELoss(reduction="none")
    trainer = torch.optim.Adam(net.parameters(), 0.01)
    for _ in range(5):
        for X, y in loader:
            trainer.zero_grad()
            l = loss(net(X), y)
            l.sum().backward()
            trainer.step()
    with torch.no_grad():
        return loss(net(data.train_x), data.train_y).mean().item(), loss(net(data.test_x), data.test_y).mean().item()


def ours(seed: int) -> tuple[float, float]:
    result = train(SPEC, {"seed": seed}, RunOptions(device="cpu", quiet=True, save=False))
    data = prepare_data(result.config, input_shape=(4,))
    return evaluate(result.model, data, result.config, split="train")["loss"], result.summary["test_loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [(s, *ours(s), *book(s)) for s in range(args.seeds)]
    print(f"D2L 9.1 sine MLP, 5 epochs, torch {torch.__version__}; MSE (no 1/2), noise variance 0.04")
    print(f"{'seed':>4}  {'netspec train':>13}  {'netspec test':>12}  {'book loop train':>15}  {'book loop test':>14}")
    for s, a, b, c, d in rows:
        print(f"{s:>4}  {a:13.4f}  {b:12.4f}  {c:15.4f}  {d:14.4f}")
    med = [statistics.median(r[i] for r in rows) for i in range(1, 5)]
    print(f"{'med':>4}  {med[0]:13.4f}  {med[1]:12.4f}  {med[2]:15.4f}  {med[3]:14.4f}")


if __name__ == "__main__":
    main()
