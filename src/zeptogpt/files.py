"""Results on disk, safely: a file is replaced whole or not at all, files that belong together
(a checkpoint and its log, a sweep's JSON and CSV) are replaced together, an output that cannot
be written is found before a long run rather than after it, and what is read back is checked
field by field.

Usage::

    check_writable(Path("runs/sweep/e6.json"))             # OSError now, not after training
    write_atomic({Path("a.json"): b"...", Path("a.csv"): b"..."})
    config = from_fields(ModelConfig, json.loads(text))    # ValueError names the bad field
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import typing
from pathlib import Path


def write_atomic(files: dict[Path, bytes]) -> None:
    """Write every file to a temporary file beside it, fsync, and only when all are written
    rename them into place: a reader sees the old files or the new ones, never half of one,
    and a failure (a full disk, a name too long) replaces none of them."""
    written: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = _temporary_beside(path)
            written.append((tmp, path))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)  # mkstemp makes the file private; results are for anyone to read
        for tmp, path in written:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in written:
            Path(tmp).unlink(missing_ok=True)
        raise


def _temporary_beside(path: Path) -> tuple[int, str]:
    """A new temporary file in ``path``'s folder, named after it: (open descriptor, name).

    The name is the final name and more, so once every temporary of a group exists no rename
    can fail for a name too long, and a group is never half replaced. The price: names within
    14 characters of the file system's limit are refused. ``write_atomic`` and
    ``check_writable`` both make theirs here, so the check tries exactly what the write will do.
    """
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")


def check_writable(path: Path) -> None:
    """Raise OSError now, before a long run, if ``write_atomic`` could not write ``path`` later.

    It tries rather than asks: ``os.access`` says yes to root even on ``/proc``, so it makes
    (and removes) the temporary file the write will make, or, where folders are still to be
    made, a temporary folder in the nearest one that exists.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder")
    parent = path.parent
    existing = next(p for p in (parent, *parent.parents) if p.exists())
    if not existing.is_dir():
        raise NotADirectoryError(f"{existing} is not a folder")
    try:
        if existing == parent:
            fd, tmp = _temporary_beside(path)
            os.close(fd)
            os.unlink(tmp)
        else:
            os.rmdir(tempfile.mkdtemp(dir=existing))
    except OSError as e:
        what = f"a file named {path.name!r}" if existing == parent else "folders"
        raise OSError(e.errno, f"cannot make {what} in {existing} ({e.strerror})") from None


_KINDS = {int: "an integer", bool: "true or false", str: "a string", float: "a number"}


def json_number(x: float) -> float | None:
    """``x`` as JSON can hold it: NaN and infinities are not JSON, so they are written null
    (``from_fields`` reads null back as NaN)."""
    return x if math.isfinite(x) else None


def json_excerpt(value: object) -> str:
    """A JSON value for a one-line error message, cut to stay short."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:40] + "..."


def from_fields(cls: type, values: dict) -> typing.Any:
    """``cls(**values)`` for a dataclass read back from JSON, every value first checked against
    its field's type; ValueError with one line naming the field otherwise.

    Types must match exactly (JSON's 6.0 and true are not the integer 6, and "no" is not a bool),
    except that an integer is a number and null is NaN where a number is expected: NaN is not
    JSON, so writers put null. A tuple field (of numbers) is read from a list. Fields with
    defaults may be left out; unknown ones are refused.
    """
    kinds = typing.get_type_hints(cls)
    checked = {}
    for name, value in values.items():
        if name not in kinds:
            raise ValueError(f"unknown field {name!r}")
        kind = kinds[name]
        if typing.get_origin(kind) is tuple:  # of numbers, like Adam's betas; JSON has lists
            n = len(typing.get_args(kind))
            if not (type(value) is list and len(value) == n
                    and all(type(v) in (int, float) for v in value)):
                raise ValueError(f"{name} must be a list of {n} numbers, "
                                 f"got {json_excerpt(value)}")
            checked[name] = tuple(float(v) for v in value)
            continue
        if kind is float and (value is None or type(value) is int):
            value = math.nan if value is None else float(value)
        if type(value) is not kind:
            raise ValueError(f"{name} must be {_KINDS.get(kind, kind)}, got {json_excerpt(value)}")
        checked[name] = value
    for f in dataclasses.fields(cls):
        if f.name not in checked and f.default is dataclasses.MISSING:
            raise ValueError(f"{f.name} is missing")
    return cls(**checked)  # its __post_init__, if any, checks the values themselves
