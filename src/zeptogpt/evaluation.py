"""Greedy decoding, exhaustive evaluation and the seed's autoregressive trace."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from zeptogpt.model import ZeptoGPT
from zeptogpt.task import SEP, SortTask


def letter_probs(logits: torch.Tensor, sep_id: int) -> torch.Tensor:
    """Next-token distribution with <sep> forbidden, as decoding shows it: [..., V] -> [..., V].

    The softmax is written out: PyTorch's CPU kernel is several times slower over an axis of 4.
    """
    x = logits.index_fill(-1, torch.tensor([sep_id]), float("-inf"))  # [..., V]
    e = (x - x.amax(-1, keepdim=True)).exp()  # [..., V], <sep> at 0
    return e / e.sum(-1, keepdim=True)  # [..., V]


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
    probs: torch.Tensor  # [N, L, V] distribution at each decoding step (<sep> at 0)
    logits: torch.Tensor  # [N, T-1, V] logits of the last forward pass, every position
    cache: dict[str, torch.Tensor]  # activations of that pass (see ZeptoGPT.run_with_cache)


@torch.no_grad()
def decode(model: ZeptoGPT, task: SortTask, inputs: Sequence[str]) -> Decoding:
    """Sort every input at once by greedy decoding, <sep> forbidden after the separator.

    Usage: ``decode(model, task, ["caa", "bac"]).outputs == ["aac", "abc"]``
    """
    prompt = [task.encode([*x, SEP]) for x in inputs]
    ids = torch.tensor(prompt)  # [N, length + 1]
    steps = []
    for _ in range(task.length):
        logits, cache = model.run_with_cache(ids)  # [N, t, V]
        probs = letter_probs(logits[:, -1], task.sep_id)  # [N, V]
        ids = torch.cat([ids, greedy(logits[:, -1])[:, None]], dim=1)  # [N, t + 1]
        steps.append(probs)
    # Causal attention means the last pass's activations at earlier positions are the ones the
    # earlier steps computed, so one cache serves the whole trace.
    outputs = ["".join(task.decode(row[task.length + 1:])) for row in ids]
    return Decoding(list(inputs), outputs, ids, torch.stack(steps, 1), logits, cache)


@dataclass
class Evaluation:
    """Every input of the task with the model's answer and the right one."""

    inputs: list[str]
    predicted: list[str]
    expected: list[str]

    @property
    def correct(self) -> int:
        return sum(p == e for p, e in zip(self.predicted, self.expected))

    @property
    def total(self) -> int:
        return len(self.inputs)

    def __str__(self) -> str:
        lines = [f"  {x} -> {p}   target {e}  {'✓' if p == e else '✗'}"
                 for x, p, e in zip(self.inputs, self.predicted, self.expected)]
        noun = "triples" if self.inputs and len(self.inputs[0]) == 3 else "inputs"
        lines.append(f"Model accuracy on {self.total} {noun}: {self.correct}/{self.total}")
        return "\n".join(lines)


def evaluate(model: ZeptoGPT, task: SortTask) -> Evaluation:
    """Decode every possible input and compare with Python's ``sorted()``.

    Usage: ``print(evaluate(model, task))`` ends with ``Model accuracy on 27 triples: 27/27``.
    """
    inputs = task.all_inputs()
    predicted = decode(model, task, inputs).outputs
    return Evaluation(inputs, predicted, ["".join(sorted(x)) for x in inputs])


def format_trace(model: ZeptoGPT, task: SortTask, x: str) -> str:
    """The seed's autoregressive trace of one input: every step's letter probabilities and choice,
    and each head's attention from the newest position over every token so far.

    Usage: ``print(format_trace(model, task, "caa"))``
    """
    d = decode(model, task, [x])
    tokens = task.decode(d.ids[0])
    pattern = d.cache["pattern"][0]  # [H, T-1, T-1]
    c = model.config
    start = tokens[: task.length + 1]
    lines = [f"start [{', '.join(start)}]  (heads={c.n_head}, head_dim={c.d_head})"]
    for s in range(task.length):
        pos = task.length + s  # the newest position at this step
        probs = ", ".join(f"p({t})={float(d.probs[0, s, i]):.3f}"
                          for i, t in enumerate(task.vocab) if i != task.sep_id)
        lines.append(f"  step{s + 1}: {probs} -> '{tokens[pos + 1]}'")
        for h in range(c.n_head):
            seen = zip(tokens[: pos + 1], pattern[h, pos].tolist())
            row = ", ".join(f"{t}:{w:.2f}" for t, w in seen)
            lines.append(f"    head{h}: [{row}]")
    answer = tokens[task.length + 1:]
    lines.append(f"  full [{', '.join(tokens)}] -> outputs [{', '.join(answer)}]")
    return "\n".join(lines)
