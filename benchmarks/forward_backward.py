"""Forward+backward time of compiled netspec modules against hand-written PyTorch twins.

Both run in the same process, interleaved round by round, so machine noise hits both alike;
the figure is the ratio of medians (target: at most 1.02, i.e. no interpretive overhead).
The twins are D2L's code, from tests/twins.py.

    python benchmarks/forward_backward.py [--batch 32] [--rounds 15] [--steps 5]
    python benchmarks/forward_backward.py --cpu-time     # busy machine: 1 thread, CPU time

`--cpu-time` (for shared, busy machines) runs with one intra-op thread and times each step
in this process's CPU time, which other processes' load does not inflate.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import netspec  # noqa: E402
from twins import STATE_MAPS, TWINS, copy_state  # noqa: E402


CLOCK = time.perf_counter  # time.process_time with --cpu-time


def step_time(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """Seconds per forward+backward step (mean over `steps`)."""
    loss_fn = torch.nn.CrossEntropyLoss()
    start = CLOCK()
    for _ in range(steps):
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
    return (CLOCK() - start) / steps


def compare(spec: str, batch: int, rounds: int, steps: int) -> tuple[float, float]:
    graph = netspec.build_graph(ROOT / "specs" / f"{spec}.yaml")
    torch.manual_seed(0)
    compiled, twin = netspec.compile(graph), TWINS[graph.name]()
    x = torch.rand(batch, *graph.input_shape)
    if graph.name in STATE_MAPS:  # the twin names the same tensors its own way (vit)
        twin.load_state_dict(STATE_MAPS[graph.name](compiled.state_dict()), strict=True)
    else:
        copy_state(compiled, twin, x)  # same weights: equal arithmetic (denormals included)
    y = torch.randint(0, graph.output_shape[0], (batch,))
    for model in (compiled, twin):  # warm up allocator and kernels
        step_time(model, x, y, 2)
    ours, theirs = [], []
    for r in range(rounds):
        order = (compiled, twin) if r % 2 == 0 else (twin, compiled)
        for model in order:
            (ours if model is compiled else theirs).append(step_time(model, x, y, steps))
    return statistics.median(ours), statistics.median(theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--specs", nargs="+", default=["lenet", "resnet18"])
    parser.add_argument("--cpu-time", action="store_true", help="1 thread, timed in CPU seconds (for busy machines)")
    args = parser.parse_args()
    global CLOCK
    if args.cpu_time:
        torch.set_num_threads(1)
        CLOCK = time.process_time
    clock = "CPU time" if args.cpu_time else "wall time"
    print(f"forward+backward, batch {args.batch}, CPU, torch {torch.__version__}, {torch.get_num_threads()} threads, {clock}")
    print(f"{'spec':<12}{'netspec ms':>12}{'twin ms':>10}{'ratio':>8}")
    for spec in args.specs:
        ours, theirs = compare(spec, args.batch, args.rounds, args.steps)
        print(f"{spec:<12}{ours * 1e3:>12.2f}{theirs * 1e3:>10.2f}{ours / theirs:>8.3f}")


if __name__ == "__main__":
    main()
