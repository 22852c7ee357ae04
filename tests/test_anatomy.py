"""The numbers behind the plots and the page: checked against decoding and the model's own cache."""

import re

import pytest
import torch

from zeptogpt import InputError, ModelConfig, ZeptoGPT, decode
from zeptogpt.anatomy import dissect, lens_points, step_sentence, weight_list


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


# --- each step's attribution and its sentence ---------------------------------------------------

@pytest.mark.parametrize("which", ["trained", "two_layers"])
def test_each_step_carries_every_parts_share_of_the_chosen_logit(request, task, which):
    """Oracle: the model's own logits (the shares add up to them) and one call of attribute on
    the decoded sequence, read at the step's position and chosen token."""
    from zeptogpt.attribution import attribute, part_names

    model = request.getfixturevalue(which)
    a = dissect(model, task, "cba")
    assert a.parts == part_names(model)
    ids = torch.tensor([task.encode(a.tokens)])  # [1, T]
    logits, shares = attribute(model, ids[:, :-1])
    for step in a.steps:
        chosen = a.vocab.index(step.chosen)
        assert list(step.attribution) == a.parts
        assert sum(step.attribution.values()) == pytest.approx(step.logits[chosen], abs=1e-4)
        assert step.logits[chosen] == pytest.approx(float(logits[0, step.position, chosen]))
        for name, share in step.attribution.items():
            assert share == pytest.approx(float(shares[name][0, step.position, chosen]))


SENTENCE = re.compile(
    r"Step (?P<step>\d+) picks (?P<c>\S+): (?P<head>(?:layer \d+ )?head \d+) puts "
    r"(?P<w>\d\.\d\d) of its weight on the (?:(?P<count>\w+) )?(?P<t>\S+?)(?:'s)? "
    r"\(positions? (?P<where>[\d, ]+)\) and adds (?P<share>[+−]\d+\.\d) to (?P=c)'s logit of "
    r"(?P<logit>−?\d+\.\d)(?P<rest>(?:; [^;]+)*)\.")


def number(text):
    return float(text.replace("−", "-"))


def check_sentence(model, task, text, k):
    """Every number of step k's sentence against the model: its own attention pattern, its
    logit, and each part's share (attribute), and the parts left out add less than 0.05."""
    from zeptogpt.attribution import attribute

    a = dissect(model, task, text)
    sentence = step_sentence(a, k)
    m = SENTENCE.fullmatch(sentence)
    assert m, sentence
    step = a.steps[k]
    pos, c = step.position, step.chosen
    assert (int(m["step"]), m["c"]) == (k + 1, c)
    ids = torch.tensor([task.encode(a.tokens)])
    with torch.no_grad():
        _, cache = model.run_with_cache(ids[:, :-1])
    logits, shares = attribute(model, ids[:, :-1])
    chosen = a.vocab.index(c)
    share = {name: float(v[0, pos, chosen]) for name, v in shares.items()}
    assert number(m["logit"]) == pytest.approx(float(logits[0, pos, chosen]), abs=0.051)
    # the head named is the one that adds most; the token named takes most of its weight
    layer, head = (int(x) for x in re.findall(r"\d+", m["head"])) if "layer" in m["head"] else (
        0, int(m["head"].split()[-1]))
    heads = {(i, h): share[f"L{i}H{h}"] for i in range(model.config.n_layer)
             for h in range(model.config.n_head)}
    assert heads[layer, head] == max(heads.values())
    assert number(m["share"]) == pytest.approx(heads[layer, head], abs=0.051)
    row = cache[f"blocks.{layer}.pattern"][0, head, pos, : pos + 1]  # [pos + 1]
    where = [i for i in range(pos + 1) if a.tokens[i] == m["t"]]
    assert [int(x) for x in m["where"].split(", ")] == where
    per_token = {t: float(row[[i for i in range(pos + 1) if a.tokens[i] == t]].sum())
                 for t in set(a.tokens[: pos + 1])}
    assert per_token[m["t"]] == pytest.approx(max(per_token.values()), abs=1e-6)
    assert number(m["w"]) == pytest.approx(per_token[m["t"]], abs=0.0051)
    # every other part, as said: said ones to 0.05, the others under 0.05 each
    said = dict(re.findall(r"; (.+?) adds? ([+−]\d+\.\d)", m["rest"]))
    labels = {f"L{i}H{h}": (f"layer {i} head {h}" if model.config.n_layer > 1 else f"head {h}")
              for i, h in heads}
    labels |= {f"L{i}MLP": (f"layer {i}'s MLP" if model.config.n_layer > 1 else "the MLP")
               for i in range(model.config.n_layer)}
    groups = {labels[p]: share[p] for p in share if p in labels and labels[p] != m["head"]}
    embeddings = "the embeddings" if "pos" in share else "the token embedding"
    groups[embeddings] = share["embed"] + share.get("pos", 0.0)
    groups["ln_f's bias"] = share["bias"]
    for label, v in groups.items():
        if label in said:
            assert number(said[label]) == pytest.approx(v, abs=0.051), label
        else:
            assert abs(v) < 0.051, label
    assert set(said) <= set(groups)
    return sentence


@pytest.mark.parametrize("which", ["trained", "two_layers", "hand_coded"])
@pytest.mark.parametrize("text", ["caa", "bca", "abb"])
def test_each_steps_sentence_says_the_models_numbers(request, task, which, text):
    model = request.getfixturevalue(which)
    for k in range(task.length):
        check_sentence(model, task, text, k)


@pytest.fixture(scope="module")
def hand_coded(task):
    """No MLP, no norm, no positions: the sentence has no MLP, no bias and one embedding."""
    from zeptogpt.handcoded import sorter

    return sorter(task)


def test_the_sorting_head_is_named_at_the_last_step(trained, task):
    """At caa's last step one head looks at the c, the letter not yet written: the sentence
    says so (the weight itself is checked against the pattern above)."""
    sentence = step_sentence(dissect(trained, task, "caa"), 2)
    assert sentence.startswith("Step 3 picks c: head ") and "on the c (position 0)" in sentence


def test_a_changed_model_changes_the_sentence(trained, task):
    import copy

    changed = copy.deepcopy(trained)
    top = re.search(r"head (\d)", step_sentence(dissect(trained, task, "caa"), 2))[1]
    with torch.no_grad():
        changed.blocks[0].attn.W_O[int(top)] *= 0.5  # that head writes half as much
    before = [step_sentence(dissect(trained, task, "caa"), k) for k in range(3)]
    after = [check_sentence(changed, task, "caa", k) for k in range(3)]
    assert all(b != a for b, a in zip(before, after))


def test_numbers_are_rounded_as_javascripts_tofixed():
    """Halves round up, on the float's exact value (Python's format rounds them to even)."""
    from zeptogpt.anatomy import _fixed, _signed

    assert [_fixed(v, 2) for v in (0.125, 0.375, 1.005, 0.0)] == ["0.13", "0.38", "1.00", "0.00"]
    assert [_fixed(v, 1) for v in (0.25, 2.45, 9.96)] == ["0.3", "2.5", "10.0"]
    assert format(0.125, ".2f") == "0.12"  # what the page would not print
    assert (_signed(-0.44), _signed(3.25), _signed(0.0)) == ("−0.4", "+3.3", "+0.0")
