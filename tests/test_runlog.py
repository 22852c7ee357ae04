"""Training logs: what is written reads back, and anything else is refused in one line that
names the line, by ``read_log`` and by ``zeptogpt plot curves``."""

import math
import subprocess
import sys

import pytest

from zeptogpt import Checkpoint, save
from zeptogpt.runlog import LogError, log_path, read_log, write_log

ROWS = [(0, 1.25, 3), (1, math.nan, 20), (2, 0.5, 27)]
GOOD = '{"step": 0, "loss": 1.25, "correct": 3}'


def test_what_is_written_reads_back_with_or_without_its_header(tmp_path):
    path = write_log(tmp_path / "m.log.jsonl", ROWS, weights_sha256="ab" * 32)
    lines = path.read_text().splitlines()
    assert lines[0] == '{"weights_sha256": "' + "ab" * 32 + '"}'
    assert lines[2] == '{"step": 1, "loss": null, "correct": 20}'
    for checksum in (None, "ab" * 32):
        rows = read_log(path, checksum)
        assert [(s, c) for s, _, c in rows] == [(0, 3), (1, 20), (2, 27)]
        assert rows[0][1] == 1.25 and math.isnan(rows[1][1])
    with pytest.raises(LogError, match="belongs to another checkpoint"):
        read_log(path, "cd" * 32)
    path.write_text(GOOD + "\n" + '{"step": 7, "loss": 0, "correct": 27}\n')  # an old log
    assert read_log(path, "cd" * 32) == [(0, 1.25, 3), (7, 0.0, 27)]


@pytest.mark.parametrize("line, needle", [
    ('{"step": Infinity, "loss": 1, "correct": 3}', "line 2 is not a training-log line"),
    ('{"step": 1e308, "loss": 1, "correct": 3}', "line 2: step must be an integer, got 1e+308"),
    ('{"step": 1.5, "loss": 1, "correct": 3}', "line 2: step must be an integer, got 1.5"),
    ('{"step": true, "loss": 1, "correct": 3}', "line 2: step must be an integer, got true"),
    ('{"step": -5, "loss": 1, "correct": 3}', "line 2: step must be from 0 to 2**53, got -5"),
    ('{"step": 1' + "0" * 400 + ', "loss": 1, "correct": 3}', "line 2: step must be from 0"),
    ('{"step": 0, "loss": 1, "correct": 3}', "line 2: step 0 after step 0; steps must increase"),
    ('{"step": 1, "loss": NaN, "correct": 3}', "line 2 is not a training-log line"),
    ('{"step": 1, "loss": 1e400, "correct": 3}', "line 2: loss must be a finite number"),
    ('{"step": 1, "loss": -1, "correct": 3}', "line 2: loss must be a finite number from 0"),
    ('{"step": 1, "loss": "1", "correct": 3}', 'line 2: loss must be a number, got "1"'),
    ('{"step": 1, "loss": 1, "correct": 3.0}', "line 2: correct must be an integer, got 3.0"),
    ('{"step": 1, "loss": 1, "correct": -1}', "line 2: correct must be from 0 to 2**53"),
    ('{"step": 1, "loss": 1, "correct": 1' + "0" * 30 + "}", "line 2: correct must be from 0"),
    ('{"step": 1, "loss": 1}', "line 2: correct is missing"),
    ('{"step": 1, "loss": 1, "correct": 3, "lr": 1}', "line 2: unknown field 'lr'"),
    ('{"weights_sha256": "ab"}', "line 2: unknown field 'weights_sha256'"),
    ("[1, 1.0, 3]", "line 2 is not a training-log line"),
])
def test_a_bad_line_is_refused_in_one_line_naming_it(tmp_path, line, needle):
    path = tmp_path / "m.log.jsonl"
    path.write_text(GOOD + "\n" + line + "\n")
    with pytest.raises(LogError) as e:
        read_log(path)
    assert str(e.value).startswith(f"{path} ") and needle in str(e.value)
    assert "\n" not in str(e.value) and len(str(e.value)) < 200


def test_a_bad_header_is_refused(tmp_path):
    path = tmp_path / "m.log.jsonl"
    for header in ('{"weights_sha256": 5}', '{"weights_sha256": "ab", "note": 1}'):
        path.write_text(header + "\n" + GOOD + "\n")
        with pytest.raises(LogError, match="line 1 is not a training-log header"):
            read_log(path)


def _plot_curves(checkpoint, out):
    """``zeptogpt plot curves`` run as a user runs it, in a process of its own."""
    return subprocess.run([sys.executable, "-m", "zeptogpt", "plot", "curves", "--checkpoint",
                           str(checkpoint), "--out", str(out)], capture_output=True, text=True)


# Infinity stopped the reader with a traceback, 400 digits the plot; 1e308 was plotted as if
# it were a step. read_log's own test above covers every other kind of bad value.
@pytest.mark.parametrize("step", ["Infinity", "1e308", "9" * 400])
def test_plot_curves_refuses_a_bad_step_in_one_line(tmp_path, task, trained, step):
    path = save(tmp_path / "m.safetensors", Checkpoint(trained, task), ROWS)
    lines = log_path(path).read_text().splitlines()
    lines[2] = lines[2].replace('"step": 1', f'"step": {step}')
    log_path(path).write_text("\n".join(lines) + "\n")
    run = _plot_curves(path, tmp_path)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and run.stderr.count("\n") == 1
    assert f"{log_path(path)} line 3" in run.stderr
    assert not (tmp_path / "curves.png").exists()


def test_plot_curves_draws_a_good_log(tmp_path, task, trained):
    """The same checkpoint and log, unedited, plot: what the test above sees is the edit."""
    path = save(tmp_path / "m.safetensors", Checkpoint(trained, task), ROWS)
    run = _plot_curves(path, tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")
