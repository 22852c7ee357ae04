"""What repeats bit for bit, and what moves with the shards or the threads: the README's
determinism note.

    python bench/bench_repeat.py [--variants e6 e4-nopos] [--seeds 256 64]

For each variant it runs the same sweep (`run_sweep`, default recipe, one thread per shard) as
one shard, as two shards, and each of those again, and prints how many seeds' steps to solve
differ, with a few of them; then it trains one seed with 1, 2 and 4 torch threads and says
whether the weights are the same bits. It asserts nothing (the tests hold what must hold: a
seed trained twice, and the CLI whatever the machine's threads, give the same bits).
"""

from __future__ import annotations

import argparse

import torch

from zeptogpt import ModelConfig, Recipe, SortTask, train
from zeptogpt.config import variant_config
from zeptogpt.sweep import run_sweep

Steps = list[int | None]  # each seed's steps to solve; None where it did not


def differences(a: Steps, b: Steps) -> list[tuple[int, int | None, int | None]]:
    """(seed, steps in a, steps in b) wherever the two sweeps disagree; None is unsolved."""
    return [(seed, x, y) for seed, (x, y) in enumerate(zip(a, b)) if x != y]


def show(diff: list, most: int = 4) -> str:
    """How many seeds differ, and the first few of them."""
    if not diff:
        return "0 differ"
    some = ", ".join(f"seed {s}: {x} vs {y}" for s, x, y in diff[:most])
    return f"{len(diff)} differ ({some}{', ...' if len(diff) > most else ''})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["e6", "e4-nopos"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[256, 64],
                        help="seeds per variant, in the order of --variants")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as `zeptogpt sweep` trains: one thread per shard
    task = SortTask()
    for name, seeds in zip(args.variants, args.seeds):
        config = variant_config(name, task.vocab_size, task.seq_len)
        steps = {shards: [run_sweep(task, config, seeds, shards=shards).steps for _ in range(2)]
                 for shards in (1, 2)}
        print(f"{name}, {seeds} seeds (steps to solve per seed):")
        for shards, (first, second) in steps.items():
            print(f"  {shards} shard(s), run twice:  {show(differences(first, second))}")
        print(f"  1 shard vs 2 shards:      {show(differences(steps[1][0], steps[2][0]))}")

    runs = {}
    for threads in (1, 2, 4):
        torch.set_num_threads(threads)
        runs[threads] = train(task, ModelConfig(), Recipe(max_steps=40), seeds=[5]).models[0]
    torch.set_num_threads(1)
    first = runs[1].state_dict()
    same = {t: all(torch.equal(first[k], v) for k, v in m.state_dict().items())
            for t, m in runs.items()}
    print("One seed (5), 40 steps, torch threads 1 / 2 / 4, same bits as 1 thread: "
          + " / ".join("yes" if same[t] else "no" for t in runs))


if __name__ == "__main__":
    main()
