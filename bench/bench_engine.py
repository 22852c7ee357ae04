"""The batched training engine, measured side by side in one run (issue 3's targets).

    python bench/bench_engine.py [--steps 20] [--repeat 3] [--threads 1 2] [--sweep 1000]
                                 [--heap 1024] [--compile 1024] [--profile 1024]

Prints, for K = 1, 64, 256, 1024 seeds trained as one batch, the cost per model-step (one seed,
one optimizer update; the median of --repeat runs of `train`, set-up included) and the speed-up
over running the single-seed trainer K times; then the wall time of 1,000 seeds of e6 each
trained to its verdict. It runs as `zeptogpt sweep` does, with glibc's heap kept from shrinking
(`keep_freed_memory`); --heap K first compares that with a heap that shrinks, alternated at K
seeds. --compile K compares one training step (forward, loss, backward) of the same network
eager and under torch.compile, compile time counted; --profile K times every operator of a
K-seed run of `train` and prints where the step's time goes (`OperatorClock`).
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import statistics
import time
import warnings

import torch
from torch.func import functional_call
from torch.utils._python_dispatch import TorchDispatchMode

from zeptogpt import ModelConfig, Recipe, SortTask, ZeptoGPT, train
from zeptogpt.sweep import format_summary, run_sweep
from zeptogpt.training import initial_weights, keep_freed_memory, per_model_loss


def per_model_step(task: SortTask, k: int, steps: int, repeat: int) -> float:
    """Median seconds per model-step of `train` for K seeds over a fixed number of updates (few
    solve by then; any that does leaves the batch, and the cost is divided by the work done)."""
    train(task, ModelConfig(), Recipe(max_steps=2), seeds=range(k))  # warm the allocator
    costs = []
    for _ in range(repeat):
        t = time.perf_counter()
        result = train(task, ModelConfig(), Recipe(max_steps=steps), seeds=range(k))
        costs.append((time.perf_counter() - t) / result.model_steps)
    return statistics.median(costs)


def single_seed_loop(task: SortTask, k: int, steps: int, repeat: int) -> float:
    """Median seconds per model-step when the single-seed trainer runs K times in a loop."""
    costs = []
    for _ in range(repeat):
        t = time.perf_counter()
        for seed in range(k):
            train(task, ModelConfig(), Recipe(max_steps=steps), seeds=[seed])
        costs.append((time.perf_counter() - t) / (k * steps))
    return statistics.median(costs)


def heap_kept_vs_shrinking(task: SortTask, k: int, steps: int, rounds: int) -> None:
    """Per model-step at K seeds with glibc keeping 64 MB of freed memory, and keeping none so
    the heap shrinks after every step, alternated ``rounds`` times in this process."""
    costs: dict[int, list[float]] = {64: [], 0: []}
    for i in range(rounds + 1):  # the first round is warm-up
        for megabytes in (64, 0) if i % 2 else (0, 64):
            keep_freed_memory(megabytes)
            costs[megabytes].append(per_model_step(task, k, steps, 1))
    kept, shrinking = (statistics.median(costs[mb][1:]) for mb in (64, 0))
    print(f"  K={k}: heap kept {kept * 1e6:.1f} µs per model-step, shrinking "
          f"{shrinking * 1e6:.1f} µs ({shrinking / kept:.2f}x), {rounds} alternations")


def compiled_vs_eager(task: SortTask, k: int, steps: int) -> None:
    """One training step's forward, loss and backward for K stacked models, eager and compiled.

    The compiled function is the library's own: the same module through functional_call. Caches
    are disabled so the compile time printed is what a fresh machine pays.
    """
    import torch._inductor.config as inductor_config

    inductor_config.force_disable_caches = True
    warnings.filterwarnings("ignore", message="dynamo_pgo force disabled")
    template = ZeptoGPT(ModelConfig(), torch.Generator())
    params = initial_weights(template, range(k))
    inputs, targets = task.dataset("answer")
    start = task.answer.start

    def step(params: dict[str, torch.Tensor]) -> None:
        logits = functional_call(template, params, (inputs, start))  # [K, N, S, V]
        per_model_loss(logits, targets[:, start:]).sum().backward()
        for p in params.values():
            p.grad = None

    def median_seconds(fn) -> float:
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            fn(params)
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    step(params)
    eager = median_seconds(step)
    compiled = torch.compile(step, dynamic=False)
    t = time.perf_counter()
    compiled(params)
    compile_s = time.perf_counter() - t
    fast = median_seconds(compiled)
    print(f"  torch.compile at K={k}, forward + loss + backward only: eager "
          f"{eager / k * 1e6:.1f} µs per model-step, compiled {fast / k * 1e6:.1f} µs "
          f"({eager / fast:.2f}x) after {compile_s:.1f} s of compiling (cold);")
    saved = (eager - fast) / k
    if saved > 0:
        print(f"  compiling pays for itself after {compile_s / saved / k:,.0f} steps of "
              f"{k} seeds ({compile_s / saved:,.0f} model-steps)")
    else:
        print("  compiling never pays for itself here")


class OperatorClock(TorchDispatchMode):
    """Wall time of every PyTorch operator run under it, forward and backward, by operator and
    output shape. torch.profiler doubled the step's time here and showed element-wise operators
    at 0.6-2 ms that take 25-50 µs (docs/engine.md); this only reads the clock around each
    call, and its times add up to nearly the step's own.

    Usage: ``with OperatorClock() as clock: train(...)``, then ``clock.seconds``
    """

    def __init__(self) -> None:
        super().__init__()
        self.seconds: dict[tuple[str, tuple[int, ...]], float] = collections.defaultdict(float)
        self.calls: dict[tuple[str, tuple[int, ...]], int] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        start = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        elapsed = time.perf_counter() - start
        first = out[0] if isinstance(out, (tuple, list)) and out else out
        shape = tuple(first.shape) if isinstance(first, torch.Tensor) else ()
        key = (func.overloadpacket.__name__, shape)
        self.seconds[key] += elapsed
        self.calls[key] += 1
        return out


def where_the_time_goes(task: SortTask, k: int, steps: int, rows: int = 25) -> None:
    """Print the operators of `train` for K seeds that take the most time per update, and the
    time per update in operators of each size (elements in their output)."""
    plain = per_model_step(task, k, steps, 1) * k  # the same call without the clock
    with OperatorClock() as clock:
        result = train(task, ModelConfig(), Recipe(max_steps=steps), seeds=range(k))
    # Updates of all K seeds, counted as per_model_step counts them: with a larger --steps some
    # seeds solve and leave, and dividing by `steps` would then no longer match `plain`.
    updates = result.model_steps / k
    timed = sum(clock.seconds.values()) / updates
    print(f"  K={k}, {torch.get_num_threads()} threads: {plain * 1e3:.2f} ms per update (set-up "
          f"included); under the clock the operators add up to {timed * 1e3:.2f} ms per update, "
          f"{len(clock.seconds)} kinds")
    below = {"under 10k": 1e4, "10k to 100k": 1e5, "100k and more": math.inf}
    by_size = dict.fromkeys(below, 0.0)
    for (_, shape), seconds in clock.seconds.items():
        size = next(name for name, limit in below.items() if math.prod(shape) < limit)
        by_size[size] += seconds / updates
    print("  ms per update by elements in the output: "
          + ", ".join(f"{size} {ms * 1e3:.2f}" for size, ms in by_size.items()))
    print("   ms/update  calls/update  operator  output shape")
    top = sorted(clock.seconds.items(), key=lambda item: -item[1])[:rows]
    for (name, shape), seconds in top:
        print(f"  {seconds / updates * 1e3:9.3f}  {clock.calls[name, shape] / updates:12.1f}  "
              f"{name} {list(shape)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="updates per timing (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="timings per figure; the median")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 64, 256, 1024])
    parser.add_argument("--sweep", type=int, default=1000, help="seeds to train to their verdict")
    parser.add_argument("--heap", type=int, default=1024, metavar="K",
                        help="compare a kept and a shrinking heap at K seeds first (0: skip)")
    parser.add_argument("--compile", type=int, default=0, metavar="K",
                        help="also compare eager and torch.compile at K seeds (slow: ~30 s)")
    parser.add_argument("--profile", type=int, default=0, metavar="K",
                        help="also time every operator of a K-seed run and print the top ones")
    args = parser.parse_args()
    task = SortTask()
    print(f"e6, {args.steps} updates per timing, median of {args.repeat}, "
          f"load average {os.getloadavg()[0]:.2f}")
    if args.heap:
        torch.set_num_threads(max(args.threads))
        heap_kept_vs_shrinking(task, args.heap, args.steps, 2 * args.repeat)
    kept = keep_freed_memory()  # as `zeptogpt sweep` runs
    print(f"glibc's heap kept from shrinking between steps: {'yes' if kept else 'no (not glibc)'}")
    for threads in sorted(set(args.threads)):
        torch.set_num_threads(threads)
        single = single_seed_loop(task, 64, args.steps, args.repeat)
        print(f"threads={threads}: single-seed trainer in a loop, 64 seeds: "
              f"{single * 1e6:.0f} µs per model-step")
        for k in args.ks:
            cost = per_model_step(task, k, args.steps, args.repeat)
            print(f"  K={k:5d}: {cost * 1e6:8.1f} µs per model-step, "
                  f"{cost * k * 1e3:8.2f} ms per step, {single / cost:6.1f}x the loop")
        if args.sweep:
            start = time.perf_counter()
            sweep = run_sweep(task, ModelConfig(), seeds=args.sweep)
            wall = time.perf_counter() - start
            s = sweep.summary
            print(f"  {args.sweep} seeds of e6 to their verdict: {wall:.2f} s wall, "
                  f"{wall / s.model_steps * 1e6:.1f} µs per model-step on average")
            print("  " + format_summary(s))
    if args.compile:
        compiled_vs_eager(task, args.compile, args.steps)
    if args.profile:
        where_the_time_goes(task, args.profile, args.steps)


if __name__ == "__main__":
    main()
