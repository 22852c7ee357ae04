import dataclasses

import pytest
import torch

from zeptogpt.task import IGNORE, SEP, TASKS, InputError, SortTask


def test_vocabulary_and_layout(task):
    assert task.vocab == (SEP, "a", "b", "c")
    assert task.seq_len == 7
    assert task.sequence("caa") == ["c", "a", "a", SEP, "a", "a", "c"]


def test_all_inputs_are_every_triple_once(task):
    inputs = task.all_inputs()
    assert len(inputs) == len(set(inputs)) == task.n_inputs == 27
    assert all(len(x) == 3 and set(x) <= set("abc") for x in inputs)


def test_encode_decode_round_trip(task):
    for x in task.all_inputs():
        tokens = task.sequence(x)
        assert task.decode(task.encode(tokens)) == tokens
        assert task.decode(torch.tensor(task.encode(tokens))) == tokens


def test_other_alphabets_and_lengths():
    task = SortTask(alphabet="dcba", length=4)
    assert task.vocab == (SEP, "a", "b", "c", "d")
    assert task.n_inputs == len(task.all_inputs()) == 256
    assert task.sequence("dbca")[-4:] == sorted("dbca")


@pytest.mark.parametrize("objective", ["answer", "full"])
def test_dataset_targets_are_next_tokens(task, objective):
    inputs, targets = task.dataset(objective)
    assert inputs.shape == targets.shape == (27, 6)
    for x, inp, tgt in zip(task.all_inputs(), inputs, targets):
        seq = task.encode(task.sequence(x))
        assert inp.tolist() == seq[:-1]
        kept = [t for t in tgt.tolist() if t != IGNORE]
        # the answer objective keeps exactly the sorted letters; the full one every next token
        assert kept == (seq[4:] if objective == "answer" else seq[1:])
        assert kept[-3:] == task.encode(sorted(x))


def test_parse_accepts_any_case(task):
    assert task.parse("CaA") == "caa"
    assert task.parse(" bac\n") == "bac"


@pytest.mark.parametrize("text", ["ab", "abcd", "abd", "a1c", "a c", "", "   ", "çaa", "a" * 10**6])
def test_parse_rejects_with_one_line_naming_the_alphabet(task, text):
    with pytest.raises(InputError) as e:
        task.parse(text)
    message = str(e.value)
    assert "\n" not in message and len(message) < 200
    assert "3 letters from {a, b, c}" in message


@pytest.mark.parametrize("kwargs, needle", [
    (dict(alphabet="aab"), "2 symbols, each once"), (dict(alphabet="a"), "2 symbols, each once"),
    (dict(alphabet="a b"), "without spaces"), (dict(alphabet="ab\x00"), "printable"),
    (dict(alphabet="ab\t"), "without spaces"), (dict(length=0), "from 1 to 32"),
    (dict(length=33), "from 1 to 32"),
])
def test_bad_task_definitions(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        SortTask(**kwargs)


@pytest.mark.parametrize("name", list(TASKS))
@pytest.mark.parametrize("reverse", [False, True])
def test_every_named_task_sorts_like_sorted(name, reverse):
    task = dataclasses.replace(TASKS[name], reverse=reverse)
    k = len(task.alphabet)
    assert task.n_inputs == sum(k**n for n in range(task.min_length, task.length + 1))
    if task.n_inputs <= 20_000:
        inputs = task.all_inputs()
        assert len(set(inputs)) == len(inputs) == task.n_inputs
    words = task.evaluation_inputs()[::97]  # every 97th: digits10 has about 100,000
    inputs, targets = task.dataset(inputs=words)
    for x, inp, tgt in zip(words, inputs, targets):
        n = len(x)
        assert task.min_length <= n <= task.length
        assert task.decode(inp[: n + 1]) == [*x, SEP] and (inp[2 * n + 1:] == task.sep_id).all()
        answer = tgt[task.answer]
        answer = task.decode(answer[answer != IGNORE])
        assert answer == sorted(x, reverse=reverse) and task.target(x) == "".join(answer)
        assert task.decode(tgt[n: 2 * n]) == answer and (tgt[2 * n:] == IGNORE).all()


def test_any_printable_alphabet_in_pythons_order():
    task = SortTask("+-*/", 4)
    assert task.vocab == (SEP, "*", "+", "-", "/")  # Python's order: * + - /
    assert task.target("/+-*") == "*+-/" and task.describe() == "4 symbols from {*, +, -, /}"
    assert task.name == "+-*/x4" and task.file_name == "u2b-u2au2fx4"
    assert SortTask("0123456789", 4, reverse=True).name == "digits4-reverse"


def test_case_matters_only_when_the_alphabet_has_capitals():
    assert SortTask("abc").parse("CAB") == "cab" and SortTask("0123").parse("321") == "321"
    capitals = SortTask("ABCxyz", 2)
    assert capitals.parse("xA") == "xA" and capitals.target("xA") == "Ax"
    with pytest.raises(InputError, match=r"outside the alphabet \('a'\): expected 2 letters"):
        capitals.parse("ax")


def test_the_evaluation_set_is_every_input_or_a_fixed_sample_with_every_edge_case():
    small = SortTask("abc", 6)
    assert small.evaluation_inputs() == small.all_inputs()
    big = SortTask("0123456789", 10)  # 10^10 inputs
    inputs = big.evaluation_inputs(sample=1000)
    assert inputs == big.evaluation_inputs(sample=1000)  # the same set every time
    assert inputs != big.evaluation_inputs(sample=1000, seed=1)
    assert 1000 <= len(inputs) <= 1000 + len(big.edge_cases()) and len(set(inputs)) == len(inputs)
    assert set(big.edge_cases()) <= set(inputs) and all(len(x) == 10 for x in inputs)
    edges = set(big.edge_cases())
    assert {d * 10 for d in "0123456789"} <= edges  # each symbol alone
    assert any(x == "".join(sorted(x)) and len(set(x)) > 1 for x in edges)  # already sorted
    assert any(x == "".join(sorted(x, reverse=True)) and len(set(x)) > 1 for x in edges)
    for i in range(10):  # the smallest and the largest symbol at every position
        assert "9" * i + "0" + "9" * (9 - i) in edges and "0" * i + "9" + "0" * (9 - i) in edges
