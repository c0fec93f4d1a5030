"""Throughput of `netspec attack` on the zoo's LeNet: FGSM and PGD against a clean forward pass.

Weights are random and inputs are random uint8 images of the spec's input shape: the cost
of a pass does not depend on them. The clean forward (x/255, then the network, no grad) is
measured in the same run, so the printed ratios say what an attack costs in forward-pass
units on any machine: FGSM is one forward+backward for the gradient (which also yields the
clean predictions) plus one forward per ε; PGD-k is k forward+backward passes plus one
forward per ε. `--spec` measures another zoo network.

    python benchmarks/attack_throughput.py                 # CPU, one thread, ~25 s
    python benchmarks/attack_throughput.py --device cuda --examples 20000
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

import netspec
from netspec.runtime.attack.attacks import evaluate_attack
from netspec.runtime.data import to_float

ZOO_LENET = Path(__file__).resolve().parents[1] / "specs" / "lenet.yaml"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(run: Callable[[], object], examples: int, device: torch.device, repeats: int) -> float:
    """Median examples/s over `repeats` timed runs after one warm-up run."""
    run()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        _sync(device)
        times.append(time.perf_counter() - start)
    return examples / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=ZOO_LENET, help="the network (random weights)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--examples", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pgd-steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads; 1 by default for stable figures on shared cores (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    graph = netspec.build_graph(args.spec)
    model = netspec.compile(graph, seed=0).to(device).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (args.examples, *graph.input_shape), dtype=torch.uint8, generator=g)
    y = torch.randint(0, graph.output_shape[0], (args.examples,), generator=g)
    n, bs = args.examples, args.batch_size

    def clean() -> None:
        with torch.no_grad():
            for i in range(0, n, bs):
                model(to_float(x[i : i + bs].to(device))).argmax(1)

    def attack(method: str, eps: list[float], steps: int = 1) -> Callable[[], object]:
        return lambda: evaluate_attack(model, x, y, eps, method=method, steps=steps, batch_size=bs, device=device, keep=0)

    rows = [
        ("clean forward", rate(clean, n, device, args.repeats)),
        ("FGSM, 1 eps", rate(attack("fgsm", [0.1]), n, device, args.repeats)),
        ("FGSM, 4 eps", rate(attack("fgsm", [0.0, 0.05, 0.1, 0.2]), n, device, args.repeats)),
        (f"PGD-{args.pgd_steps}, 1 eps", rate(attack("pgd", [0.1], args.pgd_steps), n, device, args.repeats)),
    ]
    print(f"{graph.name} on {device} ({torch.get_num_threads()} threads), {n} examples, batch {bs}, torch {torch.__version__}")
    print(f"{'':18} {'examples/s':>12} {'clean / this':>13}")
    base = rows[0][1]
    for name, r in rows:
        print(f"{name:18} {r:12,.0f} {base / r:12.1f}x")


if __name__ == "__main__":
    main()
