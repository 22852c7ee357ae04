"""SortBoard: the smallest transformers that sort, each a checkpoint in the package, verified.

An entry is a small checkpoint in ``zeptogpt/board_entries/`` (a few KB) whose facts say its
category (``trained`` or ``hand-coded``) and how to reproduce it. ``rows()`` verifies every
entry with ``zeptogpt.verify`` (its own decoding, ``sorted()`` as the oracle, the counting
rules), reads the share of seeds that train a trained entry's architecture to 100 % from the
searches in ``board_entries/searches/`` (``zeptogpt search`` results files), and ``table()``
prints the board.

Usage::

    print(table(rows()))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ENTRIES = Path(__file__).parent / "board_entries"
SEARCHES = ENTRIES / "searches"  # the searches the trained entries were picked from


@dataclass(frozen=True)
class Entry:
    """One verified line of the board."""

    category: str  # "trained" or "hand-coded"
    task: str
    params: int  # free scalars by the counting rules (verify's count)
    arch: str  # the architecture in a phrase (ModelConfig.describe)
    correct: int
    total: int
    scope: str  # "exhaustive" or "sample"
    seeds: str  # "243/256": seeds that train the architecture to 100 % ("-": hand-coded)
    reproduce: str  # the command that makes it again
    file: str  # the checkpoint's name in zeptogpt/board_entries/


def entry_files(folder: Path = ENTRIES) -> list[Path]:
    """The board's checkpoints, in name order."""
    return sorted(folder.glob("*.safetensors"))


def rows(folder: Path = ENTRIES) -> list[Entry]:
    """Every entry verified, ordered by task, category and size.

    Usage: ``[e.params for e in rows() if e.category == "hand-coded"]``
    """
    from zeptogpt.checkpoint import load
    from zeptogpt.config import variant_name
    from zeptogpt.verify import verify

    searched = seeds_solved(folder / "searches")
    entries = []
    for path in entry_files(folder):
        checkpoint = load(path)
        verdict = verify(checkpoint.model, checkpoint.task)
        facts = checkpoint.facts
        entries.append(Entry(
            category=facts.get("category", "trained"), task=checkpoint.task.name,
            params=verdict.parameters.free, arch=checkpoint.model.config.describe(),
            correct=verdict.correct, total=verdict.total, scope=verdict.scope,
            seeds=searched.get((checkpoint.task.name, variant_name(checkpoint.model.config)),
                               "-"),
            reproduce=facts.get("reproduce", "-"),
            file=path.name))
    return sorted(entries, key=lambda e: (e.task, e.category != "trained", e.params))


def seeds_solved(folder: Path) -> dict[tuple[str, str], str]:
    """(task name, architecture) -> "solved/seeds" from the search with the most seeds that
    ran it, over the results files in ``folder``."""
    from zeptogpt.search import read_searches

    best: dict[tuple[str, str], tuple[int, int]] = {}
    for task, rows in read_searches(folder).values():
        for row in rows:
            key = (task.name, row.arch)
            if row.seeds > best.get(key, (0, 0))[1]:
                best[key] = (row.solved, row.seeds)
    return {key: f"{solved}/{seeds}" for key, (solved, seeds) in best.items()}


def table(entries: list[Entry]) -> str:
    """The board as a markdown table."""
    lines = ["| category | task | params | architecture | correct | seeds to 100 % | "
             "reproduce |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {e.category} | {e.task} | {e.params} | {e.arch} | {e.correct:,}/{e.total:,} "
              f"{e.scope} | {e.seeds} | `{e.reproduce}` |" for e in entries]
    return "\n".join(lines)


@dataclass(frozen=True)
class Spec:
    """How an entry is made: hand-coded (``zeptogpt.handcoded``), or trained from one seed with
    the default recipe."""

    file: str
    category: str  # "trained" or "hand-coded"
    task: str  # a named task (zeptogpt.task.TASKS)
    arch: str = ""  # trained: the architecture's name (config_from_name)
    seed: int = 0  # trained: the seed of the entry's weights


# The entries: the trained ones are the front of the searches in SEARCHES (docs/board.md).
SPECS = [
    Spec("abc3-hand-coded.safetensors", "hand-coded", "abc3"),
    Spec("abc6-hand-coded.safetensors", "hand-coded", "abc6"),
    Spec("abc3-trained-16.safetensors", "trained", "abc3", "e2-h2-m0-nonorm-sin-qk-vo"),
    Spec("abc3-trained-24.safetensors", "trained", "abc3", "e3-h1x2-m0-nonorm-sin-qk-vo"),
    Spec("abc3-trained-30.safetensors", "trained", "abc3", "e2-h1-m0-nonorm-pos-qk-vo"),
    Spec("abc3-seed-e6.safetensors", "trained", "abc3", "e6"),
    Spec("abc6-trained-40.safetensors", "trained", "abc6", "e4-h1x2-m0-nonorm-sin-qk"),
    Spec("abc6-trained-42.safetensors", "trained", "abc6", "e2-h1-m0-nonorm-pos-qk-vo"),
    Spec("abc6-trained-63.safetensors", "trained", "abc6", "e3-h1x2-m0-nonorm-pos-qk-vo"),
]


def reproduce(spec: Spec) -> str:
    """The command that makes ``spec``'s checkpoint again."""
    if spec.category == "hand-coded":
        return f"zeptogpt handcode --task {spec.task}"
    return f"zeptogpt train --task {spec.task} --arch {spec.arch} --seed {spec.seed}"


def build(spec: Spec, folder: Path = ENTRIES) -> Path:
    """Make the entry ``spec`` describes and save it in ``folder`` with its facts. Train with
    one torch thread, as the CLI does, for the CLI's weights bit for bit.

    Usage: ``build(SPECS[0], Path("/tmp"))``
    """
    from zeptogpt.checkpoint import Checkpoint, save
    from zeptogpt.config import config_from_name
    from zeptogpt.handcoded import sorter
    from zeptogpt.task import TASKS
    from zeptogpt.training import train

    task = TASKS[spec.task]
    if spec.category == "hand-coded":
        model = sorter(task)
    else:
        config = config_from_name(spec.arch, task.vocab_size, task.seq_len)
        model = train(task, config, seeds=[spec.seed]).models[0]
    facts = {"category": spec.category, "reproduce": reproduce(spec)}
    return save(folder / spec.file, Checkpoint(model, task, facts))
