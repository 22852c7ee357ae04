"""Before and after: this tree's network against another revision's, alternating in one process.

    python bench/bench_ab.py [--against HEAD~1] [--threads 2] [--ks 64 256 1024]

On a shared machine the speed of the same code drifts by 1.5x within minutes, so two benchmark
runs one after the other can say either thing. Here both versions of `model.py` are loaded side
by side and their training steps (forward, loss, verdict, backward, Adam, as `train` does them)
alternate, so every drift hits both alike; the ratio of the medians is the figure to quote.
Only `model.py` is swapped: the task, loss, verdict and optimizer are this tree's.
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

import torch
from torch.func import functional_call

from zeptogpt import ModelConfig, SortTask
from zeptogpt.evaluation import letter_probs
from zeptogpt.training import Adam, Recipe, initial_weights, per_model_loss

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


def training_step(module, task: SortTask, k: int):
    """One of `train`'s steps for K seeds of e6 with the given model module, as a closure."""
    recipe = Recipe()
    template = module.ZeptoGPT(ModelConfig(), torch.Generator())
    optimizer = Adam(initial_weights(template, range(k)), recipe.betas, recipe.weight_decay)
    inputs, targets = task.dataset("answer")
    answer, start = targets[:, task.answer], task.answer.start

    def step() -> None:
        logits = functional_call(template, optimizer.params, (inputs, start))  # [K, N, S, V]
        loss = per_model_loss(logits, targets[:, start:])  # [K]
        with torch.no_grad():  # the verdict, read back to Python as train does
            probs = letter_probs(logits, task.sep_id)  # [K, N, L, V]
            hit = probs.argmax(-1) == answer  # [K, N, L]
            p_answer = probs.gather(-1, answer.expand(hit.shape)[..., None])  # [K, N, L, 1]
            (hit.all(-1).sum(-1).tolist(), p_answer.amin((-1, -2, -3)).tolist())
        loss.sum().backward()
        optimizer.step(recipe.lr)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="HEAD~1", help="git revision to compare with")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ks", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--steps", type=int, default=30, help="timed steps of each version")
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
    print(f"e6, {args.threads} threads, {args.steps} alternating steps each, median (min)")
    for k in args.ks:
        steps = {name: training_step(module, task, k) for name, module in versions.items()}
        times: dict[str, list[float]] = {name: [] for name in steps}
        for i in range(args.steps + 2):  # the first two of each are warm-up
            order = list(steps) if i % 2 else list(reversed(steps))  # neither always goes first
            for name in order:
                t = time.perf_counter()
                steps[name]()
                times[name].append((time.perf_counter() - t) / k)
        figures = {name: (statistics.median(ts[2:]), min(ts[2:])) for name, ts in times.items()}
        shown = ", ".join(f"{name} {med * 1e6:.1f} µs ({low * 1e6:.1f})"
                          for name, (med, low) in figures.items())
        ratio = figures[args.against][0] / figures["this tree"][0]
        print(f"  K={k:5d}: {shown} per model-step; {ratio:.2f}x")


if __name__ == "__main__":
    main()
