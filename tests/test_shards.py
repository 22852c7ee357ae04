"""Seeds dealt into shards trained side by side: the same seeds as training each shard alone."""

import torch

from zeptogpt import ModelConfig, Recipe, train
from zeptogpt.shards import MIN_SEEDS_PER_SHARD, merge, shard_count, train_sharded


def test_each_shard_is_a_train_call_of_its_own_seeds(task):
    """Oracle: `train` on each shard's seeds, one thread, in this process. Shard i holds seeds
    i, i + 3, ...; the merged result gives every seed its own shard's weights, bit for bit,
    back in the order asked for."""
    recipe, seeds = Recipe(max_steps=60), [5, 9, 2, 7, 11, 4, 8]
    steps = []

    def on_step(step, loss, correct, active):
        steps.append((step, active, len(loss)))

    sharded = train_sharded(task, ModelConfig(), recipe, seeds, shards=3, on_step=on_step)
    assert [r.seed for r in sharded.results] == seeds
    for i in range(3):
        alone = train(task, ModelConfig(), recipe, seeds[i::3])
        for j, r in enumerate(alone.results):
            assert (sharded.results[i + 3 * j].steps, sharded.results[i + 3 * j].loss) == (
                r.steps, r.loss)
        for name, w in alone.weights.items():
            assert torch.equal(sharded.weights[name][i::3], w), name
    assert sharded.model_steps == sum(r.steps for r in sharded.results)
    # every step of every shard was reported, with the seeds still training in all shards
    # each shard spoke at its first step and whenever seeds left it (not at every step)
    leavings = {(i, r.steps) for i in range(3) for r in sharded.results[i::3]}
    assert len(steps) <= 3 + len(leavings) < sum(r.steps for r in sharded.results)
    actives = [a for _, a, _ in steps]  # seeds still training, all shards together
    assert actives[0] == len(seeds) and actives == sorted(actives, reverse=True)
    assert actives[-1] < len(seeds)


def test_one_shard_is_train_itself(task):
    a = train_sharded(task, ModelConfig(), Recipe(max_steps=5), [0, 1], shards=1)
    b = train(task, ModelConfig(), Recipe(max_steps=5), [0, 1])
    assert all(torch.equal(a.weights[n], b.weights[n]) for n in a.weights)


def test_merge_deals_the_seeds_back_in_order(task):
    parts = [train(task, ModelConfig(), Recipe(max_steps=0), s) for s in ([0, 2, 4], [1, 3])]
    merged = merge(parts)
    assert [r.seed for r in merged.results] == [0, 1, 2, 3, 4]
    whole = train(task, ModelConfig(), Recipe(max_steps=0), range(5))
    assert all(torch.equal(merged.weights[n], whole.weights[n]) for n in whole.weights)


def _start_sweep(tmp_path):
    """A real `zeptogpt sweep` that would never end (no seed can learn at this learning rate),
    in a process group of its own."""
    import subprocess
    import sys

    argv = [sys.executable, "-m", "zeptogpt", "sweep", "--seeds", "64", "--lr", "1e-12",
            "--steps", "1000000", "--threads", "2", "--json", str(tmp_path / "s.json"),
            "--csv", str(tmp_path / "s.csv")]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _group_gone(pgid: int, seconds: float = 10) -> bool:
    import os
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_ctrl_c_stops_every_shard_and_saves_nothing(tmp_path):
    import os
    import signal
    import time

    sweep = _start_sweep(tmp_path)
    time.sleep(4)  # past start-up, into training
    os.killpg(sweep.pid, signal.SIGINT)  # what a terminal sends the whole foreground group
    out, err = sweep.communicate(timeout=30)
    assert sweep.returncode == 130 and err.strip().splitlines()[-1] == "interrupted"
    assert _group_gone(sweep.pid)
    assert list(tmp_path.iterdir()) == []


def test_shards_stop_when_the_sweep_is_killed_outright(tmp_path):
    sweep = _start_sweep(tmp_path)
    import time

    time.sleep(4)
    sweep.kill()  # SIGKILL: no handler runs in the parent
    sweep.communicate(timeout=30)
    assert _group_gone(sweep.pid)  # the shards noticed and left


def test_a_sweep_is_dealt_into_shards_only_when_each_gets_enough_seeds():
    assert shard_count(1000, 2) == 2 and shard_count(1000, 1) == 1
    assert shard_count(8, 2) == 1  # too few to pay for a process
    assert shard_count(2 * MIN_SEEDS_PER_SHARD, 4) == 2
