"""Before and after: this tree's engine against another revision's, alternating in one process.

    python bench/bench_ab.py [--against HEAD~1] [--threads 2] [--ks 64 256 1024] [--runs 5]

On a shared machine the speed of the same code drifts by 1.5x within minutes, so two benchmark
runs one after the other can say either thing. Here both versions of the whole `zeptogpt`
package (network, loss, verdict, optimizer) are loaded side by side and each one's own `train`
runs in turn, so every drift hits both alike; the ratio of the medians is the figure to quote.
"""

from __future__ import annotations

import argparse
import importlib
import io
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from types import ModuleType

import torch

import zeptogpt

PACKAGE = "src/zeptogpt"


def package_at(revision: str, root: Path) -> ModuleType:
    """Import the package as it was at ``revision``, renamed so it can sit beside this tree's."""
    name = "zeptogpt_" + re.sub(r"\W", "_", revision)
    archive = subprocess.run(["git", "archive", revision, PACKAGE], cwd=root, check=True,
                             capture_output=True).stdout
    folder = Path(tempfile.mkdtemp())
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    (folder / PACKAGE).rename(folder / name)
    for path in (folder / name).glob("*.py"):  # its imports of itself, under the new name
        path.write_text(re.sub(r"\bzeptogpt\b", name, path.read_text()))
    sys.path.insert(0, str(folder))
    return importlib.import_module(name)


def train_cost(package: ModuleType, k: int, steps: int) -> float:
    """Seconds per model-step of a package's own `train` for K seeds of e6."""
    task, recipe = package.SortTask(), package.Recipe(max_steps=steps)
    t = time.perf_counter()
    result = package.train(task, package.ModelConfig(), recipe, seeds=range(k))
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
        before = package_at(args.against, root)
    except subprocess.CalledProcessError as e:
        sys.exit(f"bench_ab: cannot read {PACKAGE} at {args.against!r}: "
                 f"{e.stderr.decode().strip()}")
    versions = {args.against: before, "this tree": zeptogpt}
    torch.set_num_threads(args.threads)
    print(f"e6, {args.threads} threads, {args.runs} alternating `train` calls of {args.steps} "
          "updates each, median (min) per model-step")
    for k in args.ks:
        costs: dict[str, list[float]] = {name: [] for name in versions}
        for i in range(args.runs + 1):  # the first call of each is warm-up
            order = list(versions) if i % 2 else list(reversed(versions))  # neither always first
            for name in order:
                costs[name].append(train_cost(versions[name], k, args.steps))
        figures = {name: (statistics.median(c[1:]), min(c[1:])) for name, c in costs.items()}
        shown = ", ".join(f"{name} {med * 1e6:.1f} µs ({low * 1e6:.1f})"
                          for name, (med, low) in figures.items())
        ratio = figures[args.against][0] / figures["this tree"][0]
        print(f"  K={k:5d}: {shown}; {ratio:.2f}x")


if __name__ == "__main__":
    main()
