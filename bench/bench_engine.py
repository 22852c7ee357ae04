"""The engine against the reference, what each part of the engine buys, and 1,000 seeds.

    python bench/bench_engine.py [--runs 5] [--steps 20] [--threads 1] [--cores N] [--no-parts]
                                 [--sweep 1000] [--profile K]

Every figure is a median over --runs interleaved runs in this one process, so the host's drift
hits both sides of a ratio alike. A cost is µs per model-step: one seed, one optimizer update,
`train` from start to end (set-up included) divided by the seed-steps it computed.
1. Engine against reference: `train` for K seeds of e6 as it runs (the engine) and with
   `reference=True` (the textbook network over stacked weights, `torch.func.vmap`), for 3
   letters over abc at K = 1, 64, 256, 1,024 and for 6 letters (729 inputs) at K = 16, 64.
2. Parts (unless --no-parts): each part of the engine replaced by the plain way of computing
   the same thing, alternated with the engine as it is; the ratio is what the part buys.
3. --sweep N seeds of e6, each trained to its verdict as `zeptogpt sweep` runs them (seeds
   dealt into one-thread shards, one per core), and as one batch on every core.
4. --profile K: the operators that take the step's time at K seeds (`OperatorClock`).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from zeptogpt import ModelConfig, Recipe, SortTask, engine, train
from zeptogpt.engine import lookup
from zeptogpt.sweep import format_summary, run_sweep


def config_for(task: SortTask) -> ModelConfig:
    return ModelConfig(vocab_size=task.vocab_size, block_size=task.seq_len)


def cost(task: SortTask, k: int, steps: int, reference: bool = False) -> float:
    """Seconds per model-step of one `train` call for K seeds over a fixed number of updates
    (any seed that solves leaves the batch, and the cost is divided by the work done)."""
    t = time.perf_counter()
    result = train(task, config_for(task), Recipe(max_steps=steps), seeds=range(k),
                   reference=reference)
    return (time.perf_counter() - t) / max(result.model_steps, 1)


def alternate(ways: dict[str, Callable[[], float]], runs: int) -> dict[str, float]:
    """Median of ``runs`` calls of each way, alternated (the order flips every round, so
    neither always goes first), after one warm-up round."""
    costs: dict[str, list[float]] = {name: [] for name in ways}
    for i in range(runs + 1):
        for name in (list(ways) if i % 2 else list(reversed(ways))):
            c = ways[name]()
            if i:
                costs[name].append(c)
    return {name: statistics.median(c) for name, c in costs.items()}


def pairing_size(task: SortTask) -> str:
    """The shape of the attention's 0/1 sums matrix for every input of the task, [U, S * B]."""
    inputs, _ = task.dataset()
    T, start = inputs.shape[1], task.answer.start
    S = T - start
    key = inputs.mT * T + torch.arange(T)[:, None]
    query = inputs.mT[start:] * S + torch.arange(S)[:, None]
    sums = engine.pairing(key, query, task.vocab_size * S).sums
    return f"[{sums.shape[0]:,}, {sums.shape[1]:,}]"


def engine_vs_reference(tasks: dict[str, tuple[SortTask, list[int], int]], runs: int) -> None:
    print("| task | K | engine µs/model-step | reference µs/model-step | engine's speed-up |")
    print("|---|---|---|---|---|")
    for name, (task, ks, steps) in tasks.items():
        for k in ks:
            m = alternate({"engine": functools.partial(cost, task, k, steps),
                           "reference": functools.partial(cost, task, k, steps, True)}, runs)
            print(f"| {name} | {k:,} | {m['engine'] * 1e6:,.1f} | {m['reference'] * 1e6:,.1f} | "
                  f"{m['reference'] / m['engine']:.2f}x |", flush=True)


# --- the parts, each replaced by the plain way of computing the same thing ----------------------

class PlainDivide:
    """Autograd's division (its derivative squares the divisor: unsafe below 1e-19)."""

    apply = staticmethod(torch.div)


def attend_per_sequence(scores, values, pair, n_query):
    """Every query's own softmax over its keys' scores, and its own weighted values: what the
    engine did before the combination sums. Returns the pattern's pieces as None (training
    does not read them)."""
    after = torch.full_like(scores[..., :1], -math.inf)  # [K, H, 1]: a later key's score
    pattern = lookup(torch.cat([scores, after], -1), pair.slot).softmax(-3)  # [K, H, T, S, B]
    zero = torch.zeros_like(values[..., :1])  # [K, H, D, 1]
    per_key = lookup(torch.cat([values, zero], -1), pair.slot)  # [K, H, D, T, S, B]
    z = (pattern[:, :, None] * per_key).sum(-3)  # [K, H, D, S, B]
    return z.flatten(-2), None, None


engine_logits = engine.logits  # the real one, kept: `replaced("logits")` swaps the module's


def all_queries(params, config, idx, start=0, with_pattern=False):
    """Queries, MLP and logits at every position, the prompt's included, then the answer's kept."""
    return engine_logits(params, config, idx, 0, with_pattern)[:, :, start:]


