"""How cost grows with the task: for each length n and alphabet size k, the smallest
architecture of a fixed ladder that solves at least 95 % of 64 seeds, its median steps and
wall time; then the pictures for the README.

    python bench/scale.py [--lengths 2 3 4] [--sizes 2 3 4] [--max-inputs 1000] [--seeds 64]

Cells run in order of their number of inputs; a cell is every input of n symbols from the
first k of ``abcdefghij`` (k^n inputs, only cells up to ``--max-inputs``). For each cell the
ladder is climbed from its smallest rung: a rung is first screened on 16 seeds (a failing seed
costs the whole step limit, and 2 failures of 16 put 95 % of 64 out of reach in most cases),
and only a rung that solves 15 of them is swept on every seed. Results are appended to
``--results`` (JSON lines) as each cell finishes, and a rerun skips the cells already there,
so a long grid can be run in pieces. The default recipe throughout, one thread per shard,
two shards.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from zeptogpt import SortTask
from zeptogpt.config import ModelConfig
from zeptogpt.sweep import run_sweep

SCREEN = 16  # seeds a rung must (all but one) solve before it is swept on every seed
LADDER = [  # (E, H, MLP multiple, learned positions): the rungs, climbed in this order
    (3, 1, 1, True),
    (4, 2, 1, True),
    (6, 2, 1, True),  # the seed's architecture
    (8, 2, 2, True),
    (12, 2, 2, True),
    (16, 4, 2, True),
]


def config(task: SortTask, rung: tuple[int, int, int, bool]) -> ModelConfig:
    E, H, M, pos = rung
    return ModelConfig(vocab_size=task.vocab_size, block_size=task.seq_len, n_embd=E,
                       n_head=H, mlp_mult=M, pos_embed=pos)


def measure(task: SortTask, seeds: int, shards: int) -> dict:
    """Climb the ladder for one task; the first rung that solves >= 95 % of ``seeds``."""
    started = time.perf_counter()
    tried = []
    for rung in LADDER:
        c = config(task, rung)
        screen = run_sweep(task, c, min(SCREEN, seeds), shards=shards).summary
        tried.append(f"E{rung[0]}: {screen.solved}/{screen.seeds}")
        if screen.solved < screen.seeds - 1:  # 15 of 16 can still be 61 of 64
            continue
        full = run_sweep(task, c, seeds, shards=shards).summary if seeds > SCREEN else screen
        tried[-1] += f", {full.solved}/{full.seeds}"
        if full.share_solved >= 0.95:
            return dict(n=task.length, k=len(task.alphabet), inputs=task.n_inputs,
                        rung=list(rung), params=c.n_params, solved=full.solved,
                        seeds=full.seeds, median_steps=full.median_steps,
                        sweep_seconds=full.wall_seconds, tried=tried,
                        cell_seconds=round(time.perf_counter() - started, 1))
    return dict(n=task.length, k=len(task.alphabet), inputs=task.n_inputs, rung=None,
                params=None, tried=tried, cell_seconds=round(time.perf_counter() - started, 1))


def draw(rows: list[dict], out: Path) -> None:
    """Parameters needed against n (a line per k), and sweep time against inputs."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    for k in sorted({r["k"] for r in rows}):
        cells = sorted((r for r in rows if r["k"] == k and r["params"]), key=lambda r: r["n"])
        if cells:
            left.plot([r["n"] for r in cells], [r["params"] for r in cells], "o-", label=f"k={k}")
    left.set(xlabel="length n", ylabel="parameters of the smallest rung", yscale="log",
             title="Parameters needed (>= 95 % of seeds solve)")
    left.legend(fontsize=8, ncol=2)
    solved = [r for r in rows if r["params"]]
    right.scatter([r["inputs"] for r in solved], [r["sweep_seconds"] for r in solved],
                  c=[r["params"] for r in solved], cmap="viridis", norm="log")
    right.set(xscale="log", yscale="log", xlabel="inputs (k^n)",
              ylabel=f"seconds for {solved[0]['seeds'] if solved else 64} seeds to their verdict",
              title="Time to solve, colour: parameters")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.savefig(out, dpi=110)


def table(rows: list[dict]) -> str:
    lines = ["| n | k | inputs | smallest rung (E, H, MLP) | params | solved | median steps | "
             "sweep s |", "|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["k"], r["n"])):
        if r["params"]:
            E, H, M, _ = r["rung"]
            lines.append(f"| {r['n']} | {r['k']} | {r['inputs']:,} | E={E}, H={H}, ×{M} | "
                         f"{r['params']} | {r['solved']}/{r['seeds']} | {r['median_steps']:g} | "
                         f"{r['sweep_seconds']:.1f} |")
        else:
            lines.append(f"| {r['n']} | {r['k']} | {r['inputs']:,} | none of the ladder | | | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", nargs="+", type=int, default=list(range(2, 9)))
    parser.add_argument("--sizes", nargs="+", type=int, default=list(range(2, 11)))
    parser.add_argument("--max-inputs", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=64)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--results", type=Path, default=Path("runs/scale.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("docs/img/scale.png"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    done = {}
    if args.results.exists():
        for line in args.results.read_text().splitlines():
            r = json.loads(line)
            done[(r["n"], r["k"])] = r
    cells = sorted(((n, k) for n in args.lengths for k in args.sizes
                    if k**n <= args.max_inputs), key=lambda c: (c[1] ** c[0], c))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    for n, k in cells:
        if (n, k) in done:
            continue
        r = measure(SortTask("abcdefghij"[:k], n), args.seeds, args.shards)
        print(f"n={n} k={k} ({k**n:,} inputs): "
              f"{r['params'] or 'none'} params; {'; '.join(r['tried'])} ({r['cell_seconds']} s)",
              flush=True)
        with args.results.open("a") as f:  # one line per cell: a rerun resumes after it
            f.write(json.dumps(r) + "\n")
        done[(n, k)] = r
    rows = [done[c] for c in cells if c in done]
    print(table(rows))
    if rows:
        draw(rows, args.out)
        print(f"Saved {args.out}")


if __name__ == "__main__":
    main()
