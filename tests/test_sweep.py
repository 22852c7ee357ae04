import csv
import io
import json
import math
from dataclasses import fields, replace

import pytest

from zeptogpt import ModelConfig, Recipe
from zeptogpt.sweep import (
    Sweep,
    SweepFileError,
    format_summary,
    from_csv,
    from_json,
    read_sweeps,
    result_name,
    run_sweep,
    to_csv,
    to_json,
    variants_table,
)


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
    assert back.recipe == small_sweep.recipe == Recipe(max_steps=50)
    assert from_csv(to_csv([small_sweep])) == [small_sweep.summary]
    # the CSV row says how the seeds were trained too
    row = next(csv.DictReader(io.StringIO(to_csv([small_sweep]))))
    recipe = small_sweep.recipe
    assert (float(row["lr"]), float(row["beta1"]), float(row["beta2"]), row["objective"]) == (
        recipe.lr, *recipe.betas, recipe.objective)


def test_every_recipe_change_shows_in_the_default_file_name():
    default = result_name("e6", 256, 0, Recipe())
    assert default == "e6-256seeds" and result_name("e6", 256, 7, Recipe()) == "e6-256seeds-from7"
    changed = dict(max_steps=500, lr=0.01, warmup=10, betas=(0.9, 0.99), weight_decay=0.0,
                   objective="full", batch_size=32, margin=0.5, decay=True)
    assert set(changed) == {f.name for f in fields(Recipe)}  # a new field must be named too
    names = {result_name("e6", 256, 0, Recipe(**{k: v})) for k, v in changed.items()}
    assert len(names) == len(changed) and default not in names
    two = Recipe(max_steps=500, lr=0.01)
    assert result_name("e6", 256, 0, two) == "e6-256seeds-steps500-lr0.01"
    assert result_name("e6", 256, 0, Recipe(decay=True)) == "e6-256seeds-decay"


def test_variants_table_keeps_the_seed_words(small_sweep):
    table = variants_table([small_sweep.summary])
    assert "| E=6, H=2, MLP×1, pos=ON | 318 | Default. Robust 27/27. |" in table
    s = small_sweep.summary
    assert f"{100 * s.share_solved:.1f} % ({s.solved}/24)" in table


def test_a_sweep_of_another_task_says_which_and_counts_its_inputs(tmp_path):
    from zeptogpt import SortTask

    task = SortTask("0123", 2, reverse=True)
    config = ModelConfig(vocab_size=task.vocab_size, block_size=task.seq_len)
    sweep = run_sweep(task, config, 4, Recipe(max_steps=300))
    assert (sweep.summary.task, sweep.summary.inputs) == ("0123x2-reverse", 16)
    table = variants_table([sweep.summary])
    assert "Solved (16/16, p ≥ 0.9)" in table and "Seed's notes" not in table
    path = tmp_path / "s.json"
    path.write_text(to_json([sweep]))
    assert read_sweeps(path)[0].summary == sweep.summary
    assert format_summary(sweep.summary).startswith(
        f"e6 (0123x2-reverse, {config.n_params} params)")


def test_sweep_command_prints_and_saves(tmp_path, cli):
    j, c = tmp_path / "out" / "s.json", tmp_path / "s.csv"
    code, out, _ = cli("sweep", "--seeds", "6", "--steps", "300", "--threads", "1",
                       "--json", str(j), "--csv", str(c))
    assert code == 0, out
    assert "e6 (318 params): 6/6 seeds solved (100.0 %)" in out
    saved = json.loads(j.read_text())
    assert saved[0]["summary"]["seeds"] == 6 and len(saved[0]["steps"]) == 6
    assert saved[0]["recipe"]["max_steps"] == 300
    assert from_csv(c.read_text())[0].solved == 6


