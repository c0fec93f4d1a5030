"""How long `netspec check specs/` takes as a fresh process (target: under 0.5 s for the zoo).

Also times `python -c "import click"` in the same run, the floor any click CLI pays, so the
figure can be read against this machine's speed; and confirms that check never imports torch.

    python benchmarks/check_speed.py [--repeat 7] [PATH ...]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def wall(cmd: list[str], repeat: int) -> float:
    """Median wall time of running `cmd` `repeat` times (after one warm-up run)."""
    subprocess.run(cmd, check=False, capture_output=True, cwd=ROOT)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=False, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["specs"])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

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

    t_check = wall(check, args.repeat)
    t_floor = wall([sys.executable, "-c", "import click"], args.repeat)
    print(f"netspec check {' '.join(args.paths)}: {files} specs")
    print(f"  check, whole process      {t_check * 1000:7.1f} ms   (target < 500 ms: {'met' if t_check < 0.5 else 'NOT met'})")
    print(f"  python + import click     {t_floor * 1000:7.1f} ms   (floor of any click CLI)")
    print(f"  ratio check / floor       {t_check / t_floor:7.2f}")
    print(f"  per spec above the floor  {(t_check - t_floor) / max(files, 1) * 1000:7.1f} ms")
    print(f"  torch imported by check:  {torch_loaded}")


if __name__ == "__main__":
    main()
