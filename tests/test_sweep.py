import json

import pytest

from zeptogpt import ModelConfig, Recipe
from zeptogpt.sweep import from_csv, from_json, run_sweep, to_csv, to_json, variants_table


@pytest.fixture(scope="module")
def small_sweep(task):
    # a limit near the median, so that some seeds fail and the counts mean something
    return run_sweep(task, ModelConfig(), seeds=24, recipe=Recipe(max_steps=50), first_seed=5)


def test_counts_add_up(small_sweep):
    s, steps = small_sweep.summary, small_sweep.steps
    assert (s.seeds, s.first_seed, len(steps)) == (24, 5, 24)
    solved = sorted(x for x in steps if x is not None)
    assert 0 < s.solved == len(solved) < 24
    assert s.share_solved == s.solved / 24
    assert solved[0] <= s.median_steps <= s.p90_steps <= solved[-1] <= 50
    # failed seeds ran to the limit, solved ones stopped at their step
    assert s.model_steps == sum(solved) + 50 * (24 - s.solved)
    assert 0.9 <= s.worst_margin < 1


def test_json_and_csv_round_trip(small_sweep):
    back = from_json(to_json([small_sweep]))[0]
    assert back.summary == small_sweep.summary and back.steps == small_sweep.steps
    assert from_csv(to_csv([small_sweep])) == [small_sweep.summary]


def test_variants_table_keeps_the_seed_words(small_sweep):
    table = variants_table([small_sweep.summary])
    assert "| E=6, H=2, MLP×1, pos=ON | 318 | Default. Robust 27/27. |" in table
    s = small_sweep.summary
    assert f"{100 * s.share_solved:.1f} % ({s.solved}/24)" in table


def test_sweep_command_prints_and_saves(tmp_path, cli):
    j, c = tmp_path / "out" / "s.json", tmp_path / "s.csv"
    code, out, _ = cli("sweep", "--seeds", "6", "--steps", "300", "--threads", "1",
                       "--json", str(j), "--csv", str(c))
    assert code == 0, out
    assert "e6 (318 params): 6/6 seeds solved (100.0 %)" in out
    saved = json.loads(j.read_text())
    assert saved[0]["summary"]["seeds"] == 6 and len(saved[0]["steps"]) == 6
    assert from_csv(c.read_text())[0].solved == 6


@pytest.mark.parametrize("argv, needle", [
    (["--seeds", "0"], "positive integer"),
    (["--seeds", "-3"], "positive integer"),
    (["--seeds", "many"], "positive integer"),
    (["--variant", "e5"], "known: e6, e6-nopos, e4-nopos, e8-mlp2"),
    (["--steps", "0"], "positive integer"),
    (["--json", "/proc/zeptogpt/x.json"], "cannot write"),
])
def test_bad_sweep_arguments(tmp_path, monkeypatch, cli, argv, needle):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("sweep", "--seeds", "2", "--steps", "5", *argv)
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "runs").exists()  # no partial result file


def test_unwritable_output_is_refused_before_training(tmp_path, cli):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = cli("sweep", "--seeds", "2", "--csv", str(blocker / "a.csv"),
                       "--json", str(tmp_path / "a.json"))
    assert code == 2 and "cannot write" in err
    assert not (tmp_path / "a.json").exists()
