"""Safe writes: whole files, groups of files together, and the check made before long work."""

import errno
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from zeptogpt.files import check_writable, write_atomic


def test_files_written_together_are_replaced_together_or_not_at_all(tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "a.csv"
    write_atomic({first: b"old json", second: b"old csv"})
    too_long = tmp_path / ("x" * 300 + ".csv")  # no file system takes a name this long
    with pytest.raises(OSError):
        write_atomic({first: b"new json", too_long: b"new csv"})
    assert first.read_bytes() == b"old json"  # the first file was written, but not put in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a.json"]  # no temporaries
    write_atomic({first: b"new json", second: b"new csv"})
    assert (first.read_bytes(), second.read_bytes()) == (b"new json", b"new csv")


def test_check_writable_tries_instead_of_asking(tmp_path):
    check_writable(tmp_path / "new" / "folders" / "out.json")  # can be made
    assert not (tmp_path / "new").exists()  # and the check leaves nothing behind
    (tmp_path / "file").write_text("")
    for bad in (tmp_path / "file" / "out.json", tmp_path, tmp_path / ("x" * 300)):
        with pytest.raises(OSError):
            check_writable(bad)
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


@pytest.mark.skipif(not Path("/proc/version").exists(), reason="needs Linux's /proc")
def test_check_writable_refuses_proc_even_for_root():
    """os.access says yes to root everywhere; only trying finds that /proc takes no new files."""
    for bad in ("/proc/version", "/proc/zeptogpt/out.json"):
        with pytest.raises(OSError):
            check_writable(Path(bad))


# A writer run as its own process, stopped at its rename: killed there ("kill"), or waiting
# there until told to go on ("wait"), as a live writer would be in the middle of its write.
WRITER = """
import os, signal, sys
from pathlib import Path
from zeptogpt.files import write_atomic

rename = os.replace

def stopped(src, dst):
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    print("at the rename", flush=True)
    sys.stdin.readline()
    rename(src, dst)

os.replace = stopped
write_atomic({Path(sys.argv[1]): b"theirs"})
"""


def _temporaries(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name.endswith(".tmp")}


def test_a_killed_writers_temporary_is_removed_and_a_live_writers_kept(tmp_path):
    path = tmp_path / "a.json"
    killed = subprocess.run([sys.executable, "-c", WRITER, str(path), "kill"])
    assert killed.returncode == -signal.SIGKILL
    stale = _temporaries(tmp_path)
    assert len(stale) == 1 and next(iter(stale)).startswith(".a.json.")
    live = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "wait"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline() == "at the rename\n"
        in_use = _temporaries(tmp_path) - stale
        assert len(in_use) == 1
        write_atomic({path: b"ours"})
        assert path.read_bytes() == b"ours"
        assert _temporaries(tmp_path) == in_use  # the killed one's gone, the live one's kept
        live.stdin.write("go on\n")
        live.stdin.flush()
    finally:
        live.stdin.close()
        assert live.wait() == 0
    assert path.read_bytes() == b"theirs" and _temporaries(tmp_path) == set()


def test_what_is_not_a_regular_file_is_refused_not_replaced(tmp_path):
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    to_pipe = tmp_path / "to-pipe"
    to_pipe.symlink_to(pipe)
    # the named pipes first: were they replaced, the test stops before it reaches /dev/null
    for path, kind in [(pipe, "a named pipe"), (to_pipe, "a named pipe"),
                       (Path("/dev/null"), "a character device")]:
        for attempt in (check_writable, lambda p: write_atomic({tmp_path / "a.json": b"x",
                                                                p: b"y"})):
            with pytest.raises(OSError) as e:
                attempt(path)
            assert str(e.value) == f"{path} is {kind}, not a regular file"
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode) and to_pipe.is_symlink()
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe", "to-pipe"]  # nor a.json
    # a link to a regular file is replaced by the new file; the file it points to is kept
    target, link = tmp_path / "target", tmp_path / "link"
    target.write_bytes(b"old")
    link.symlink_to(target)
    write_atomic({link: b"new"})
    assert not link.is_symlink() and link.read_bytes() == b"new" and target.read_bytes() == b"old"


def test_the_cli_refuses_dev_null_in_one_line(tmp_path):
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    for path in (pipe, "/dev/null"):  # the pipe first, as above
        run = subprocess.run([sys.executable, "-m", "zeptogpt", "sweep", "--seeds", "1",
                              "--steps", "1", "--json", str(path)],
                             cwd=tmp_path, capture_output=True, text=True)
        assert run.returncode == 2, run.stderr
        assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
        assert f"cannot write {path}: " in run.stderr and "not a regular file" in run.stderr
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)
    assert not (tmp_path / "runs").exists()  # refused before any training


def test_a_failed_write_removes_the_folders_it_made_and_only_those(tmp_path, monkeypatch):
    (tmp_path / "kept").mkdir()
    syncs = []
    real_fsync = os.fsync

    def second_fails(fd):
        syncs.append(fd)
        if len(syncs) == 2:
            (tmp_path / "shared" / "theirs.txt").write_text("another writer's file")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", second_fails)
    with pytest.raises(OSError, match="No space left"):
        write_atomic({tmp_path / "kept" / "new" / "deeper" / "a.json": b"x",
                      tmp_path / "shared" / "b.json": b"y"})
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "kept", "shared", "shared/theirs.txt"]
