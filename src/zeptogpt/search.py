"""Architecture search: many small architectures, each over many seeds, and the Pareto front.

Every architecture is trained with one recipe over the same seeds by the batched engine
(``run_sweep``); a row records how many seeds solved the task. The front keeps the
architectures that no smaller one matches: share of seeds solved against parameters. A search
is its task, seeds and recipe, written as the first line of its results file; a row per
architecture follows as each finishes, so a stopped search resumes where it stopped, and a
changed recipe is refused there: it is a new search, with a file of its own.

Usage::

    rows = run_search(SortTask(), grid(SortTask(), max_params=60), seeds=256)
    for row in front(rows): print(row.arch, row.params, row.share)
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from zeptogpt.config import ModelConfig, variant_name
from zeptogpt.files import write_atomic
from zeptogpt.plan import Executor, ShardPlan
from zeptogpt.sweep import run_planned_sweep, run_sweep
from zeptogpt.task import SortTask
from zeptogpt.training import Recipe

# The grid's knobs: widths, heads and head widths small enough for tens of parameters, no
# normalisation, one that learns nothing, and the seed's; every kind of position, every tie.
WIDTHS, HEADS, HEAD_DIMS = (2, 3, 4, 5), (1, 2), (1, 2, 3)
NORMS_SEARCHED = ("none", "rmsnorm-fixed", "layernorm")
POSITIONS_SEARCHED = ("sinusoidal", "none", "learned")


def grid(task: SortTask, max_params: int) -> list[ModelConfig]:
    """Every one-block architecture of the knobs above with at most ``max_params`` parameters,
    smallest first (MLP none or E wide; K = Q and O = Vᵀ tied or not).

    Usage: ``len(grid(SortTask(), 40))``
    """
    found: dict[str, ModelConfig] = {}
    for E, H, D, mlp, norm, pos, qk, vo in itertools.product(
            WIDTHS, HEADS, HEAD_DIMS, (0, -1), NORMS_SEARCHED, POSITIONS_SEARCHED,
            (True, False), (False, True)):
        if D > E:
            continue
        config = ModelConfig(vocab_size=task.vocab_size, block_size=task.seq_len, n_embd=E,
                             n_head=H, head_dim=D, mlp_width=mlp, norm=norm,
                             pos_embed=pos == "learned", sinusoidal=pos == "sinusoidal",
                             tie_qk=qk, tie_vo=vo)
        if config.n_params <= max_params:
            found.setdefault(variant_name(config), config)
    return sorted(found.values(), key=lambda c: (c.n_params, variant_name(c)))


@dataclass(frozen=True)
class Row:
    """One architecture's result over the search's seeds."""

    arch: str  # variant_name of the architecture; config_from_name rebuilds it
    params: int  # trainable parameters (ModelConfig.n_params)
    seeds: int
    solved: int  # seeds that sorted every input (every answer at p >= the recipe's margin)
    median_steps: float | None  # over the solved seeds; None when none solved
    wall_seconds: float

    @property
    def share(self) -> float:
        return self.solved / self.seeds


def header(task: SortTask, seeds: int, recipe: Recipe, shard_size: int = 0) -> dict:
    """What defines a search: its first line (the shard size only for a search by shard plan,
    whose seeds are trained in blocks of that size)."""
    search = {"task": asdict(task), "seeds": seeds, "recipe": asdict(recipe)}
    return {"search": search | ({"shard_size": shard_size} if shard_size else {})}


def read_search(path: Path) -> tuple[dict, list[Row]]:
    """A results file: its header (``header``'s dict) and its rows; ValueError (one line) if
    it is not one."""
    lines = path.read_text().splitlines()
    try:
        return json.loads(lines[0]), [Row(**json.loads(line)) for line in lines[1:]]
    except (ValueError, TypeError, IndexError):
        raise ValueError(f"{path} is not a search's results file") from None


def read_rows(path: Path, task: SortTask, seeds: int, recipe: Recipe,
              shard_size: int = 0) -> list[Row]:
    """The rows a results file holds already; ValueError (one line) if it is another search's."""
    if not path.exists():
        return []
    first, rows = read_search(path)
    if first != json.loads(json.dumps(header(task, seeds, recipe, shard_size))):
        raise ValueError(f"{path} holds another search (task, seeds, recipe or shard size "
                         "differ): a changed recipe is a new search, so give it another --out")
    return rows


def run_search(task: SortTask, configs: Sequence[ModelConfig], seeds: int,
               recipe: Recipe = Recipe(), results: Path | None = None, shards: int = 1,
               on_row: Callable[[Row], None] | None = None,
               on_step: Callable | None = None, shard_size: int = 0,
               executor: Executor | None = None, backend: str = "local",
               cluster_cpus: int = 0) -> list[Row]:
    """Each architecture trained over seeds 0..seeds-1 under one recipe; a row each, appended
    to ``results`` as it finishes (architectures already there are not trained again).
    With ``shard_size``, each architecture is a sweep by shard plan (``zeptogpt.plan``) run by
    ``executor``, its shards' results in ``<results without .jsonl>.shards/<arch>.jsonl``, so
    a stopped search resumes within an architecture too.

    Usage: ``run_search(task, [config_from_name("e4-h1x2-m0-nonorm-sin-qk")], seeds=64)``
    """
    if shard_size and results is None:
        raise ValueError("a search by shard plan needs a results file")
    rows = read_rows(results, task, seeds, recipe, shard_size) if results else []
    done = {r.arch for r in rows}
    for config in configs:
        if variant_name(config) in done:
            continue
        if shard_size:
            s = run_planned_sweep(task, config, recipe, ShardPlan(0, seeds, shard_size),
                                  results.with_suffix(".shards") / f"{variant_name(config)}.jsonl",
                                  executor, backend, cluster_cpus).summary
        else:
            s = run_sweep(task, config, seeds, recipe, on_step=on_step, shards=shards).summary
        row = Row(s.variant, s.params, seeds, s.solved,
                  None if s.solved == 0 else s.median_steps, s.wall_seconds)
        rows.append(row)
        done.add(row.arch)
        if results:  # the whole file again, atomically: a kill leaves the last complete one
            lines = [header(task, seeds, recipe, shard_size)] + [asdict(r) for r in rows]
            write_atomic({results: "".join(json.dumps(x) + "\n" for x in lines).encode()})
        if on_row:
            on_row(row)
    return rows


def front(rows: Sequence[Row]) -> list[Row]:
    """The Pareto front: each row that solves a larger share of seeds than every smaller
    architecture (ties in size: the better share; then the faster median).

    Usage: ``[r.arch for r in front(rows)]``
    """
    best = -1.0
    kept = []
    for row in sorted(rows, key=lambda r: (r.params, -r.share, r.median_steps or 0)):
        if row.share > best:
            kept.append(row)
            best = row.share
    return kept


def table(rows: Sequence[Row]) -> str:
    """Rows as a markdown table."""
    lines = ["| architecture | params | seeds solved | share | median steps |",
             "|---|---|---|---|---|"]
    lines += [f"| {r.arch} | {r.params} | {r.solved}/{r.seeds} | {100 * r.share:.1f} % | "
              f"{'-' if r.median_steps is None else f'{r.median_steps:g}'} |" for r in rows]
    return "\n".join(lines)


def read_searches(folder: Path) -> dict[str, tuple[SortTask, list[Row]]]:
    """Every results file in ``folder`` (``*.jsonl``): its name (as ``abc3-32seeds``) -> its
    task and rows.

    Usage: ``read_searches(Path("runs/search"))["abc3-256seeds"][1]``
    """
    found = {}
    for path in sorted(folder.glob("*.jsonl")):
        head, rows = read_search(path)
        found[path.stem] = (SortTask(**head["search"]["task"]), rows)
    return found
