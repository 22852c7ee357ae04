"""The shard plan without Ray: fixed blocks of seeds, forked shards equal to sequential ones, the
results file (header, one line per shard, resume) and `zeptogpt sweep --shard-size`."""

import json

import pytest

from zeptogpt import ModelConfig, Recipe, SortTask
from zeptogpt.plan import PlanFileError, ShardPlan, local_executor, run_plan
from zeptogpt.sweep import from_json

RECIPE = Recipe(max_steps=100)


def test_shards_are_fixed_blocks_of_seeds():
    plan = ShardPlan(first_seed=5, seeds=20, shard_size=8)
    assert plan.shards == 3
    assert [plan.seeds_of(k) for k in range(3)] == [list(range(5, 13)), list(range(13, 21)),
                                                      list(range(21, 25))]


def test_forked_shards_equal_sequential_ones_and_resume(tmp_path):
    plan = ShardPlan(0, 12, 4)
    task, config = SortTask(), ModelConfig()
    one = run_plan(task, config, RECIPE, plan, tmp_path / "a.jsonl", local_executor(1))
    two = run_plan(task, config, RECIPE, plan, tmp_path / "b.jsonl", local_executor(2))
    assert one.trained == two.trained == 3
    assert one.seed_results() == two.seed_results()
    path = tmp_path / "b.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    head = json.loads(lines[0])
    assert head["shard_size"] == 4 and head["seeds"] == 12 and head["recipe"]["max_steps"] == 100
    path.write_text("".join(lines[:2]))  # two shards lost
    again = run_plan(task, config, RECIPE, plan, path, local_executor(2))
    assert again.trained == 2 and again.seed_results() == one.seed_results()


def test_a_results_file_of_another_sweep_is_refused(tmp_path):
    path = tmp_path / "r.jsonl"
    run_plan(SortTask(), ModelConfig(), Recipe(max_steps=1), ShardPlan(0, 2, 2), path)
    with pytest.raises(PlanFileError, match="another sweep"):
        run_plan(SortTask(), ModelConfig(), Recipe(max_steps=1), ShardPlan(0, 2, 1), path)


def test_sweep_shard_size_records_the_plan_and_resumes(workdir, cli):
    args = ("sweep", "--seeds", "6", "--steps", "50", "--shard-size", "4", "--threads", "1")
    code, out, err = cli(*args)
    assert code == 0, err
    assert "2 of 2 shards trained now" in out and "shards of 4 seeds, in-process" in out
    [sweep] = from_json((workdir / "runs/sweep/e6-6seeds-steps50-shards4.json").read_text())
    assert (sweep.summary.shard_size, sweep.summary.backend) == (4, "local")
    path = workdir / "runs/sweep/e6-6seeds-steps50-shards4.jsonl"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:2]))
    code, out, err = cli(*args)
    assert code == 0 and "1 of 2 shards trained now, 1 found done" in out
    [again] = from_json((workdir / "runs/sweep/e6-6seeds-steps50-shards4.json").read_text())
    assert again.steps == sweep.steps


def test_address_goes_with_the_ray_backend(workdir, cli):
    code, out, err = cli("sweep", "--seeds", "2", "--address", "127.0.0.1:6379")
    assert code == 2 and err == "zeptogpt sweep: error: --address goes with --backend ray\n"


def test_search_shard_size_keeps_each_architectures_shards(workdir, cli):
    args = ("search", "--arch", "e6", "--seeds", "6", "--steps", "50", "--shard-size", "4",
            "--threads", "1", "--out", "s.jsonl")
    code, out, err = cli(*args)
    assert code == 0, err
    assert "shards of 4 seeds" in out
    assert json.loads((workdir / "s.jsonl").read_text().splitlines()[0])["search"][
        "shard_size"] == 4
    shards = (workdir / "s.shards/e6.jsonl").read_text().splitlines()
    assert len(shards) == 3  # the header and 2 shards
    code, out2, err = cli(*args)  # done already: no architecture trained again
    assert code == 0 and "6/6" not in out2.split("results in")[1].split("Pareto")[0]
    code, out, err = cli(*[a for a in args if a not in ("--shard-size", "4")])  # another search
    assert code == 2 and "shard size" in err
