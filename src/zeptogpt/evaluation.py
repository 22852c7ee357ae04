"""Greedy decoding, exhaustive evaluation and the seed's autoregressive trace."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from zeptogpt.model import ZeptoGPT
from zeptogpt.task import SEP, SortTask

ROWS_SHOWN = 100  # inputs whose every row an evaluation prints; beyond, only the wrong ones


def greedy(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The token greedy decoding picks along the vocabulary axis ``dim``: the highest logit but
    <sep>'s (<sep> is id 0), the first on a tie: [..., V] -> [...].

    Read off the logits rather than the probabilities, whose rounding could tie letters the
    logits tell apart; ``max(dim).indices`` rather than ``argmax``, which is many times slower
    over an outer axis (training checks every seed's answers with this at every step).
    Usage: ``greedy(model(idx)[:, -1])  # [N, V] -> [N]``
    """
    return logits.narrow(dim, 1, logits.shape[dim] - 1).max(dim).indices + 1  # [...]


@dataclass
class Decoding:
    """Greedy decodes of a batch of inputs, with what each step saw and chose."""

    inputs: list[str]  # the inputs, as given
    outputs: list[str]  # the decoded answers
    ids: torch.Tensor  # [N, T] full sequences: input, <sep>, answer
    # [N, length, V] the model's own next-token distribution at each decoding step: the softmax
    # over the whole vocabulary, <sep> included (greedy decoding still never picks <sep>)
    probs: torch.Tensor
    logits: torch.Tensor  # [N, T-1, V] logits of the last forward pass, every position
    cache: dict[str, torch.Tensor]  # activations of that pass (see ZeptoGPT.run_with_cache)


@torch.no_grad()
def decode(model: ZeptoGPT, task: SortTask, inputs: Sequence[str]) -> Decoding:
    """Sort every input at once by greedy decoding, <sep> forbidden after the separator; the
    inputs have one length (``answers`` takes any).

    Usage: ``decode(model, task, ["caa", "bac"]).outputs == ["aac", "abc"]``
    """
    n = len(inputs[0]) if inputs else task.length
    if any(len(x) != n for x in inputs):
        raise ValueError("decode takes inputs of one length; answers() takes any")
    prompt = [task.encode([*x, SEP]) for x in inputs]
    ids = torch.tensor(prompt).view(len(prompt), n + 1)  # [N, n + 1]
    steps = []
    for _ in range(n):
        logits, cache = model.run_with_cache(ids)  # [N, t, V]
        probs = logits[:, -1].softmax(-1)  # [N, V] the model's own, <sep> included
        ids = torch.cat([ids, greedy(logits[:, -1])[:, None]], dim=1)  # [N, t + 1]
        steps.append(probs)
    # Causal attention means the last pass's activations at earlier positions are the ones the
    # earlier steps computed, so one cache serves the whole trace.
    outputs = ["".join(task.decode(row[n + 1:])) for row in ids]
    return Decoding(list(inputs), outputs, ids, torch.stack(steps, 1), logits, cache)


def answers(model: ZeptoGPT, task: SortTask, inputs: Sequence[str], batch: int = 8192
            ) -> list[str]:
    """Greedy answers to inputs of any lengths, decoded a length and a batch at a time.

    Usage: ``answers(model, task, ["b", "cab"]) == ["b", "abc"]  # a task of lengths 1 to 3``
    """
    by_length: dict[int, list[int]] = {}
    for i, x in enumerate(inputs):
        by_length.setdefault(len(x), []).append(i)
    outputs = [""] * len(inputs)
    for where in by_length.values():
        for j in range(0, len(where), batch):
            part = where[j: j + batch]
            for i, y in zip(part, decode(model, task, [inputs[i] for i in part]).outputs):
                outputs[i] = y
    return outputs


