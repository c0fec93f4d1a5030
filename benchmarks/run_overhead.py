"""netspec's fixed cost of a run: a tiny MLP run as a fresh process against its floors.

Four commands, run in turn (order rotated each round), CPU time of the child process
(user + sys, so a busy machine does not inflate it much), medians, and the median of the
per-round differences (paired: both runs of a round saw the same machine):

- `import torch`: the floor of anything that trains with PyTorch;
- a plain script: import torch, read Fashion-MNIST's IDX files, build the same MLP and
  torch.optim.SGD, one epoch on the same 256 images, evaluate 256 test images (constructing
  any torch.optim optimizer imports torch._dynamo, ~1.1 s CPU here: torch's cost, not ours);
- the same plain script drawing the same curves.png with matplotlib (what a script that
  keeps netspec's picture pays);
- `netspec train specs/mlp.yaml --epochs 1 --limit 256 --test-limit 256 --threads 1`, with
  its run folder (spec, checkpoint, weights, metrics, summary, TensorBoard events, curves.png).

netspec's modules are byte-compiled first (`compileall`), as an installed package is: where
PYTHONDONTWRITEBYTECODE is set, a source checkout would otherwise compile every module of
netspec from source in every run, a cost no installed copy pays.

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

# the same picture netspec draws (netspec/runtime/run/metrics.py: Figure on the Agg canvas, tight layout)
PICTURE = r"""
import io
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
fig = Figure(figsize=(9, 3.5), dpi=120); FigureCanvasAgg(fig)
loss_ax, acc_ax = fig.subplots(1, 2)
for ax, what, value in ((loss_ax, "loss", loss.item()), (acc_ax, "accuracy", acc)):
    ax.plot([1], [value], "-", marker="o", label=f"test {what}"); ax.set_xlabel("epoch"); ax.set_ylabel(what)
    ax.set_title(what); ax.grid(True, alpha=0.3); ax.legend()
fig.suptitle("mlp"); fig.tight_layout(); fig.set_layout_engine(None)
buffer = io.BytesIO(); fig.savefig(buffer, format="png")
open(sys.argv[2], "wb").write(buffer.getvalue())
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
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "netspec")], check=True, capture_output=True)
    work = Path(tempfile.mkdtemp(prefix="netspec-overhead-"))
    (work / "plain.py").write_text(PLAIN)
    (work / "plain_picture.py").write_text(PLAIN + PICTURE)
    names = ["import torch", "plain PyTorch script", "plain script + curves.png", "netspec train (MLP)"]
    runs: dict[str, list[float]] = {name: [] for name in names}

    def commands(i: int) -> dict[str, list[str]]:
        out = work / f"run{i}"
        return {
            "import torch": [sys.executable, "-c", "import torch"],
            "plain PyTorch script": [sys.executable, str(work / "plain.py"), str(args.data_dir)],
            "plain script + curves.png": [sys.executable, str(work / "plain_picture.py"), str(args.data_dir), str(work / f"curves{i}.png")],
            "netspec train (MLP)": [
                sys.executable, "-m", "netspec", "train", "specs/mlp.yaml", "--epochs", "1", "--limit", "256", "--test-limit", "256",
                "--threads", "1", "--data-dir", str(args.data_dir), "--out", str(out), "-q",
            ],
        }

    try:
        for i in range(args.repeat + 1):  # round 0 warms the file cache and is dropped
            cmds = commands(i)
            order = names[i % len(names):] + names[: i % len(names)]
            for name in order:
                t = cpu_seconds(cmds[name], env)
                if i:
                    runs[name].append(t)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    ours = runs["netspec train (MLP)"]

    def paired(name: str) -> float:
        return statistics.median(a - b for a, b in zip(ours, runs[name]))

    print(f"CPU seconds (user+sys) of a fresh process, median of {args.repeat}, 1 thread, torch {__import__('torch').__version__}")
    for name, v in runs.items():
        print(f"  {name:<28}{med[name]:6.2f} s   runs: {', '.join(f'{t:.2f}' for t in v)}")
    print("  netspec beyond (median of the paired per-round differences):")
    for name in names[:-1]:
        print(f"    {name:<26}{paired(name):+6.2f} s")


if __name__ == "__main__":
    main()
