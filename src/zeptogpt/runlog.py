"""The training log of a run: one JSON line per step, ``{"step": 0, "loss": 1.0986, "correct": 3}``
(``correct`` out of every input), written beside the checkpoint so plots need no re-run: the
file for ``runs/e6/model.safetensors`` is ``runs/e6/model.log.jsonl``. A loss that is not finite
(a diverged run) is ``null`` in the file and NaN in the rows.

Usage::

    write_log(log_path(ckpt), result.results[0].log)
    rows = read_log(log_path(ckpt))          # [(0, 1.0986, 3), ...]
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

from zeptogpt.files import json_number, write_atomic

Row = tuple[int, float, int]  # (step, loss, correct), as SeedResult.log holds them


class LogError(Exception):
    """A training log that cannot be read; the message is one line meant for a user."""


def log_path(checkpoint_path: str | Path) -> Path:
    """Where the log of a checkpoint lives: same folder, same stem, ``.log.jsonl``."""
    path = Path(checkpoint_path)
    return path.with_name(path.stem + ".log.jsonl")


def log_bytes(rows: Iterable[Row]) -> bytes:
    """The rows as the file's bytes, one JSON object per line; a non-finite loss (a diverged
    run) is written as null, since NaN and Infinity are not JSON for other readers."""
    return "".join(json.dumps({"step": int(s), "loss": json_number(float(loss)), "correct": int(c)},
                              allow_nan=False) + "\n" for s, loss, c in rows).encode("utf-8")


def write_log(path: str | Path, rows: Iterable[Row]) -> Path:
    """Write the rows atomically, like the checkpoint."""
    path = Path(path)
    write_atomic({path: log_bytes(rows)})
    return path


def read_log(path: str | Path) -> list[Row]:
    """The rows of a log file, checked; LogError with one line if it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise LogError(f"no training log at {path}: run `zeptogpt train` to make one")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise LogError(f"cannot read the training log {path} ({e})") from None
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            loss = math.nan if d["loss"] is None else float(d["loss"])  # null: diverged
            rows.append((int(d["step"]), loss, int(d["correct"])))
        except (ValueError, KeyError, TypeError, RecursionError):  # the last: nested deep
            raise LogError(f"{path} line {n} is not a training-log line") from None
    if not rows:
        raise LogError(f"{path} is an empty training log")
    return rows
