"""The numbers behind the plots and the page: checked against decoding and the model's own cache."""

import pytest
import torch

from zeptogpt import InputError, decode
from zeptogpt.anatomy import LENS_POINTS, dissect, weight_list
from zeptogpt.evaluation import letter_probs


@pytest.mark.parametrize("text", ["caa", "BAC", "ccb", "abc"])
def test_dissect_agrees_with_decoding_and_sorted(trained, task, text):
    a = dissect(trained, task, text)
    d = decode(trained, task, [text.lower()])
    assert a.output == d.outputs[0] == "".join(sorted(text.lower()))
    assert a.tokens == task.decode(d.ids[0])
    assert [s.chosen for s in a.steps] == list(a.output)
    for s, step in enumerate(a.steps):
        assert step.position == task.length + s
        assert torch.allclose(torch.tensor(step.probs), d.probs[0, s])


def test_every_activation_is_the_models_own(trained, task):
    a = dissect(trained, task, "cab")
    ids = torch.tensor([task.encode(a.tokens[:-1])])
    logits, cache = trained.run_with_cache(ids)
    assert torch.allclose(torch.tensor(a.attention), cache["pattern"][0])
    assert torch.allclose(torch.tensor(a.mlp_hidden), cache["mlp_hidden"][0])
    assert torch.allclose(torch.tensor(a.logits), logits[0])
    # the stream starts as token + position embedding, row by row
    summed = torch.tensor(a.token_embed) + torch.tensor(a.pos_embed)
    assert torch.allclose(summed, torch.tensor(a.embed), atol=1e-6)
    assert torch.allclose(torch.tensor(a.embed), cache["embed"][0])
    for step in a.steps:
        rows = torch.tensor([sum(head) for head in step.attention])
        assert torch.allclose(rows, torch.ones(len(rows)), atol=1e-6)  # softmax over keys so far


def test_logit_lens_ends_at_the_output_and_reads_each_stage(trained, task):
    a = dissect(trained, task, "bca")
    ids = torch.tensor([task.encode(a.tokens[:-1])])
    _, cache = trained.run_with_cache(ids)
    stages = dict(embed="embed", attn="resid_mid", mlp="resid_post")
    for step in a.steps:
        assert step.lens["mlp"] == pytest.approx(step.probs, abs=1e-6)  # last stage = the output
        for point in LENS_POINTS:
            resid = cache[stages[point]][:, step.position : step.position + 1]  # [1, 1, E]
            expected = letter_probs(trained.unembed(resid), task.sep_id)[0, 0]
            assert torch.allclose(torch.tensor(step.lens[point]), expected, atol=1e-6)
            assert step.lens[point][task.sep_id] == 0.0  # <sep> is forbidden after the separator


def test_weight_list_holds_every_parameter(trained):
    weights = weight_list(trained)
    assert sum(len(w["values"]) for w in weights) == trained.config.n_params == 318
    state = dict(trained.named_parameters())
    for w in weights:
        assert list(state[w["name"]].shape) == w["shape"]
        assert torch.equal(torch.tensor(w["values"]), state[w["name"]].flatten())


@pytest.mark.parametrize("text", ["", "ab", "abcd", "abz", "x" * 5000])
def test_bad_input_is_the_tasks_one_line_error(trained, task, text):
    with pytest.raises(InputError) as caught:
        dissect(trained, task, text)
    with pytest.raises(InputError) as expected:
        task.parse(text)
    assert str(caught.value) == str(expected.value)
    assert "\n" not in str(caught.value)
