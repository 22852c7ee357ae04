"""The sorting task: vocabulary, encoding, every input, and which positions the loss sees.

A sequence is the input, a separator, then the input sorted the way Python's ``sorted()`` does
(``reverse=True``: largest first)::

    x1 x2 x3 <sep> y1 y2 y3        e.g.  c a a <sep> a a c

The symbols are any distinct printable characters but spaces (``abc``, ``0123456789``,
``+-*/``), in Python's order. Everything the rest of the package knows about the data comes
from a ``SortTask``; ``TASKS`` names the common ones.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where tensors are made, so `zeptogpt params` needs none
    import torch

SEP = "<sep>"
IGNORE = -1  # target id that the loss skips (the prompt positions, whose next token is random)
MAX_LENGTH = 32  # symbols per input: the context is 2 * length + 1 tokens
EVAL_SAMPLE = 100_000  # inputs checked when a task has more than this: a fixed seeded sample


class InputError(ValueError):
    """A string that is not a valid input for the task; the message is one line meant for a user."""


@dataclass(frozen=True)
class SortTask:
    """Sort ``length`` symbols drawn from ``alphabet``, duplicates allowed.

    Usage: ``task = SortTask("0123456789", 5, reverse=True); task.target("31415") == "54311"``
    """

    alphabet: str = "abc"  # the symbols; sorted order is Python's order of these characters
    length: int = 3  # symbols per input (and per output)
    reverse: bool = False  # sorted(x, reverse=True): largest first

    def __post_init__(self) -> None:
        symbols = self.alphabet
        shown = _shorten(symbols)
        if not all(c.isprintable() and not c.isspace() for c in symbols):
            raise ValueError(f"alphabet must be printable characters without spaces, got {shown}")
        if len(set(symbols)) != len(symbols) or len(symbols) < 2:
            raise ValueError(f"alphabet needs at least 2 symbols, each once, got {shown}")
        if not 1 <= self.length <= MAX_LENGTH:
            raise ValueError(f"length must be from 1 to {MAX_LENGTH}, got {self.length}")

    @property
    def name(self) -> str:
        """The task's name: its name in ``TASKS``, or one built from its definition, with
        ``-reverse`` for largest first: ``abc6``, ``digits5-reverse``, ``+-*/x4``."""
        forward = dataclasses.replace(self, reverse=False)
        base = next((name for name, task in TASKS.items() if task == forward),
                    f"{self.alphabet}x{self.length}")
        return base + ("-reverse" if self.reverse else "")

    @property
    def file_name(self) -> str:
        """The name as a file name can hold it, any other character as ``u`` and its code:
        ``abc6``, ``u2b-u2au2fx4`` for ``+-*/x4``."""
        return re.sub(r"[^A-Za-z0-9_-]", lambda m: f"u{ord(m[0]):x}", self.name)

    @property
    def kind(self) -> str:
        """What its symbols are called in messages: ``letters`` or ``symbols``."""
        return "letters" if self.alphabet.isalpha() else "symbols"

    @property
    def case_insensitive(self) -> bool:
        """Inputs are read in any case when the alphabet has no capitals (``abc``, digits)."""
        return self.alphabet == self.alphabet.lower()

    def target(self, x: str) -> str:
        """The answer to input ``x``: ``sorted(x)`` (reversed for ``reverse``) as a string."""
        return "".join(sorted(x, reverse=self.reverse))

    @property
    def vocab(self) -> tuple[str, ...]:
        """Token strings by id: the separator is id 0, then the symbols in sorted order."""
        return (SEP, *sorted(self.alphabet))

    @property
    def vocab_size(self) -> int:
        return len(self.alphabet) + 1

    @property
    def sep_id(self) -> int:
        return 0

    @property
    def seq_len(self) -> int:
        """Tokens in a whole sequence: input, separator, output (7 for the default task)."""
        return 2 * self.length + 1

    @property
    def answer(self) -> slice:
        """Where the answer is predicted along the input axis of ``dataset``: from <sep> on."""
        return slice(self.length, 2 * self.length)

    @property
    def n_inputs(self) -> int:
        return len(self.alphabet) ** self.length

    def describe(self) -> str:
        """What an input must look like, for error messages: ``3 letters from {a, b, c}``,
        ``5 symbols from {0, 1, 2, ..., 9}``."""
        symbols = sorted(self.alphabet)
        shown = symbols if len(symbols) <= 6 else [*symbols[:3], "...", symbols[-1]]
        kind = self.kind
        return f"{self.length} {kind} from {{{', '.join(shown)}}}"

    def title(self) -> str:
        """What the task is, for headings: ``sort 3 letters from {a, b, c}``, and for
        ``reverse`` ``..., largest first``."""
        return f"sort {self.describe()}" + (", largest first" if self.reverse else "")

    def all_inputs(self) -> list[str]:
        """Every possible input in lexicographic order (27 for the default task)."""
        return ["".join(p) for p in itertools.product(sorted(self.alphabet), repeat=self.length)]

    def edge_cases(self) -> list[str]:
        """The inputs a sample could miss and a sorter most often gets wrong: each symbol alone
        (``aaa``), the alphabet already sorted and reverse sorted, and the smallest and the
        largest symbol at every position among the other extreme (``caa``, ``aca``, ``acc``...).
        """
        symbols, n = sorted(self.alphabet), self.length
        low, high = symbols[0], symbols[-1]
        cycled = [symbols[i * len(symbols) // n] for i in range(n)]  # spread over the alphabet
        cases = [s * n for s in symbols] + ["".join(cycled), "".join(reversed(cycled))]
        for i in range(n):
            cases += [high * i + low + high * (n - 1 - i), low * i + high + low * (n - 1 - i)]
        return list(dict.fromkeys(cases))

    def evaluation_inputs(self, sample: int = EVAL_SAMPLE, seed: int = 0) -> list[str]:
        """What "every input" means for checking a model: all of them when there are at most
        ``sample``; otherwise the edge cases and ``sample`` inputs drawn with ``seed``, always the
        same ones for the same task.

        Usage: ``len(SortTask("0123456789", 10).evaluation_inputs())  # about 100,000``
        """
        if self.n_inputs <= sample:
            return self.all_inputs()
        rng = random.Random(seed)
        symbols = sorted(self.alphabet)
        drawn = ["".join(rng.choices(symbols, k=self.length)) for _ in range(sample)]
        return list(dict.fromkeys(self.edge_cases() + drawn))

    def sequence(self, x: str) -> list[str]:
        """The full token sequence for input ``x``: ``['c','a','a','<sep>','a','a','c']``."""
        return [*x, SEP, *self.target(x)]

    def encode(self, tokens: list[str] | str) -> list[int]:
        """Token strings (or a string of letters) to ids; KeyError on an unknown token."""
        index = {t: i for i, t in enumerate(self.vocab)}
        return [index[t] for t in tokens]

    def decode(self, ids: list[int] | torch.Tensor) -> list[str]:
        """Ids back to token strings."""
        return [self.vocab[int(i)] for i in ids]

    def parse(self, text: str) -> str:
        """A user's input, checked (and lower-cased where case does not matter), or an
        InputError that says what was expected.

        Usage: ``task.parse("CAA") == "caa"``
        """
        letters = any(c.isalpha() for c in self.alphabet)
        expected = f"expected {self.describe()}" + (
            " (case-insensitive)" if self.case_insensitive and letters else "")
        cleaned = text.strip()
        if not cleaned:
            raise InputError(f"empty input: {expected}")
        shown = _shorten(cleaned)
        word = cleaned.lower() if self.case_insensitive else cleaned
        bad = sorted(set(word) - set(self.alphabet))
        if bad:
            listed = ", ".join(repr(c) for c in bad[:5]) + (", ..." if len(bad) > 5 else "")
            raise InputError(f"{shown} has characters outside the alphabet ({listed}): {expected}")
        if len(word) != self.length:
            raise InputError(f"{shown} has {len(word)} {self.kind}: {expected}")
        return word

    def dataset(self, objective: str = "answer") -> tuple[torch.Tensor, torch.Tensor]:
        """Every sequence as (inputs, targets) for next-token training, shapes [N, T-1] each.

        ``objective="answer"`` keeps only the output positions in the loss: the prompt letters are
        uniformly random, so predicting them can only teach the model the prior. ``"full"`` is the
        seed's objective: every next token, prompt included.
        """
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        import torch

        seqs = torch.tensor([self.encode(self.sequence(x)) for x in self.all_inputs()])  # [N, T]
        inputs, targets = seqs[:, :-1], seqs[:, 1:].clone()  # [N, T-1] each
        if objective == "answer":
            # target j is token j+1; the answer starts at token length+1, so at target length
            targets[:, : self.length] = IGNORE
        return inputs, targets


OBJECTIVES = ("answer", "full")


def _shorten(text: str, limit: int = 24) -> str:
    """repr() of the text cut to a readable size, so a 1 MB line does not flood the terminal."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


# The named tasks: the seed's, minGPT's and llm-viz's sort demo (6 of {a, b, c}; theirs take 85,000
# parameters), and 4 decimal digits, the largest that trains on every input at every step in
# well under a gigabyte (5 digits took 5 GB and 13 s a step: it waits for minibatch training).
TASKS: dict[str, SortTask] = {
    "abc3": SortTask(),
    "abc6": SortTask("abc", 6),
    "digits4": SortTask("0123456789", 4),
}
FULL_BATCH_LIMIT = 20_000  # inputs of the largest task that training takes whole (see TASKS)
