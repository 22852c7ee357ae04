"""The shard plan on a local Ray against the same plan in-process: what Ray's shards cost.

    python bench/bench_ray.py [--runs 5] [--seeds 1000] [--shard-size 256] [--workers 2]

N seeds of e6 on abc3 (the default recipe), in blocks of --shard-size, trained (1) in-process,
each shard in a forked one-thread process, --workers at a time, and (2) as Ray tasks of one CPU
on a local Ray with --workers CPUs. Rounds alternate the two (the order flips every round) after
one warm-up round; the figures are medians. Ray's start-up is timed once, apart. Both give the
same per-seed results, which is checked. For scale, (3) the default sweep, which deals the seeds
round-robin into one shard a worker (`run_sweep`), runs in the same rounds. No asserts on
time: the figures are printed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from zeptogpt import ModelConfig, Recipe, SortTask
from zeptogpt.plan import ShardPlan, local_executor, run_plan
from zeptogpt.ray_backend import connect, ray_executor
from zeptogpt.sweep import run_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--shard-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    task, config, recipe = SortTask(), ModelConfig(), Recipe()
    plan = ShardPlan(0, args.seeds, args.shard_size)
    print(f"{args.seeds} seeds of e6 on abc3, {plan.shards} shards of {args.shard_size}, "
          f"{args.workers} workers, {args.runs} rounds")
    start = time.perf_counter()
    with connect(None, cpus=args.workers) as info, tempfile.TemporaryDirectory() as tmp:
        print(f"Ray start-up: {time.perf_counter() - start:.2f} s ({info.cpus} CPUs)")
        ways = {"in-process": local_executor(args.workers), "ray": ray_executor(),
                "default sweep": None}
        times: dict[str, list[float]] = {name: [] for name in ways}
        seen = {}
        for i in range(args.runs + 1):
            for name in (list(ways) if i % 2 else list(reversed(ways))):
                path = Path(tmp) / f"{name}-{i}.jsonl"
                t = time.perf_counter()
                if ways[name] is None:
                    run_sweep(task, config, args.seeds, recipe, shards=args.workers)
                else:
                    seen[name] = run_plan(task, config, recipe, plan, path,
                                          ways[name]).seed_results()
                elapsed = time.perf_counter() - t
                if i:  # round 0 warms up both
                    times[name].append(elapsed)
                print(f"  round {i}{' (warm-up)' if not i else ''}: {name} {elapsed:.2f} s")
        same = seen["in-process"] == seen["ray"]
    local, ray, default = (statistics.median(times[n]) for n in ways)
    print(f"median in-process {local:.2f} s, Ray {ray:.2f} s (start-up excluded); "
          f"Ray / in-process = {ray / local:.2f}x; same per-seed results: {same}")
    print(f"median default sweep ({args.workers} round-robin shards) {default:.2f} s; "
          f"shard plan in-process / default = {local / default:.2f}x")


if __name__ == "__main__":
    main()
