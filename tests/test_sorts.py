"""Any sorted(): several lengths, reverse, tasks beyond the full-batch limit, against sorted()."""

import collections
import random

import pytest
import torch

import zeptogpt.training
from zeptogpt import ModelConfig, SortTask, ZeptoGPT, train
from zeptogpt.checkpoint import Checkpoint, load, save
from zeptogpt.evaluation import answers, decode, evaluate
from zeptogpt.task import IGNORE
from zeptogpt.training import Batch, score


def _config(task: SortTask) -> ModelConfig:
    return ModelConfig(vocab_size=task.vocab_size, block_size=task.seq_len)


@pytest.fixture(scope="module")
def several_lengths():
    """Every input of 1 to 3 letters from {a, b, c}, largest first: 39 inputs."""
    task = SortTask("abc", 3, reverse=True, min_length=1)
    result = train(task, _config(task), seeds=[0])
    assert result.results[0].solved
    return task, result.models[0]


def test_a_task_of_several_lengths_has_every_input_once():
    task = SortTask("ab", 3, min_length=1)
    assert task.all_inputs() == ["a", "b", "aa", "ab", "ba", "bb", *(
        a + b + c for a in "ab" for b in "ab" for c in "ab")]
    assert task.n_inputs == 14 and task.lengths == range(1, 4) and task.varies
    assert task.describe() == "1 to 3 letters from {a, b}" and task.name == "abx1-3"
    assert SortTask("abc", 3, min_length=3) == SortTask("abc", 3)  # one length is one length
    assert task.parse("B") == "b"
    for bad in ("", "abab"):
        with pytest.raises(ValueError, match="expected 1 to 3 letters"):
            task.parse(bad)


def test_a_model_of_several_lengths_sorts_every_input_like_sorted(several_lengths):
    task, model = several_lengths
    inputs = task.all_inputs()
    expected = [''.join(sorted(x, reverse=True)) for x in inputs]
    assert answers(model, task, inputs) == expected
    shuffled = random.Random(0).sample(inputs, len(inputs))  # lengths mixed, in any order
    assert answers(model, task, shuffled) == [''.join(sorted(x, reverse=True)) for x in shuffled]
    assert evaluate(model, task).correct == task.n_inputs and evaluate(model, task).exhaustive
    with pytest.raises(ValueError, match="one length"):
        decode(model, task, ["a", "ab"])


def test_padding_never_reaches_a_real_token(several_lengths):
    """A shorter sequence padded with anything gives the same logits where it is real."""
    task, model = several_lengths
    idx, targets = task.dataset(inputs=["cb"])  # [1, 6]: c b <sep> c b, then padding
    other = idx.clone()
    other[0, 5:] = 3  # the padding as c instead of <sep>
    real = slice(0, 5)
    torch.testing.assert_close(model(idx)[:, real], model(other)[:, real], rtol=0, atol=0)
    assert (targets[0, 4:] == IGNORE).all()  # no loss reads the padding


def test_a_checkpoint_keeps_its_task(tmp_path, several_lengths):
    task, model = several_lengths
    path = tmp_path / "m.safetensors"
    save(path, Checkpoint(model, task, {"seed": 0}))
    assert load(path).task == task and load(path).task.min_length == 1 and load(path).task.reverse
    big = SortTask("0123456789", 20)  # 10^20 inputs: a checkpoint of any size loads
    save(path, Checkpoint(ZeptoGPT(_config(big), torch.Generator()), big, {}))
    assert load(path).task == big


def test_drawn_minibatches_are_each_seeds_own_and_uniform_over_lengths():
    task = SortTask("abc", 3, min_length=1)
    first = task.sample(random.Random(5), 1000)
    assert first == task.sample(random.Random(5), 1000) != task.sample(random.Random(6), 1000)
    draws = task.sample(random.Random(0), 60_000)
    lengths = collections.Counter(len(x) for x in draws)
    for n in task.lengths:  # each length a third of the draws, each input of it equally often
        assert abs(lengths[n] - 20_000) < 600  # about 4.5 standard deviations
        counts = collections.Counter(x for x in draws if len(x) == n)
        expected = lengths[n] / 3**n
        assert len(counts) == 3**n
        assert all(abs(c - expected) < 5 * expected**0.5 + 5 for c in counts.values())


def test_a_seed_draws_the_same_minibatches_whatever_else_trains(monkeypatch):
    monkeypatch.setattr(zeptogpt.training, "FULL_BATCH_LIMIT", 0)  # abc3 trains as a large task
    task = SortTask()
    recipe = zeptogpt.training.Recipe(max_steps=30, batch_size=16)
    alone = train(task, ModelConfig(), recipe, seeds=[7]).results[0]
    together = train(task, ModelConfig(), recipe, seeds=[3, 7, 11]).results[1]
    assert alone.seed == together.seed == 7
    for (step, loss, correct), (step2, loss2, correct2) in zip(alone.log, together.log):
        assert step == step2 and correct == correct2 and loss == pytest.approx(loss2, rel=1e-4)


def test_beyond_the_limit_solved_means_every_input_of_the_evaluation_set(monkeypatch):
    monkeypatch.setattr(zeptogpt.training, "FULL_BATCH_LIMIT", 0)
    task = SortTask("abc", 4)  # 81 inputs, all of them the evaluation set
    result = train(task, _config(task), seeds=[0, 1])
    assert result.checked_on == 81
    for r, model in zip(result.results, result.models):
        assert r.solved and r.correct == 81
        assert evaluate(model, task).correct == 81  # the decoder agrees with the verdict


def test_score_skips_what_a_shorter_input_does_not_have():
    logits = torch.zeros(1, 2, 2, 3)  # [K, N, L, V]
    logits[0, :, :, 2] = 5.0  # every position says symbol 2
    answer = torch.tensor([[2, IGNORE], [2, 1]])  # the first input has one answer token
    correct, margin = score(logits, answer)
    assert int(correct) == 1 and float(margin) == pytest.approx(1 / (1 + torch.e**5))
    batch = Batch(SortTask("abc", 2, min_length=1), ["a", "ab"], 1, "answer")
    assert batch.answer.tolist() == [[1, IGNORE, IGNORE], [IGNORE, 1, 2]]


def test_a_decaying_learning_rate_falls_from_lr_to_a_tenth():
    recipe = zeptogpt.training.Recipe(lr=0.02, max_steps=100, decay=True)
    rates = [recipe.lr_at(step) for step in range(101)]
    assert rates[0] == pytest.approx(0.02) and rates[100] == pytest.approx(0.002)
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    assert zeptogpt.training.Recipe(lr=0.02).lr_at(99) == 0.02  # no decay unless asked


def test_a_drawn_minibatch_holds_edge_cases_one_in_sixteen():
    from zeptogpt.training import EDGE_SHARE, draw

    task = SortTask("0123456789", 10)
    edges = task.edge_cases()
    batch = draw(task, random.Random(0), 256, edges)
    assert len(batch) == 256 and batch == draw(task, random.Random(0), 256, edges)
    assert set(batch[-256 // EDGE_SHARE:]) <= set(edges)  # 16 of them, from the edge cases
    assert sum(x in edges for x in batch[: -256 // EDGE_SHARE]) <= 1  # the rest: a uniform draw
