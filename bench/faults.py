"""Fault injection and fuzzing of the `zeptogpt` command: how much bad input and how many faults it
survives as the README promises.

Every trial runs the real command as a process of its own, in a private temporary folder (so
`runs/` and every file it touches are the trial's), and is judged by one small function. Areas:

  cli         fuzzed command lines for every subcommand (negative, huge, NaN, unicode, empty and
              very long values; unknown flags, missing values; paths that are folders, devices,
              FIFOs, symlink loops, non-UTF-8 names, missing parents, read-only places), the
              inputs of `sort` and `trace`, and what `sort -` reads from stdin (binary junk,
              invalid UTF-8, a 1 MB line, 20,000 lines, /dev/zero under a time-out and a memory cap)
  checkpoint  damaged checkpoints loaded by `zeptogpt eval --checkpoint F`: bit flips at seeded
              offsets, truncations, header edits (config, task and facts values of the wrong type,
              missing, huge; NaN weights under a recomputed checksum; another format string)
  logs        damaged training logs (`plot curves --checkpoint F`) and sweep files
              (`plot curves --sweep F`)
  writers     `zeptogpt train` killed (SIGKILL) or interrupted (SIGINT) at seeded times: late in
              the run, just after its first temporary file, and inside the save (timed from the
              evaluation line it prints just before saving; its output is read unbuffered);
              output to /dev/full, a closed stdout, an ASCII-only stdout, a reader that leaves
  signals     Ctrl-C (SIGINT to the process group) at seeded times in the first 2 s of `eval`,
              and while `sort -` waits on stdin
  server      `zeptogpt serve`: slow clients, clients that leave or reset, malformed requests,
              `--host 0.0.0.0` (a warning is expected) and `--host ::1` (expected to work)

"Handled" is the README's promise ("Commands"):
  - never a traceback on stderr;
  - bad input: exit 2 and exactly one line on stderr (at most 500 characters, no raw control
    characters); Ctrl-C: exit 130, or exit 0 only if the work was done before the signal (a
    Ctrl-C is never lost); an I/O fault (a full disk, a closed stdout): any other non-zero
    exit, with one line; the process is never killed by a signal of its own (SIGABRT);
  - a failed command leaves the disk as it was: every file byte-identical, nothing new, no
    temporary `.*.tmp` file, no empty folder;
  - valid input still works: exit 0 (a checkpoint sorts all 27 inputs, `sort` sorts);
  - a checkpoint that loads (exit 0) after a mutation counts only if the mutation was harmless:
    the evaluation is 27/27 and the file's weights are byte for byte the original's;
  - a write killed half-way leaves the old checkpoint byte for byte or a complete new one that
    `eval` loads; the log beside it belongs to it (if not, `plot curves` must refuse the pair
    rather than draw another run's log); no `.*.tmp` survives the next successful write;
  - the server answers a normal request within 15 s whatever other clients do, keeps at most
    100 threads, answers a malformed request with 4xx/5xx (or closes), never prints a traceback.

What it tries is fixed by --seed (trials are drawn per area, so --area does not change them);
what happens may vary with timing (kills, signals, slow clients). It prints figures and asserts
nothing. The full pass takes about 7 minutes on 2 cores, --quick (a third of the trials) 3.

Usage: python bench/faults.py [--quick] [--seed N] [--area NAME ...] [--list] [--cli COMMAND]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import math
import os
import random
import re
import resource
import shlex
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from zeptogpt.checkpoint import FORMAT_1_NAMES

# What an input is, and so what the command must do with it.
OK = "ok"  # valid: exit 0
BAD = "bad"  # a user error: exit 2 and one line
EITHER = "either"  # the README leaves it open: exit 0, or exit 2 and one line
IO = "io"  # an I/O fault: a non-zero exit and one line
IO_OR_OK = "io-or-ok"  # nothing to lose (a closed stdout): exit 0, or as IO
NONZERO = "non-zero"  # a user error told to a full stderr: a non-zero exit, nothing to read

TIMEOUT = 30.0  # seconds a command may take; every trial's command takes a few
ANSWER_WAIT = 15.0  # seconds the server may take to answer a normal request
THREAD_BOUND = 100  # threads the server may have, whatever its clients do
MEMORY_CAP = 2 * 2**30  # address space of every command: a run of /dev/zero ends here, not in swap
MAX_LINE = 500  # characters in an error line; longer floods a terminal
NEW_SEED = 1  # the seed a killed `train` trains (the checkpoint it replaces is seed 0's)
TEMP = re.compile(r"^\..*\.tmp$")  # the temporary files of zeptogpt's atomic writes
TRACEBACK = b"Traceback (most recent call last)"
AREAS = ("cli", "checkpoint", "logs", "writers", "signals", "server")


# --- running the command ------------------------------------------------------------------------

@dataclass
class Run:
    """What one `zeptogpt` process did."""

    rc: int | None  # exit code, negative if killed by a signal; None: still running at the time-out
    out: bytes
    err: bytes
    timeout: float

    def lines(self) -> list[str]:
        """The non-blank lines of stderr."""
        text = self.err.decode("utf-8", "backslashreplace")
        return [line for line in text.splitlines() if line.strip()]

    def said(self) -> str:
        """`exit 2: zeptogpt sort: error: ...`, cut short, for the report."""
        if self.rc is not None and self.rc < 0:
            what = f"killed by {_signal_name(-self.rc)}"
        else:
            what = f"exit {self.rc}"
        lines = self.lines()
        return what + (f": {short(lines[0], 110)}" if lines else "")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class Processes:
    """Every process the bench starts, so that none outlives it. Each leads a process group of
    its own: a signal sent to the group reaches what it started too (a sweep's shards), and a
    Ctrl-C at the bench's terminal does not reach them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: dict[int, subprocess.Popen] = {}
        self.stopping = False

    def start(self, argv: list, **kwargs) -> subprocess.Popen:
        with self.lock:
            if self.stopping:
                raise RuntimeError("the bench is stopping")
            p = subprocess.Popen(argv, start_new_session=True, **kwargs)
            self.running[p.pid] = p
        try:  # set from outside: preexec_fn is not safe with threads
            resource.prlimit(p.pid, resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
        except OSError:
            pass  # already gone
        return p

    def signal(self, p: subprocess.Popen, sig: int) -> None:
        """Send ``sig`` to p's process group, as a terminal's Ctrl-C does, if p still runs
        (0 sends nothing)."""
        if sig and p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def finish(self, p: subprocess.Popen, timeout: float, stdin: bytes | None = None) -> Run:
        """Wait for p (feeding it ``stdin``), killing its group at the time-out."""
        try:
            out, err = p.communicate(stdin, timeout=timeout)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            self.signal(p, signal.SIGKILL)
            out, err = p.communicate()
            rc = None
        finally:
            with self.lock:
                self.running.pop(p.pid, None)
        return Run(rc, out or b"", err or b"", timeout)

    def end(self, p: subprocess.Popen, sig: int, timeout: float = 10.0) -> int | None:
        """Send ``sig`` (0: none) and wait; SIGKILL at the time-out (then None)."""
        self.signal(p, sig)
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(p, signal.SIGKILL)
            p.wait()
            rc = None
        with self.lock:
            self.running.pop(p.pid, None)
        return rc

    def stop_all(self) -> None:
        with self.lock:
            self.stopping = True
            procs = list(self.running.values())
        for p in procs:
            self.signal(p, signal.SIGKILL)
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass


class Bench:
    """The command under test, the files every trial starts from, and the processes started."""

    def __init__(self, cli: list[str], root: Path, quick: bool, seed: int, workers: int) -> None:
        self.cli, self.root, self.quick, self.seed, self.workers = cli, root, quick, seed, workers
        self.procs = Processes()
        # No PYTHONIOENCODING from the caller's shell, and a UTF-8 locale as most users have.
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONIOENCODING"}
        self.env["LC_ALL"] = "C.UTF-8"
        self.checkpoint = self.log = self.sweep = b""  # set by setup()
        self.busy = socket.create_server(("127.0.0.1", 0))  # a port some other program holds
        self.busy_port = self.busy.getsockname()[1]
        self.shared_server: Server | None = None
        self.server_folder: Path | None = None
        self.server_failure = ""  # why the shared server did not start: not tried again
        self.save_timing: SaveTiming | str | None = None  # measured by the writers area

    def zeptogpt(self, args: list, cwd: Path, *, stdin: bytes | int | None = None,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env: dict | None = None,
                 timeout: float = TIMEOUT, redirect: str = "") -> Run:
        """Run `zeptogpt ARGS` in ``cwd``. ``stdin`` is bytes to send, an open file descriptor,
        or None (empty); ``redirect`` is a shell redirection applied first, like ``>&-``."""
        argv = [*self.cli, *[str(self.busy_port) if a == "{busy}" else a for a in args]]
        if redirect:
            argv = ["/bin/sh", "-c", f'exec "$@" {redirect}', "sh", *argv]
        data = stdin if isinstance(stdin, bytes) else None
        source = subprocess.PIPE if data is not None else (
            subprocess.DEVNULL if stdin is None else stdin)
        p = self.procs.start(argv, cwd=cwd, env=env or self.env, stdin=source, stdout=stdout,
                             stderr=stderr)
        return self.procs.finish(p, timeout, data)

    def start(self, args: list, cwd: Path, **kwargs) -> subprocess.Popen:
        """Start `zeptogpt ARGS` without waiting (for trials that signal it)."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        return self.procs.start([*self.cli, *args], cwd=cwd, env=self.env, **kwargs)

    def watch(self, args: list, cwd: Path, stdin: int | None = None) -> Watched:
        """Start `zeptogpt ARGS` with unbuffered output read as it comes (for trials that
        signal it at a moment its output marks)."""
        env = dict(self.env, PYTHONUNBUFFERED="1")
        p = self.procs.start([*self.cli, *args], cwd=cwd, env=env,
                             stdin=subprocess.DEVNULL if stdin is None else stdin,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return Watched(self.procs, p)

    def put_checkpoint(self, folder: Path, name: str = "model") -> Path:
        """The set-up's checkpoint and its log, copied into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.safetensors").write_bytes(self.checkpoint)
        (folder / f"{name}.log.jsonl").write_bytes(self.log)
        return folder / f"{name}.safetensors"

    def close(self) -> None:
        self.procs.stop_all()
        self.busy.close()


class Watched:
    """A running command whose output is read as it comes, each line with when it came."""

    def __init__(self, procs: Processes, p: subprocess.Popen) -> None:
        self.procs, self.p, self.started = procs, p, time.monotonic()
        self.out, self.err = bytearray(), bytearray()
        self.lines: list[tuple[float, bytes]] = []  # (when, line) of stdout
        self.readers = [threading.Thread(target=self._read, args=(p.stdout, self.out, True),
                                         daemon=True),
                        threading.Thread(target=self._read, args=(p.stderr, self.err, False),
                                         daemon=True)]
        for t in self.readers:
            t.start()

    def _read(self, pipe, into: bytearray, stdout: bool) -> None:
        for line in pipe:
            into += line
            if stdout:
                self.lines.append((time.monotonic(), line))

    def seen(self, marker: bytes) -> float | None:
        """When a line holding ``marker`` came out, if it has."""
        return next((t for t, line in self.lines if marker in line), None)

    def wait_for(self, marker: bytes, timeout: float = 60.0) -> float | None:
        """Wait until a line holding ``marker`` comes out or the command ends."""
        deadline = time.monotonic() + timeout
        while self.seen(marker) is None and self.p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.0002)
        return self.seen(marker)

    def finish(self, timeout: float = TIMEOUT) -> Run:
        rc = self.procs.end(self.p, 0, timeout)  # signal 0: only wait; SIGKILL at the time-out
        for t in self.readers:
            t.join(5)
        return Run(rc, bytes(self.out), bytes(self.err), timeout)


@dataclass
class Trial:
    """One thing to try: ``check(folder)`` runs it in a fresh empty folder and says
    (handled, what happened)."""

    area: str
    what: str
    check: Callable[[Path], tuple[bool, str]]


def broken(run: Run, expect: str) -> str | None:
    """None if the run kept the promise for an input of this kind, else what happened. The
    words before the first colon are the cause the report groups by."""
    if run.rc is None:
        return f"timeout: still running after {run.timeout:g} s"
    if TRACEBACK in run.err:
        return f"traceback: {short(run.lines()[-1], 120)}"
    if expect == NONZERO:
        return None if run.rc > 0 else f"wrong exit code: {run.said()}"
    if run.rc == 0:
        if expect in (OK, EITHER, IO_OR_OK):
            return None
        return "ignored I/O fault: exit 0" if expect == IO else "accepted bad input: exit 0"
    if expect == OK:
        return f"refused valid input: {run.said()}"
    if run.rc < 0 or (expect in (BAD, EITHER) and run.rc != 2):
        return f"wrong exit code: {run.said()}"
    return message_problem(run)


def message_problem(run: Run) -> str | None:
    """None if stderr is one readable line."""
    lines = run.lines()
    if len(lines) != 1:
        last = f", the last: {short(lines[-1], 80)}" if lines else ""
        return f"not one line: {len(lines)} lines on stderr{last}"
    line = lines[0]
    if len(line) > MAX_LINE:
        return f"not one line: a line of {len(line):,} characters"
    if any(ord(c) < 32 and c != "\t" or c == "\x7f" for c in line):
        return f"not one line: raw control characters in {short(ascii(line), 80)}"
    return None


def solved(out: bytes) -> bool:
    """Whether `eval`'s output ends with all 27 inputs sorted."""
    lines = out.decode("utf-8", "replace").strip().splitlines()
    return bool(lines) and lines[-1].rstrip().endswith("27/27")


def short(text: str, limit: int) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit] + "..."


