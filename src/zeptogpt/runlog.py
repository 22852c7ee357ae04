"""Training records on disk: the per-step log of a run, and the per-seed results of a sweep.

The log is one JSON line per step, ``{"step": 0, "loss": 1.0986, "correct": 3}`` (``correct`` out
of every input), written beside the checkpoint so plots need no re-run: the file for
``runs/e6/model.safetensors`` is ``runs/e6/model.log.jsonl``. A sweep's results are a JSON list, or
JSON lines, of objects with ``steps`` and ``solved`` (the fields of ``SeedResult``) and optionally
``max_steps``.

Usage::

    write_log(log_path(ckpt), result.results[0].log)
    rows = read_log(log_path(ckpt))          # [(0, 1.0986, 3), ...]
    steps, limit = read_sweep("sweep.jsonl")  # [82, None, ...], 2000
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

Row = tuple[int, float, int]  # (step, loss, correct), as SeedResult.log holds them


class LogError(Exception):
    """A training log that cannot be read; the message is one line meant for a user."""


def log_path(checkpoint_path: str | Path) -> Path:
    """Where the log of a checkpoint lives: same folder, same stem, ``.log.jsonl``."""
    path = Path(checkpoint_path)
    return path.with_name(path.stem + ".log.jsonl")


def write_log(path: str | Path, rows: Iterable[Row]) -> Path:
    """Write the rows atomically (temporary file, then rename), like the checkpoint."""
    path = Path(path)
    text = "".join(json.dumps({"step": int(s), "loss": float(loss), "correct": int(c)}) + "\n"
                   for s, loss, c in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a log is for anyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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
            rows.append((int(d["step"]), float(d["loss"]), int(d["correct"])))
        except (ValueError, KeyError, TypeError):
            raise LogError(f"{path} line {n} is not a training-log line") from None
    if not rows:
        raise LogError(f"{path} is an empty training log")
    return rows


def read_sweep(path: str | Path) -> tuple[list[int | None], int | None]:
    """Each seed's steps to solve (None: not solved) and the step limit if every record gives the
    same one (``max_steps`` or ``recipe.max_steps``); LogError with one line if unreadable."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or e
        raise LogError(f"cannot read the sweep results {path}: {reason}") from None
    try:
        stripped = text.strip()
        records = (json.loads(stripped) if stripped.startswith("[")
                   else [json.loads(line) for line in text.splitlines() if line.strip()])
        steps = [int(r["steps"]) if bool(r["solved"]) else None for r in records]
        limits = {r.get("max_steps", (r.get("recipe") or {}).get("max_steps")) for r in records}
        limit = int(limits.pop()) if len(limits) == 1 and None not in limits else None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise LogError(f'{path}: expected JSON objects with "steps" and "solved"') from None
    if not steps:
        raise LogError(f"{path} has no seeds")
    return steps, limit
