"""netspec's fixed cost of a run: a tiny MLP run as a fresh process against its floors.

Three commands, run in turn (order rotated each round), CPU time of the child process
(user + sys, so a busy machine does not inflate it), medians:

- `import torch`: the floor of anything that trains with PyTorch;
- a plain script: import torch, read Fashion-MNIST's IDX files, build the same MLP and
  torch.optim.SGD, one epoch on the same 256 images, evaluate 256 test images (constructing
  any torch.optim optimizer imports torch._dynamo, ~1.4 s CPU here: torch's cost, not ours);
- `netspec train specs/mlp.yaml --epochs 1 --limit 256 --test-limit 256 --threads 1`, with
  its run folder (spec, checkpoint, weights, metrics, summary, curves.png).

    python benchmarks/run_overhead.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "fashion-mnist"

PLAIN = r"""
import gzip, sys
import numpy as np, torch
from torch import nn
torch.set_num_threads(1)
def idx(name):
    raw = gzip.open(f"{sys.argv[1]}/{name}", "rb").read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return torch.from_numpy(np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape).copy())
x, y = idx("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz").long()
tx, ty = idx("t10k-images-idx3-ubyte.gz")[:256], idx("t10k-labels-idx1-ubyte.gz")[:256].long()
keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:256]
x, y = x[keep].float().div(255).reshape(-1, 784), y[keep]
net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
opt = torch.optim.SGD(net.parameters(), lr=0.1)
for i in range(0, 256, 256):
    loss = nn.functional.cross_entropy(net(x[i:i + 256]), y[i:i + 256])
    opt.zero_grad(); loss.backward(); opt.step()
with torch.no_grad():
    acc = (net(tx.float().div(255).reshape(-1, 784)).argmax(1) == ty).float().mean().item()
print(acc)
"""


def cpu_seconds(cmd: list[str], env: dict[str, str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stdout}{result.stderr}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, default=DATA)
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    work = Path(tempfile.mkdtemp(prefix="netspec-overhead-"))
    (work / "plain.py").write_text(PLAIN)
    runs = {"import torch": [], "plain PyTorch script": [], "netspec train (MLP)": []}

    def commands(i: int) -> dict[str, list[str]]:
        out = work / f"run{i}"
        return {
            "import torch": [sys.executable, "-c", "import torch"],
            "plain PyTorch script": [sys.executable, str(work / "plain.py"), str(args.data_dir)],
            "netspec train (MLP)": [
                sys.executable, "-m", "netspec", "train", "specs/mlp.yaml", "--epochs", "1", "--limit", "256", "--test-limit", "256",
                "--threads", "1", "--data-dir", str(args.data_dir), "--out", str(out), "-q",
            ],
        }

    try:
        for i in range(args.repeat + 1):  # round 0 warms the file cache and is dropped
            cmds = commands(i)
            names = list(cmds)
            names = names[i % 3:] + names[: i % 3]
            for name in names:
                t = cpu_seconds(cmds[name], env)
                if i:
                    runs[name].append(t)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"CPU seconds (user+sys) of a fresh process, median of {args.repeat}, 1 thread, torch {__import__('torch').__version__}")
    for name, v in runs.items():
        print(f"  {name:<24}{med[name]:6.2f} s   runs: {', '.join(f'{t:.2f}' for t in v)}")
    print(f"  netspec beyond the plain script: {med['netspec train (MLP)'] - med['plain PyTorch script']:+.2f} s; "
          f"beyond import torch: {med['netspec train (MLP)'] - med['import torch']:+.2f} s")


if __name__ == "__main__":
    main()