def show(args: list) -> str:
    """A command line as one readable ASCII line: long values are cut and measured."""
    parts = []
    for a in args:
        if isinstance(a, bytes):
            parts.append(ascii(a))
        elif len(a) > 40:
            parts.append(f"{ascii(a[:12])}...({len(a):,} chars)")
        elif a == "{busy}":
            parts.append("<a port in use>")
        elif not a or not (a.isascii() and a.isprintable()):
            parts.append(ascii(a))
        else:
            parts.append(shlex.quote(a))
    return " ".join(["zeptogpt", *parts])


# --- what is on disk ----------------------------------------------------------------------------

def scan(folder: Path) -> dict[str, str]:
    """Every entry under ``folder``: relative path -> what it is (a file's SHA-256, "folder",
    the target of a symlink, "special"). Symlinks and FIFOs are never followed or opened."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, folder)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                with open(path, "rb") as f:
                    found[rel] = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISDIR(mode):
                found[rel] = "folder"
            elif stat.S_ISLNK(mode):
                found[rel] = "link to " + os.readlink(path)
            else:
                found[rel] = "special"
    return found


def disk_problem(before: dict[str, str], after: dict[str, str], failed: bool) -> str | None:
    """None if the folder is as the promise wants it after a run that ``failed`` or not."""
    temps = [p for p in after if p not in before and TEMP.match(os.path.basename(p))]
    if temps:
        return f"disk: left the temporary file {ascii(temps[0])}"
    new_folders = [p for p, kind in after.items() if kind == "folder" and p not in before]
    empty = [p for p in new_folders if not any(q.startswith(p + os.sep) for q in after)]
    if empty:
        return f"disk: left the empty folder {ascii(empty[0])}"
    if failed:
        changed = [p for p in before if after.get(p) != before[p]]
        if changed:
            return f"disk: a failed run changed {ascii(changed[0])}"
        created = [p for p in after if p not in before]
        if created:
            return f"disk: a failed run created {ascii(created[0])}"
    return None


def remove(folder: Path) -> None:
    """Delete a trial's folder, read-only parts included."""
    for dirpath, _, _ in os.walk(folder):
        try:
            os.chmod(dirpath, 0o755)
        except OSError:
            pass
    shutil.rmtree(folder, ignore_errors=True)


def fixtures(bench: Bench, folder: Path) -> None:
    """What the fuzzed paths of the cli area name: a checkpoint (also under a non-UTF-8 name), a
    sweep file, a folder, a FIFO, a read-only folder, symlinks to /dev/null and to themselves."""
    bench.put_checkpoint(folder / "ck")
    odd = os.path.join(os.fsencode(folder), b"ck", b"\xff\xfe")
    for suffix, data in ((b".safetensors", bench.checkpoint), (b".log.jsonl", bench.log)):
        with open(odd + suffix, "wb") as f:
            f.write(data)
    (folder / "sw.json").write_bytes(bench.sweep)
    (folder / "dir").mkdir()
    os.mkfifo(folder / "fifo")
    (folder / "ro").mkdir()
    os.chmod(folder / "ro", 0o555)
    os.symlink("/dev/null", folder / "devnull")
    os.symlink("loop", folder / "loop")
    (folder / "file.txt").write_text("not a checkpoint\n")


def command_trial(bench: Bench, area: str, args: list, expect: str, *, note: str = "",
                  stdin: bytes | str | None = None, redirect: str = "", env: dict | None = None,
                  timeout: float = TIMEOUT, check: Callable[[Run], str | None] | None = None,
                  ) -> Trial:
    """A trial that runs one command in a folder of fixtures and judges its exit, stderr and
    disk. ``stdin`` is bytes, a path to open (a device; "write-only": a fixture open for
    writing, so every read fails), or None; ``check`` judges the output of a run that kept
    the promise."""
    def run(folder: Path) -> tuple[bool, str]:
        fixtures(bench, folder)
        before = scan(folder)
        fd = None
        if stdin == "write-only":
            fd = os.open(folder / "file.txt", os.O_WRONLY)
        elif isinstance(stdin, str):
            fd = os.open(stdin, os.O_RDONLY)
        try:
            r = bench.zeptogpt(args, folder, stdin=fd if fd is not None else stdin,
                               redirect=redirect, env=env, timeout=timeout)
        finally:
            if fd is not None:
                os.close(fd)
        if args and args[0] == "serve" and r.rc is None and b"http://" in r.out:
            # A server that started ran until the time-out: right only for a valid command line.
            if expect == BAD:
                return False, "accepted bad input: started serving"
            return True, "served"
        problem = (broken(r, expect) or disk_problem(before, scan(folder), failed=r.rc != 0)
                   or (check(r) if check and r.rc == 0 else None))
        return problem is None, problem or r.said()

    what = show(args) + (f" {note}" if note else "") + f" [{expect}]"
    return Trial(area, what, run)


def pick(rng: random.Random, items: list, quick: bool, share: float = 1 / 3) -> list:
    """All the items, or for --quick a seeded sample of a third of them, in their order."""
    if not quick:
        return items
    keep = sorted(rng.sample(range(len(items)), max(1, round(len(items) * share))))
    return [items[i] for i in keep]


# --- area: cli ----------------------------------------------------------------------------------

# Each option's values, with what each one is. Paths are relative to the trial's folder of
# fixtures (see `fixtures`); "{busy}" is a port another program holds.
SEEDS = [("0", OK), ("1", OK), (str(2**63 - 1), OK), ("-1", BAD), (str(2**63), BAD),
         ("1.5", BAD), ("abc", BAD), ("", BAD), ("0x10", BAD), ("nan", BAD), ("9" * 5000, BAD),
         ("٣", EITHER), (" 7", EITHER)]
STEPS = [("1", OK), ("5", OK), ("40", OK), ("0", BAD), ("-5", BAD), ("1000001", BAD),
         ("1e2", BAD), ("", BAD), ("x" * 100_000, BAD)]
LRS = [("0.03", OK), ("1e-2", OK), ("0", BAD), ("-0.03", BAD), ("nan", BAD), ("inf", BAD),
       ("-inf", BAD), ("abc", BAD), ("", BAD), ("1e308", EITHER), ("1e-320", EITHER),
       ("1e3", EITHER)]
OBJECTIVES = [("answer", OK), ("full", OK), ("ANSWER", BAD), ("", BAD), ("ответ", BAD)]
BATCHES = [("1", OK), ("27", OK), ("128", OK), ("0", BAD), ("-1", BAD), ("100001", BAD),
           ("2.5", BAD)]
VARIANT_EMBED = {"e6": 6, "e6-nopos": 6, "e4-nopos": 4, "e8-mlp2": 8}
READ_CHECKPOINTS = [
    ("ck/model.safetensors", OK), ("ck/../ck/model.safetensors", OK),
    (b"ck/\xff\xfe.safetensors", OK), ("missing/model.safetensors", BAD), ("ck", BAD),
    ("ck/", BAD), ("", BAD), ("fifo", BAD), ("/dev/null", BAD), ("/dev/zero", BAD),
    ("devnull", BAD), ("loop", BAD), ("ck/model.log.jsonl", BAD), ("file.txt", BAD),
    ("x" * 300, BAD), ("a/" * 2100 + "m", BAD)]
WRITE_CHECKPOINTS = [
    ("new/model.safetensors", OK), ("new/deep/er/m.safetensors", OK),
    ("ck/model.safetensors", OK), (b"new/\xff\xfe.safetensors", OK),
    ("ro/model.safetensors", EITHER), ("fifo", EITHER), ("devnull", EITHER),
    ("x" * 240 + ".safetensors", EITHER), ("ck", BAD), ("ck/", BAD), ("dir", BAD), ("", BAD),
    ("fifo/model.safetensors", BAD), ("file.txt/m.safetensors", BAD),
    ("loop/model.safetensors", BAD), ("/proc/zeptogpt-faults/model.safetensors", BAD),
    ("x" * 300 + ".safetensors", BAD), ("a/" * 2100 + "m.safetensors", BAD)]
OUT_FOLDERS = [("out", OK), ("out/a/b", OK), ("ck", OK), ("dir", OK), ("ro", EITHER),
               ("", EITHER), ("/proc/zeptogpt-faults", BAD), ("file.txt", BAD), ("fifo", BAD),
               ("loop", BAD), ("x" * 300, BAD)]
SWEEP_FILES = [("sw.json", OK), ("missing.json", BAD), ("dir", BAD), ("/dev/null", BAD),
               ("ck/model.safetensors", BAD), ("file.txt", BAD), ("fifo", BAD), ("", BAD)]
JSON_FILES = [("s/out.json", OK), ("s/deep/out.json", OK), ("fifo", EITHER), ("ck", BAD),
              ("s/", BAD), ("", BAD), ("dir", BAD), ("/proc/zeptogpt-faults/x.json", BAD),
              ("file.txt/x.json", BAD)]
CSV_FILES = [("s/out.csv", OK), ("s/out.json", OK), ("ck", BAD), ("s/", BAD), ("", BAD),
             ("/proc/zeptogpt-faults/x.csv", BAD)]
SWEEP_SEEDS = [("1", OK), ("3", OK), ("0", BAD), ("-3", BAD), ("10001", BAD), ("many", BAD)]
FIRST_SEEDS = [("0", OK), ("5", OK), (str(2**63 - 1), OK), ("-1", BAD), ("1e3", BAD)]
THREADS = [("1", OK), ("2", EITHER), ("0", BAD), ("-1", BAD), ("1000", BAD)]
PORTS = [("0", OK), ("-1", BAD), ("65536", BAD), ("http", BAD), ("", BAD), ("80.5", BAD),
         ("{busy}", BAD)]
HOSTS = [("127.0.0.1", OK), ("localhost", OK), ("999.0.0.1", BAD), ("exa mple", BAD),
         ("localhøst", BAD), ("::g", BAD), ("256.256.256.256", BAD), ("", EITHER),
         ("x" * 300, BAD)]
INPUTS = [("caa", OK), ("CAB", OK), (" abc ", OK), ("bca\t", OK), ("", BAD), ("ab", BAD),
          ("abcd", BAD), ("abd", BAD), ("ＡＢＣ", BAD), ("caa\u200b", BAD), ("c\x01a", BAD),
          ("é", BAD), ("🙂🙂🙂", BAD), ("\x1b[31mcab", BAD), ("c" * 100_000, BAD),
          (b"\xff\xfe\xfd", BAD), ("b c a", BAD), ("-caa", BAD), ("c\ra", BAD)]
PLOT_KINDS = [("attention", OK), ("lens", OK), ("weights", OK), ("curves", OK), ("curve", BAD),
              ("", BAD), ("ATTENTION", BAD)]
WORST = {OK: 0, EITHER: 1, BAD: 2}
POS = "--pos/--no-pos"  # one option: its values are the flags themselves (the last one wins)


def architecture_options(reader: bool) -> dict[str, list]:
    """Architecture flags. A command that reads the e6 checkpoint must refuse any other."""
    if reader:
        return {
            "--variant": [("e6", OK), ("e8-mlp2", BAD), ("e7", BAD), ("E6", BAD), ("", BAD),
                          ("ｅ6", BAD)],
            "--embed": [("6", OK), ("8", BAD), ("0", BAD), ("257", BAD), ("six", BAD)],
            "--heads": [("2", OK), ("3", BAD), ("0", BAD), ("-2", BAD)],
            "--mlp": [("1", OK), ("2", BAD), ("17", BAD)],
            "--layers": [("1", OK), ("2", BAD), ("65", BAD), ("-1", BAD)],
            POS: [("--pos", OK), ("--no-pos", BAD), ("--pos --no-pos", BAD),
                  ("--no-pos --pos", OK)],
        }
    return {
        "--variant": [("e6", OK), ("e6-nopos", OK), ("e4-nopos", OK), ("e8-mlp2", OK),
                      ("e7", BAD), ("E6", BAD), ("e6 ", BAD), ("", BAD), ("ｅ6", BAD)],
        "--embed": [("2", OK), ("4", OK), ("6", OK), ("8", OK), ("0", BAD), ("-6", BAD),
                    ("257", BAD), ("six", BAD), ("", BAD)],
        "--heads": [("1", OK), ("2", OK), ("3", OK), ("0", BAD), ("257", BAD), ("-2", BAD)],
        "--mlp": [("1", OK), ("2", OK), ("0", BAD), ("17", BAD)],
        "--layers": [("1", OK), ("2", OK), ("0", BAD), ("65", BAD)],
        POS: [("--pos", OK), ("--no-pos", OK), ("--pos --no-pos", OK)],
    }