@contextlib.contextmanager
def replaced(name: str) -> Iterator[None]:
    """Within the block, the engine's part ``name`` is computed the plain way."""
    swaps = {"Divide": PlainDivide, "attend": attend_per_sequence, "logits": all_queries}
    before = getattr(engine, name)
    setattr(engine, name, swaps[name])
    try:
        yield
    finally:
        setattr(engine, name, before)


PARTS = {
    "logits": "answer positions only (the prompt's queries, MLP and logits skipped)",
    "attend": "attention as sums over (key, query) combinations, not a softmax per query",
    "Divide": "the division's derivative written out (kept because it stays finite)",
}


def cost_without(part: str, task: SortTask, k: int, steps: int) -> float:
    with replaced(part):
        return cost(task, k, steps)


def parts(tasks: dict[str, tuple[SortTask, list[int], int]], runs: int) -> None:
    print("| part | task | K | with µs/model-step | without | it buys |")
    print("|---|---|---|---|---|---|")
    for part, what in PARTS.items():
        for name, (task, ks, steps) in tasks.items():
            for k in ks:
                m = alternate({"with": functools.partial(cost, task, k, steps),
                               "without": functools.partial(cost_without, part, task, k, steps)},
                              runs)
                print(f"| {what} | {name} | {k:,} | {m['with'] * 1e6:,.1f} | "
                      f"{m['without'] * 1e6:,.1f} | {m['without'] / m['with']:.2f}x |", flush=True)


def many_seeds(n: int, runs: int, cores: int) -> None:
    """N seeds of e6 to their verdict as `zeptogpt sweep` runs them (one shard per core), and
    as one batch with every operator split over the cores, interleaved."""
    walls: dict[str, list[float]] = {"shards": [], "one batch": []}
    for i in range(runs):
        for way in (("shards", "one batch") if i % 2 else ("one batch", "shards")):
            torch.set_num_threads(cores if way == "one batch" else 1)
            start = time.perf_counter()
            sweep = run_sweep(SortTask(), ModelConfig(), seeds=n,
                              shards=cores if way == "shards" else 1)
            walls[way].append(time.perf_counter() - start)
            if way == "shards":
                summary = sweep.summary
    torch.set_num_threads(cores)
    for way, w in walls.items():
        print(f"{n:,} seeds of e6 to their verdict, {way} on {cores} cores, {runs} runs: median "
              f"{statistics.median(w):.2f} s (min {min(w):.2f}, max {max(w):.2f})")
    print("  " + format_summary(summary))


class OperatorClock(TorchDispatchMode):
    """Wall time of every PyTorch operator run under it, forward and backward, by operator and
    output shape (torch.profiler doubled the step's time here; this only reads the clock).

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
        key = (func.overloadpacket.__name__,
               tuple(first.shape) if isinstance(first, torch.Tensor) else ())
        self.seconds[key] += elapsed
        self.calls[key] += 1
        return out


def where_the_time_goes(k: int, steps: int, rows: int = 20) -> None:
    task = SortTask()
    with OperatorClock() as clock:
        result = train(task, ModelConfig(), Recipe(max_steps=steps), seeds=range(k))
    updates = result.model_steps / k
    print(f"K={k}: operators add up to {sum(clock.seconds.values()) / updates * 1e3:.2f} ms per "
          f"update, {len(clock.seconds)} kinds\n   ms/update  calls/update  operator  output shape")
    for (name, shape), seconds in sorted(clock.seconds.items(), key=lambda i: -i[1])[:rows]:
        print(f"  {seconds / updates * 1e3:9.3f}  {clock.calls[name, shape] / updates:12.1f}  "
              f"{name} {list(shape)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="interleaved runs per figure")
    parser.add_argument("--steps", type=int, default=20, help="updates per timing, 3 letters")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads per operator in 1 and 2 (default 1, as each shard of "
                        "`zeptogpt sweep` runs)")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1,
                        help="cores for the sweep in 3 (default: all)")
    parser.add_argument("--no-parts", action="store_true", help="skip what each part buys")
    parser.add_argument("--sweep", type=int, default=1000, help="seeds to their verdict (0: skip)")
    parser.add_argument("--profile", type=int, default=0, metavar="K",
                        help="also time every operator of a K-seed run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.threads} thread(s), median of {args.runs} interleaved runs, load average "
          f"{os.getloadavg()[0]:.2f}")
    abc3, abc6 = SortTask(), SortTask(length=6)
    print(f"attention sums matrix [U, S·B]: abc×3 {pairing_size(abc3)}, abc×6 {pairing_size(abc6)}")
    tasks = {"abc×3": (abc3, [1, 64, 256, 1024], args.steps),
             "abc×6": (abc6, [16, 64], max(2, args.steps // 4))}
    engine_vs_reference(tasks, args.runs)
    if not args.no_parts:
        parts({"abc×3": (abc3, [64, 1024], args.steps), "abc×6": (abc6, [64], args.steps // 4)},
              args.runs)
    if args.sweep:
        many_seeds(args.sweep, args.runs, args.cores)
    if args.profile:
        where_the_time_goes(args.profile, args.steps)


if __name__ == "__main__":
    main()
