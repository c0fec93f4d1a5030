"""How long `netspec check specs/` takes as a fresh process (target: under 0.5 s for the zoo).

Interleaved with its true floor, `python -c "import click, yaml, pydantic"` (what any CLI
validating YAML with pydantic pays before doing anything), round by round in alternating
order, medians of wall time and of the child's CPU time (user + sys: what to read on a busy
machine); and confirms that check never imports torch. netspec is byte-compiled first
(`compileall`), as an installed package is, so that a checkout under PYTHONDONTWRITEBYTECODE
does not compile its modules from source in every run.

    python benchmarks/check_speed.py [--repeat 9] [PATH ...]
"""
from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one run of `cmd`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=False, capture_output=True, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def interleaved(cmds: list[list[str]], repeat: int) -> list[tuple[float, float]]:
    """Median (wall, CPU) of each command, run in alternating order after one warm-up each."""
    for cmd in cmds:
        run_once(cmd)
    samples: list[list[tuple[float, float]]] = [[] for _ in cmds]
    for r in range(repeat):
        order = range(len(cmds)) if r % 2 == 0 else reversed(range(len(cmds)))
        for i in order:
            samples[i].append(run_once(cmds[i]))
    return [(statistics.median(w for w, _ in s), statistics.median(c for _, c in s)) for s in samples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["specs"])
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "netspec")], check=True, capture_output=True)
    check = [sys.executable, "-m", "netspec", "check", "--quiet", *args.paths]
    result = subprocess.run(check, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        sys.exit(f"netspec check failed:\n{result.stdout}{result.stderr}")
    probe = (
        "import sys, runpy; sys.argv=['netspec','check','--quiet',*sys.argv[1:]]\n"
        "try:\n    runpy.run_module('netspec', run_name='__main__')\nexcept SystemExit: pass\n"
        "print('torch' in sys.modules)"
    )
    torch_loaded = subprocess.run([sys.executable, "-c", probe, *args.paths], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    files = len([p for a in args.paths for p in (Path(ROOT, a).rglob("*.y*ml") if Path(ROOT, a).is_dir() else [Path(a)])])

    floor = [sys.executable, "-c", "import click, yaml, pydantic"]
    (w_check, c_check), (w_floor, c_floor) = interleaved([check, floor], args.repeat)
    print(f"netspec check {' '.join(args.paths)}: {files} specs, median of {args.repeat} interleaved runs")
    print(f"                                   wall      CPU")
    print(f"  check, whole process          {w_check * 1000:7.1f} ms {c_check * 1000:7.1f} ms   (target < 500 ms: by wall {'met' if w_check < 0.5 else 'NOT met'}, by CPU {'met' if c_check < 0.5 else 'NOT met'})")
    print(f"  python + click, yaml, pydantic{w_floor * 1000:7.1f} ms {c_floor * 1000:7.1f} ms   (the floor)")
    print(f"  ratio check / floor           {w_check / w_floor:7.2f}    {c_check / c_floor:7.2f}")
    print(f"  per spec above the floor      {(w_check - w_floor) / max(files, 1) * 1000:7.1f} ms {(c_check - c_floor) / max(files, 1) * 1000:7.1f} ms")
    print(f"  torch imported by check:  {torch_loaded}")


if __name__ == "__main__":
    main()