def command_options(command: str) -> dict[str, list]:
    """The options a fuzzed command line of ``command`` draws from."""
    if command == "sweep":
        return {"--variant": architecture_options(False)["--variant"],
                "--all-variants": [(None, OK)], "--layers": [("1", OK), ("0", BAD), ("65", BAD)],
                "--first-seed": FIRST_SEEDS, "--lr": LRS, "--objective": OBJECTIVES,
                "--batch-size": BATCHES, "--json": JSON_FILES, "--csv": CSV_FILES,
                "--threads": THREADS}
    reader = command in ("eval", "sort", "trace", "plot", "serve")
    options = architecture_options(reader)
    if command in ("run", "train"):
        options |= {"--seed": SEEDS, "--lr": LRS, "--objective": OBJECTIVES,
                    "--batch-size": BATCHES, "--checkpoint": WRITE_CHECKPOINTS}
    elif command == "serve":
        options |= {"--port": PORTS, "--host": HOSTS}
    elif command != "params":
        options["--seed"] = SEEDS
    if command == "sort":
        options["--trace"] = [(None, OK)]
    if command == "plot":
        options |= {"--out": OUT_FOLDERS, "--sweep": SWEEP_FILES}
    return options


def fuzzed_command(rng: random.Random, command: str) -> tuple[list, str]:
    """A random command line for ``command`` and what it is (OK, BAD or EITHER).

    A quarter are valid throughout, half have exactly one fault (a bad value, an unknown flag,
    a missing value, a stray word) in an otherwise valid line, so each check is reached on its
    own, and a quarter draw every value at random."""
    options = command_options(command)
    mode = rng.choices(["valid", "one fault", "random"], [1, 2, 1])[0]
    slots: list[tuple[str, list]] = []  # (positional or flag, its values)
    if command in ("sort", "trace"):
        slots += [("INPUT", INPUTS)] * (rng.randint(1, 3) if command == "sort" else 1)
    if command == "plot":
        slots.append(("WHAT", PLOT_KINDS))
    required = {"run": ["--steps"], "train": ["--steps"], "sweep": ["--steps", "--seeds"],
                "serve": ["--checkpoint", "--port"]}.get(command, [])
    if command in ("eval", "sort", "trace", "plot"):
        required = ["--checkpoint"]
    pools = options | {"--steps": STEPS, "--seeds": SWEEP_SEEDS, "--checkpoint":
                       options.get("--checkpoint", READ_CHECKPOINTS), "--port": PORTS}
    extra = [f for f in rng.sample(sorted(options), rng.randint(0, 3)) if f not in required]
    slots += [(flag, pools[flag]) for flag in required + extra]
    noise_fault = mode == "one fault" and rng.random() < 0.2
    can_fail = [i for i, (_, pool) in enumerate(slots) if any(v != OK for _, v in pool)]
    noise_fault = noise_fault or (mode == "one fault" and not can_fail)
    faulty = rng.choice(can_fail) if mode == "one fault" and not noise_fault else None
    drawn = []
    for i, (name, pool) in enumerate(slots):
        if mode == "random":
            drawn.append((name, rng.choice(pool)))
        elif i == faulty:
            drawn.append((name, rng.choice([p for p in pool if p[1] != OK])))
        else:
            drawn.append((name, rng.choice([p for p in pool if p[1] == OK] or pool)))

    positional: list = [command]
    verdicts = []
    chosen: dict[str, tuple] = {}  # flag -> (value or None for a bare flag, what it is)
    for name, (value, verdict) in drawn:
        if name in ("INPUT", "WHAT"):
            positional.append(value)
            verdicts.append(verdict)
        else:
            chosen[name] = (value, verdict)
    if command == "plot":  # attention and lens need an INPUT; weights and curves take none
        needs_input = positional[1] in ("attention", "lens")
        if rng.random() < ((0.9 if needs_input else 0.15) if mode == "random" else needs_input):
            value, verdict = rng.choice(INPUTS if mode == "random" else
                                        [p for p in INPUTS if p[1] == OK])
            positional.append(value)
            verdicts.append(verdict if needs_input else BAD)
        elif needs_input:
            verdicts.append(BAD)
        if "--sweep" in chosen:  # then no checkpoint is read: its path and flags do not matter
            chosen = {f: v for f, v in chosen.items() if f in ("--sweep", "--out", "--seed")}
            if positional[1] != "curves":
                verdicts.append(BAD)
    verdicts += [verdict for _, verdict in chosen.values()]
    verdicts.append(cross_verdict(command, {f: value for f, (value, _) in chosen.items()}))

    args = list(positional)
    for flag, (value, _) in chosen.items():
        args += value.split() if flag == POS else [flag] if value is None else [flag, value]
    if noise_fault or (mode == "random" and rng.random() < 0.2):
        noise = rng.choice(["unknown flag", "missing value", "stray word"])
        if noise == "unknown flag":
            args.append("--bogus")
        elif noise == "missing value":
            args.append(rng.choice([f for f in sorted(options)
                                    if f != POS and options[f][0][0] is not None]))
        else:
            args.append("extra")  # (for sort, another INPUT, and a bad one)
        verdicts.append(BAD)
    verdict = max(verdicts, key=WORST.get)
    if command == "serve" and verdict != BAD:  # a valid server would run: always break one thing
        args += ["--host", "999.0.0.1"]
        verdict = BAD
    return args, verdict


def cross_verdict(command: str, chosen: dict) -> str:
    """What the combination makes of values each valid on its own."""
    def number(flag: str) -> int | None:
        value = chosen.get(flag)
        return int(value) if isinstance(value, str) and re.fullmatch(r"\d+", value) else None

    if command in ("params", "train", "run"):
        embed = number("--embed") or VARIANT_EMBED.get(chosen.get("--variant") or "e6", 6)
        heads = number("--heads") or 2
        if embed % heads:
            return BAD  # E must divide by H
    if command == "sweep":
        if "--variant" in chosen and "--all-variants" in chosen:
            return BAD
        if chosen.get("--json") is not None and chosen.get("--json") == chosen.get("--csv"):
            return BAD
        first, seeds = number("--first-seed"), number("--seeds")
        if first is not None and seeds is not None and first + seeds - 1 > 2**63 - 1:
            return BAD
    return OK


def sorted_output(words: list[str]) -> Callable[[Run], str | None]:
    """A check that `sort` printed ``word -> sorted(word)`` for every word."""
    def check(r: Run) -> str | None:
        lines = r.out.decode("utf-8", "replace").splitlines()
        got = [line for line in lines if " -> " in line]
        want = [f"{w} -> {''.join(sorted(w))}" for w in words]
        if got != want:
            return f"wrong output: {len(got)} answers, first {short(got[0] if got else '', 40)}"
        return None
    return check


def cli_trials(bench: Bench, rng: random.Random) -> list[Trial]:
    quick = bench.quick
    trials = []
    # Fuzzed command lines, so many per subcommand.
    for command in ("run", "train", "eval", "sort", "trace", "params", "sweep", "plot", "serve"):
        for _ in range(4 if quick else 12):
            args, verdict = fuzzed_command(rng, command)
            trials.append(command_trial(bench, "cli", args, verdict,
                                        timeout=12 if command == "serve" else TIMEOUT))
    # Command lines with no subcommand or a broken one.
    top = [([], OK), (["-h"], OK), (["--steps", "5"], OK), (["srot"], BAD), ([""], BAD),
           (["--bogus"], BAD), (["--version"], BAD), (["run", "--steps", "abc"], BAD),
           (["sort"], BAD), (["plot"], BAD), ([b"\xff\xfe"], BAD), (["x" * 100_000], BAD),
           (["eval", "--checkpoint"], BAD), (["sort", "--", "-caa"], BAD)]
    for args, verdict in pick(rng, top, quick):
        trials.append(command_trial(bench, "cli", args, verdict))
    # Every input value through sort and trace (trace checks, sort also checks the answer).
    for value, verdict in pick(rng, INPUTS, quick):
        for command in ("sort", "trace"):
            check = None
            if command == "sort" and verdict == OK:
                check = sorted_output([value.strip().lower()])
            trials.append(command_trial(bench, "cli", [command, value, "--checkpoint",
                                                       "ck/model.safetensors"], verdict,
                                        check=check))
    # What `sort -` reads from stdin.
    many = [rng.choice(["caa", "BCB", " abc ", "cab"]) for _ in range(20_000)]
    one_bad = list(many)
    one_bad[12_345] = "abd"
    letters = bytes(rng.choice(b"abc") for _ in range(1_000_000))
    stdins = [
        ("4 KB of binary junk", rng.randbytes(4096), BAD),
        ("invalid UTF-8", b"caa\n\xff\xfe\xfd\n", BAD),
        ("a 1 MB line of a", b"a" * 1_000_000 + b"\n", BAD),
        ("a 1 MB line of abc letters", letters + b"\n", BAD),
        ("20,000 valid lines", "\n".join(many).encode() + b"\n", OK),
        ("20,000 lines, line 12,346 bad", "\n".join(one_bad).encode() + b"\n", BAD),
        ("nothing", b"", BAD),
        ("blank lines only", b"\n\n\n", BAD),
        ("CRLF line ends", b"caa\r\nbcb\r\n", OK),
        ("a UTF-8 byte-order mark", b"\xef\xbb\xbfcaa\n", EITHER),
        ("a NUL byte", b"c\x00a\n", BAD),
        ("an ANSI escape", b"\x1b[31mcab\x1b[0m\n", BAD),
        ("unicode letters", "ｃａａ\nçab\n".encode(), BAD),
        ("UTF-16 text", "caa\n".encode("utf-16"), BAD),
        ("no final newline", b"caa", OK),
        ("/dev/zero", "/dev/zero", BAD),
        ("/dev/urandom", "/dev/urandom", BAD),
        ("a descriptor open for writing only", "write-only", IO),
    ]
    for note, data, verdict in pick(rng, stdins, quick):
        check = None
        if verdict == OK and isinstance(data, bytes):
            words = [w.strip().lower() for w in data.decode().splitlines() if w.strip()]
            check = sorted_output(words)
        trials.append(command_trial(bench, "cli", ["sort", "-", "--checkpoint",
                                                   "ck/model.safetensors"], verdict,
                                    note=f"< {note}", stdin=data, check=check, timeout=20))
    trials.append(command_trial(bench, "cli", ["sort", "-", "--checkpoint",
                                               "ck/model.safetensors"], BAD,
                                note="with stdin closed", redirect="<&-"))
    trials.append(command_trial(bench, "cli", ["sort", "-", "-", "--checkpoint",
                                               "ck/model.safetensors"], BAD, stdin=b"caa\n"))
    trials.append(command_trial(bench, "cli", ["sort", "caa", "-", "bcb", "--checkpoint",
                                               "ck/model.safetensors"], OK, note="< abc",
                                stdin=b"abc\n", check=sorted_output(["caa", "abc", "bcb"])))
    return trials


# --- area: checkpoint ---------------------------------------------------------------------------

DELETE = object()  # as a new value: remove the key


def split_safetensors(data: bytes) -> tuple[dict, bytes]:
    """(header, data section) of a safetensors file: 8 bytes of header length, JSON, data."""
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n]), data[8 + n:]


def join_safetensors(header: dict | bytes, body: bytes) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads its header to 8 bytes
    return len(text).to_bytes(8, "little") + text + body


def weights_sha256(header: dict, body: bytes) -> str:
    """The checksum as checkpoint.py's docstring computes it from the file alone."""
    h = hashlib.sha256()
    for name in sorted(k for k in header if k != "__metadata__"):
        t = header[name]
        h.update(json.dumps([name, t["dtype"], t["shape"]], separators=(",", ":")).encode())
        h.update(b"\n")
        begin, end = t["data_offsets"]
        h.update(body[begin:end])
    return h.hexdigest()


def tensors_of(data: bytes) -> dict | None:
    """name -> (dtype, shape, bytes) of every tensor, or None if the file does not parse."""
    try:
        header, body = split_safetensors(data)
        return {name: (t["dtype"], t["shape"], body[t["data_offsets"][0]:t["data_offsets"][1]])
                for name, t in header.items() if name != "__metadata__"}
    except (ValueError, KeyError, TypeError, IndexError, RecursionError):
        return None


def edit_header(change: Callable[[dict], None], fix_checksum: bool = False):
    """A mutation: ``change`` edits the parsed header in place."""
    def mutate(data: bytes) -> bytes:
        header, body = split_safetensors(data)
        change(header)
        if fix_checksum:
            header["__metadata__"]["weights_sha256"] = weights_sha256(header, body)
        return join_safetensors(header, body)
    return mutate


