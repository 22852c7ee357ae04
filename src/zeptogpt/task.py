"""The sorting task: vocabulary, encoding, every input, and which positions the loss sees.

A sequence is the input, a separator, then the input sorted the way Python's ``sorted()`` does
(``reverse=True``: largest first)::

    x1 x2 x3 <sep> y1 y2 y3        e.g.  c a a <sep> a a c

A task of several lengths (``min_length`` up to ``length``) pads the shorter sequences at the
end with <sep>, which no loss reads: the causal mask keeps padding from reaching the real
tokens, and the answer is as long as the input, so decoding needs no end token.

The symbols are any distinct printable characters but spaces (``abc``, ``0123456789``,
``+-*/``), in Python's order. Everything the rest of the package knows about the data comes
from a ``SortTask``; ``TASKS`` names the common ones.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import re
from collections.abc import Sequence
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
    min_length: int = 0  # the shortest input, for several lengths; 0 (the default): ``length``

    def __post_init__(self) -> None:
        symbols = self.alphabet
        shown = _shorten(symbols)
        if not all(c.isprintable() and not c.isspace() for c in symbols):
            raise ValueError(f"alphabet must be printable characters without spaces, got {shown}")
        if len(set(symbols)) != len(symbols) or len(symbols) < 2:
            raise ValueError(f"alphabet needs at least 2 symbols, each once, got {shown}")
        if not 1 <= self.length <= MAX_LENGTH:
            raise ValueError(f"length must be from 1 to {MAX_LENGTH}, got {self.length}")
        if not 0 <= self.min_length <= self.length:
            raise ValueError(f"min-length must be from 1 to the length ({self.length}), "
                             f"got {self.min_length}")
        if self.min_length == 0:  # frozen: set once here, so SortTask("abc", 3) has min_length 3
            object.__setattr__(self, "min_length", self.length)

    @property
    def name(self) -> str:
        """The task's name: its name in ``TASKS``, or one built from its definition, with
        ``-reverse`` for largest first: ``abc6``, ``digits5-reverse``, ``+-*/x4``, ``abx2-5``."""
        forward = dataclasses.replace(self, reverse=False)
        lengths = (f"{self.min_length}-" if self.varies else "") + str(self.length)
        base = next((name for name, task in TASKS.items() if task == forward),
                    f"{self.alphabet}x{lengths}")
        return base + ("-reverse" if self.reverse else "")

    @property
    def file_name(self) -> str:
        """The name as a file name can hold it, any other character as ``u`` and its code:
        ``abc6``, ``u2b-u2au2fx4`` for ``+-*/x4``."""
        return re.sub(r"[^A-Za-z0-9_-]", lambda m: f"u{ord(m[0]):x}", self.name)

    @property
    def varies(self) -> bool:
        """Whether inputs come in several lengths (``min_length`` < ``length``)."""
        return self.min_length < self.length

    @property
    def lengths(self) -> range:
        """The input lengths the task has: ``range(min_length, length + 1)``."""
        return range(self.min_length, self.length + 1)

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
        """Tokens in the longest sequence: input, separator, output (7 for the default task)."""
        return 2 * self.length + 1

    @property
    def answer(self) -> slice:
        """Where answers are predicted along the input axis of ``dataset``: from the earliest
        <sep> on (a shorter input's answer ends earlier; its targets past it are IGNORE)."""
        return slice(self.min_length, 2 * self.length)

    @property
    def n_inputs(self) -> int:
        return sum(len(self.alphabet) ** n for n in self.lengths)

    def describe(self) -> str:
        """What an input must look like, for error messages: ``3 letters from {a, b, c}``,
        ``5 symbols from {0, 1, 2, ..., 9}``, ``1 to 6 letters from {a, b, c}``."""
        symbols = sorted(self.alphabet)
        shown = symbols if len(symbols) <= 6 else [*symbols[:3], "...", symbols[-1]]
        count = f"{self.min_length} to {self.length}" if self.varies else str(self.length)
        return f"{count} {self.kind} from {{{', '.join(shown)}}}"

    def title(self) -> str:
        """What the task is, for headings: ``sort 3 letters from {a, b, c}``, and for
        ``reverse`` ``..., largest first``."""
        return f"sort {self.describe()}" + (", largest first" if self.reverse else "")

    def all_inputs(self) -> list[str]:
        """Every possible input, shortest first, each length in lexicographic order (27 for the
        default task)."""
        symbols = sorted(self.alphabet)
        return ["".join(p) for n in self.lengths for p in itertools.product(symbols, repeat=n)]

    def sample(self, rng: random.Random, count: int) -> list[str]:
        """``count`` random inputs: a length drawn uniformly from ``lengths``, then every symbol
        uniformly, so short inputs are not drowned out by the many long ones.

        Usage: ``task.sample(random.Random(0), 64)  # a minibatch``
        """
        symbols, lengths = sorted(self.alphabet), self.lengths
        return ["".join(rng.choices(symbols, k=rng.choice(lengths))) for _ in range(count)]

    def examples(self) -> list[str]:
        """Three inputs to show: the seed's traced ``caa``, ``bac``, ``ccb`` for its task, else
        three drawn with seed 0."""
        if self == TASKS["abc3"]:
            return ["caa", "bac", "ccb"]
        return self.sample(random.Random(0), 3)

    def edge_cases(self) -> list[str]:
        """The inputs a sample could miss and a sorter most often gets wrong: each symbol alone
        (``aaa``), the alphabet already sorted and reverse sorted, and the smallest and the
        largest symbol at every position among the other extreme (``caa``, ``aca``, ``acc``...),
        for every length.
        """
        symbols, cases = sorted(self.alphabet), []
        low, high = symbols[0], symbols[-1]
        for n in self.lengths:
            cycled = [symbols[i * len(symbols) // n] for i in range(n)]  # spread over them
            cases += [s * n for s in symbols] + ["".join(cycled), "".join(reversed(cycled))]
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
        return list(dict.fromkeys(self.edge_cases() + self.sample(random.Random(seed), sample)))

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
        if len(word) not in self.lengths:
            noun = self.kind if len(word) != 1 else self.kind[:-1]  # 1 letter, 2 letters
            raise InputError(f"{shown} has {len(word)} {noun}: {expected}")
        return word

    def dataset(self, objective: str = "answer", inputs: Sequence[str] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every sequence (or those of ``inputs``) as (inputs, targets) for next-token training,
        shapes [N, T-1] each; a shorter input's sequence is padded with <sep>, its targets past
        its answer are IGNORE.

        ``objective="answer"`` keeps only the output positions in the loss: the prompt letters are
        uniformly random, so predicting them can only teach the model the prior. ``"full"`` is the
        seed's objective: every next token, prompt included.
        Usage: ``idx, targets = task.dataset()  # [27, 6] each for the seed's task``
        """
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        import torch

        words = self.all_inputs() if inputs is None else inputs
        pad = [self.sep_id] * self.seq_len
        seqs = torch.tensor([(self.encode(self.sequence(x)) + pad)[: self.seq_len]
                             for x in words])  # [N, T]
        inputs, targets = seqs[:, :-1], seqs[:, 1:].clone()  # [N, T-1] each
        n = torch.tensor([len(x) for x in words])[:, None]  # [N, 1] each input's length
        j = torch.arange(self.seq_len - 1)  # [T-1]: target j is token j + 1
        targets[j >= 2 * n] = IGNORE  # padding: the answer ends at token 2n
        if objective == "answer":
            targets[j < n] = IGNORE  # the answer starts at token n + 1, so at target n
        return inputs, targets


OBJECTIVES = ("answer", "full")


def _shorten(text: str, limit: int = 24) -> str:
    """repr() of the text cut to a readable size, so a 1 MB line does not flood the terminal."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


# The named tasks: the seed's, minGPT's and llm-viz's sort demo (6 of {a, b, c}; theirs take 85,000
# parameters), every length up to 6, and decimal digits: 4 is the longest trained on every input
# at every step (training.FULL_BATCH_LIMIT), 5 and 10 draw minibatches.
TASKS: dict[str, SortTask] = {
    "abc3": SortTask(),
    "abc6": SortTask("abc", 6),
    "abc1-6": SortTask("abc", 6, min_length=1),  # every length from 1 to 6: 1,092 inputs
    "digits4": SortTask("0123456789", 4),
    "digits5": SortTask("0123456789", 5),  # 100,000 inputs: trained on drawn minibatches
    "digits10": SortTask("0123456789", 10),  # 10^10 inputs: checked on a fixed sample
}
