"""Core speed figures, measured side by side in one run (issue 2's targets).

    python bench/bench_core.py [--runs 7] [--seeds 64]

Prints medians and differences against `python -c "import torch"` in the same interpreter:
the main job (non-interactive, whole process), `zeptogpt sort caa` from a saved checkpoint,
and the median steps to 27/27 over many seeds of the default variant.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def wall(argv: list[str], cwd: Path) -> float:
    """Seconds one whole process takes, start to exit."""
    t = time.perf_counter()
    subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="process timings per command")
    parser.add_argument("--seeds", type=int, default=64, help="seeds for steps-to-solve")
    args = parser.parse_args()

    py = sys.executable
    commands = {
        "import torch": [py, "-c", "import torch"],
        "zeptogpt (main job)": [py, "-m", "zeptogpt"],
        "zeptogpt sort caa": [py, "-m", "zeptogpt", "sort", "caa"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        for argv in commands.values():  # warm the file cache; the main job saves a checkpoint
            wall(argv, cwd)
        for _ in range(args.runs):  # interleaved, so drift hits every command alike
            for name, argv in commands.items():
                times[name].append(wall(argv, cwd))

    base = statistics.median(times["import torch"])
    print(f"Whole-process wall time, median of {args.runs} interleaved runs ({py}):")
    for name, ts in times.items():
        med = statistics.median(ts)
        extra = "" if name == "import torch" else f"   = import torch {med - base:+.3f} s"
        print(f"  {name:22s} {med:6.3f} s  (min {min(ts):.3f}, max {max(ts):.3f}){extra}")

    import torch

    from zeptogpt import ModelConfig, SortTask, train
    from zeptogpt.training import percentile

    task = SortTask()
    t = time.perf_counter()
    one = train(task, ModelConfig(), seeds=[0]).results[0]
    single = time.perf_counter() - t
    print(f"Training seed 0 in-process: {one.steps} steps, {single:.3f} s "
          f"({single / max(one.steps, 1) * 1e3:.2f} ms/step, torch threads "
          f"{torch.get_num_threads()})")
    t = time.perf_counter()
    many = train(task, ModelConfig(), seeds=list(range(args.seeds))).results
    batched = time.perf_counter() - t
    steps = sorted(r.steps for r in many if r.solved)
    print(f"Steps to 27/27 (every answer token p >= 0.9), e6, seeds 0..{args.seeds - 1}: "
          f"{len(steps)}/{args.seeds} solved, median {statistics.median(steps):g}, "
          f"p90 {percentile(steps, 90):g}, max {steps[-1]} ({batched:.2f} s for all, batched)")
    print("Reference: the seed's published script, 15,000 steps, takes 64 s on these machines "
          "(figure from issue 2, not re-measured here)")


if __name__ == "__main__":
    main()
