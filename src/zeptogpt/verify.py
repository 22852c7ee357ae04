"""An independent check that a model sorts: its own greedy decoding, Python's ``sorted()`` as
the oracle, and the parameter count by AdderBoard's rules.

Nothing here comes from the training or evaluation code; the task supplies only its vocabulary
and inputs. Any torch module that maps token ids ``[B, T]`` to logits ``[B, T, V]`` can be checked.

Counting rule: the learned weights are the module's ``nn.Parameter``s, each counted once however
often it is tied, and buffers (fixed positions, masks) are not weights. A weight made of fewer
free scalars counts those, so the count is the number of distinct nonzero magnitudes ``|w|``
among all the entries: a trained weight's entries are all different, a hand-set one repeats a
few values. Zero entries are the architecture's sparsity, not parameters.

Usage: ``print(verify_file("runs/e6/model.safetensors").line())``
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from zeptogpt.task import SortTask

SAMPLE = 100_000  # a task with more inputs than this is checked on a sample of this many
SEED = 0  # the sample's seed: the same inputs every time
CHUNK = 4096  # sequences run through the model at once
SHOWN = 5  # failures a verdict keeps


@dataclass(frozen=True)
class ParameterCount:
    """A model's weights counted three ways.

    Usage: ``count_parameters(model).free``
    """

    free: int  # distinct nonzero magnitudes: the rule's count
    stored: int  # entries of the unique parameters
    nonzero: int  # entries that are not zero


class Failure(NamedTuple):
    """An input the model got wrong."""

    input: str
    expected: str
    got: str


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking a model on a task.

    Usage: ``verdict = verify(model, task); print(verdict.line())``
    """

    task: str
    parameters: ParameterCount
    correct: int
    total: int
    scope: str  # "exhaustive": every input; "sample": a seeded sample plus the edge cases
    failures: tuple[Failure, ...] = ()  # the first few wrong answers, in input order

    @property
    def passed(self) -> bool:
        return self.correct == self.total

    def line(self) -> str:
        """One line: ``abc3: 318 parameters (318 nonzero of 318 stored), 27/27 exhaustive:
        verified``, or ``FAILED (caa -> aca, expected aac)`` at the end.

        Usage: ``print(verify(model, task).line())``
        """
        p = self.parameters
        noun = "parameter" if p.free == 1 else "parameters"
        head = (f"{self.task}: {p.free:,} {noun} ({p.nonzero:,} nonzero of {p.stored:,} stored), "
                f"{self.correct:,}/{self.total:,} {self.scope}")
        if self.passed:
            return f"{head}: verified"
        if not self.failures:  # a verdict built by hand may list none
            return f"{head}: FAILED"
        first = self.failures[0]
        more = self.total - self.correct - 1
        rest = f"; {more:,} more" if more else ""
        return f"{head}: FAILED ({first.input} -> {first.got}, expected {first.expected}{rest})"


def expected(task: SortTask, input: str) -> str:
    """The right answer: Python's ``sorted()`` of the input's symbols, largest first for a
    reverse task. The task's order is Python's order of its characters.

    Usage: ``expected(SortTask(), "caa") == "aac"``
    """
    if not set(input) <= set(task.alphabet):
        raise ValueError(f"{input!r} has symbols outside the alphabet {task.alphabet!r}")
    return "".join(sorted(input, reverse=task.reverse))


def greedy(model: nn.Module, task: SortTask, inputs: Sequence[str]) -> list[str]:
    """Each input's answer by greedy decoding: the prompt is the input then ``<sep>``, and each
    step appends the highest-scoring token at the last position, ``<sep>`` excluded, as many
    times as the input has symbols.

    Usage: ``greedy(model, SortTask(), ["caa", "bac"])  # ["aac", "abc"] if it sorts``
    """
    vocab = task.vocab
    sep = task.sep_id
    if vocab[sep] != "<sep>":
        raise ValueError(f"the task's token {sep} is {vocab[sep]!r}, not <sep>")
    ids = {token: i for i, token in enumerate(vocab)}
    params = next(iter(model.parameters()), None)
    device = params.device if params is not None else torch.device("cpu")

    # Inputs of one length decode together; the answers go back in the order given.
    by_length: dict[int, list[int]] = {}
    for i, x in enumerate(inputs):
        by_length.setdefault(len(x), []).append(i)
    answers = [""] * len(inputs)
    was_training = model.training
    model.eval()  # no dropout or the like while checking
    try:
        with torch.no_grad():
            for n, where in by_length.items():
                for start in range(0, len(where), CHUNK):
                    chunk = where[start:start + CHUNK]
                    prompts = [[ids[c] for c in inputs[i]] + [sep] for i in chunk]
                    seq = torch.tensor(prompts, dtype=torch.long, device=device)  # [B, n + 1]
                    for _ in range(n):
                        logits = model(seq)
                        if logits.shape != (*seq.shape, len(vocab)):
                            raise ValueError(f"the model gave logits of shape "
                                             f"{tuple(logits.shape)} for tokens of shape "
                                             f"{tuple(seq.shape)} and {len(vocab)} token kinds")
                        last = logits[:, -1].float().clone()  # [B, V]
                        last[:, sep] = float("-inf")  # <sep> is never an answer symbol
                        seq = torch.cat([seq, last.argmax(-1, keepdim=True)], dim=1)
                    for i, row in zip(chunk, seq[:, n + 1:].tolist()):
                        answers[i] = "".join(vocab[t] for t in row)
    finally:
        model.train(was_training)
    return answers


