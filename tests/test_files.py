"""Safe writes: whole files, groups of files together, and the check made before long work."""

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
