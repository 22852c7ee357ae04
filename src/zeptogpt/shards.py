"""Many seeds on several cores: the seeds dealt into shards, each trained in a process of its own.

PyTorch's own way to use two cores splits every operator between two threads that meet at
the operator's end. When another process holds a core, each of those meetings waits for a
thread the system has put aside, and a sweep ran 10-40x slower than on one thread. Here each
shard is an ordinary ``train`` call with one thread, in a process forked for it, so the shards
never wait for one another: a busy core slows one shard, not every operator. (Threads of one
process would do the same but for the interpreter lock: with few seeds per shard, each step is
mostly Python, and two shards on threads ran 2.3x slower than one.)

A seed's result depends only on which shard it is in, never on timing or load: shard i holds
seeds ``i, i + n, i + 2n, ...`` of the list, and one thread per operator sums in a fixed order.
Where processes cannot be forked (not Linux or macOS), the shards run one after another.

Usage: ``train_sharded(SortTask(), ModelConfig(), seeds=range(1000), shards=2)``
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait

import torch

from zeptogpt.config import ModelConfig
from zeptogpt.task import SortTask
from zeptogpt.training import Recipe, StepCallback, TrainResult, train

# Below this many seeds a shard saves too little to pay for its process: a batch of 8 seeds
# costs about what a batch of 1 does (each step is mostly Python), and forking and hearing
# from a second process cost more than half of it.
MIN_SEEDS_PER_SHARD = 32


def shard_count(seeds: int, cores: int) -> int:
    """How many shards ``zeptogpt sweep`` deals ``seeds`` seeds into on ``cores`` cores: one per
    core, but never fewer than ``MIN_SEEDS_PER_SHARD`` seeds in a shard.
    Usage: ``shard_count(1000, os.cpu_count())  # 2 on two cores``"""
    return max(1, min(cores, seeds // MIN_SEEDS_PER_SHARD))


def train_sharded(
    task: SortTask,
    config: ModelConfig,
    recipe: Recipe = Recipe(),
    seeds: Sequence[int] = (0,),
    shards: int = 2,
    on_step: StepCallback | None = None,
) -> TrainResult:
    """``train`` with the seeds dealt into ``shards`` batches trained side by side, one core
    each; the results come back in the order of ``seeds``. ``shards=1`` is ``train`` itself.

    ``on_step(step, loss, correct, active)`` is called in this process at each shard's first
    step and whenever seeds leave it (not at every step: each call wakes this process):
    ``loss`` and ``correct`` are that shard's, ``active`` counts the seeds still training in
    all shards.
    Usage: ``train_sharded(task, config, seeds=range(256), shards=2).results``
    """
    seeds = list(seeds)
    shards = max(1, min(shards, len(seeds)))
    if shards == 1:
        return train(task, config, recipe, seeds, on_step)
    parts = [seeds[i::shards] for i in range(shards)]
    if "fork" not in multiprocessing.get_all_start_methods():
        return merge([train(task, config, recipe, p, on_step) for p in parts])
    fork = multiprocessing.get_context("fork")
    pipes, workers = [], []
    try:
        for part in parts:
            receive, send = fork.Pipe(duplex=False)
            worker = fork.Process(target=_shard, args=(task, config, recipe, part, send),
                                  daemon=True)
            worker.start()
            send.close()  # the child holds its own end; ours would keep the pipe open
            pipes.append(receive)
            workers.append(worker)
        return merge(_collect(pipes, [len(p) for p in parts], on_step))
    finally:
        for worker in workers:  # after an error or Ctrl-C here, no shard trains on unseen
            if worker.is_alive():
                worker.kill()
            worker.join()
        for pipe in pipes:
            pipe.close()


def _collect(pipes: list[Connection], sizes: list[int], on_step: StepCallback | None
             ) -> list[TrainResult]:
    """Each shard's result, passing its reports on to ``on_step`` as they come."""
    active, results = list(sizes), [None] * len(pipes)
    waiting = list(pipes)
    while waiting:
        for pipe in wait(waiting):
            i = pipes.index(pipe)
            try:
                kind, payload = pipe.recv()
            except EOFError:
                raise RuntimeError(f"shard {i} ended without a result") from None
            if kind == "step":
                step, loss, correct, active[i] = payload
                if on_step is not None:
                    on_step(step, torch.tensor(loss), torch.tensor(correct), sum(active))
            elif kind == "error":
                raise RuntimeError(f"shard {i} failed: {payload}")
            else:
                results[i] = pickle.loads(payload)
                waiting.remove(pipe)
    return results


def _shard(task: SortTask, config: ModelConfig, recipe: Recipe, seeds: list[int],
           send: Connection) -> None:
    """A forked child: train its seeds on one thread, report its first step and every step
    where seeds left, then send the result."""
    code, parent, reported = 0, os.getppid(), [None]
    try:
        torch.set_num_threads(1)

        def report(step: int, loss: torch.Tensor, correct: torch.Tensor, k: int) -> None:
            if os.getppid() != parent:  # the parent was killed outright: nobody to train for
                os._exit(1)
            if k != reported[0]:
                reported[0] = k
                send.send(("step", (step, loss.tolist(), correct.tolist(), k)))

        result = train(task, config, recipe, seeds, report)
        # Plain pickle, as bytes: the pipe's own pickler would pass torch tensors as shared
        # memory, which needs this process alive until the parent has read them; it exits now.
        send.send(("result", pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)))
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the parent reports it
        code = 130
    except BaseException as e:  # noqa: BLE001 (whatever it is, the parent must hear of it)
        try:
            send.send(("error", f"{type(e).__name__}: {e}"))
        except OSError:
            pass
        code = 1
    finally:
        sys.stdout.flush()
        os._exit(code)  # no exit handlers of the parent's (pytest's, atexit) run in the child


def merge(results: list[TrainResult]) -> TrainResult:
    """The shards' results as one, seeds back in the order they were dealt from (shard i held
    seeds i, i + n, ...)."""
    n = len(results)
    total = sum(len(r.results) for r in results)
    order = [results[j % n].results[j // n] for j in range(total)]
    weights = {}
    for name, first in results[0].weights.items():
        stacked = torch.empty(total, *first.shape[1:])
        for i, r in enumerate(results):
            stacked[i::n] = r.weights[name]
        weights[name] = stacked
    return TrainResult(results[0].config, weights, order, sum(r.model_steps for r in results),
                       results[0].checked_on)