def test_a_sweep_under_another_recipe_keeps_its_own_files(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    for lr in ("0.03", "0.01"):
        code, out, _ = cli("sweep", "--seeds", "2", "--steps", "5", "--lr", lr, "--threads", "1")
        assert code == 0, out
    default, other = (read_sweeps(tmp_path / "runs" / "sweep" / f"e6-2seeds-steps5{tag}.json")
                      for tag in ("", "-lr0.01"))
    assert (default[0].recipe.lr, other[0].recipe.lr) == (0.03, 0.01)


@pytest.mark.parametrize("argv, needle", [
    (["--seeds", "0"], "expected a number of seeds from 1 to"),
    (["--seeds", "-3"], "expected a number of seeds from 1 to"),
    (["--seeds", "many"], "expected a number of seeds from 1 to"),
    (["--variant", "e5"], "known: e6, e6-nopos, e4-nopos, e8-mlp2"),
    (["--steps", "0"], "expected a step limit from 1 to"),
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


def _sweep_file(tmp_path, sweep, summary=None, steps=None, recipe=None):
    """``sweep`` saved as `zeptogpt sweep --json` does, with summary and recipe fields changed
    and the steps list replaced by ``steps(old_steps)``."""
    d = json.loads(to_json([sweep]))[0]
    d["summary"] |= summary or {}
    d["recipe"] |= recipe or {}
    if steps is not None:
        d["steps"] = steps(d["steps"])
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps([d]))
    return path


def test_a_saved_sweep_reads_back_and_none_solved_is_valid(tmp_path, small_sweep):
    back = read_sweeps(_sweep_file(tmp_path, small_sweep))
    assert [(b.summary, b.steps) for b in back] == [(small_sweep.summary, small_sweep.steps)]
    # nobody solved: nan median and margin, as run_sweep writes them, and only nulls
    none = dict(solved=0, median_steps=float("nan"), p90_steps=float("nan"),
                worst_margin=float("nan"))
    back = read_sweeps(_sweep_file(tmp_path, small_sweep, none, lambda st: [None] * len(st)))
    assert back[0].summary.solved == 0 and back[0].steps == [None] * 24
    assert math.isnan(back[0].summary.median_steps)


def test_sweep_json_is_strict_json_when_no_seed_solved(tmp_path, small_sweep):
    """NaN is not JSON: a figure that does not exist is written null and read back as nan."""
    none = replace(small_sweep.summary, solved=0, median_steps=math.nan, p90_steps=math.nan,
                   worst_margin=math.nan)
    text = to_json([Sweep(none, [None] * none.seeds, small_sweep.recipe)])

    def refuse(constant):
        raise ValueError(f"{constant} in the JSON")
    assert json.loads(text, parse_constant=refuse)[0]["summary"]["median_steps"] is None
    back = from_json(text)[0].summary
    assert math.isnan(back.median_steps) and math.isnan(back.worst_margin)


LIMIT = "must be an integer from 0 to the step limit 50, or null for a seed not solved"


@pytest.mark.parametrize("summary, steps, needle", [
    ({"seeds": 2}, lambda st: ["a", None], f'steps[0] {LIMIT}; got "a"'),
    ({}, lambda st: [51, *st[1:]], f"steps[0] {LIMIT}; got 51"),
    ({}, lambda st: [*st[:-1], -1], f"steps[23] {LIMIT}; got -1"),
    ({}, lambda st: [True, *st[1:]], f"steps[0] {LIMIT}; got true"),
    ({}, lambda st: [7.0, *st[1:]], f"steps[0] {LIMIT}; got 7.0"),
    ({}, lambda st: st[:-1], "steps must list one entry per seed (24), got 23"),
    ({}, lambda st: {"0": 5}, 'expected an object with a "summary" object, a "recipe" object'),
    ({"step_limit": -5}, None, "summary step_limit must be at least 0, got -5"),
    ({"seeds": 0}, lambda st: [], "summary seeds must be at least 1, got 0"),
    ({"seeds": True}, None, "summary seeds must be an integer, got true"),
    ({"seeds": 24.0}, None, "summary seeds must be an integer, got 24.0"),
    ({"model_steps": -1}, None, "summary model_steps must be at least 0, got -1"),
    ({"variant": None}, None, "summary variant must be a string, got null"),
    # the variant names the PNG files of `plot curves --sweep`
    ({"variant": "../../escaped"}, None, 'variant must be a name like e6-nopos, got "../../esc'),
    ({"variant": "e6\u0000"}, None, "variant must be a name like e6-nopos"),
    ({"median_steps": "fast"}, None, 'summary median_steps must be a number, got "fast"'),
    ({"solved": 0}, None, "is not the number of solved seeds in steps"),
])
def test_sweep_files_with_wrong_fields_are_refused(tmp_path, small_sweep, summary, steps,
                                                   needle):
    _refused(_sweep_file(tmp_path, small_sweep, summary, steps), needle)


@pytest.mark.parametrize("recipe, needle", [
    ({"lr": "fast"}, 'recipe lr must be a number, got "fast"'),
    ({"lr": -1}, "recipe lr, margin must be positive"),
    ({"betas": [0.9]}, "recipe betas must be a list of 2 numbers, got [0.9]"),
    ({"betas": [0.9, True]}, "recipe betas must be a list of 2 numbers"),
    ({"objective": "everything"}, "recipe objective must be one of"),
    ({"max_steps": 60}, "recipe max_steps (60) is not the summary's step_limit (50)"),
    ({"momentum": 0.9}, "recipe unknown field 'momentum'"),
])
def test_sweep_files_with_a_wrong_recipe_are_refused(tmp_path, small_sweep, recipe, needle):
    _refused(_sweep_file(tmp_path, small_sweep, recipe=recipe), needle)


def _refused(path, needle):
    with pytest.raises(SweepFileError) as e:
        read_sweeps(path)
    message = str(e.value)
    assert message.startswith(f"{path} is not a file written by `zeptogpt sweep --json` (")
    assert needle in message and "\n" not in message


@pytest.mark.parametrize("text, needle", [
    ("[]", "expected a non-empty JSON list of sweeps"),
    ('{"summary": {}}', "expected a non-empty JSON list of sweeps"),
    ("[5]", 'sweep 1: expected an object with a "summary" object'),
    ('[{"summary": {}, "recipe": {}, "steps": []}]', "sweep 1: summary variant is missing"),
    ("[" * 100_000, "maximum recursion depth"),
])
def test_sweep_files_of_the_wrong_shape_are_refused(tmp_path, text, needle):
    path = tmp_path / "sweep.json"
    path.write_text(text)
    with pytest.raises(SweepFileError) as e:
        read_sweeps(path)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_plot_of_a_bad_sweep_file_is_one_line_and_no_png(tmp_path, small_sweep, cli):
    path = _sweep_file(tmp_path, small_sweep, {"step_limit": -5})
    code, out, err = cli("plot", "curves", "--sweep", str(path))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "step_limit must be at least 0" in err
    assert not list(tmp_path.rglob("*.png"))
