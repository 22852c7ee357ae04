"""The batched training engine, measured side by side in one run (issue 3's targets).

    python bench/bench_engine.py [--steps 20] [--threads 1 2] [--sweep 1000] [--profile 256]

Prints, for K = 1, 64, 256, 1024 seeds trained as one batch, the cost per model-step (one seed,
one optimizer update) and the speed-up over running the single-seed trainer K times; then the
wall time of 1,000 seeds of e6 each trained to its verdict; with --profile K, the top operators.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from zeptogpt import ModelConfig, Recipe, SortTask, train
from zeptogpt.sweep import format_summary, run_sweep


def per_model_step(task: SortTask, k: int, steps: int) -> float:
    """Seconds per model-step for K seeds over a fixed number of updates (few solve by then; any
    that does leaves the batch, and the cost is divided by the work actually done)."""
    recipe = Recipe(max_steps=steps)
    train(task, ModelConfig(), Recipe(max_steps=2), seeds=range(k))  # warm the allocator
    t = time.perf_counter()
    result = train(task, ModelConfig(), recipe, seeds=range(k))
    return (time.perf_counter() - t) / result.model_steps


def single_seed_loop(task: SortTask, k: int, steps: int) -> float:
    """Seconds per model-step when the single-seed trainer runs K times in a loop."""
    t = time.perf_counter()
    for seed in range(k):
        train(task, ModelConfig(), Recipe(max_steps=steps), seeds=[seed])
    return (time.perf_counter() - t) / (k * steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="updates per timing (default 20)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 64, 256, 1024])
    parser.add_argument("--sweep", type=int, default=1000, help="seeds to train to their verdict")
    parser.add_argument("--profile", type=int, default=0, metavar="K",
                        help="also print the top operators of a K-seed run")
    args = parser.parse_args()
    task = SortTask()
    print(f"e6, {args.steps} updates per timing, load average {os.getloadavg()[0]:.2f}")
    for threads in sorted(set(args.threads)):
        torch.set_num_threads(threads)
        single = single_seed_loop(task, 64, args.steps)
        print(f"threads={threads}: single-seed trainer in a loop, 64 seeds: "
              f"{single * 1e6:.0f} µs per model-step")
        for k in args.ks:
            cost = per_model_step(task, k, args.steps)
            print(f"  K={k:5d}: {cost * 1e6:8.1f} µs per model-step, "
                  f"{cost * k * 1e3:8.2f} ms per step, {single / cost:6.1f}x the loop")
        start = time.perf_counter()
        sweep = run_sweep(task, ModelConfig(), seeds=args.sweep)
        wall = time.perf_counter() - start
        s = sweep.summary
        print(f"  {args.sweep} seeds of e6 to their verdict: {wall:.2f} s wall, "
              f"{wall / s.model_steps * 1e6:.1f} µs per model-step on average")
        print("  " + format_summary(s))
    if args.profile:
        from torch.profiler import profile

        with profile() as prof:
            train(task, ModelConfig(), Recipe(max_steps=args.steps), seeds=range(args.profile))
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
