"""A sweep as a shard plan: blocks of a stated number of seeds, each trained as one batch, each
block's results appended to a results file as it finishes, so a rerun skips the blocks done.

Shard k of a plan holds seeds ``[first + k*S, first + (k+1)*S)`` (the last may be shorter). A
seed's result depends on the batch it was trained in (docs/reliability.md), so the shard size
S is part of the sweep's definition: it is written in the file's header, and every executor
(forked processes here, Ray tasks on a cluster, ``zeptogpt.ray_backend``) trains the same
blocks and so gives the same per-seed steps and verdicts.

The results file is JSON lines: a header line saying what is swept, then one line per finished
shard. A shard's line is written whole with one ``write`` to a file opened for appending, then
fsynced: a kill leaves at most a last line without its newline, which the reader drops (and
the next run cuts off) as a shard not done. That is cheaper than rewriting the whole file per
shard (``write_atomic``), which grows quadratically with thousands of shards.

Usage: ``run_plan(SortTask(), ModelConfig(), Recipe(), ShardPlan(0, 1000, 256), Path("e6.jsonl"))``
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from zeptogpt.config import ModelConfig
from zeptogpt.task import SortTask
from zeptogpt.training import Recipe, train

SHARD_SIZE = 256  # the default block: 4 shards for 1,000 seeds; 64 made them 1.8x slower
KILL_DIR = "ZEPTOGPT_TEST_KILL_DIR"  # tests: a shard whose kill-<first seed> file is there dies


@dataclass(frozen=True)
class ShardPlan:
    """``seeds`` seeds from ``first_seed``, in blocks of ``shard_size``."""

    first_seed: int
    seeds: int
    shard_size: int

    @property
    def shards(self) -> int:
        return math.ceil(self.seeds / self.shard_size)

    def seeds_of(self, k: int) -> list[int]:
        """The seeds of shard ``k``. Usage: ``ShardPlan(0, 100, 64).seeds_of(1)  # 64..99``"""
        start = self.first_seed + k * self.shard_size
        return list(range(start, min(start + self.shard_size, self.first_seed + self.seeds)))


def train_shard(task: SortTask, config: ModelConfig, recipe: Recipe, seeds: list[int]) -> dict:
    """Train one shard's seeds in one batch on one thread; its results as a small JSON-ready
    dict (no weights). Usage: ``train_shard(task, config, Recipe(), [0, 1, 2])["steps"]``"""
    import torch

    kill = os.environ.get(KILL_DIR)
    if kill and seeds:  # a lost worker, for the tests: die once, the retry finds no file
        marker = Path(kill) / f"kill-{seeds[0]}"
        if marker.exists():
            marker.unlink()
            os._exit(1)
    torch.set_num_threads(1)
    result = train(task, config, recipe, seeds)
    return {"seeds": seeds, "steps": [r.steps for r in result.results],
            "solved": [r.solved for r in result.results],
            "margin": [r.margin for r in result.results],
            "model_steps": result.model_steps, "checked_on": result.checked_on}


def header(task: SortTask, config: ModelConfig, recipe: Recipe, plan: ShardPlan) -> dict:
    """The results file's first line: everything that decides a seed's result."""
    return {"task": task.name, "config": asdict(config), "recipe": asdict(recipe),
            "first_seed": plan.first_seed, "seeds": plan.seeds, "shard_size": plan.shard_size}


class PlanFileError(ValueError):
    """A results file that belongs to another sweep or cannot be read; one line for a user."""


def read_done(path: Path, head: dict) -> dict[int, dict]:
    """The shards already in ``path`` (by index), after checking its header is ``head``; an
    unfinished last line is cut off. Empty if the file does not exist."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):  # a line cut by a kill: that shard is not done
        data = data[:data.rfind(b"\n") + 1]
        with open(path, "r+b") as f:
            f.truncate(len(data))
    lines = data.decode().splitlines()
    try:
        first = json.loads(lines[0]) if lines else None
    except ValueError:
        first = None
    # Through JSON, so that tuples (betas) compare as the lists the file holds
    if first != json.loads(json.dumps(head)):
        raise PlanFileError(f"{path} holds the results of another sweep (its first line differs "
                            "from this one's: task, architecture, recipe, seeds or shard size); "
                            "remove it or choose another file")
    done = {}
    for n, line in enumerate(lines[1:], 2):
        try:
            shard = json.loads(line)
            done[shard["shard"]] = shard
        except (ValueError, KeyError, TypeError):
            raise PlanFileError(f"{path} line {n} is not a shard's results") from None
    return done


def append_line(path: Path, record: dict) -> None:
    """One complete line, appended with one write and fsynced."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record, allow_nan=False) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


Executor = Callable[[SortTask, ModelConfig, Recipe, dict[int, list[int]]],
                    Iterator[tuple[int, dict]]]


def local_executor(jobs: int) -> Executor:
    """Shards trained in up to ``jobs`` forked processes, one thread each (one after another in
    this process when ``jobs`` is 1 or forking is not available); results as they finish."""
    def run(task, config, recipe, pending):
        if jobs <= 1 or len(pending) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
            for k, seeds in pending.items():
                yield k, train_shard(task, config, recipe, seeds)
            return
        pool = multiprocessing.get_context("fork").Pool(min(jobs, len(pending)))
        try:
            work = [(task, config, recipe, k, seeds) for k, seeds in pending.items()]
            yield from pool.imap_unordered(_indexed, work)
        except BaseException:  # an error, Ctrl-C or the caller gone: no shard trains on
            pool.terminate()
            raise
        else:
            pool.close()  # all done: the workers leave by themselves, not by SIGTERM
        finally:
            pool.join()
    return run


def _indexed(args: tuple) -> tuple[int, dict]:
    task, config, recipe, k, seeds = args
    return k, train_shard(task, config, recipe, seeds)


@dataclass
class PlanRun:
    """All shards' results in seed order, and how this run went."""

    shards: list[dict]  # by shard index
    trained: int  # shards computed by this run (the rest were in the file)
    wall_seconds: float  # this run, start to last shard

    def seed_results(self) -> tuple[list[int], list[bool], list[float]]:
        """Steps, verdicts and margins of every seed, in seed order."""
        steps, solved, margin = [], [], []
        for shard in self.shards:
            steps += shard["steps"]
            solved += shard["solved"]
            margin += shard["margin"]
        return steps, solved, margin


def run_plan(task: SortTask, config: ModelConfig, recipe: Recipe, plan: ShardPlan, path: Path,
             executor: Executor | None = None,
             on_shard: Callable[[int, int], None] | None = None) -> PlanRun:
    """Train the plan's shards not yet in ``path``, appending each one's line as it arrives.
    ``on_shard(shards_done, seeds_done)`` after each. Usage: see the module's docstring."""
    executor = executor or local_executor(1)
    head = header(task, config, recipe, plan)
    start = time.perf_counter()
    done = read_done(path, head)
    if not path.exists() or path.stat().st_size == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        append_line(path, head)
    pending = {k: plan.seeds_of(k) for k in range(plan.shards) if k not in done}
    trained = 0

    def seeds_done() -> int:
        return sum(len(s["seeds"]) for s in done.values())

    if on_shard:
        on_shard(len(done), seeds_done())
    for k, result in executor(task, config, recipe, pending):
        record = {"shard": k} | result
        append_line(path, record)
        done[k] = record
        trained += 1
        if on_shard:
            on_shard(len(done), seeds_done())
    return PlanRun([done[k] for k in range(plan.shards)], trained,
                   round(time.perf_counter() - start, 3))
