"""The numbers behind the plots and the page: checked against decoding and the model's own cache."""

import pytest
import torch

from zeptogpt import InputError, ModelConfig, ZeptoGPT, decode
from zeptogpt.anatomy import dissect, lens_points, weight_list


@pytest.fixture(scope="module")
def two_layers():
    """An untrained model of two blocks: every layer must show, trained or not."""
    return ZeptoGPT(ModelConfig(n_layer=2), torch.Generator().manual_seed(0))


def per_block(cache, name, n_layer):
    """``[L, ...]``: the activation ``name`` of every block, batch axis dropped (the oracle)."""
    return torch.stack([cache[f"blocks.{i}.{name}"][0] for i in range(n_layer)])


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


@pytest.mark.parametrize("which", ["trained", "two_layers"])
def test_every_activation_is_the_models_own(request, task, which):
    model = request.getfixturevalue(which)
    L = model.config.n_layer
    a = dissect(model, task, "cab")
    assert a.n_layer == L
    ids = torch.tensor([task.encode(a.tokens[:-1])])
    logits, cache = model.run_with_cache(ids)
    pattern = per_block(cache, "pattern", L)  # [L, H, T-1, T-1]
    assert torch.tensor(a.attention).shape == pattern.shape
    assert torch.allclose(torch.tensor(a.attention), pattern)
    for name in ("attn_out", "resid_mid", "mlp_hidden", "resid_post"):
        assert torch.allclose(torch.tensor(getattr(a, name)), per_block(cache, name, L)), name
    assert torch.allclose(torch.tensor(a.logits), logits[0])
    # the stream starts as token + position embedding, row by row
    summed = torch.tensor(a.token_embed) + torch.tensor(a.pos_embed)
    assert torch.allclose(summed, torch.tensor(a.embed), atol=1e-6)
    assert torch.allclose(torch.tensor(a.embed), cache["embed"][0])
    for step in a.steps:
        pos = step.position
        assert torch.allclose(torch.tensor(step.attention), pattern[:, :, pos, : pos + 1])
        assert torch.allclose(torch.tensor(step.mlp_hidden),
                              per_block(cache, "mlp_hidden", L)[:, pos])
        # the model's own distribution: the softmax of its logits, <sep> included
        assert torch.allclose(torch.tensor(step.probs), logits[0, pos].softmax(-1))
        rows = torch.tensor(step.attention).sum(-1)  # [L, H]
        assert torch.allclose(rows, torch.ones_like(rows), atol=1e-6)  # softmax over keys so far
        assert step.chosen == a.tokens[pos + 1] != "<sep>"


@pytest.mark.parametrize("which", ["trained", "two_layers"])
def test_logit_lens_reads_every_layer_and_ends_at_the_output(request, task, which):
    model = request.getfixturevalue(which)
    L = model.config.n_layer
    a = dissect(model, task, "bca")
    assert a.lens_points == ["embed", *[f"blocks.{i}.{point}" for i in range(L)
                                        for point in ("resid_mid", "resid_post")]]
    assert a.lens_labels == [label for _, label in lens_points(L)]
    assert len(set(a.lens_labels)) == 1 + 2 * L
    ids = torch.tensor([task.encode(a.tokens[:-1])])
    _, cache = model.run_with_cache(ids)
    for step in a.steps:
        assert list(step.lens) == a.lens_points
        last = step.lens[a.lens_points[-1]]
        assert last == pytest.approx(step.probs, abs=1e-6)  # last stage = the output
        for point in a.lens_points:
            resid = cache[point][:, step.position : step.position + 1]  # [1, 1, E]
            expected = model.unembed(resid).softmax(-1)[0, 0]  # the whole vocabulary
            assert torch.allclose(torch.tensor(step.lens[point]), expected, atol=1e-6)
            assert sum(step.lens[point]) == pytest.approx(1.0, abs=1e-5)


def test_one_block_lens_labels_read_as_before():
    assert lens_points(1) == [("embed", "after embedding"),
                              ("blocks.0.resid_mid", "after attention"),
                              ("blocks.0.resid_post", "after MLP")]
    assert [label for _, label in lens_points(2)][1:3] == ["after layer 0 attention",
                                                           "after layer 0 MLP"]


@pytest.mark.parametrize("which, total", [("trained", 318), ("two_layers", 558)])
def test_weight_list_holds_every_parameter(request, which, total):
    model = request.getfixturevalue(which)
    weights = weight_list(model)
    assert sum(len(w["values"]) for w in weights) == model.config.n_params == total
    state = dict(model.named_parameters())
    assert [w["name"] for w in weights] == list(state)
    for w in weights:
        assert list(state[w["name"]].shape) == w["shape"]
        assert torch.equal(torch.tensor(w["values"]), state[w["name"]].flatten())
    assert {w["name"].split(".")[1] for w in weights if w["name"].startswith("blocks.")} == {
        str(i) for i in range(model.config.n_layer)}


@pytest.mark.parametrize("text", ["", "ab", "abcd", "abz", "x" * 5000])
def test_bad_input_is_the_tasks_one_line_error(trained, task, text):
    with pytest.raises(InputError) as caught:
        dissect(trained, task, text)
    with pytest.raises(InputError) as expected:
        task.parse(text)
    assert str(caught.value) == str(expected.value)
    assert "\n" not in str(caught.value)
