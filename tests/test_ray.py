"""The shard plan on a real local Ray (2 CPUs, no dashboard): the same per-seed results as the
in-process executor, resume, a killed worker retried, and a bad --address.

Without Ray the tests skip and say why; with ZEPTOGPT_REQUIRE_RAY=1 (as CI sets) that skip is a
failure. One Ray is started for the module (about 4 s here).
"""

import json
import os

import pytest

from zeptogpt import ModelConfig, Recipe, SortTask
from zeptogpt.plan import KILL_DIR, ShardPlan, local_executor, run_plan

pytestmark = pytest.mark.slow
RECIPE = Recipe(max_steps=200)
PLAN = ShardPlan(first_seed=0, seeds=16, shard_size=8)


def _ray_or_skip():
    try:
        import ray  # noqa: F401
    except ImportError:
        reason = "Ray is not installed (pip install -r requirements.txt)"
        if os.environ.get("ZEPTOGPT_REQUIRE_RAY") == "1":
            pytest.fail(reason + "; ZEPTOGPT_REQUIRE_RAY=1 makes this a failure")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A local Ray with 2 CPUs; workers see KILL_DIR, where a test may ask a shard to die once."""
    _ray_or_skip()
    from zeptogpt.ray_backend import connect

    kill_dir = tmp_path_factory.mktemp("kill")
    before = os.environ.get(KILL_DIR)
    os.environ[KILL_DIR] = str(kill_dir)  # read by the workers Ray starts, which inherit it
    try:
        with connect(None, cpus=2) as info:
            yield info, kill_dir
    finally:
        if before is None:
            os.environ.pop(KILL_DIR, None)
        else:
            os.environ[KILL_DIR] = before


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The plan trained in this process, one shard after another: the reference."""
    path = tmp_path_factory.mktemp("local") / "r.jsonl"
    return run_plan(SortTask(), ModelConfig(), RECIPE, PLAN, path, local_executor(1))


def test_ray_sweep_equals_the_local_engine(ray_cluster, local_run, tmp_path):
    from zeptogpt.ray_backend import ray_executor

    info, _ = ray_cluster
    assert info.cpus == 2 and info.nodes == 1
    run = run_plan(SortTask(), ModelConfig(), RECIPE, PLAN, tmp_path / "r.jsonl", ray_executor())
    assert run.trained == 2
    assert run.seed_results() == local_run.seed_results()
    assert [s["seeds"] for s in run.shards] == [list(range(8)), list(range(8, 16))]


def test_resume_computes_only_the_missing_shards(ray_cluster, local_run, tmp_path):
    from zeptogpt.ray_backend import ray_executor

    path = tmp_path / "r.jsonl"
    run_plan(SortTask(), ModelConfig(), RECIPE, PLAN, path, ray_executor())
    lines = path.read_text().splitlines(keepends=True)
    assert len(lines) == 3  # the header and two shards
    dropped = json.loads(lines[-1])["shard"]
    path.write_text("".join(lines[:-1]) + lines[-1][:20])  # a kill mid-line: half a line left
    run = run_plan(SortTask(), ModelConfig(), RECIPE, PLAN, path, ray_executor())
    assert run.trained == 1
    assert [json.loads(x)["shard"] for x in path.read_text().splitlines()[1:]][-1] == dropped
    assert len(path.read_text().splitlines()) == 3
    assert run.seed_results() == local_run.seed_results()
    again = run_plan(SortTask(), ModelConfig(), RECIPE, PLAN, path, ray_executor())
    assert again.trained == 0 and again.seed_results() == local_run.seed_results()


def test_a_killed_worker_is_retried_and_nothing_is_lost(ray_cluster, local_run, tmp_path):
    from zeptogpt.ray_backend import ray_executor

    _, kill_dir = ray_cluster
    marker = kill_dir / "kill-8"  # shard 1's worker exits (os._exit) the first time it starts
    marker.touch()
    run = run_plan(SortTask(), ModelConfig(), RECIPE, PLAN, tmp_path / "r.jsonl", ray_executor())
    assert not marker.exists()  # the worker did die
    assert run.trained == 2
    assert run.seed_results() == local_run.seed_results()


def test_the_address_check_knows_a_ray_head(ray_cluster):
    import ray

    from zeptogpt.ray_backend import _check_address

    _check_address(ray.get_runtime_context().gcs_address)  # no error: it is Ray


def test_a_bad_address_is_one_line_and_exit_2(cli, workdir):
    _ray_or_skip()
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for address, why in ((f"127.0.0.1:{port}", "refused"), ("nonsense", "HOST:PORT")):
        code, out, err = cli("sweep", "--backend", "ray", "--address", address, "--seeds", "8")
        assert code == 2 and out == ""
        assert err.startswith(f"zeptogpt sweep: error: cannot reach Ray at {address} (")
        assert why in err and err.count("\n") == 1
    assert not (workdir / "runs").exists() or not any((workdir / "runs").rglob("*"))


def test_a_search_on_ray_equals_the_local_shard_plan(ray_cluster, tmp_path):
    from zeptogpt.config import config_from_name
    from zeptogpt.ray_backend import ray_executor
    from zeptogpt.search import run_search

    task = SortTask()
    configs = [config_from_name(n, task.vocab_size, task.seq_len) for n in ("e6", "e8-mlp2")]

    def solved(executor, name):
        rows = run_search(task, configs, 8, RECIPE, tmp_path / f"{name}.jsonl", shard_size=4,
                          executor=executor, backend=name)
        return [(r.arch, r.solved, r.median_steps) for r in rows]

    assert solved(ray_executor(), "ray") == solved(local_executor(1), "local")
    assert len(list((tmp_path / "ray.shards").glob("*.jsonl"))) == 2
