"""The independent verifier: greedy decoding against sorted(), the inputs it checks, the
parameter count by hand, and verdicts on hand-made models and on a trained one."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zeptogpt.checkpoint import CheckpointError, save
from zeptogpt.task import SortTask
from zeptogpt.verify import (
    Failure,
    ParameterCount,
    Verdict,
    count_parameters,
    expected,
    greedy,
    verification_inputs,
    verify,
    verify_file,
)

ABC3 = SortTask()
FORMAT_1_FIXTURE = Path(__file__).parent / "fixtures" / "e6-format1.safetensors"


class Sorter(nn.Module):
    """A test double, not a transformer: one-hot logits for the next token of the sorted answer,
    read off the prefix with tensor ops. ``wrong_on`` gets one input's first answer symbol wrong;
    ``sep`` puts <sep> highest and the right (``"then-right"``) or a wrong (``"then-wrong"``)
    symbol second."""

    def __init__(self, task: SortTask, wrong_on: str | None = None, sep: str = "") -> None:
        super().__init__()
        self.V, self.reverse, self.sep = task.vocab_size, task.reverse, sep
        self.wrong_on = None if wrong_on is None else torch.tensor(task.encode(wrong_on))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        pos = torch.arange(T)
        s = (idx == 0).int().argmax(1)[:, None]  # [B, 1] where the first <sep> is
        fill = -1 if self.reverse else self.V  # sorts after every symbol
        ordered = torch.where(pos < s, idx, fill).sort(1, descending=self.reverse).values
        right = ordered.gather(1, (pos - s).clamp(0, T - 1)).clamp(1, self.V - 1)  # [B, T]
        wrong = right % (self.V - 1) + 1  # another symbol
        if self.wrong_on is not None:
            n = len(self.wrong_on)
            this = torch.zeros(B, dtype=torch.bool)  # the rows that hold that input
            if T > n:
                this = (s[:, 0] == n) & (idx[:, :n] == self.wrong_on).all(1)
            right = torch.where(this[:, None] & (pos == n), wrong, right)
        if self.sep == "then-wrong":  # <sep> 3, wrong 2, right 1
            logits = 1.0 * F.one_hot(right, self.V) + 2.0 * F.one_hot(wrong, self.V)
        else:
            logits = 2.0 * F.one_hot(right, self.V)
        if self.sep:
            logits[..., 0] = 3.0
        return logits


class Recorder(nn.Module):
    """Always answers the first symbol; remembers every sequence it was given."""

    def __init__(self, task: SortTask) -> None:
        super().__init__()
        self.V, self.seen = task.vocab_size, []

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        self.seen.append(idx.clone())
        return F.one_hot(torch.ones_like(idx), self.V).float()


def test_expected_is_sorted_in_the_tasks_order():
    assert expected(ABC3, "caa") == "aac"
    assert expected(SortTask("0123", 3, reverse=True), "103") == "310"
    assert expected(SortTask("+-*/", 4), "/+*-") == "*+-/"  # Python's order: * + - /
    with pytest.raises(ValueError):
        expected(ABC3, "cad")


@pytest.mark.parametrize("task", [SortTask("0123", 3, reverse=True),
                                  SortTask("abc", 4, min_length=1), SortTask("+-*/", 3)])
def test_greedy_sorts_like_sorted(task):
    inputs = task.all_inputs()[::-1]  # lengths mixed in any order come back in order
    assert greedy(Sorter(task), task, inputs) == [
        "".join(sorted(x, reverse=task.reverse)) for x in inputs]


def test_greedy_runs_the_model_on_the_prefix_so_far():
    model = Recorder(ABC3)
    assert greedy(model, ABC3, ["cab", "bca"]) == ["aaa", "aaa"]
    assert [tuple(s.shape) for s in model.seen] == [(2, 4), (2, 5), (2, 6)]
    assert model.seen[0].tolist() == [[3, 1, 2, 0], [2, 3, 1, 0]]  # input ids, then <sep>
    assert model.seen[-1][:, 4:].tolist() == [[1, 1], [1, 1]]  # its own answers fed back


def test_greedy_batches_by_length():
    task = SortTask("abc", 3, min_length=1)
    model = Recorder(task)
    greedy(model, task, ["ab", "c", "abc", "ba"])
    assert sorted(tuple(s.shape) for s in model.seen) == [
        (1, 2), (1, 4), (1, 5), (1, 6), (2, 3), (2, 4)]


def test_verification_inputs_exhaustive():
    inputs, scope = verification_inputs(ABC3)
    assert scope == "exhaustive"
    assert len(inputs) == len(set(inputs)) == 27
    assert set(inputs) == set(ABC3.all_inputs())
    several = SortTask("abc", 6, min_length=1)
    inputs, scope = verification_inputs(several)
    assert (scope, len(set(inputs))) == ("exhaustive", 3 + 9 + 27 + 81 + 243 + 729)


def test_verification_inputs_sample():
    task = SortTask("0123456789", 10)
    inputs, scope = verification_inputs(task)
    assert scope == "sample"
    assert len(inputs) == len(set(inputs))
    edges = task.edge_cases()
    assert set(edges) <= set(inputs)
    assert len(inputs) == 100_000 + len(set(edges) - set(inputs[:100_000]))
    assert all(len(x) == 10 and set(x) <= set(task.alphabet) for x in inputs)
    assert verification_inputs(task) == (inputs, scope)  # the same every time


def test_verification_inputs_sample_of_several_lengths():
    task = SortTask("0123456789", 6, min_length=2)
    inputs, scope = verification_inputs(task)
    assert scope == "sample"
    assert {len(x) for x in inputs} == set(range(2, 7))
    assert set(task.edge_cases()) <= set(inputs)


class One(nn.Module):
    def __init__(self, values, buffer=None) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(values))
        if buffer is not None:
            self.register_buffer("pos", torch.tensor(buffer))


def test_count_distinct_trained_like_weights():
    assert count_parameters(One([0.1, -0.2, 0.3, 0.4, 0.5, 0.6])) == ParameterCount(6, 6, 6)


def test_count_tied_weight_once():
    model = One([[0.1, 0.2], [0.3, 0.4]])
    model.tied = model.w  # the same Parameter under a second name
    model.inner = One([0.0])
    model.inner.w = model.w
    assert count_parameters(model) == ParameterCount(4, 4, 4)
    shared = nn.Linear(2, 2)
    both = nn.Sequential(shared, nn.ReLU(), shared)
    assert count_parameters(both).stored == 6


def test_count_hand_set_weights_counts_their_values():
    model = One([[0.0, 0.5, -0.5, 2.0], [-2.0, 0.0, 0.5, 0.0]])
    model.b = nn.Parameter(torch.tensor([2.0, -0.0]))
    assert count_parameters(model) == ParameterCount(free=2, stored=10, nonzero=6)


def test_count_skips_buffers():
    model = One([1.0, 2.0, 0.0], buffer=[3.0, 4.0, 5.0, 6.0])
    assert count_parameters(model) == ParameterCount(free=2, stored=3, nonzero=2)
    assert count_parameters(nn.Module()) == ParameterCount(0, 0, 0)


def test_count_sinusoidal_positions_are_not_weights():
    from zeptogpt import ModelConfig, ZeptoGPT

    config = ModelConfig(pos_embed=False, sinusoidal=True)
    model = ZeptoGPT(config, torch.Generator().manual_seed(0))
    assert count_parameters(model).stored == config.n_params


def test_verify_a_sorter():
    model = Sorter(ABC3)
    model.w = nn.Parameter(torch.tensor([0.0, 0.5, -0.5, 1.0]))
    verdict = verify(model, ABC3)
    assert verdict.passed and (verdict.correct, verdict.total) == (27, 27)
    assert verdict.failures == ()
    assert verdict.line() == ("abc3: 2 parameters (3 nonzero of 4 stored), 27/27 exhaustive: "
                              "verified")


def test_verify_names_the_one_wrong_input():
    verdict = verify(Sorter(ABC3, wrong_on="caa"), ABC3)
    assert not verdict.passed
    assert (verdict.correct, verdict.total) == (26, 27)
    assert verdict.failures == (Failure("caa", "aac", "bac"),)
    assert verdict.line() == ("abc3: 0 parameters (0 nonzero of 0 stored), 26/27 exhaustive: "
                              "FAILED (caa -> bac, expected aac)")


def test_verify_of_a_reverse_task_of_several_lengths():
    task = SortTask("0123", 3, reverse=True, min_length=2)
    assert verify(Sorter(task), task).passed
    verdict = verify(Sorter(task, wrong_on="03"), task)
    assert (verdict.correct, verdict.total, verdict.failures) == (
        15 + 64, 16 + 64, (Failure("03", "30", "00"),))
    assert verdict.task == "0123x2-3-reverse"


def test_sep_is_never_an_answer():
    assert verify(Sorter(ABC3, sep="then-right"), ABC3).passed
    verdict = verify(Sorter(ABC3, sep="then-wrong"), ABC3)
    assert verdict.correct == 0 and len(verdict.failures) == 5
    assert verdict.failures[0] == Failure("aaa", "aaa", "bbb")
    assert verdict.line().endswith("0/27 exhaustive: FAILED (aaa -> bbb, expected aaa; 26 more)")


def test_verify_a_sampled_task():
    task = SortTask("abcdefghij", 6)
    verdict = verify(Sorter(task), task)
    assert verdict.scope == "sample" and verdict.passed
    assert verdict.total == len(verification_inputs(task)[0]) >= 100_000


def test_line_of_a_large_count():
    verdict = Verdict("digits10", ParameterCount(1, 1, 1), 99_999, 100_032, "sample",
                      (Failure("10", "01", "00"),))
    assert verdict.line() == ("digits10: 1 parameter (1 nonzero of 1 stored), 99,999/100,032 "
                              "sample: FAILED (10 -> 00, expected 01; 32 more)")


def test_verify_the_trained_seed(trained, task):
    verdict = verify(trained, task)
    assert verdict.passed and (verdict.correct, verdict.total) == (27, 27)
    assert verdict.parameters.free == verdict.parameters.stored == trained.config.n_params == 318


def test_verify_file(trained, task, tmp_path):
    from zeptogpt.checkpoint import Checkpoint

    path = save(tmp_path / "model.safetensors", Checkpoint(trained, task, {"seed": 0}))
    assert verify_file(path) == verify(trained, task)
    old = verify_file(FORMAT_1_FIXTURE)  # trained by the code before format 2
    assert old.passed and old.parameters == ParameterCount(318, 318, 318)
    with pytest.raises(CheckpointError):
        verify_file(tmp_path / "missing.safetensors")
