"""The training log of a run, written beside the checkpoint so plots need no re-run: the file
for ``runs/e6/model.safetensors`` is ``runs/e6/model.log.jsonl``.

One JSON object per line. The first names the weights the log was saved with, by the
checkpoint's checksum, ``{"weights_sha256": "9f3c..."}``, so that a log left beside another
checkpoint (by an interrupted save, or a save without a log) is refused rather than plotted as
its curve. Then one line per step, ``{"step": 0, "loss": 1.0986, "correct": 3}`` (``correct``
out of every input), steps increasing. A loss that is not finite (a diverged run) is ``null``
in the file and NaN in the rows. Logs written before the first line existed have none; they
are read as they are, since nothing in them says whose they are.

Usage::

    write_log(log_path(ckpt), result.results[0].log)
    rows = read_log(log_path(ckpt))          # [(0, 1.0986, 3), ...]
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from zeptogpt.files import from_fields, json_excerpt, json_number, write_atomic

Row = tuple[int, float, int]  # (step, loss, correct), as SeedResult.log holds them
MAX_COUNT = 2**53  # largest step or count read: past it a float, so a plot, blurs neighbours


class LogError(Exception):
    """A training log that cannot be read; the message is one line meant for a user."""


@dataclass(frozen=True)
class _Line:
    """A step's line as JSON holds it, for ``from_fields`` to check value by value."""

    step: int
    loss: float  # null, a diverged step, reads as NaN
    correct: int


def log_path(checkpoint_path: str | Path) -> Path:
    """Where the log of a checkpoint lives: same folder, same stem, ``.log.jsonl``."""
    path = Path(checkpoint_path)
    return path.with_name(path.stem + ".log.jsonl")


def log_bytes(rows: Iterable[Row], weights_sha256: str | None = None) -> bytes:
    """The rows as the file's bytes, one JSON object per line, after a first line naming the
    weights if given; a non-finite loss (a diverged run) is written as null, since NaN and
    Infinity are not JSON for other readers."""
    header = [] if weights_sha256 is None else [{"weights_sha256": weights_sha256}]
    lines = header + [{"step": int(s), "loss": json_number(float(loss)), "correct": int(c)}
                      for s, loss, c in rows]
    return "".join(json.dumps(d, allow_nan=False) + "\n" for d in lines).encode("utf-8")


def write_log(path: str | Path, rows: Iterable[Row], weights_sha256: str | None = None) -> Path:
    """Write the rows atomically, like the checkpoint."""
    path = Path(path)
    write_atomic({path: log_bytes(rows, weights_sha256)})
    return path


def read_log(path: str | Path, weights_sha256: str | None = None) -> list[Row]:
    """The rows of a log file, checked; LogError with one line if it is missing or malformed,
    or, given the checksum of the weights it should belong to, if its first line names others
    (``checkpoint.load_log`` gives the checksum of a checkpoint's weights).

    Usage: ``rows = read_log(log_path(ckpt), weights_sha256=sha)``
    """
    path = Path(path)
    if not path.is_file():
        raise LogError(f"no training log at {path}: run `zeptogpt train` to make one")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise LogError(f"cannot read the training log {path} ({e})") from None
    objects = [(n, _json_object(path, n, line)) for n, line in enumerate(lines, 1) if line.strip()]
    if objects and "weights_sha256" in objects[0][1]:
        n, header = objects.pop(0)
        if set(header) != {"weights_sha256"} or not isinstance(header["weights_sha256"], str):
            raise LogError(f"{path} line {n} is not a training-log header")
        if weights_sha256 is not None and header["weights_sha256"] != weights_sha256:
            raise LogError(f"{path} belongs to another checkpoint (a save was interrupted, or "
                           "saved without its log): retrain to save both again")
    rows: list[Row] = []
    for n, d in objects:
        try:
            line = from_fields(_Line, d)
        except ValueError as e:
            raise LogError(f"{path} line {n}: {e}") from None
        for name in ("step", "correct"):
            value = getattr(line, name)
            if not 0 <= value <= MAX_COUNT:
                raise LogError(f"{path} line {n}: {name} must be from 0 to 2**53, "
                               f"got {json_excerpt(value)}")
        if math.isinf(line.loss) or line.loss < 0:  # NaN is null: a diverged step
            raise LogError(f"{path} line {n}: loss must be a finite number from 0 up, or null, "
                           f"got {line.loss}")
        if rows and line.step <= rows[-1][0]:
            raise LogError(f"{path} line {n}: step {line.step} after step {rows[-1][0]}; "
                           "steps must increase")
        rows.append((line.step, line.loss, line.correct))
    if not rows:
        raise LogError(f"{path} is an empty training log")
    return rows


def _json_object(path: Path, n: int, line: str) -> dict:
    """Line ``n`` as a JSON object; LogError if it is anything else. NaN and Infinity are
    refused: they are not JSON, and no writer of logs puts them."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    try:
        value = json.loads(line, parse_constant=refuse)
    except (ValueError, RecursionError):  # the last: nested thousands deep
        value = None
    if not isinstance(value, dict):
        raise LogError(f"{path} line {n} is not a training-log line")
    return value