def edit_metadata(key: str, value) -> Callable[[bytes], bytes]:
    """A mutation: metadata ``key`` set to ``value`` (a string as stored, or DELETE)."""
    def change(header: dict) -> None:
        if value is DELETE:
            header["__metadata__"].pop(key, None)
        else:
            header["__metadata__"][key] = value
    return edit_header(change)


def edit_json_field(key: str, field: str, value) -> Callable[[bytes], bytes]:
    """A mutation: one field of a JSON metadata entry (config, task, facts) set or DELETEd."""
    def change(header: dict) -> None:
        entry = json.loads(header["__metadata__"][key])
        if value is DELETE:
            entry.pop(field, None)
        else:
            entry[field] = value
        header["__metadata__"][key] = json.dumps(entry)
    return edit_header(change)


def edit_weights(name: str, change: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """A mutation: one tensor's bytes changed, the checksum recomputed to match."""
    def mutate(data: bytes) -> bytes:
        header, body = split_safetensors(data)
        begin, end = header[name]["data_offsets"]
        body = body[:begin] + change(body[begin:end]) + body[end:]
        header["__metadata__"]["weights_sha256"] = weights_sha256(header, body)
        return join_safetensors(header, body)
    return mutate


def as_format_1(data: bytes) -> bytes:
    """The same weights as a format-1 file: old names, no checksum."""
    header, body = split_safetensors(data)
    meta = dict(header.pop("__metadata__"), format="zeptogpt-1")
    meta.pop("weights_sha256")
    old_name = {new: old for old, new in FORMAT_1_NAMES.items()}  # a format-1 file must load
    renamed = {old_name[k]: v for k, v in header.items()}
    return join_safetensors({"__metadata__": meta, **renamed}, body)


def with_dtype(dtype: str, size: int) -> Callable[[bytes], bytes]:
    """Every tensor stored as ``dtype`` of ``size`` bytes per number, offsets and checksum made
    consistent: a well-formed file of the wrong number type."""
    def mutate(data: bytes) -> bytes:
        header, body = split_safetensors(data)
        out, offset = b"", 0
        for name in [k for k in header if k != "__metadata__"]:
            t = header[name]
            n = math.prod(t["shape"])
            out += bytes(n * size)
            t["dtype"], t["data_offsets"] = dtype, [offset, offset + n * size]
            offset += n * size
        header["__metadata__"]["weights_sha256"] = weights_sha256(header, out)
        return join_safetensors(header, out)
    return mutate


def _set_tensor(name: str, key: str, value) -> Callable[[dict], None]:
    def change(header: dict) -> None:
        header[name][key] = value
    return change


def _rename_tensor(old: str, new: str) -> Callable[[dict], None]:
    def change(header: dict) -> None:
        header[new] = header.pop(old)
    return change


def _add_tensor(header: dict) -> None:
    header["extra"] = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}


def _drop_tensor(header: dict) -> None:
    del header["W_pos"]


def _replace_header(text: bytes) -> Callable[[bytes], bytes]:
    def mutate(data: bytes) -> bytes:
        return join_safetensors(text, split_safetensors(data)[1])
    return mutate


def _length_prefix(n: int) -> Callable[[bytes], bytes]:
    def mutate(data: bytes) -> bytes:
        return n.to_bytes(8, "little") + data[8:]
    return mutate


def _nan_first(chunk: bytes) -> bytes:
    return struct.pack("<f", math.nan) + chunk[4:]


