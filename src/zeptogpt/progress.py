"""Live progress lines for the CLI: one training run's step line, and a bar over a sweep's seeds.

Both are ``on_step`` callbacks for ``train`` / ``run_sweep``: ``(step, loss, correct, active)``.

Usage::

    line = TrainingLine(task.n_inputs)
    result = train(task, config, seeds=[0], on_step=line)
    line.finish(result.results[0])
"""

from __future__ import annotations

import sys
import time


class TrainingLine:
    """The live training line: rewritten in place on a terminal, every 100 steps otherwise."""

    def __init__(self, total: int) -> None:
        self.total, self.tty = total, sys.stdout.isatty()
        self.last = 0.0

    def __call__(self, step: int, loss, correct, active: int) -> None:
        now = time.perf_counter()
        if self.tty and now - self.last > 0.05:
            self.last = now
            print(f"\r  step {step:5d}  loss {float(loss[0]):.4f}  sorted {int(correct[0])}/"
                  f"{self.total}", end="", flush=True)
        elif not self.tty and step % 100 == 0 and step:
            print(f"  step {step:5d}  loss {float(loss[0]):.4f}  sorted {int(correct[0])}/"
                  f"{self.total}", flush=True)

    def finish(self, r, total: int | None = None) -> None:
        """The last line: where the run stopped and whether it solved the task, its count out
        of ``total`` inputs (a drawn-batch run's verdict is on the evaluation set)."""
        verdict = "solved" if r.solved else "NOT solved (step limit reached)"
        total = total or self.total
        print(f"\r  step {r.steps:5d}  loss {r.loss:.4f}  sorted {r.correct}/{total}  "
              f"min p {r.margin:.3f}  -> {verdict} in {r.seconds:.2f} s", flush=True)


class SeedBar:
    """A tqdm bar over ``seeds`` seeds on stderr, shown only on a terminal, closed on leaving
    its ``with`` block; the bars below say what moves it."""

    def __init__(self, name: str, seeds: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=seeds, desc=name, unit="seed", file=sys.stderr, leave=False,
                        disable=None)  # None: only on a terminal
        self.seeds = seeds

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()


class SweepBar(SeedBar):
    """A bar over a sweep's seeds: solved so far, and how many are still training.

    Seeds leave the batch before the step limit only by being solved (at the limit the rest
    fail together, and the bar closes), so every seed that has left is a solved one.
    """

    def __init__(self, name: str, seeds: int) -> None:
        super().__init__(name, seeds)
        self.finished = 0

    def __call__(self, step: int, loss, correct, active: int) -> None:
        done = self.seeds - active  # seeds that left before this step
        self.bar.set_postfix_str(f"solved {done}, training {active}, step {step}", refresh=False)
        if done != self.finished:
            self.bar.update(done - self.finished)  # redraws, postfix included
            self.finished = done


class ShardBar(SeedBar):
    """A bar over the seeds of a sweep by shard plan: shards done of all, updated as each
    shard's results arrive (and at once for those a resumed run found done).

    Usage: ``with ShardBar("e6", 1000, 4) as bar: bar(shards_done, seeds_done)``
    """

    def __init__(self, name: str, seeds: int, shards: int) -> None:
        super().__init__(name, seeds)
        self.shards, self.seeds_done = shards, 0
        self.found = None  # shards already done before this run: the first call's count

    def __call__(self, shards_done: int, seeds_done: int) -> None:
        if self.found is None:
            self.found = shards_done
        self.bar.set_postfix_str(f"shards {shards_done}/{self.shards}", refresh=False)
        self.bar.update(seeds_done - self.seeds_done)
        self.seeds_done = seeds_done