def verification_inputs(task: SortTask) -> tuple[list[str], str]:
    """The inputs to check and what they are: every input (``"exhaustive"``) when the task has
    at most 100,000; otherwise 100,000 distinct inputs drawn with seed 0, a length uniformly and
    then each symbol, followed by the task's edge cases not drawn (``"sample"``).

    Usage: ``inputs, scope = verification_inputs(SortTask())  # 27 inputs, "exhaustive"``
    """
    symbols = sorted(task.alphabet)
    lengths = list(task.lengths)
    if sum(len(symbols) ** n for n in lengths) <= SAMPLE:
        every = ["".join(p) for n in lengths for p in itertools.product(symbols, repeat=n)]
        return every, "exhaustive"
    rng = random.Random(SEED)
    drawn: dict[str, None] = {}  # a dict keeps the order of drawing
    while len(drawn) < SAMPLE:  # ends: the task has more than SAMPLE inputs
        n = rng.choice(lengths)
        drawn["".join(rng.choice(symbols) for _ in range(n))] = None
    for x in task.edge_cases():
        drawn.setdefault(x, None)
    return list(drawn), "sample"


def count_parameters(model: nn.Module) -> ParameterCount:
    """The model's weights counted by the rule in the module docstring: ``free`` distinct nonzero
    magnitudes, ``stored`` entries of the unique parameters, ``nonzero`` entries not zero.

    Usage: ``count_parameters(model).free  # 318 for the seed's trained model``
    """
    unique: dict[int, torch.Tensor] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        unique.setdefault(id(p), p)  # a tied weight is one object under several names
    if not unique:
        return ParameterCount(free=0, stored=0, nonzero=0)
    values = torch.cat([p.detach().reshape(-1).double().cpu() for p in unique.values()])
    nonzero = values[values != 0]
    free = torch.unique(nonzero.abs()).numel()
    return ParameterCount(free=min(free, values.numel()), stored=values.numel(),
                          nonzero=nonzero.numel())


def task_name(task: SortTask) -> str:
    """The task's name, or one built from its alphabet and lengths: ``abc3``, ``0123x3-reverse``."""
    name = getattr(task, "name", None)
    if name:
        return name
    lengths = (f"{task.min_length}-" if task.min_length < task.length else "") + str(task.length)
    return f"{task.alphabet}x{lengths}" + ("-reverse" if task.reverse else "")


def verify(model: nn.Module, task: SortTask) -> Verdict:
    """Check that ``model`` sorts every input of ``task`` (or the sample, for a large task).

    Usage: ``verify(model, SortTask()).passed``
    """
    inputs, scope = verification_inputs(task)
    answers = greedy(model, task, inputs)
    correct, failures = 0, []
    for x, got in zip(inputs, answers, strict=True):
        want = expected(task, x)
        if got == want:
            correct += 1
        elif len(failures) < SHOWN:
            failures.append(Failure(x, want, got))
    return Verdict(task=task_name(task), parameters=count_parameters(model), correct=correct,
                   total=len(inputs), scope=scope, failures=tuple(failures))


def verify_file(path: str | Path) -> Verdict:
    """Check the model a checkpoint holds on the task it holds; a file that is not a checkpoint
    raises ``zeptogpt.checkpoint.CheckpointError``.

    Usage: ``print(verify_file("runs/e6/model.safetensors").line())``
    """
    from zeptogpt.checkpoint import load

    checkpoint = load(path)
    return verify(checkpoint.model, checkpoint.task)
