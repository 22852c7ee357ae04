"""The sorting task: vocabulary, encoding, every input, and which positions the loss sees.

A sequence is the input, a separator, then the input sorted the way Python's ``sorted()`` does::

    x1 x2 x3 <sep> y1 y2 y3        e.g.  c a a <sep> a a c

Everything the rest of the package knows about the data comes from a ``SortTask``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where tensors are made, so `zeptogpt params` needs none
    import torch

SEP = "<sep>"
IGNORE = -1  # target id that the loss skips (the prompt positions, whose next token is random)


class InputError(ValueError):
    """A string that is not a valid input for the task; the message is one line meant for a user."""


@dataclass(frozen=True)
class SortTask:
    """Sort ``length`` letters drawn from ``alphabet``, duplicates allowed.

    Usage: ``task = SortTask(); task.encode(task.sequence("caa"))``
    """

    alphabet: str = "abc"  # the letters; sorted order is Python's order of these characters
    length: int = 3  # letters per input (and per output)

    def __post_init__(self) -> None:
        letters = self.alphabet
        if not (letters.isascii() and letters.isalpha() and letters.islower()):
            raise ValueError(f"alphabet must be lowercase ASCII letters, got {letters!r}")
        if len(set(letters)) != len(letters) or len(letters) < 2:
            raise ValueError(f"alphabet needs at least 2 distinct letters, got {letters!r}")
        if self.length < 1:
            raise ValueError(f"length must be at least 1, got {self.length}")

    @property
    def vocab(self) -> tuple[str, ...]:
        """Token strings by id: the separator is id 0, then the letters in sorted order."""
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
        """What an input must look like, for error messages: ``3 letters from {a, b, c}``."""
        return f"{self.length} letters from {{{', '.join(sorted(self.alphabet))}}}"

    def all_inputs(self) -> list[str]:
        """Every possible input in lexicographic order (27 for the default task)."""
        return ["".join(p) for p in itertools.product(sorted(self.alphabet), repeat=self.length)]

    def sequence(self, x: str) -> list[str]:
        """The full token sequence for input ``x``: ``['c','a','a','<sep>','a','a','c']``."""
        return [*x, SEP, *sorted(x)]

    def encode(self, tokens: list[str] | str) -> list[int]:
        """Token strings (or a string of letters) to ids; KeyError on an unknown token."""
        index = {t: i for i, t in enumerate(self.vocab)}
        return [index[t] for t in tokens]

    def decode(self, ids: list[int] | torch.Tensor) -> list[str]:
        """Ids back to token strings."""
        return [self.vocab[int(i)] for i in ids]

    def parse(self, text: str) -> str:
        """A user's input, checked and lower-cased, or an InputError that says what was expected.

        Usage: ``task.parse("CAA") == "caa"``
        """
        expected = f"expected {self.describe()} (case-insensitive)"
        cleaned = text.strip()
        if not cleaned:
            raise InputError(f"empty input: {expected}")
        shown = _shorten(cleaned)
        if not cleaned.isascii():
            raise InputError(f"{shown} has non-ASCII characters: {expected}")
        word = cleaned.lower()
        bad = sorted(set(word) - set(self.alphabet))
        if bad:
            listed = ", ".join(repr(c) for c in bad[:5]) + (", ..." if len(bad) > 5 else "")
            raise InputError(f"{shown} has characters outside the alphabet ({listed}): {expected}")
        if len(word) != self.length:
            raise InputError(f"{shown} has {len(word)} letters: {expected}")
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
