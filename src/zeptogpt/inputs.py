"""What the user gives to sort: inputs on the command line, the lines of stdin, and the main
job's prompt. Every input is checked by ``SortTask.parse``; a bad one is an InputError whose
one line says where it was and what was expected.

Stdin is streamed: read, checked and handed on ``STDIN_BATCH`` lines at a time, each line at
most ``MAX_LINE`` characters, so memory stays flat whatever comes in (a million lines, or
``/dev/zero``, which has no line end at all).

Usage::

    for words in batches(task, ["caa", "-"]):     # [["caa"]], then stdin's lines in batches
        print(decode(model, task, words).outputs)
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from typing import TextIO

from zeptogpt.task import InputError, SortTask

STDIN_BATCH = 4096  # stdin lines sorted at a time: memory stays flat however long stdin is
MAX_LINE = 1000  # characters in one stdin line: an input is a few letters, /dev/zero is not


def batches(task: SortTask, inputs: list[str], stdin: TextIO | None = None) -> Iterator[list[str]]:
    """The inputs as batches of checked words, ``-`` standing for the lines of ``stdin``
    (default ``sys.stdin``).

    The command line's inputs and stdin's first batch are checked now, before the caller does
    any work; the rest of stdin is read as the batches are taken, so a later bad line stops the
    caller at that line, naming it, after the answers to the lines before it.
    """
    if inputs.count("-") > 1:
        raise InputError("'-' (read stdin) can be given only once")
    given = [None if x == "-" else task.parse(x) for x in inputs]
    stdin = sys.stdin if stdin is None else stdin

    def all_batches() -> Iterator[list[str]]:
        for word in given:
            yield from stdin_batches(task, stdin) if word is None else [[word]]

    stream = all_batches()
    first = next(stream, None)  # read now: a bad first line is found before any training
    return itertools.chain([] if first is None else [first], stream)


def stdin_batches(task: SortTask, stream: TextIO | None) -> Iterator[list[str]]:
    """The lines of ``stream`` as checked words, ``STDIN_BATCH`` at a time (one at a time from
    a terminal, so each typed line is answered at once)."""
    if stream is None:
        raise InputError("no inputs on stdin (it is closed)")
    source = getattr(stream, "buffer", stream)  # bytes where we can: exact line numbers
    size = 1 if stream.isatty() else STDIN_BATCH
    batch: list[str] = []
    known: dict[str, str] = {}  # line -> its checked word
    n = 0
    while line := _read_line(source, n + 1):
        n += 1
        if len(line) > MAX_LINE and line[-1:] not in ("\n", b"\n"):
            raise InputError(f"stdin line {n} is longer than {MAX_LINE:,} characters: "
                             f"expected {task.describe()}")
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(f"stdin line {n} is not UTF-8 text") from None
        word = known.get(line)
        if word is None:
            try:
                word = task.parse(line)
            except InputError as e:
                raise InputError(f"stdin line {n}: {e}") from None
            if len(known) < STDIN_BATCH:  # a long stdin repeats a few inputs: check each once
                known[line] = word
        batch.append(word)
        if len(batch) == size:
            yield batch
            batch = []
    if n == 0:
        raise InputError("no inputs on stdin")
    if batch:
        yield batch


def _read_line(source, n: int) -> str | bytes:
    """Line ``n`` of stdin, at most MAX_LINE + 1 characters of it; InputError if stdin cannot
    be read (open for writing only, a folder)."""
    try:
        return source.readline(MAX_LINE + 1)
    except OSError as e:
        raise InputError(f"cannot read stdin line {n} ({e.strerror or e})") from None


def prompt(checkpoint) -> None:
    """Trace what the user types until an empty line or EOF; a bad input just asks again."""
    from zeptogpt.evaluation import format_trace

    task = checkpoint.task
    while True:
        try:
            text = input(f"type letters to sort ({task.describe()}; empty line ends): ")
        except EOFError:
            print()
            return
        if not text.strip():
            return
        try:
            word = task.parse(text)
        except InputError as e:
            print(f"error: {e}")
            continue
        print(format_trace(checkpoint.model, task, word))
