"""Results on disk, safely: a file is replaced whole or not at all, files that belong together
(a checkpoint and its log, a sweep's JSON and CSV) are all written before any is put in place,
an output that cannot be written is found before a long run rather than after it, and what is
read back is checked field by field.

Only regular files are replaced: a path that is a folder, a device (``/dev/null``), a named
pipe or a socket is refused. A symbolic link is judged by what it points to; if that is a
regular file, the link itself is replaced by the new file and its target is left as it was,
as ``mv`` does. A write goes through a hidden temporary file ``.NAME.xxxxxxxx.tmp`` beside
each file; a failed write removes its temporaries and the folders it made, and since a killed
one cannot, the next write of the same file removes those that no live writer holds.

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
import re
import stat
import tempfile
import typing
from collections.abc import Collection
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock, so no telling a stale temporary from a live one
    fcntl = None

# What tempfile.mkstemp puts between our prefix and suffix: 8 of these characters.
_RANDOM = re.compile(r"[a-z0-9_]{8}")


def write_atomic(files: dict[Path, bytes]) -> None:
    """Write every file to a temporary file beside it, fsync, and only when all are written
    rename them into place, in the order given: a reader sees the old files or the new ones,
    never half of one, and a failure before the renames (a full disk, a name too long) replaces
    none of them. A kill between two renames does leave the first file new and the second old,
    so files that must match say whose they are (as a checkpoint's log does), and the one that
    vouches for the others goes last.

    Every path is checked first: one that exists and is not a regular file is refused with an
    OSError, before anything is written.
    """
    paths = [Path(p) for p in files]
    for path in paths:
        _refuse_unless_regular(path)
    made: list[Path] = []  # folders made here, outermost first
    written: list[tuple[typing.BinaryIO, str, Path]] = []
    try:
        for path, data in zip(paths, files.values()):
            _make_folders(path.parent, made)
            _remove_stale_temporaries(path)
            fd, tmp = _temporary_beside(path)
            f = os.fdopen(fd, "wb")
            written.append((f, tmp, path))  # open until renamed: its lock says it is in use
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            os.chmod(tmp, 0o644)  # mkstemp makes the file private; results are for anyone to read
            if fcntl is None:
                f.close()  # Windows renames no open file, and there is no lock to keep
        for _, tmp, path in written:
            os.replace(tmp, path)
    except BaseException:
        for f, tmp, _ in written:
            f.close()  # before the unlink, which NFS would turn into a hidden .nfs file
            Path(tmp).unlink(missing_ok=True)
        for folder in reversed(made):
            try:
                folder.rmdir()
            except OSError:  # not empty: another writer put something there meanwhile
                pass
        raise
    for f, _, _ in written:
        f.close()


def _refuse_unless_regular(path: Path) -> None:
    """OSError with one line if ``path`` exists and is not a regular file (after following a
    symbolic link). A rename replaces whatever has the name: as root, even ``/dev/null``."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # nothing there, or nothing that can be looked at: making the file will say why
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{path} is a folder")
    if not stat.S_ISREG(mode):
        kind = ("a character device" if stat.S_ISCHR(mode) else
                "a block device" if stat.S_ISBLK(mode) else
                "a named pipe" if stat.S_ISFIFO(mode) else
                "a socket" if stat.S_ISSOCK(mode) else "a special file")
        raise OSError(f"{path} is {kind}, not a regular file")


def _make_folders(folder: Path, made: list[Path]) -> None:
    """Make ``folder`` and the missing folders above it, adding each to ``made`` as soon as it
    exists, so that a failure part way still knows which ones to remove."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:  # made by another writer meanwhile: theirs to keep
            continue
        made.append(folder)


def _temporary_beside(path: Path) -> tuple[int, str]:
    """A new temporary file in ``path``'s folder, named after it and locked: (open descriptor,
    name). The lock lasts until the descriptor is closed and marks the file as in use (see
    ``_remove_stale_temporaries``).

    The name is the final name and more, so once every temporary of a group exists no rename
    can fail for a name too long and leave the group half replaced. The price: names within
    14 characters of the file system's limit are refused. ``write_atomic`` and
    ``check_writable`` both make theirs here, so the check tries exactly what the write will do.
    """
    while True:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        if fcntl is None:
            return fd, tmp
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.path.samestat(os.fstat(fd), os.stat(tmp)):
                return fd, tmp
        except (BlockingIOError, FileNotFoundError):
            pass
        except OSError:  # a file system without locks: where nothing locks, nothing is removed
            return fd, tmp
        # Another writer took it for stale in the instant before it was locked, and removed it
        # (or is about to): make another. It takes that exact instant to happen even once.
        os.close(fd)


def _remove_stale_temporaries(path: Path) -> None:
    """Remove the temporaries of ``path`` that earlier writes left: a kill between making one
    and renaming it (at a write, an fsync, a rename) leaves it, and nothing else would.

    A temporary is stale when no process holds its lock. Each writer locks its temporaries for
    as long as it uses them, and the system drops a process's locks when it ends, however it
    ends; so a temporary that a live writer still uses is never taken, which a rule by age or by
    process id (reused, or another container's) could not promise. Names of other forms, files
    that are not regular files, and files that cannot be opened or locked are left alone.
    """
    if fcntl is None:
        return
    prefix, suffix = f".{path.name}.", ".tmp"
    try:
        names = os.listdir(path.parent)
    except OSError:
        return  # making the temporary will fail too, and say why
    for name in names:
        if not (name.startswith(prefix) and name.endswith(suffix)
                and _RANDOM.fullmatch(name[len(prefix):-len(suffix)])):
            continue
        stale = path.parent / name
        try:  # read-write: NFS grants an exclusive lock to nothing less; never waits on a pipe
            fd = os.open(stale, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if a writer holds it
                os.unlink(stale)
        except OSError:
            pass  # in use, gone meanwhile, or not ours to remove: all reasons to leave it
        finally:
            os.close(fd)


def check_writable(path: Path) -> None:
    """Raise OSError now, before a long run, if ``write_atomic`` could not write ``path`` later.

    It tries rather than asks: ``os.access`` says yes to root even on ``/proc``, so it makes
    (and removes) the temporary file the write will make, or, where folders are still to be
    made, a temporary folder in the nearest one that exists. A path that exists and is not a
    regular file (a folder, ``/dev/null``, a pipe) is refused, as the write would refuse it.
    """
    path = Path(path)
    _refuse_unless_regular(path)
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


def from_fields(cls: type, values: dict, optional: Collection[str] | None = None) -> typing.Any:
    """``cls(**values)`` for a dataclass read back from JSON, every value first checked against
    its field's type; ValueError with one line naming the field otherwise.

    Types must match exactly (JSON's 6.0 and true are not the integer 6, and "no" is not a bool),
    except that an integer is a number and null is NaN where a number is expected: NaN is not
    JSON, so writers put null. A tuple field (of numbers) is read from a list. Unknown fields are
    refused. Fields with defaults may be left out: any of them, or only those named in
    ``optional`` (for files that write every field, where a missing one was lost, and a default
    would hide that).
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
        may_be_left_out = f.default is not dataclasses.MISSING and (
            optional is None or f.name in optional)
        if f.name not in checked and not may_be_left_out:
            raise ValueError(f"{f.name} is missing")
    return cls(**checked)  # its __post_init__, if any, checks the values themselves
