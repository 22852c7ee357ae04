"""Sweeps: train many seeds of a variant at once and turn "usually works" into numbers."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import stat
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from zeptogpt.config import VARIANTS, ModelConfig, variant_name
from zeptogpt.files import from_fields, json_excerpt, json_number
from zeptogpt.plan import Executor, ShardPlan, run_plan
from zeptogpt.shards import train_sharded
from zeptogpt.task import SortTask
from zeptogpt.training import Recipe, percentile

MAX_SWEEP_BYTES = 64 * 2**20  # a sweep file's largest size: 10,000 seeds of 4 variants take 1 MB

SEED_NOTES = {  # the seed's variants table, word for word
    "e6": "Default. Robust 27/27.",
    "e6-nopos": "Usually 27/27; may need more steps.",
    "e4-nopos": "Finicky; can fail on duplicates.",
    "e8-mlp2": "Very reliable, converges fast.",
}


@dataclass(frozen=True)
class SweepSummary:
    """One variant's measured reliability: what the seed's variants table only put in words."""

    variant: str  # architecture name, e.g. "e6"
    params: int  # trainable parameters
    seeds: int  # seeds tried (first_seed .. first_seed + seeds - 1)
    first_seed: int  # the first of them
    solved: int  # seeds that sorted every input greedy with every answer token at p >= margin
    step_limit: int  # a seed not solved by then is a failure
    median_steps: float  # over the solved seeds; nan when none solved
    p90_steps: float  # 90th percentile (nearest rank) over the solved seeds
    worst_margin: float  # lowest probability of a correct answer token among solved seeds
    wall_seconds: float  # the whole batched run, start to last verdict (a resumed run: its part)
    model_steps: int  # seed-steps actually computed: seeds leave the batch at their verdict
    task: str = "abc3"  # the task's name (SortTask.name); files from before tasks had names: abc3
    inputs: int = 27  # the inputs a solved seed sorts: all the task's, or its evaluation set
    solved_on: str = "every input"  # or "evaluation set": a fixed sample and the edge cases
    # The shard plan (zeptogpt.plan): seeds trained in blocks of shard_size, a part of the
    # sweep's definition; 0 for the default sweep, seeds dealt round-robin into one shard a core
    shard_size: int = 0
    backend: str = "local"  # or "ray"
    cluster_cpus: int = 0  # Ray's CPUs (shards training at once); 0 for the local backend

    @property
    def share_solved(self) -> float:
        return self.solved / self.seeds

    def row(self) -> dict:
        """Flat dict for JSON/CSV, with the derived share."""
        return asdict(self) | {"share_solved": self.share_solved}


@dataclass
class Sweep:
    """A summary, each seed's steps to solve (None where it failed), for curves, and the recipe
    the seeds were trained with, so that a saved result says how it was obtained."""

    summary: SweepSummary
    steps: list[int | None]
    recipe: Recipe


def run_sweep(
    task: SortTask,
    config: ModelConfig,
    seeds: int,
    recipe: Recipe = Recipe(),
    first_seed: int = 0,
    on_step: Callable | None = None,
    shards: int = 1,
) -> Sweep:
    """Train ``seeds`` seeds of one architecture, in ``shards`` batches side by side (one core
    each, ``train_sharded``), and summarise.

    Usage: ``run_sweep(SortTask(), ModelConfig(), seeds=256).summary.share_solved``
    """
    start = time.perf_counter()
    result = train_sharded(task, config, recipe, range(first_seed, first_seed + seeds), shards,
                           on_step)
    wall = time.perf_counter() - start
    return _summarise(task, config, recipe, seeds, first_seed,
                      [r.steps for r in result.results], [r.solved for r in result.results],
                      [r.margin for r in result.results], wall, result.model_steps,
                      result.checked_on)


def run_planned_sweep(
    task: SortTask,
    config: ModelConfig,
    recipe: Recipe,
    plan: ShardPlan,
    path: Path,
    executor: Executor | None = None,
    backend: str = "local",
    cluster_cpus: int = 0,
    on_shard: Callable | None = None,
) -> Sweep:
    """A sweep by shard plan (``zeptogpt.plan``): the shards not yet in the results file
    ``path`` are trained by ``executor`` and appended as they finish; the summary is of all.

    Usage: ``run_planned_sweep(task, config, Recipe(), ShardPlan(0, 1000, 256), Path("r.jsonl"))``
    """
    run = run_plan(task, config, recipe, plan, path, executor, on_shard)
    steps, solved, margins = run.seed_results()
    return _summarise(task, config, recipe, plan.seeds, plan.first_seed, steps, solved, margins,
                      run.wall_seconds, sum(s["model_steps"] for s in run.shards),
                      run.shards[0]["checked_on"], plan.shard_size, backend, cluster_cpus)


def _summarise(task: SortTask, config: ModelConfig, recipe: Recipe, seeds: int, first_seed: int,
               seed_steps: list[int], seed_solved: list[bool], seed_margins: list[float],
               wall: float, model_steps: int, checked_on: int, shard_size: int = 0,
               backend: str = "local", cluster_cpus: int = 0) -> Sweep:
    steps = [n if ok else None for n, ok in zip(seed_steps, seed_solved)]
    solved = sorted(s for s in steps if s is not None)
    margins = [m for m, ok in zip(seed_margins, seed_solved) if ok]
    summary = SweepSummary(
        variant=variant_name(config), params=config.n_params, seeds=seeds, first_seed=first_seed,
        solved=len(solved), step_limit=recipe.max_steps, median_steps=solved_median(steps),
        p90_steps=percentile(solved, 90), worst_margin=min(margins) if margins else math.nan,
        wall_seconds=round(wall, 3), model_steps=model_steps, task=task.name,
        inputs=checked_on,
        solved_on="every input" if checked_on == task.n_inputs else "evaluation set",
        shard_size=shard_size, backend=backend, cluster_cpus=cluster_cpus)
    return Sweep(summary, steps, recipe)


def solved_median(steps: Sequence[int | None]) -> float:
    """Median steps to solve over the solved seeds (None: not solved); nan when none solved.
    The summary and ``plots.plot_solved_share`` both use it, so they cannot disagree."""
    solved = [s for s in steps if s is not None]
    return float(statistics.median(solved)) if solved else math.nan


def result_name(variant: str, seeds: int, first_seed: int, recipe: Recipe) -> str:
    """The file name (without suffix) a sweep's results get unless told otherwise: what was swept
    and every way its recipe differs from the default, so that sweeps under different recipes
    never overwrite one another.

    Usage: ``result_name("e6", 256, 0, Recipe(lr=0.01))  # "e6-256seeds-lr0.01"``
    """
    name = f"{variant}-{seeds}seeds" + (f"-from{first_seed}" if first_seed else "")
    short = dict(max_steps="steps", weight_decay="wd", batch_size="batch", objective="")
    for f in fields(Recipe):
        value = getattr(recipe, f.name)
        if value != f.default:
            text = ",".join(f"{v:g}" for v in value) if isinstance(value, tuple) else (
                f"{value:g}" if isinstance(value, float) else "" if value is True else str(value))
            name += f"-{short.get(f.name, f.name)}{text}"
    return name


def format_summary(s: SweepSummary) -> str:
    """A few lines for the terminal."""
    task = "" if s.task == "abc3" else f"{s.task}, "
    return (f"{s.variant} ({task}{s.params} params): {s.solved}/{s.seeds} seeds solved "
            f"({100 * s.share_solved:.1f} %) within {s.step_limit} steps; steps to solve "
            f"median {s.median_steps:g}, p90 {s.p90_steps:g}; worst margin {s.worst_margin:.3f}; "
            f"{s.wall_seconds:.1f} s wall, {s.model_steps} seed-steps"
            + ("" if s.solved_on == "every input" else
               f"; solved means all {s.inputs:,} of the fixed evaluation set sorted")
            + ("" if not s.shard_size else f"; shards of {s.shard_size} seeds, " + (
                f"Ray ({s.cluster_cpus} CPUs)" if s.backend == "ray" else "in-process")))


def variants_table(summaries: Sequence[SweepSummary]) -> str:
    """The seed's variants table (markdown) with the measured columns beside its words (the
    seed's notes only for the seed's task, which they are about)."""
    n = summaries[0].inputs if summaries else 27
    notes = all(s.task == "abc3" for s in summaries)
    lines = ["| Variant | Params | " + ("Seed's notes | " if notes else "")
             + f"Solved ({n}/{n}, p ≥ 0.9) | Median steps | p90 steps | Worst margin | Wall |",
             "|---" * (8 if notes else 7) + "|"]
    for s in summaries:
        arch = VARIANTS.get(s.variant)
        name = (f"E={arch['n_embd']}, H={arch['n_head']}, MLP×{arch['mlp_mult']}, "
                f"pos={'ON' if arch['pos_embed'] else 'OFF'}") if arch else s.variant
        note = f"{SEED_NOTES.get(s.variant, '')} | " if notes else ""
        lines.append(
            f"| {name} | {s.params} | {note}"
            f"{100 * s.share_solved:.1f} % ({s.solved}/{s.seeds}) | {s.median_steps:g} | "
            f"{s.p90_steps:g} | {s.worst_margin:.3f} | {s.wall_seconds:.1f} s |")
    return "\n".join(lines)


# --- files ------------------------------------------------------------------------------------

def to_json(sweeps: Sequence[Sweep]) -> str:
    """The sweeps as JSON; a figure that does not exist (no seed solved) is null, as NaN is not
    JSON. Usage: ``Path("e6.json").write_text(to_json([sweep]))``"""
    def row(s: SweepSummary) -> dict:
        return {k: json_number(v) if isinstance(v, float) else v for k, v in s.row().items()}
    return json.dumps([{"summary": row(s.summary), "recipe": asdict(s.recipe), "steps": s.steps}
                       for s in sweeps], indent=1, allow_nan=False)


def from_json(text: str) -> list[Sweep]:
    """The sweeps of ``to_json`` text, checked; ValueError with one line saying what is wrong."""
    data = json.loads(text)
    if not isinstance(data, list) or not data:
        raise ValueError("expected a non-empty JSON list of sweeps")
    return [_sweep(d, f"sweep {n}") for n, d in enumerate(data, 1)]


def _sweep(d: object, where: str) -> Sweep:
    """One entry of a sweep file as a Sweep, every summary field and step checked."""
    if not (isinstance(d, dict) and isinstance(d.get("summary"), dict)
            and isinstance(d.get("recipe"), dict) and isinstance(d.get("steps"), list)):
        raise ValueError(f'{where}: expected an object with a "summary" object, a "recipe" '
                         'object and a "steps" list')
    summary = {k: v for k, v in d["summary"].items() if k != "share_solved"}  # derived, not read
    try:
        s = from_fields(SweepSummary, summary)
    except ValueError as e:
        raise ValueError(f"{where}: summary {e}") from None
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", s.variant):  # it names the plot's files
        raise ValueError(f"{where}: summary variant must be a name like e6-nopos, "
                         f"got {json_excerpt(s.variant)}")
    least = dict(params=1, seeds=1, first_seed=0, solved=0, step_limit=0, model_steps=0,
                 shard_size=0, cluster_cpus=0)
    if s.backend not in ("local", "ray"):
        raise ValueError(f'{where}: summary backend must be "local" or "ray", '
                         f"got {json_excerpt(s.backend)}")
    for name, low in least.items():
        if getattr(s, name) < low:
            raise ValueError(f"{where}: summary {name} must be at least {low}, "
                             f"got {getattr(s, name)}")
    try:
        recipe = from_fields(Recipe, d["recipe"])
    except ValueError as e:
        raise ValueError(f"{where}: recipe {e}") from None
    if recipe.max_steps != s.step_limit:
        raise ValueError(f"{where}: recipe max_steps ({recipe.max_steps}) is not the summary's "
                         f"step_limit ({s.step_limit})")
    steps = d["steps"]
    if len(steps) != s.seeds:
        raise ValueError(f"{where}: steps must list one entry per seed ({s.seeds}), "
                         f"got {len(steps)}")
    for i, x in enumerate(steps):
        if x is not None and not (type(x) is int and 0 <= x <= s.step_limit):
            raise ValueError(f"{where}: steps[{i}] must be an integer from 0 to the step limit "
                             f"{s.step_limit}, or null for a seed not solved; "
                             f"got {json_excerpt(x)}")
    if sum(x is not None for x in steps) != s.solved:
        raise ValueError(f"{where}: summary solved ({s.solved}) is not the number of solved "
                         "seeds in steps")
    return Sweep(s, steps, recipe)


class SweepFileError(ValueError):
    """A sweep results file that cannot be read; the message is one line meant for a user."""


def read_sweeps(path: str | Path) -> list[Sweep]:
    """The sweeps saved by ``zeptogpt sweep --json``, checked.

    Usage: ``[s.summary.variant for s in read_sweeps("runs/sweep/variants-256seeds.json")]``
    """
    path = Path(path)
    try:
        # Opened without waiting (a named pipe would block forever) and read only if it is a
        # regular file of a sensible size: /dev/zero never ends.
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise SweepFileError(f"{path} is not a regular file")
            if info.st_size > MAX_SWEEP_BYTES:
                raise SweepFileError(f"{path} is {info.st_size:,} bytes, more than any sweep "
                                     f"writes ({MAX_SWEEP_BYTES:,})")
            text = f.read(MAX_SWEEP_BYTES + 1).decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or e
        raise SweepFileError(f"cannot read the sweep results {path}: {reason}") from None
    try:
        return from_json(text)
    except (ValueError, RecursionError) as e:  # RecursionError: JSON nested thousands deep
        raise SweepFileError(f"{path} is not a file written by `zeptogpt sweep --json` "
                             f"({e})") from None


def to_csv(sweeps: Sequence[Sweep]) -> str:
    """One row per sweep: the summary, then the recipe (its step limit is the summary's)."""
    out = io.StringIO()
    rows = [s.summary.row() | _recipe_columns(s.recipe) for s in sweeps]
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _recipe_columns(recipe: Recipe) -> dict:
    columns = {}
    for name, value in asdict(recipe).items():
        if name == "betas":  # a CSV cell holds one number
            columns["beta1"], columns["beta2"] = value
        elif name != "max_steps":  # the summary's step_limit
            columns[name] = value
    return columns


def from_csv(text: str) -> list[SweepSummary]:
    """The summaries of ``to_csv`` text (the recipe columns are for people and spreadsheets)."""
    types = {f.name: f.type for f in fields(SweepSummary)}
    convert = {"str": str, "int": int, "float": float}
    return [SweepSummary(**{k: convert[types[k]](v) for k, v in row.items() if k in types})
            for row in csv.DictReader(io.StringIO(text))]