def _inf_all(chunk: bytes) -> bytes:
    return struct.pack("<f", math.inf) * (len(chunk) // 4)


def _huge_all(chunk: bytes) -> bytes:
    return struct.pack("<f", 1e38) * (len(chunk) // 4)


def checkpoint_mutations() -> list[tuple[str, Callable[[bytes], bytes], str]]:
    """(what, mutation, what the result is): OK means a valid checkpoint that must load."""
    found: list[tuple[str, Callable[[bytes], bytes], str]] = []
    same = edit_header(lambda header: None)
    found += [("re-written unchanged", same, OK), ("format 1 (old names, no checksum)",
                                                    as_format_1, OK)]
    int_values = [("a string", "6"), ("a float", 6.5), ("true", True), ("null", None),
                  ("-1", -1), ("0", 0), ("10**9", 10**9), ("10**30", 10**30), ("a list", [6]),
                  ("NaN", math.nan)]
    for field in ("vocab_size", "block_size", "n_embd", "n_head", "mlp_mult", "n_layer"):
        # every value for the sizes that allocate, four for the others
        values = int_values if field in ("n_embd", "n_head", "n_layer") else [
            int_values[i] for i in (0, 3, 4, 7)]
        for name, value in values:
            found.append((f"config {field} = {name}", edit_json_field("config", field, value),
                          BAD))
        found.append((f"config without {field}", edit_json_field("config", field, DELETE), BAD))
    for name, value in [("a string", "true"), ("1", 1), ("null", None), ("a list", [])]:
        found.append((f"config pos_embed = {name}", edit_json_field("config", "pos_embed", value),
                      BAD))
    found.append(("config with an unknown key", edit_json_field("config", "dropout", 0.1), BAD))
    for name, text in [("{}", "{}"), ("not JSON", "{"), ("[]", "[]"), ("null", "null"),
                       ("a string", '"e6"'), ("1e999", "1e999"), ("100,000 deep",
                                                                  "[" * 100_000)]:
        found.append((f"config = {name}", edit_metadata("config", text), BAD))
    found.append(("no config", edit_metadata("config", DELETE), BAD))
    for name, value in [("''", ""), ("'ab'", "ab"), ("'abcd'", "abcd"), ("'ABC'", "ABC"),
                        ("'a b'", "a b"), ("'αβγ'", "αβγ"), ("'cba'", "cba"), ("'abx'", "abx"),
                        ("5", 5), ("null", None), ("26 letters", "abcdefghijklmnopqrstuvwxyz")]:
        found.append((f"task alphabet = {name}", edit_json_field("task", "alphabet", value),
                      BAD))
    for name, value in [("0", 0), ("-1", -1), ("2", 2), ("4", 4), ("10**9", 10**9),
                        ("'3'", "3"), ("3.0", 3.0), ("true", True), ("null", None)]:
        found.append((f"task length = {name}", edit_json_field("task", "length", value), BAD))
    for field in ("alphabet", "length"):
        found.append((f"task without {field}", edit_json_field("task", field, DELETE), BAD))
    found += [("task = {}", edit_metadata("task", "{}"), BAD),
              ("task = []", edit_metadata("task", "[]"), BAD),
              ("no task", edit_metadata("task", DELETE), BAD)]
    for name, text in [("{}", "{}"), ("[]", "[]"), ("not JSON", "{x"), ("a 1 MB string",
                                                                        json.dumps("x" * 10**6)),
                       ("100,000 deep", "[" * 100_000 + "]" * 100_000),
                       ("odd types", json.dumps({"seed": "x", "steps": [], "margin": "NaN",
                                                 "correct": None, "total": {}}))]:
        found.append((f"facts = {name}", edit_metadata("facts", text), BAD))
    found.append(("no facts", edit_metadata("facts", DELETE), BAD))
    for name, text in [("'zeptogpt-3'", "zeptogpt-3"), ("''", ""), ("'zeptogpt-1'", "zeptogpt-1"),
                       ("'ZEPTOGPT-2'", "ZEPTOGPT-2")]:
        found.append((f"format = {name}", edit_metadata("format", text), BAD))
    found += [("no format", edit_metadata("format", DELETE), BAD),
              ("format = 2 (not a string)", edit_metadata("format", 2), BAD),
              ("no weights_sha256", edit_metadata("weights_sha256", DELETE), BAD),
              ("weights_sha256 of zeros", edit_metadata("weights_sha256", "0" * 64), BAD),
              ("metadata = []", edit_header(lambda h: h.update({"__metadata__": []})), BAD),
              ("an extra metadata key", edit_metadata("comment", "hello"), BAD)]
    found += [
        ("W_E[0,0] = NaN, checksum fixed", edit_weights("W_E", _nan_first), BAD),
        ("ln_f.weight all +Inf, checksum fixed", edit_weights("ln_f.weight", _inf_all), BAD),
        ("W_Q all 1e38, checksum fixed", edit_weights("blocks.0.attn.W_Q", _huge_all), EITHER),
        ("all weights F16 (well-formed)", with_dtype("F16", 2), BAD),
        ("all weights F64 (well-formed)", with_dtype("F64", 8), BAD),
        ("W_E dtype I32", edit_header(_set_tensor("W_E", "dtype", "I32"), True), BAD),
        ("W_E shape [6, 4], checksum fixed", edit_header(_set_tensor("W_E", "shape", [6, 4]),
                                                         True), BAD),
        ("W_E shape [24], checksum fixed", edit_header(_set_tensor("W_E", "shape", [24]), True),
         BAD),
        ("W_E shape [10**6, 10**6]", edit_header(_set_tensor("W_E", "shape", [10**6, 10**6])),
         BAD),
        ("W_E offsets [0, 10**12]", edit_header(_set_tensor("W_E", "data_offsets", [0, 10**12])),
         BAD),
        ("W_E offsets [-4, 92]", edit_header(_set_tensor("W_E", "data_offsets", [-4, 92])), BAD),
        ("W_E renamed W_e, checksum fixed", edit_header(_rename_tensor("W_E", "W_e"), True), BAD),
        ("an extra tensor, checksum fixed", edit_header(_add_tensor, True), BAD),
        ("W_pos removed, checksum fixed", edit_header(_drop_tensor, True), BAD),
        ("header = {}", _replace_header(b"{}"), BAD),
        ("header = []", _replace_header(b"[]"), BAD),
        ("header not UTF-8", _replace_header(b'{"\xff": 1}'), BAD),
        ("header 100,000 deep", _replace_header(b"[" * 100_000), BAD),
        ("header length 0", _length_prefix(0), BAD),
        ("header length 2**64-1", _length_prefix(2**64 - 1), BAD),
        ("header length + 1", lambda d: _length_prefix(int.from_bytes(d[:8], "little") + 1)(d),
         BAD),
        ("header length - 1", lambda d: _length_prefix(int.from_bytes(d[:8], "little") - 1)(d),
         BAD),
        ("1 junk byte appended", lambda d: d + b"\x00", BAD),
        ("the file twice", lambda d: d + d, BAD),
        ("empty", lambda d: b"", BAD),
        ("7 bytes", lambda d: d[:7], BAD),
        ("3 KB of zeros", lambda d: bytes(3000), BAD),
        ("JSON text", lambda d: b'{"config": {}}\n', BAD),
        ("a training log", lambda d: b'{"step": 0, "loss": 1.0, "correct": 3}\n', BAD),
    ]
    return found


def checkpoint_paths() -> list[tuple[str, Callable[[Bench, Path], str], str]]:
    """Checkpoint paths that are not files: (what, make it in the folder and name it, expect)."""
    def folder(bench: Bench, d: Path) -> str:
        (d / "ck.safetensors").mkdir()
        return "ck.safetensors"

    def fifo(bench: Bench, d: Path) -> str:
        os.mkfifo(d / "ck.safetensors")
        return "ck.safetensors"

    def loop(bench: Bench, d: Path) -> str:
        os.symlink("ck.safetensors", d / "ck.safetensors")
        return "ck.safetensors"

    def link(bench: Bench, d: Path) -> str:
        bench.put_checkpoint(d / "real")
        os.symlink("real/model.safetensors", d / "ck.safetensors")
        return "ck.safetensors"

    return [("a folder", folder, BAD), ("a FIFO", fifo, BAD), ("a symlink loop", loop, BAD),
            ("/dev/zero", lambda b, d: "/dev/zero", BAD),
            ("/dev/urandom", lambda b, d: "/dev/urandom", BAD),
            ("a symlink to a valid checkpoint", link, OK)]


def eval_trial(bench: Bench, what: str, make: Callable[[Path], str], expect: str,
               mutated: Callable[[], bytes | None]) -> Trial:
    """`zeptogpt eval --checkpoint F` on a made checkpoint. Exit 0 counts only for a valid
    file (OK), or for a harmless change: 27/27 and the weights byte for byte the original's."""
    def run(folder: Path) -> tuple[bool, str]:
        path = make(folder)
        before = scan(folder)
        r = bench.zeptogpt(["eval", "--checkpoint", path], folder)
        problem = disk_problem(before, scan(folder), failed=True)  # eval writes nothing
        said = r.said()
        if r.rc == 0 and TRACEBACK not in r.err:
            if expect == EITHER:  # a well-formed file of a model that may sort badly
                pass
            elif not solved(r.out):
                problem = problem or "loaded damage: exit 0 without 27/27"
            elif expect == BAD:
                if tensors_of(mutated() or b"") != tensors_of(bench.checkpoint):
                    problem = problem or "loaded damage: exit 0 with other weights than saved"
                said = "exit 0, harmless: 27/27 with the saved weights"
        else:
            problem = broken(r, BAD if expect == EITHER else expect) or problem
        return problem is None, problem or said
    label = {OK: "valid", BAD: "damaged", EITHER: "odd but valid"}[expect]
    return Trial("checkpoint", f"eval --checkpoint <{what}> [{label}]", run)


def checkpoint_trials(bench: Bench, rng: random.Random) -> list[Trial]:
    quick = bench.quick
    trials = []

    def file_trial(what: str, mutate: Callable[[bytes], bytes], expect: str) -> Trial:
        cache: dict[str, bytes] = {}

        def data() -> bytes:
            if "data" not in cache:
                cache["data"] = mutate(bench.checkpoint)
            return cache["data"]

        def make(folder: Path) -> str:
            (folder / "ck.safetensors").write_bytes(data())
            return "ck.safetensors"
        return eval_trial(bench, what, make, expect, data)

    for what, mutate, expect in pick(rng, checkpoint_mutations(), quick):
        trials.append(file_trial(what, mutate, expect))
    for what, make, expect in pick(rng, checkpoint_paths(), quick):
        trials.append(eval_trial(bench, what, lambda d, m=make: m(bench, d), expect,
                                 lambda: None))
    # Bit flips and truncations at seeded places; a 2,928-byte checkpoint is about 1,650 bytes
    # of header and 1,272 of weights, so the places are drawn over the first 2,928 bytes.
    for _ in range(15 if quick else 40):
        offset, bit = rng.randrange(2928), rng.randrange(8)

        def flip(data: bytes, offset=offset, bit=bit) -> bytes:
            i = offset % len(data)
            return data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1:]
        trials.append(file_trial(f"bit {bit} of byte {offset} flipped", flip, BAD))
    for _ in range(5 if quick else 12):
        keep = rng.randrange(2928)
        trials.append(file_trial(f"cut to {keep} bytes", lambda d, k=keep: d[:k], BAD))
    return trials


# --- area: logs (training logs and sweep files) -------------------------------------------------

def log_mutations(rng: random.Random) -> list[tuple[str, Callable[[bytes], bytes], str]]:
    """(what, mutation of a training log, what the result is)."""
    def line_edit(field: str, raw: str, at: int):
        """The value of ``field`` on line ``at`` replaced by the JSON text ``raw``."""
        def mutate(log: bytes) -> bytes:
            lines = log.decode().splitlines()
            i = at % len(lines)
            entry = json.loads(lines[i])
            text = json.dumps(entry).replace(f'"{field}": {json.dumps(entry[field])}',
                                             f'"{field}": {raw}')
            lines[i] = text
            return ("\n".join(lines) + "\n").encode()
        return mutate

    def whole(make: Callable[[list[str]], list[str]]):
        def mutate(log: bytes) -> bytes:
            return ("\n".join(make(log.decode().splitlines())) + "\n").encode()
        return mutate

    at = rng.randrange(100)
    found: list[tuple[str, Callable[[bytes], bytes], str]] = [
        ("unchanged", lambda log: log, OK)]
    for raw, expect in [("Infinity", BAD), ("-Infinity", BAD), ("NaN", BAD), ("1e308", EITHER),
                        ("-1", BAD), ('"abc"', BAD), ('"1.0"', BAD), ("true", BAD), ("[]", BAD),
                        ("{}", BAD), ("null", OK), ("1e-320", OK), ("0", OK)]:
        found.append((f"loss = {raw} on a line", line_edit("loss", raw, at), expect))
    for raw in ["-1", "1.5", '"3"', "1e308", str(10**30), "null", "true", str(2**63)]:
        found.append((f"step = {raw} on a line", line_edit("step", raw, at), BAD))
    for raw in ["-1", "28", "1.5", '"x"', "null", str(10**9)]:
        found.append((f"correct = {raw} on a line", line_edit("correct", raw, at), BAD))
    found += [
        ("a line not JSON", whole(lambda ls: ls[:3] + ["not json"] + ls[3:]), BAD),
        ("a line = []", whole(lambda ls: ls[:3] + ["[]"] + ls[3:]), BAD),
        ("a line = 1", whole(lambda ls: ls[:3] + ["1"] + ls[3:]), BAD),
        ('a line = "str"', whole(lambda ls: ls[:3] + ['"str"'] + ls[3:]), BAD),
        ("a line = {}", whole(lambda ls: ls[:3] + ["{}"] + ls[3:]), BAD),
        ("a line without loss", whole(lambda ls: ls[:3] + ['{"step": 3, "correct": 1}'] + ls[4:]),
         BAD),
        ("an extra key on each line", whole(lambda ls: [x[:-1] + ', "lr": 0.03}' for x in ls]),
         EITHER),
        ("a line 100,000 deep", whole(lambda ls: ls[:3] + ['{"step": ' + "[" * 100_000] + ls[3:]),
         BAD),
        ("a 1 MB line", whole(lambda ls: ls[:3] + ['{"step": 3, "x": "' + "x" * 10**6 + '"}']
                              + ls[4:]), BAD),
        ("a NUL in a line", whole(lambda ls: ls[:3] + ['{"step": 3\x00}'] + ls[4:]), BAD),
        ("JSON after JSON on a line", whole(lambda ls: ls[:3] + [ls[3] + " {}"] + ls[4:]), BAD),
        ("steps repeated", whole(lambda ls: ls[:5] + ls[3:]), BAD),
        ("steps reversed", whole(lambda ls: ls[::-1]), BAD),
        ("a step missing", whole(lambda ls: ls[:3] + ls[4:]), EITHER),
        ("blank lines between", whole(lambda ls: [y for x in ls for y in (x, "")]), OK),
        ("CRLF line ends", lambda log: log.replace(b"\n", b"\r\n"), OK),
        ("a byte-order mark", lambda log: b"\xef\xbb\xbf" + log, EITHER),
        ("invalid UTF-8", lambda log: log[:40] + b"\xff\xfe" + log[40:], BAD),
        ("empty", lambda log: b"", BAD),
        ("only spaces", lambda log: b"   \n \n", BAD),
        ("cut in a line", lambda log: log[:len(log) // 2], BAD),
        ("200,000 valid lines", lambda log: b"".join(
            b'{"step": %d, "loss": 1.0, "correct": 3}\n' % i for i in range(200_000)), OK),
        ("a checkpoint instead", None, BAD),
    ]
    return found


def log_paths() -> list[tuple[str, Callable[[Path], None], str]]:
    """Logs that are not files: (what, make it at the path, expect)."""
    return [("missing", lambda p: None, BAD), ("a folder", lambda p: p.mkdir(), BAD),
            ("a FIFO", lambda p: os.mkfifo(p), BAD),
            ("a symlink to /dev/zero", lambda p: os.symlink("/dev/zero", p), BAD),
            ("a symlink loop", lambda p: os.symlink(p.name, p), BAD)]


def plot_judgement(r: Run, expect: str, before: dict, after: dict, png: Path) -> str | None:
    """What `plot curves` should have done: draw (a PNG) or refuse, leaving no trace."""
    problem = broken(r, expect)
    if problem is None and r.rc == 0 and not png.is_file():
        problem = "wrong output: exit 0 but no PNG"
    return problem or disk_problem(before, after, failed=r.rc != 0)


def log_trial(bench: Bench, what: str, write: Callable[[Path], None], expect: str) -> Trial:
    def run(folder: Path) -> tuple[bool, str]:
        bench.put_checkpoint(folder / "ck")
        log = folder / "ck" / "model.log.jsonl"
        log.unlink()
        write(log)
        before = scan(folder)
        r = bench.zeptogpt(["plot", "curves", "--checkpoint", "ck/model.safetensors",
                            "--out", "out"], folder, timeout=20)
        problem = plot_judgement(r, expect, before, scan(folder), folder / "out" / "curves.png")
        return problem is None, problem or r.said()
    return Trial("logs", f"plot curves --checkpoint F <log: {what}> [{expect}]", run)


def sweep_mutations(rng: random.Random) -> list[tuple[str, Callable[[list], object], str]]:
    """(what, mutation of the parsed sweep file (a list) returning what to write, expect).
    What is returned is JSON-dumped, or written as it is if bytes."""
    def summary(field: str, value):
        def mutate(data: list) -> list:
            if value is DELETE:
                del data[0]["summary"][field]
            else:
                data[0]["summary"][field] = value
            return data
        return mutate

    def recipe(field: str, value):
        def mutate(data: list) -> list:
            data[0]["recipe"][field] = value
            return data
        return mutate

    def step(value):
        def mutate(data: list) -> list:
            data[0]["steps"][0] = value
            return data
        return mutate

    def consistent_limit(limit: int):
        def mutate(data: list) -> list:
            data[0]["summary"]["step_limit"] = data[0]["recipe"]["max_steps"] = limit
            return data
        return mutate

    def many_seeds(data: list) -> list:
        entry = data[0]
        entry["steps"] = [rng.choice([None, 40, 55]) for _ in range(100_000)]
        entry["summary"]["seeds"] = len(entry["steps"])
        entry["summary"]["solved"] = sum(s is not None for s in entry["steps"])
        return data

    def text(raw: bytes):
        return lambda data: raw

    def twice(data: list) -> list:
        return data + data

    found: list[tuple[str, Callable[[list], object], str]] = [
        ("unchanged", lambda d: d, OK), ("the same sweep twice", twice, EITHER),
        ("100,000 seeds, consistent", many_seeds, OK)]
    for name, raw in [("{}", b"{}"), ("[]", b"[]"), ("null", b"null"), ('"x"', b'"x"'),
                      ("[1]", b"[1]"), ("[{}]", b"[{}]"), ("empty", b""),
                      ("not UTF-8", b'[{"summary": "\xff"}]'),
                      ("100,000 deep", b"[" * 100_000), ("a byte-order mark then []",
                                                          b"\xef\xbb\xbf[]")]:
        found.append((f"file = {name}", text(raw), BAD))
    for field, value, expect in [
            ("variant", "", BAD), ("variant", "../../x", BAD), ("variant", "E6", BAD),
            ("variant", 5, BAD), ("variant", None, BAD), ("variant", "a" * 100, BAD),
            ("params", 0, BAD), ("params", "318", BAD), ("params", 3.5, BAD),
            ("seeds", 0, BAD), ("seeds", 9, BAD), ("seeds", 10**9, BAD),
            ("solved", 99, BAD), ("solved", -1, BAD), ("step_limit", -1, BAD),
            ("step_limit", "60", BAD), ("median_steps", "x", BAD), ("median_steps", None, EITHER),
            ("worst_margin", math.inf, EITHER), ("wall_seconds", -1, EITHER),
            ("model_steps", -5, BAD), ("first_seed", -1, BAD), ("seeds", DELETE, BAD),
            ("share_solved", "x", EITHER), ("unknown", 1, BAD)]:
        found.append((f"summary {field} = {short(repr(value), 20)}", summary(field, value), expect))
    for field, value in [("lr", "x"), ("betas", [1]), ("objective", "nope"), ("margin", 2),
                         ("max_steps", 61), ("batch_size", -1)]:
        found.append((f"recipe {field} = {value!r}", recipe(field, value), BAD))
    for value in [-1, 1.5, "3", True, 10**9]:
        found.append((f"steps[0] = {value!r}", step(value), BAD))
    found.append(("step limit 10**18 in summary and recipe", consistent_limit(10**18), EITHER))
    found.append(("cut in half", lambda d: json.dumps(d).encode()[:200], BAD))
    return found


def sweep_trial(bench: Bench, what: str, write: Callable[[Path], None], expect: str) -> Trial:
    def run(folder: Path) -> tuple[bool, str]:
        write(folder / "sweep.json")
        before = scan(folder)
        r = bench.zeptogpt(["plot", "curves", "--sweep", "sweep.json", "--out", "out"], folder,
                           timeout=20)
        pngs = sorted((folder / "out").glob("*.png")) if (folder / "out").is_dir() else []
        problem = plot_judgement(r, expect, before, scan(folder),
                                 pngs[0] if pngs else folder / "out" / "none.png")
        return problem is None, problem or r.said()
    return Trial("logs", f"plot curves --sweep <{what}> [{expect}]", run)


def log_trials(bench: Bench, rng: random.Random) -> list[Trial]:
    quick = bench.quick
    trials = []
    for what, mutate, expect in pick(rng, log_mutations(rng), quick):
        if mutate is None:
            def write(path: Path) -> None:
                path.write_bytes(bench.checkpoint)
        else:
            def write(path: Path, mutate=mutate) -> None:
                path.write_bytes(mutate(bench.log))
        trials.append(log_trial(bench, what, write, expect))
    for what, make, expect in pick(rng, log_paths(), quick):
        trials.append(log_trial(bench, what, make, expect))
    for _ in range(3 if quick else 6):  # seeded corruption: a byte replaced anywhere
        at, byte = rng.randrange(2000), rng.randrange(256)

        def corrupt(path: Path, at=at, byte=byte) -> None:
            i = at % len(bench.log)
            path.write_bytes(bench.log[:i] + bytes([byte]) + bench.log[i + 1:])
        trials.append(log_trial(bench, f"byte {at} = {byte}", corrupt, EITHER))

    for what, mutate, expect in pick(rng, sweep_mutations(rng), quick):
        def write_sweep(path: Path, mutate=mutate) -> None:
            data = mutate(json.loads(bench.sweep))
            path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
        trials.append(sweep_trial(bench, what, write_sweep, expect))
    for what, make, expect in pick(rng, [
            ("missing", lambda p: None, BAD), ("a folder", lambda p: p.mkdir(), BAD),
            ("a FIFO", lambda p: os.mkfifo(p), BAD),
            ("a symlink to /dev/zero", lambda p: os.symlink("/dev/zero", p), BAD),
            ("a symlink to /dev/urandom", lambda p: os.symlink("/dev/urandom", p), BAD),
            ("a checkpoint", lambda p: p.write_bytes(bench.checkpoint), BAD)], quick):
        trials.append(sweep_trial(bench, what, make, expect))
    for _ in range(3 if quick else 6):
        at, byte = rng.randrange(1000), rng.randrange(256)

        def corrupt_sweep(path: Path, at=at, byte=byte) -> None:
            i = at % len(bench.sweep)
            path.write_bytes(bench.sweep[:i] + bytes([byte]) + bench.sweep[i + 1:])
        trials.append(sweep_trial(bench, f"byte {at} = {byte}", corrupt_sweep, EITHER))
    return trials


# --- area: writers ------------------------------------------------------------------------------

@dataclass
class SaveTiming:
    """When a normal `train` run saves, measured once: seconds from its start."""

    evaluated: float  # it prints the evaluation line; the save comes next
    saved: float  # it prints "Saved ...": both files are in place
    end: float  # the process has exited
    log: bytes  # the log the run writes (the same seed writes the same log, bit for bit)


def temps_in(folder: Path) -> list[str]:
    try:
        return [n for n in os.listdir(folder) if TEMP.match(n)]
    except OSError:
        return []


def measure_save(bench: Bench) -> SaveTiming | str:
    """Time a normal `train --seed NEW_SEED` into a fresh folder by its output lines; a string
    says why it could not be measured."""
    folder = bench.root / "timing"
    folder.mkdir()
    w = bench.watch(["train", "--checkpoint", "model.safetensors", "--seed", str(NEW_SEED),
                     "--steps", "200"], folder)
    r = w.finish()
    end = time.monotonic() - w.started
    evaluated, saved = w.seen(b"accuracy"), w.seen(b"Saved")
    if r.rc != 0 or evaluated is None or saved is None:
        return f"a normal train run failed or printed no evaluation and Saved lines: {r.said()}"
    ev = bench.zeptogpt(["eval", "--checkpoint", "model.safetensors"], folder)
    if not solved(ev.out):
        return f"seed {NEW_SEED} does not reach 27/27 in 200 steps"
    log = (folder / "model.log.jsonl").read_bytes()
    return SaveTiming(evaluated - w.started, saved - w.started, end, log)


def wait_until(p: subprocess.Popen, deadline: float) -> None:
    while p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.0005)


def kill_trial(bench: Bench, timing: Callable[[], SaveTiming | str], sig: int, mode: str,
               at: float, fresh: bool) -> Trial:
    """`train` killed by ``sig``: in "late" mode at ``at`` of a normal run's length; in "temp"
    mode ``at`` seconds after a temporary file first appears beside the target; in "save" mode
    ``at`` seconds after it prints its evaluation, which it does just before saving. The target
    holds the set-up's checkpoint and log, or (``fresh``) is in a folder not made yet."""
    where = "new/sub" if fresh else "ck"
    target = f"{where}/model.safetensors"
    args = ["train", "--checkpoint", target, "--seed", str(NEW_SEED), "--steps", "200"]

    def run(folder: Path) -> tuple[bool, str]:
        t = timing()
        if isinstance(t, str):
            return False, f"bench: cannot time a save ({t})"
        if not fresh:
            bench.put_checkpoint(folder / "ck")
        old_ck, old_log = (None, None) if fresh else (bench.checkpoint, bench.log)
        before = scan(folder)
        w = bench.watch(args, folder)
        if mode == "late":
            wait_until(w.p, w.started + at * t.end)
        elif mode == "temp":
            while w.p.poll() is None and not temps_in(folder / where) and (
                    time.monotonic() - w.started < 60):
                time.sleep(0.0002)
            wait_until(w.p, time.monotonic() + at)
        else:
            w.wait_for(b"accuracy")
            wait_until(w.p, time.monotonic() + at)
        ended_first = w.p.poll() is not None
        target_now = folder / target
        saving = bool(temps_in(folder / where)) or (
            target_now.read_bytes() if target_now.is_file() else None) != old_ck
        bench.procs.signal(w.p, sig)
        r = w.finish()
        problem = None
        if sig == signal.SIGINT:
            if r.rc == 0 and not saving and not ended_first and TRACEBACK not in r.err:
                problem = "ignored Ctrl-C: exit 0, trained and saved after the signal"
            elif r.rc not in (0, 130):
                problem = broken(r, BAD) if r.rc != 2 else f"wrong exit code: {r.said()}"
                problem = problem or f"wrong exit code: {r.said()}"
            elif TRACEBACK in r.err:
                problem = broken(r, BAD)
            elif r.rc == 130:
                problem = message_problem(r)
        elif r.rc not in (0, -signal.SIGKILL):
            problem = broken(r, IO) or f"wrong exit code: {r.said()}"
        pair, state = pair_problem(bench, folder, target, old_ck, old_log, t.log)
        problem = problem or pair
        if problem is None and sig == signal.SIGINT:  # Ctrl-C can clean up: no trace of the run
            problem = disk_problem(before, scan(folder), failed=False)
        if problem is None and temps_in(folder / where):  # left by SIGKILL: the next write?
            state += ", a temporary file left"
            again = bench.zeptogpt(args, folder)
            if again.rc != 0:
                problem = f"refused valid input: the next write: {again.said()}"
            elif temps_in(folder / where):
                problem = (f"disk: the temporary file {temps_in(folder / where)[0]!r} survived "
                           "the next successful write")
            else:
                state += " (the next write removed it)"
        said = "the run ended before the signal, exit 0" if ended_first else r.said()
        return problem is None, problem or f"{said}; {state}"

    when = {"late": f"at {at:.0%} of a normal run",
            "temp": f"{at * 1000:.1f} ms after a temporary file first appears",
            "save": f"{at * 1000:.1f} ms after the evaluation line (the save follows it)"}[mode]
    what = (f"{signal.Signals(sig).name} to train --checkpoint {target} {when}"
            + (" (a new folder)" if fresh else " (replacing a checkpoint)"))
    return Trial("writers", what, run)


def pair_problem(bench: Bench, folder: Path, target: str, old_ck: bytes | None,
                 old_log: bytes | None, new_log: bytes) -> tuple[str | None, str]:
    """(None or what is wrong, what is there). Right: the checkpoint is the old one byte for
    byte or a complete new one, and the log beside it is its own (or `plot curves` refuses the
    pair)."""
    ck_path = folder / target
    log_path = ck_path.with_name("model.log.jsonl")
    ck = ck_path.read_bytes() if ck_path.is_file() else None
    log = log_path.read_bytes() if log_path.is_file() else None
    ck_state = "old" if ck == old_ck else "new"
    log_state = "old" if log == old_log else "new" if log == new_log else "damaged"
    state = ("no checkpoint, no log" if ck is None and log is None else
             f"{ck_state} checkpoint, {log_state} log" if ck is not None else
             f"no checkpoint, {log_state} log")
    if ck is None and old_ck is not None:
        return "disk: the checkpoint was lost", state
    if log_state == "damaged":
        return "disk: the log is neither the old one nor the new one (half-written?)", state
    if ck is not None and ck_state == "new":
        r = bench.zeptogpt(["eval", "--checkpoint", target], folder)
        if r.rc != 0 or not solved(r.out):
            return ("disk: the checkpoint is neither the old one nor a complete new one "
                    f"({r.said()})"), state
    if ck_state != log_state and ck is not None:
        r = bench.zeptogpt(["plot", "curves", "--checkpoint", target, "--out", "plots"], folder)
        if r.rc == 0:
            return (f"log mismatch: a {ck_state} checkpoint beside the {log_state} run's log, "
                    "and plot curves drew it"), state
        shutil.rmtree(folder / "plots", ignore_errors=True)
        state += ", which plot curves refuses"
    return None, state


def output_trials(bench: Bench) -> list[Trial]:
    """Where the output goes: a full disk, a closed stdout, an ASCII stdout, a reader that
    leaves, a full stderr, a folder as stdin."""
    ck = ["--checkpoint", "ck/model.safetensors"]
    full = "> /dev/full"
    trials = [command_trial(bench, "writers", ["params"], IO, note=full, redirect=">/dev/full"),
              command_trial(bench, "writers", ["eval", *ck], IO, note=full,
                            redirect=">/dev/full"),
              command_trial(bench, "writers", ["sort", "caa", "bcb", *ck], IO, note=full,
                            redirect=">/dev/full"),
              command_trial(bench, "writers", ["trace", "caa", *ck], IO, note=full,
                            redirect=">/dev/full"),
              command_trial(bench, "writers", ["train", "--checkpoint", "new/m.safetensors",
                                               "--steps", "40"], IO, note=full,
                            redirect=">/dev/full")]
    ascii_env = dict(bench.env, PYTHONIOENCODING="ascii")
    for args in (["eval", *ck], ["trace", "caa", *ck], ["params"], ["sort", "caa", "--trace", *ck]):
        trials.append(command_trial(bench, "writers", args, IO_OR_OK, note="with PYTHONIOENCODING"
                                    "=ascii", env=ascii_env))
    for args in (["params"], ["eval", *ck], ["train", "--checkpoint", "new/m.safetensors",
                                             "--steps", "40"]):
        trials.append(command_trial(bench, "writers", args, IO_OR_OK, note=">&- (stdout closed)",
                                    redirect=">&-"))
    trials.append(command_trial(bench, "writers", ["sort", "abd", *ck], NONZERO,
                                note="2> /dev/full", redirect="2>/dev/full"))
    trials.append(leaving_reader_trial(bench))
    return trials


def leaving_reader_trial(bench: Bench) -> Trial:
    """`zeptogpt sort -` with 20,000 inputs, its reader gone after 100 bytes: exit 141 or 1
    with one line (or 0, if it finished first), never a traceback."""
    def run(folder: Path) -> tuple[bool, str]:
        bench.put_checkpoint(folder / "ck")
        p = bench.start(["sort", "-", "--checkpoint", "ck/model.safetensors"], folder,
                        stdin=subprocess.PIPE)
        guard = threading.Timer(TIMEOUT, bench.procs.signal, (p, signal.SIGKILL))
        guard.start()  # the pipes below block: a command that hangs is killed at the time-out
        try:
            p.stdin.write(b"caa\n" * 20_000)
            p.stdin.close()
        except BrokenPipeError:
            pass
        p.stdout.read(100)
        p.stdout.close()
        p.stdin = p.stdout = None  # finish() must not touch the closed pipes
        r = bench.procs.finish(p, TIMEOUT)
        guard.cancel()
        if r.rc is None:
            problem = f"timeout: still running after {TIMEOUT:g} s"
        elif TRACEBACK in r.err:
            problem = broken(r, IO)
        elif r.rc in (0, 141):
            problem = None
        else:
            problem = broken(r, IO)
        return problem is None, problem or r.said()
    return Trial("writers", "zeptogpt sort - < 20,000 lines | a reader that leaves after 100 "
                 "bytes", run)


def writer_trials(bench: Bench, rng: random.Random) -> list[Trial]:
    quick = bench.quick
    measured: dict[str, SaveTiming | str] = {}
    lock = threading.Lock()

    def timing() -> SaveTiming | str:
        with lock:  # once, by the first trial that needs it, before any kill
            if "t" not in measured:
                measured["t"] = measure_save(bench)
                bench.save_timing = measured["t"]  # for the report
            return measured["t"]

    trials = []
    for sig in (signal.SIGKILL, signal.SIGINT):
        for _ in range(1 if quick else 4):
            trials.append(kill_trial(bench, timing, sig, "late", rng.uniform(0.5, 1.0), False))
        for _ in range(1 if quick else 2):
            trials.append(kill_trial(bench, timing, sig, "temp", rng.uniform(0, 0.001), False))
        for _ in range(2 if quick else 5):
            # Mostly within the few milliseconds the save takes, sometimes just after it.
            delay = rng.choice([0.0, rng.uniform(0, 0.004), rng.uniform(0, 0.012),
                                rng.uniform(0.012, 0.05)])
            trials.append(kill_trial(bench, timing, sig, "save", delay, False))
        for _ in range(1 if quick else 2):
            trials.append(kill_trial(bench, timing, sig, "save", rng.uniform(0, 0.012), True))
    return trials + output_trials(bench)


# --- area: signals ------------------------------------------------------------------------------

def startup_trial(bench: Bench, at: float) -> Trial:
    """Ctrl-C ``at`` seconds after `zeptogpt eval` starts: exit 130 with no traceback, or exit 0
    if the whole evaluation was out before the signal (a Ctrl-C must not be lost)."""
    def run(folder: Path) -> tuple[bool, str]:
        bench.put_checkpoint(folder / "ck")
        w = bench.watch(["eval", "--checkpoint", "ck/model.safetensors"], folder)
        wait_until(w.p, w.started + at)
        sent = time.monotonic()
        bench.procs.signal(w.p, signal.SIGINT)
        r = w.finish()
        done = w.seen(b"27/27")
        # A little slack: the reader thread sees a line a moment after the command wrote it.
        return signal_judgement(r, done is not None and done <= sent + 0.05)
    return Trial("signals", f"SIGINT {at:.2f} s after starting eval --checkpoint F", run)


def waiting_trial(bench: Bench, at: float) -> Trial:
    """Ctrl-C while `zeptogpt sort -` waits for stdin."""
    def run(folder: Path) -> tuple[bool, str]:
        bench.put_checkpoint(folder / "ck")
        read_end, write_end = os.pipe()  # stdin that stays open and empty
        try:
            w = bench.watch(["sort", "-", "--checkpoint", "ck/model.safetensors"], folder,
                            stdin=read_end)
            wait_until(w.p, w.started + at)
            bench.procs.signal(w.p, signal.SIGINT)
            r = w.finish()
        finally:
            os.close(read_end)
            os.close(write_end)
        return signal_judgement(r, False)
    return Trial("signals", f"SIGINT {at:.2f} s after starting sort - (waiting on stdin)", run)


def signal_judgement(r: Run, finished: bool) -> tuple[bool, str]:
    if r.rc is None:
        return False, f"timeout: still running after {r.timeout:g} s"
    if TRACEBACK in r.err:
        return False, broken(r, BAD) or "traceback"
    if r.rc == 130 or (r.rc == 0 and finished):
        return True, r.said() + (" (finished before the signal)" if r.rc == 0 else "")
    if r.rc == 0:
        return False, "ignored Ctrl-C: exit 0, the whole evaluation printed after the signal"
    return False, f"wrong exit code: {r.said()}"


def signal_trials(bench: Bench, rng: random.Random) -> list[Trial]:
    trials = [startup_trial(bench, rng.uniform(0, 2.0)) for _ in range(8 if bench.quick else 24)]
    trials += [waiting_trial(bench, rng.uniform(2.5, 3.5)) for _ in range(1 if bench.quick else 2)]
    return trials


# --- area: server -------------------------------------------------------------------------------

URL = re.compile(r"http://(\[[^\]]*\]|[^/:\s]+):(\d+)")


class Server:
    """One `zeptogpt serve` process: where it listens, its threads, what it wrote on stderr."""

    def __init__(self, bench: Bench, folder: Path, args: list[str]) -> None:
        self.bench = bench
        self.err_path = folder / f"serve-{time.monotonic_ns()}.err"
        with open(self.err_path, "wb") as err:
            self.proc = bench.start(["serve", "--checkpoint", "ck/model.safetensors", *args],
                                    folder, stderr=err)
        self.lines: list[str] = []
        self.address: tuple[str, int] | None = None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            m = URL.search(line)
            if m and self.address is None:
                self.address = (m[1].strip("[]"), int(m[2]))

    def ready(self, timeout: float = 40.0) -> bool:
        """Whether it printed where it listens (and still runs) within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.address is not None:
                return self.alive()
            if not self.alive():
                return False
            time.sleep(0.05)
        return False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def threads(self) -> int | None:
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return None
        m = re.search(r"^Threads:\s+(\d+)", status, re.M)
        return int(m[1]) if m else None

    def stderr(self) -> str:
        return self.err_path.read_bytes().decode("utf-8", "replace")

    def stop(self, sig: int = signal.SIGINT) -> int | None:
        rc = self.bench.procs.end(self.proc, sig)
        self.reader.join(5)
        return rc


def answer_problem(address: tuple[str, int], timeout: float = ANSWER_WAIT) -> str | None:
    """None if a normal request (the trace of caa) is answered right within ``timeout``."""
    host, port = address
    try:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.request("GET", "/api/trace?input=caa")
        response = conn.getresponse()
        body = response.read()
        conn.close()
    except (OSError, http.client.HTTPException) as e:
        return f"no answer to a normal request within {timeout:g} s ({type(e).__name__})"
    try:
        output = json.loads(body).get("output")
    except (ValueError, AttributeError):
        output = None
    if response.status != 200 or output != "aac":
        return f"a normal request got {response.status} {short(repr(body[:60]), 70)}"
    return None


def exchange(address: tuple[str, int], data: bytes,
             timeout: float = ANSWER_WAIT) -> tuple[int | None, str]:
    """Send raw bytes, close our sending side, read until the server closes: (HTTP status or
    None, how it ended: closed, reset, timeout)."""
    received = b""
    how = "closed"
    try:
        with socket.create_connection(address, timeout=timeout) as s:
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server may answer and close before reading it all
            while chunk := s.recv(65536):
                received += chunk
    except TimeoutError:
        how = "timeout"
    except ConnectionResetError:
        how = "reset"
    except OSError as e:
        how = type(e).__name__
    m = re.match(rb"HTTP/\d\.\d (\d{3})", received)
    return (int(m[1]) if m else None), how


def server_problem(server: Server, mark: int) -> str | None:
    """None if the server is alive, answers a normal request and printed no traceback since
    ``mark`` (a length of its stderr)."""
    if not server.alive():
        return f"server: died (exit {server.proc.poll()})"
    new = server.stderr()[mark:]
    if "Traceback" in new:
        last = [line for line in new.splitlines() if line.strip()][-1]
        return f"traceback: in the server's stderr: {short(last, 100)}"
    problem = answer_problem(server.address)
    return f"server: {problem}" if problem else None


def shared_server(bench: Bench) -> Server | str:
    """The server most trials talk to, started on first use and again if a trial killed it."""
    server = bench.shared_server
    if server is not None and server.alive():
        return server
    if bench.server_failure:
        return bench.server_failure
    if bench.server_folder is None:
        bench.server_folder = Path(tempfile.mkdtemp(dir=bench.root, prefix="server-"))
        bench.put_checkpoint(bench.server_folder / "ck")
    server = Server(bench, bench.server_folder, ["--port", "0"])
    if not server.ready():
        rc = server.stop(signal.SIGKILL)
        lines = [line for line in server.stderr().splitlines() if line.strip()]
        last = short(lines[-1] if lines else "", 100)
        bench.server_failure = f"did not start (exit {rc}): {last}"
        return bench.server_failure
    bench.shared_server = server
    return server


def request_trial(bench: Bench, what: str, data: bytes, expect: str) -> Trial:
    """One raw request. ``expect``: "ok" (200), "error" (4xx/5xx or a close) or "any"."""
    def run(folder: Path) -> tuple[bool, str]:
        server = shared_server(bench)
        if isinstance(server, str):
            return False, f"server: {server}"
        mark = len(server.stderr())
        status, how = exchange(server.address, data)
        problem = None
        if how == "timeout":
            problem = f"timeout: no answer and no close within {ANSWER_WAIT:g} s"
        elif expect == "ok" and status != 200:
            problem = f"refused valid input: {status or how}"
        elif expect == "error" and status is not None and status < 400:
            problem = f"accepted bad input: {status}"
        problem = problem or server_problem(server, mark)
        return problem is None, problem or f"{status or how}"
    return Trial("server", f"{what} [{expect}]", run)


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def post(body: bytes, headers: str = "", length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return (f"POST /api/trace HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n{headers}\r\n").encode() + body


def malformed_requests(rng: random.Random) -> list[tuple[str, bytes, str]]:
    """(what, raw request, expect)."""
    deep = b'{"input":' + b"[" * 500 + b"]" * 500 + b"}"
    return [
        ("PUT /api/trace", b"PUT /api/trace HTTP/1.1\r\nHost: x\r\n\r\n", "error"),
        ("DELETE /", b"DELETE / HTTP/1.1\r\n\r\n", "error"),
        ("lower-case get", b"get / HTTP/1.1\r\n\r\n", "error"),
        ("a NUL in the method", b"G\x00ET / HTTP/1.1\r\n\r\n", "error"),
        ("a 10,000-character method", b"X" * 10_000 + b" / HTTP/1.1\r\n\r\n", "error"),
        ("a TLS hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + rng.randbytes(200),
         "error"),
        ("HTTP/9.9", b"GET / HTTP/9.9\r\n\r\n", "error"),
        ("HTTP/1.1x", b"GET / HTTP/1.1x\r\n\r\n", "error"),
        ("HTTP/0.9 GET /", b"GET /\r\n", "any"),
        ("HEAD /", b"HEAD / HTTP/1.1\r\n\r\n", "any"),
        ("OPTIONS *", b"OPTIONS * HTTP/1.1\r\n\r\n", "error"),
        ("CONNECT", b"CONNECT example.com:443 HTTP/1.1\r\n\r\n", "error"),
        ("a 70 KB URL", get("/" + "a" * 70_000), "error"),
        ("a 60 KB input", get("/api/trace?input=" + "c" * 60_000), "error"),
        ("101 headers", b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", "error"),
        ("a 70 KB header", b"GET / HTTP/1.1\r\nX-A: " + b"b" * 70_000 + b"\r\n\r\n", "error"),
        ("a header with no colon", b"GET / HTTP/1.1\r\nNoColonHere\r\n\r\n", "any"),
        ("a non-UTF-8 header", b"GET / HTTP/1.1\r\nHost: \xff\xfe\r\n\r\n", "any"),
        ("a non-UTF-8 path", b"GET /\xff\xfe HTTP/1.1\r\n\r\n", "error"),
        ("only blank lines", b"\r\n" * 1000, "error"),
        ("nothing at all", b"", "error"),
        ("trace without input", get("/api/trace"), "error"),
        ("input=%ff%fe%fd", get("/api/trace?input=%ff%fe%fd"), "error"),
        ("input=ＣＡＡ", get("/api/trace?input=%EF%BC%A3%EF%BC%A1%EF%BC%A1"), "error"),
        ("input=%00%01%02", get("/api/trace?input=%00%01%02"), "error"),
        ("input twice", get("/api/trace?input=caa&input=zzz"), "any"),
        ("/static/../../etc/passwd", get("/static/../../etc/passwd"), "error"),
        ("/static/%2e%2e%2fserve.py", get("/static/%2e%2e%2fserve.py"), "error"),
        ("/static/", get("/static/"), "error"),
        ("absolute-form URL", get("http://example.com/api/info"), "any"),
        ("POST malformed JSON", post(b'{"input": '), "error"),
        ("POST a JSON list", post(b'["caa"]'), "error"),
        ("POST input 5", post(b'{"input": 5}'), "error"),
        ("POST input null", post(b'{"input": null}'), "error"),
        ("POST a 1,000-letter input", post(b'{"input": "' + b"c" * 1000 + b'"}'), "error"),
        ("POST input 500 deep", post(deep), "error"),
        ("POST non-UTF-8 body", post(b'{"input": "\xff\xfe"}'), "error"),
        ("POST Content-Length -1", post(b'{"input": "caa"}', length=-1), "error"),
        ("POST Content-Length abc", post(b"", headers="").replace(b"Content-Length: 0",
                                                                   b"Content-Length: abc"),
         "error"),
        ("POST Content-Length 10**20", post(b'{"input": "caa"}', length=10**20), "error"),
        ("POST two Content-Lengths", post(b'{"input": "caa"}', headers="Content-Length: 99\r\n"),
         "any"),
        ("POST chunked, no length",
         b"POST /api/trace HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
         "error"),
        ("POST a body shorter than its length", post(b'{"in', length=50), "error"),
        ("POST /", post(b'{"input": "caa"}').replace(b"POST /api/trace", b"POST /"), "error"),
        ("POST /api/info", post(b"{}").replace(b"POST /api/trace", b"POST /api/info"), "error"),
    ]


def valid_requests() -> list[tuple[str, bytes, str]]:
    return [("GET /", get("/"), "ok"), ("GET /index.html", get("/index.html"), "ok"),
            ("GET /api/info", get("/api/info"), "ok"), ("GET /api/params", get("/api/params"),
                                                          "ok"),
            ("GET /api/weights", get("/api/weights"), "ok"),
            ("GET /api/curve", get("/api/curve"), "ok"),
            ("GET /api/trace?input=CAB", get("/api/trace?input=CAB"), "ok"),
            ("POST /api/trace bca", post(b'{"input": "bca"}'), "ok"),
            ("GET /static/app.js", get("/static/app.js"), "ok")]


def fuzzed_requests(rng: random.Random, n: int) -> list[tuple[str, bytes, str]]:
    """Valid requests with seeded byte changes: any answer is fine, a traceback or a hang not."""
    bases = [get("/api/trace?input=caa"), post(b'{"input": "caa"}'), get("/api/info")]
    found = []
    for i in range(n):
        data = bytearray(rng.choice(bases))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            op = rng.random()
            if op < 0.4:
                data[at] = rng.randrange(256)
            elif op < 0.7:
                del data[at]
            else:
                data[at:at] = rng.randbytes(rng.randint(1, 8))
        found.append((f"fuzzed request {i + 1}: {short(ascii(bytes(data[:40])), 60)}",
                      bytes(data), "any"))
    return found


def slow_clients_trial(bench: Bench, count: int, kind: str, partial: bytes) -> Trial:
    """``count`` clients that send part of a request and wait: the server must still answer a
    normal request within ANSWER_WAIT and keep at most THREAD_BOUND threads."""
    def run(folder: Path) -> tuple[bool, str]:
        server = shared_server(bench)
        if isinstance(server, str):
            return False, f"server: {server}"
        mark = len(server.stderr())
        clients = []
        problem = None
        try:
            for _ in range(count):
                try:
                    s = socket.create_connection(server.address, timeout=5)
                except OSError as e:
                    problem = f"server: refused client {len(clients) + 1} ({type(e).__name__})"
                    break
                clients.append(s)
                if partial:
                    s.sendall(partial)
            time.sleep(1.0)
            threads = server.threads()
            problem = problem or answer_problem(server.address)
            if problem and not problem.startswith("server:"):
                problem = f"server: {problem} while {count} slow clients wait"
        finally:
            for s in clients:
                s.close()
        if problem is None and threads is not None and threads > THREAD_BOUND:
            problem = (f"unbounded threads: {threads} threads with {count} slow clients "
                       f"(bound {THREAD_BOUND})")
        time.sleep(0.5)  # what the server does when they leave
        problem = problem or server_problem(server, mark)
        return problem is None, problem or f"{threads} threads"
    return Trial("server", f"{count} slow clients: {kind}", run)


def disconnect_trial(bench: Bench, path: str, how: str, delay: float) -> Trial:
    """A client that leaves before reading its answer: a close (FIN) or a reset (RST)."""
    def run(folder: Path) -> tuple[bool, str]:
        server = shared_server(bench)
        if isinstance(server, str):
            return False, f"server: {server}"
        mark = len(server.stderr())
        request = get(path)
        with socket.create_connection(server.address, timeout=5) as s:
            s.sendall(request[:len(request) // 2] if how == "reset mid-request" else request)
            if how == "reset after 1 byte":
                s.recv(1)
            time.sleep(delay)
            if how != "close":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        time.sleep(0.3)  # the server notices after the client is gone
        problem = server_problem(server, mark)
        return problem is None, problem or "fine"
    return Trial("server", f"GET {path}, then {how} after {delay * 1000:.0f} ms", run)


def host_trial(bench: Bench, host: str) -> Trial:
    """`--host 0.0.0.0` must warn that the page is open to the network; `--host ::1` must work."""
    def run(folder: Path) -> tuple[bool, str]:
        if host == "::1" and not socket.has_ipv6:
            return True, "no IPv6 here"
        bench.put_checkpoint(folder / "ck")
        server = Server(bench, folder, ["--host", host, "--port", "0"])
        try:
            if not server.ready():
                lines = [line for line in server.stderr().splitlines() if line.strip()]
                return False, (f"refused valid input: serve --host {host} did not start: "
                               f"{short(lines[-1] if lines else '', 100)}")
            time.sleep(0.3)
            said = "\n".join(server.lines) + "\n" + server.stderr()
            if host == "0.0.0.0":
                ok = re.search(r"warn", said, re.I) is not None
                problem = None if ok else "no warning: serve --host 0.0.0.0 printed no warning"
            else:
                problem = answer_problem(server.address)
                problem = f"server: over IPv6: {problem}" if problem else None
            if "Traceback" in server.stderr():
                problem = problem or "traceback: in the server's stderr"
        finally:
            server.stop()
        return problem is None, problem or "fine"
    return Trial("server", f"serve --host {host}", run)


def stop_trial(bench: Bench) -> Trial:
    """Ctrl-C stops the shared server: exit 0 or 130, no traceback."""
    def run(folder: Path) -> tuple[bool, str]:
        server = shared_server(bench)
        if isinstance(server, str):
            return False, f"server: {server}"
        mark = len(server.stderr())
        rc = server.stop(signal.SIGINT)
        bench.shared_server = None
        if rc is None:
            return False, "timeout: still serving 10 s after SIGINT"
        if "Traceback" in server.stderr()[mark:]:
            return False, "traceback: in the server's stderr after SIGINT"
        if rc not in (0, 130):
            return False, f"wrong exit code: exit {rc} after SIGINT"
        return True, f"exit {rc}"
    return Trial("server", "SIGINT to the server", run)


def server_trials(bench: Bench, rng: random.Random) -> list[Trial]:
    quick = bench.quick
    trials = [request_trial(bench, w, d, e) for w, d, e in pick(rng, valid_requests(), quick, 0.5)]
    trials += [request_trial(bench, w, d, e)
               for w, d, e in pick(rng, malformed_requests(rng), quick)]
    trials += [request_trial(bench, w, d, e)
               for w, d, e in fuzzed_requests(rng, 6 if quick else 20)]
    hows = ["close", "reset", "reset after 1 byte", "reset mid-request"]
    paths = ["/api/weights", "/", "/api/trace?input=caa", "/api/curve"]
    for _ in range(6 if quick else 16):
        trials.append(disconnect_trial(bench, rng.choice(paths), rng.choice(hows),
                                       rng.choice([0.0, 0.001, 0.005])))
    headers_begun = b"GET /api/info HTTP/1.1\r\nHost: x\r\n"
    slow = [(20, "request line sent, headers never ended", headers_begun),
            (150, "request line sent, headers never ended", headers_begun),
            (150, "10 of 100 body bytes sent", post(b'{"input": ', length=100)),
            (300, "connected, nothing sent", b"")]
    for count, kind, partial in pick(rng, slow, quick, 0.5):
        trials.append(slow_clients_trial(bench, count, kind, partial))
    trials += [host_trial(bench, "0.0.0.0"), host_trial(bench, "::1"), stop_trial(bench)]
    return trials


# --- running and reporting ----------------------------------------------------------------------

BUILDERS = {"cli": cli_trials, "checkpoint": checkpoint_trials, "logs": log_trials,
            "writers": writer_trials, "signals": signal_trials, "server": server_trials}


def setup(bench: Bench) -> str | None:
    """Train the checkpoint every trial copies and make a sweep file; a string says why not."""
    folder = bench.root / "base"
    folder.mkdir()
    r = bench.zeptogpt(["train", "--checkpoint", "model.safetensors", "--steps", "200"], folder,
                       timeout=120)
    if r.rc != 0:
        return f"`zeptogpt train` failed: {r.said()}"
    ev = bench.zeptogpt(["eval", "--checkpoint", "model.safetensors"], folder)
    if ev.rc != 0 or not solved(ev.out):
        return f"the trained checkpoint does not sort all 27: {ev.said()}"
    bench.checkpoint = (folder / "model.safetensors").read_bytes()
    bench.log = (folder / "model.log.jsonl").read_bytes()
    # 60 steps leave some of the 8 seeds unsolved, so the file has null steps too.
    sw = bench.zeptogpt(["sweep", "--seeds", "8", "--steps", "60", "--threads", "1", "--json",
                         "sweep.json", "--csv", "sweep.csv"], folder, timeout=120)
    if sw.rc != 0:
        return f"`zeptogpt sweep` failed: {sw.said()}"
    bench.sweep = (folder / "sweep.json").read_bytes()
    return None


@dataclass
class Outcome:
    trial: Trial
    handled: bool | None  # None: the bench itself failed to run the trial
    detail: str


def run_area(bench: Bench, trials: list[Trial], workers: int) -> list[Outcome]:
    def one(trial: Trial) -> Outcome:
        folder = Path(tempfile.mkdtemp(dir=bench.root, prefix=f"{trial.area}-"))
        try:
            handled, detail = trial.check(folder)
            return Outcome(trial, handled, detail)
        except Exception as e:  # a bench bug or a vanished file: reported, never a traceback
            return Outcome(trial, None, f"{type(e).__name__}: {e}")
        finally:
            remove(folder)

    pool = ThreadPoolExecutor(workers)
    try:
        return list(pool.map(one, trials))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def default_cli() -> list[str]:
    """The `zeptogpt` beside this Python (the venv's), or `python -m zeptogpt`."""
    script = Path(sys.executable).with_name("zeptogpt")
    return [str(script)] if script.exists() else [sys.executable, "-m", "zeptogpt"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about a third of the trials")
    parser.add_argument("--seed", type=int, default=0, help="seed of what is tried (default 0)")
    parser.add_argument("--area", action="append", choices=AREAS,
                        help="only this area (may be repeated; default: all)")
    parser.add_argument("--list", action="store_true", help="print the trials, run nothing")
    parser.add_argument("--verbose", action="store_true",
                        help="also print every handled trial and what it did")
    parser.add_argument("--cli", help="the command to test (default: the zeptogpt beside this "
                        "Python); e.g. 'python -m zeptogpt'")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="trials at once (default: the number of cores)")
    args = parser.parse_args()
    areas = args.area or list(AREAS)
    cli = shlex.split(args.cli) if args.cli else default_cli()
    # Children get the default Ctrl-C even if this bench was started with SIGINT ignored (a
    # shell's `&` does that), and SIGTERM cleans up like Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    root = Path(tempfile.mkdtemp(prefix="zeptogpt-faults-"))
    bench = Bench(cli, root, args.quick, args.seed, max(1, args.workers))
    started = time.monotonic()
    try:
        plan = {area: BUILDERS[area](bench, random.Random(f"{args.seed}/{area}"))
                for area in areas}
        if args.list:
            for area, trials in plan.items():
                for t in trials:
                    print(f"{area}: {t.what}")
            print(f"Total: {sum(len(t) for t in plan.values())} trials")
            return 0
        print(f"ZeptoGPT fault injection: {'quick' if args.quick else 'full'} pass, seed "
              f"{args.seed}, {bench.workers} at once, testing {' '.join(cli)}", flush=True)
        try:
            why = setup(bench)
        except OSError as e:  # --cli names no program
            why = f"cannot run {' '.join(cli)}: {e.strerror or e}"
        if why:
            print(f"Cannot start: {why}")
            return 1
        print(f"Set-up: trained a checkpoint that sorts 27/27 and a sweep file in "
              f"{time.monotonic() - started:.1f} s", flush=True)
        results: dict[str, list[Outcome]] = {}
        seconds: dict[str, float] = {}
        for area, trials in plan.items():
            t0 = time.monotonic()
            print(f"  {area}: {len(trials)} trials ...", end="", flush=True)
            results[area] = run_area(bench, trials, 1 if area == "server" else bench.workers)
            seconds[area] = time.monotonic() - t0
            print(f" {seconds[area]:.0f} s", flush=True)
            if area == "server" and bench.shared_server is not None:
                bench.shared_server.stop(signal.SIGKILL)
        report(bench, results, seconds, time.monotonic() - started, args.verbose)
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the trials and cleaning up", file=sys.stderr)
        return 130
    finally:
        bench.close()
        remove(root)


def report(bench: Bench, results: dict[str, list[Outcome]], seconds: dict[str, float],
           wall: float, verbose: bool) -> None:
    timing = bench.save_timing
    if isinstance(timing, SaveTiming):
        print(f"A normal train run: evaluation printed at {timing.evaluated:.3f} s, saved at "
              f"{timing.saved:.3f} s, exit at {timing.end:.3f} s")
    print()
    print(f"{'area':12s} {'tried':>6s} {'handled':>8s} {'seconds':>8s}")
    tried = handled = 0
    for area, outcomes in results.items():
        ran = [o for o in outcomes if o.handled is not None]
        good = sum(o.handled for o in ran)
        tried, handled = tried + len(ran), handled + good
        print(f"{area:12s} {len(ran):6d} {good:8d} {seconds[area]:8.0f}")
    print(f"Total: {tried} tried, {handled} handled")
    print(f"Wall time: {wall:.0f} s")
    failed = [o for outcomes in results.values() for o in outcomes if o.handled is False]
    errors = [o for outcomes in results.values() for o in outcomes if o.handled is None]
    if failed:
        print("\nUnhandled, by cause:")
        causes = Counter(o.detail.split(":")[0] for o in failed)
        for cause, n in causes.most_common():
            print(f"  {n:4d}  {cause}")
        print("\nUnhandled (area: what was tried -> what happened):")
        for o in failed:
            print(f"  {o.trial.area}: {o.trial.what} -> {o.detail}")
    if verbose:
        print("\nHandled (area: what was tried -> what happened):")
        for outcomes in results.values():
            for o in outcomes:
                if o.handled:
                    print(f"  {o.trial.area}: {o.trial.what} -> {o.detail}")
    if errors:
        print(f"\nNot counted: the bench could not run {len(errors)} trials:")
        for o in errors:
            print(f"  {o.trial.area}: {o.trial.what} -> {o.detail}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # a bug of the bench: one line saying where, not a traceback
        frame = e.__traceback__
        while frame.tb_next:
            frame = frame.tb_next
        print(f"faults.py: bench error at line {frame.tb_lineno}: {type(e).__name__}: {e}",
              file=sys.stderr)
        sys.exit(1)
