"""Forward+backward CPU time of compiled MobileNetV2, EfficientNet-B0 and ConvNeXt-T against
hand-written twins with torchvision's structure (tests/twins_vision.py).

The twin loads the compiled module's state_dict (strict), so both do the same arithmetic;
they run in one process with one thread, interleaved round by round (the order alternates),
timed in CPU seconds (busy machines steal wall time, not CPU time); the figure is the ratio
of the medians (target: at most 1.02), and beside it the median of each round's own ratio,
which a slow drift of the machine's speed disturbs less. Batch 32; the input side defaults to 224 and may be
lowered on a slow machine (--size 64): the networks end in global pooling, so any size
works and the overhead being measured does not depend on it.

    python benchmarks/forward_backward_vision.py [--batch 32] [--size 224] [--rounds 7] [--steps 1]
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
from twins_vision import VISION_TWINS  # noqa: E402

SPECS = ["mobilenet_v2", "efficientnet_b0", "convnext_tiny"]


def step_time(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """CPU seconds per forward+backward step (mean over `steps`)."""
    loss_fn = torch.nn.CrossEntropyLoss()
    start = time.process_time()
    for _ in range(steps):
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
    return (time.process_time() - start) / steps


def compare(spec: str, batch: int, size: int, rounds: int, steps: int) -> tuple[float, float, float]:
    graph = netspec.build_graph(ROOT / "specs" / "imagenet" / f"{spec}.yaml")
    compiled = netspec.compile(graph, seed=0).train()
    twin = VISION_TWINS[graph.name]().train()
    twin.load_state_dict(compiled.state_dict(), strict=True)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(batch, graph.input_shape[0], size, size, generator=generator)
    y = torch.randint(0, graph.output_shape[0], (batch,), generator=generator)
    for model in (compiled, twin):  # warm up allocator and kernels
        step_time(model, x, y, 1)
    ours, theirs = [], []
    for r in range(rounds):
        for model in (compiled, twin) if r % 2 == 0 else (twin, compiled):
            (ours if model is compiled else theirs).append(step_time(model, x, y, steps))
    paired = statistics.median(a / b for a, b in zip(ours, theirs))  # each round's pair ran back to back
    return statistics.median(ours), statistics.median(theirs), paired


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--specs", nargs="+", default=SPECS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"forward+backward, batch {args.batch}, 3×{args.size}×{args.size}, CPU time, 1 thread, "
          f"{args.rounds} interleaved rounds × {args.steps} steps, torch {torch.__version__}")
    print(f"{'spec':<18}{'netspec ms':>12}{'twin ms':>10}{'ratio':>8}{'paired':>8}")
    for spec in args.specs:
        ours, theirs, paired = compare(spec, args.batch, args.size, args.rounds, args.steps)
        print(f"{spec:<18}{ours * 1e3:>12.1f}{theirs * 1e3:>10.1f}{ours / theirs:>8.3f}{paired:>8.3f}", flush=True)


if __name__ == "__main__":
    main()
