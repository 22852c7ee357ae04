"""Before and after: this tree's network against another revision's, alternating in one process.

    python bench/bench_ab.py [--against HEAD~1] [--threads 2] [--ks 64 256 1024] [--runs 5]

On a shared machine the speed of the same code drifts by 1.5x within minutes, so two benchmark
runs one after the other can say either thing. Here both versions of `model.py` are loaded side
by side and `train` itself runs each in turn, so every drift hits both alike; the ratio of the
medians is the figure to quote. Only `model.py` is swapped: the task, loss, verdict, optimizer
and initialisation are this tree's.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch

from zeptogpt import ModelConfig, Recipe, SortTask, train

MODEL = "src/zeptogpt/model.py"


def model_module(source: str, name: str):
    """Import a version of model.py (it needs only torch) as a module of its own."""
    path = Path(tempfile.mkdtemp()) / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def train_cost(module, task: SortTask, k: int, steps: int) -> float:
    """Seconds per model-step of `train` itself for K seeds, with `module`'s network swapped in."""
    with mock.patch("zeptogpt.training.ZeptoGPT", module.ZeptoGPT):
        t = time.perf_counter()
        result = train(task, ModelConfig(), Recipe(max_steps=steps), seeds=range(k))
    return (time.perf_counter() - t) / result.model_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="HEAD~1", help="git revision to compare with")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ks", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--steps", type=int, default=20, help="updates per timed `train` call")
    parser.add_argument("--runs", type=int, default=5, help="timed calls of each version")
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    try:
        old = subprocess.run(["git", "show", f"{args.against}:{MODEL}"], cwd=root, check=True,
                             capture_output=True, text=True).stdout
    except subprocess.CalledProcessError as e:
        sys.exit(f"bench_ab: cannot read {MODEL} at {args.against!r}: {e.stderr.strip()}")
    versions = {args.against: model_module(old, "model_before"),
                "this tree": model_module((root / MODEL).read_text(), "model_after")}
    torch.set_num_threads(args.threads)
    task = SortTask()
    print(f"e6, {args.threads} threads, {args.runs} alternating `train` calls of {args.steps} "
          "updates each, median (min) per model-step")
    for k in args.ks:
        costs: dict[str, list[float]] = {name: [] for name in versions}
        for i in range(args.runs + 1):  # the first call of each is warm-up
            order = list(versions) if i % 2 else list(reversed(versions))  # neither always first
            for name in order:
                costs[name].append(train_cost(versions[name], task, k, args.steps))
        figures = {name: (statistics.median(c[1:]), min(c[1:])) for name, c in costs.items()}
        shown = ", ".join(f"{name} {med * 1e6:.1f} µs ({low * 1e6:.1f})"
                          for name, (med, low) in figures.items())
        ratio = figures[args.against][0] / figures["this tree"][0]
        print(f"  K={k:5d}: {shown}; {ratio:.2f}x")


if __name__ == "__main__":
    main()