@dataclass
class Evaluation:
    """Every input of the task with the model's answer and the right one."""

    inputs: list[str]
    predicted: list[str]
    expected: list[str]
    exhaustive: bool = True  # every input of the task; else its fixed sample and edge cases

    @property
    def correct(self) -> int:
        return sum(p == e for p, e in zip(self.predicted, self.expected))

    @property
    def total(self) -> int:
        return len(self.inputs)

    @property
    def scope(self) -> str:
        """What was checked, for headings: ``all 27 inputs`` or ``100,053 inputs (a fixed
        seeded sample and the edge cases)``."""
        return (f"all {self.total:,} inputs" if self.exhaustive else
                f"{self.total:,} inputs (a fixed seeded sample and the edge cases)")

    def __str__(self) -> str:
        """A row per input, marked ✓ or ✗ (only the ✗ rows beyond ``ROWS_SHOWN`` inputs), then
        ``Model accuracy on N inputs: C/N`` (``triples`` for the seed's task, as it says)."""
        rows = zip(self.inputs, self.predicted, self.expected)
        lines = [f"  {x} -> {p}   target {e}  {'✓' if p == e else '✗'}" for x, p, e in rows
                 if self.total <= ROWS_SHOWN or p != e]
        noun = "triples" if self.inputs and len(self.inputs[0]) == 3 else "inputs"
        lines.append(f"Model accuracy on {self.total} {noun}: {self.correct}/{self.total}")
        return "\n".join(lines)


def evaluate(model: ZeptoGPT, task: SortTask) -> Evaluation:
    """Decode every possible input (for a task of more than 100,000, the fixed sample and edge
    cases of ``task.evaluation_inputs``) and compare with Python's ``sorted()``.

    Usage: ``print(evaluate(model, task))`` ends with ``Model accuracy on 27 triples: 27/27``.
    """
    inputs = task.evaluation_inputs()
    predicted = answers(model, task, inputs)
    return Evaluation(inputs, predicted, [task.target(x) for x in inputs],
                      exhaustive=len(inputs) == task.n_inputs)


def format_trace(model: ZeptoGPT, task: SortTask, x: str) -> str:
    """The seed's autoregressive trace of one input: every step's letter probabilities (the
    model's own distribution, a softmax over the whole vocabulary: whatever is missing from 1 sits
    on <sep>, which greedy decoding never picks) and choice, and each head's attention from the
    newest position over every token so far, layer by layer when the model has several.

    Usage: ``print(format_trace(model, task, "caa"))``
    """
    x = task.parse(x)  # InputError, not an index out of range, for an input of another task
    d = decode(model, task, [x])
    tokens = task.decode(d.ids[0])
    c = model.config
    patterns = [d.cache[f"blocks.{i}.pattern"][0] for i in range(c.n_layer)]  # L x [H, T-1, T-1]
    n = len(x)
    start = tokens[: n + 1]
    layers = f"layers={c.n_layer}, " if c.n_layer > 1 else ""
    lines = [f"start [{', '.join(start)}]  ({layers}heads={c.n_head}, head_dim={c.d_head})"]
    for s in range(n):
        pos = n + s  # the newest position at this step
        probs = ", ".join(f"p({t})={float(d.probs[0, s, i]):.3f}"
                          for i, t in enumerate(task.vocab) if i != task.sep_id)
        lines.append(f"  step{s + 1}: {probs} -> '{tokens[pos + 1]}'")
        for i, pattern in enumerate(patterns):
            layer = f"layer{i} " if c.n_layer > 1 else ""
            for h in range(c.n_head):
                seen = zip(tokens[: pos + 1], pattern[h, pos].tolist())
                row = ", ".join(f"{t}:{w:.2f}" for t, w in seen)
                lines.append(f"    {layer}head{h}: [{row}]")
    answer = tokens[n + 1:]
    lines.append(f"  full [{', '.join(tokens)}] -> outputs [{', '.join(answer)}]")
    return "\n".join(lines)
