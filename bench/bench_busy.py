"""Sweeps on a quiet and on a busy machine: one thread, threads on every core, and shards.

    python bench/bench_busy.py [--runs 5] [--neighbours 0 1] [--seeds 256 8]

For each number of busy neighbours (0: none of ours; N: N processes spinning `while True: pass`,
which this script starts and kills, also on Ctrl-C or an error) and each sweep size, it runs
the same e6 sweep (`run_sweep`, default recipe) three ways, interleaved round by round so that
drift in the machine's other load hits all three alike:
- "1 thread": one batch, one thread (`zeptogpt sweep --threads 1`);
- "threads": one batch, every operator split over every core (how sweeps ran before shards);
- "shards": the seeds dealt into one shard per core (if each gets 32 or more), each trained on
  one thread in a forked process (`zeptogpt sweep`, the default).
Prints medians (min, max) and the ratios of shards to the other two, with the load average; it
asserts nothing. Everything else on the machine comes on top of our neighbours: "0 busy
neighbours" is only quiet if nothing else runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch

from zeptogpt import ModelConfig, SortTask
from zeptogpt.shards import shard_count
from zeptogpt.sweep import run_sweep

WAYS = ("1 thread", "threads", "shards")


def sweep_seconds(seeds: int, way: str, cores: int) -> float:
    """Wall time of one e6 sweep of ``seeds`` seeds run ``way``."""
    torch.set_num_threads(cores if way == "threads" else 1)
    start = time.perf_counter()
    run_sweep(SortTask(), ModelConfig(), seeds,
              shards=shard_count(seeds, cores) if way == "shards" else 1)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="interleaved runs of each way")
    parser.add_argument("--seeds", type=int, nargs="+", default=[256, 8], help="sweep sizes")
    parser.add_argument("--neighbours", type=int, nargs="+", default=[0, 1],
                        help="busy-loop processes beside the sweeps, one setting each")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    sweep_seconds(8, "1 thread", cores)  # torch's first use, not timed
    print(f"e6 sweeps, default recipe, {cores} cores; median of {args.runs} interleaved runs "
          "(min, max)")
    for n in args.neighbours:
        neighbours = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                      for _ in range(n)]
        try:
            time.sleep(0.5)  # let them start
            for seeds in args.seeds:
                load = os.getloadavg()[0]
                times: dict[str, list[float]] = {way: [] for way in WAYS}
                for r in range(args.runs):
                    for way in WAYS[r % 3:] + WAYS[:r % 3]:  # rotate who goes first
                        times[way].append(sweep_seconds(seeds, way, cores))
                med = {way: statistics.median(t) for way, t in times.items()}
                print(f"{n} busy neighbour(s), {seeds} seeds (load average {load:.2f}):")
                for way in WAYS:
                    print(f"  {way:9s} {med[way]:7.3f} s  (min {min(times[way]):.3f}, "
                          f"max {max(times[way]):.3f})")
                print(f"  shards / 1 thread {med['shards'] / med['1 thread']:.2f}x, "
                      f"shards / threads {med['shards'] / med['threads']:.2f}x", flush=True)
        finally:
            for p in neighbours:
                p.kill()
                p.wait()


if __name__ == "__main__":
    main()
