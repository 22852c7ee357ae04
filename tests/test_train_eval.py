import time

import pytest
import torch

from zeptogpt import ModelConfig, Recipe, SortTask, ZeptoGPT, decode, evaluate, format_trace, train
from zeptogpt.evaluation import greedy
from zeptogpt.training import per_model_loss


def test_trained_default_sorts_every_triple_like_sorted(task, trained):
    result = decode(trained, task, task.all_inputs())
    assert result.outputs == ["".join(sorted(x)) for x in task.all_inputs()]
    ev = evaluate(trained, task)
    assert (ev.correct, ev.total) == (27, 27)
    assert str(ev).splitlines()[-1] == "Model accuracy on 27 triples: 27/27"


def test_solved_means_confident(task, trained):
    probs = decode(trained, task, task.all_inputs()).probs  # [N, L, V], <sep> included
    letters = probs[..., 1:] / probs[..., 1:].sum(-1, keepdim=True)  # <sep> forbidden, as training
    assert letters.max(-1).values.min() >= 0.9
    assert probs.max(-1).values.min() >= 0.8  # and the model's own distribution agrees


def test_sep_is_never_emitted_after_the_separator(task):
    model = ZeptoGPT(ModelConfig(), torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.W_E[task.sep_id] *= 50  # an untrained model that would rather say <sep>
    raw = model(torch.tensor([task.encode("caa") + [task.sep_id]]))[0, -1]
    assert int(raw.argmax()) == task.sep_id
    result = decode(model, task, task.all_inputs())
    assert (result.ids[:, task.length + 1:] != task.sep_id).all()
    # the probabilities are still the model's own: <sep> often the likeliest, but never chosen
    assert (result.probs.argmax(-1) == task.sep_id).float().mean() > 0.5
    torch.testing.assert_close(result.probs.sum(-1), torch.ones(result.probs.shape[:2]))


def test_greedy_picks_the_first_best_letter_never_sep():
    g = torch.Generator().manual_seed(0)
    logits = torch.randint(-2, 3, (200, 4), generator=g).float()  # [N, V], many ties
    logits[::3, 0] = 9.0  # <sep> the highest: never picked
    for row, pick in zip(logits.tolist(), greedy(logits).tolist()):
        letters = row[1:]
        assert pick == 1 + letters.index(max(letters))
    # the same over an outer axis, as training reads it
    assert torch.equal(greedy(logits.T[None], dim=1)[0], greedy(logits))


def test_the_verdict_counts_what_decoding_sorts(task):
    """Training's correct count and margin at its verdict equal decoding's count and the lowest
    teacher-forced answer probability of the same weights, after 0 to 15 steps (counts vary)."""
    seen = set()
    for steps in (0, 3, 8, 15):
        result = train(task, ModelConfig(), Recipe(max_steps=steps), seeds=range(8))
        inputs, targets = task.dataset()
        for model, r in zip(result.models, result.results):
            assert r.correct == evaluate(model, task).correct
            letters = model(inputs)[:, task.answer, 1:].softmax(-1)  # [N, L, V-1] <sep> forbidden
            answer = letters.gather(-1, targets[:, task.answer, None] - 1)  # [N, L, 1]
            torch.testing.assert_close(r.margin, float(answer.min()))
            seen.add(r.correct)
    assert len(seen) >= 4  # the check saw models that sort anywhere from none to most inputs


def test_same_seed_gives_bit_identical_weights(task):
    a = train(task, ModelConfig(), Recipe(max_steps=30), seeds=[3]).models[0]
    b = train(task, ModelConfig(), Recipe(max_steps=30), seeds=[3]).models[0]
    c = train(task, ModelConfig(), Recipe(max_steps=30), seeds=[4]).models[0]
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.blocks[0].attn.W_Q, c.blocks[0].attn.W_Q)


def test_training_stops_when_solved_or_at_the_limit(task):
    before = time.perf_counter()
    limited = train(task, ModelConfig(), Recipe(max_steps=5)).results[0]
    assert 0 <= limited.seconds <= time.perf_counter() - before  # a duration, within the call
    assert (limited.solved, limited.steps) == (False, 5)
    assert len(limited.log) == 6  # steps 0..5, each logged
    solved = train(task, ModelConfig()).results[0]
    assert solved.solved and solved.steps < 2000
    assert [s for s, _, _ in solved.log] == list(range(solved.steps + 1))
    assert solved.log[-1][2] == 27 and solved.margin >= 0.9


def test_the_seed_objective_and_sampling_still_train(task):
    for recipe in (Recipe(objective="full"), Recipe(batch_size=128)):
        r = train(task, ModelConfig(), recipe).results[0]
        assert r.solved, recipe


def test_counted_loss_is_the_loss_of_the_drawn_minibatch(task):
    """Sampling weighs the full pass's per-sequence losses by how often each sequence was drawn;
    the oracle is the plain loss of the minibatch itself, repeats included."""
    g = torch.Generator().manual_seed(0)
    models = [ZeptoGPT(ModelConfig(), torch.Generator().manual_seed(s)) for s in (0, 1)]
    for objective in ("answer", "full"):
        inputs, targets = task.dataset(objective)
        logits = torch.stack([m(inputs) for m in models])  # [2, N, T, V]
        batches = [torch.randint(len(inputs), (40,), generator=g) for _ in models]
        counts = torch.stack([b.bincount(minlength=len(inputs)) for b in batches])  # [2, N]
        counted = per_model_loss(logits, targets, counts)
        for k, batch in enumerate(batches):
            alone = per_model_loss(logits[k : k + 1, batch], targets[batch])[0]
            torch.testing.assert_close(counted[k], alone)
        assert not torch.allclose(counted, per_model_loss(logits, targets))  # weights matter


def test_trace_has_the_seed_format(task, trained):
    lines = format_trace(trained, task, "caa").splitlines()
    assert lines[0] == "start [c, a, a, <sep>]  (heads=2, head_dim=3)"
    assert lines[1].startswith("  step1: p(a)=") and lines[1].endswith("-> 'a'")
    assert lines[2].startswith("    head0: [c:") and lines[3].startswith("    head1: [c:")
    assert lines[-1] == "  full [c, a, a, <sep>, a, a, c] -> outputs [a, a, c]"
    # every attention row is a distribution over the tokens so far
    for line in lines:
        if line.strip().startswith("head"):
            weights = [float(item.split(":")[1]) for item in line.split("[")[1][:-1].split(", ")]
            assert abs(sum(weights) - 1) < 0.03


def trace_steps(trace: str) -> list[dict[str, float]]:
    """Each step line's printed probabilities: ``[{"a": 0.869, "b": 0.007, "c": 0.058}, ...]``."""
    steps = []
    for line in trace.splitlines():
        if line.startswith("  step"):
            items = line.split(": ", 1)[1].split(" -> ")[0].split(", ")  # ["p(a)=0.869", ...]
            steps.append({item[2:item.index(")")]: float(item.split("=")[1]) for item in items})
    return steps


def test_trace_prints_the_models_own_distribution_sep_included(task):
    """The printed p(letter) are the softmax over the whole vocabulary, as the seed printed them:
    with probability on <sep> they add up to less than 1. Oracle: the model's logits on the
    traced sequence, softmaxed here."""
    model = ZeptoGPT(ModelConfig(), torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.W_E[task.sep_id] *= 2  # untrained, and <sep> gets a fair share
    trace = format_trace(model, task, "caa")
    full = trace.splitlines()[-1].split("[")[1].split("]")[0].split(", ")  # the decoded tokens
    logits = model(torch.tensor([task.encode(full[:-1])]))[0].detach()  # [T-1, V]
    printed = trace_steps(trace)
    assert len(printed) == task.length
    for s, shown in enumerate(printed):
        probs = logits[task.length + s].softmax(-1)  # [V], <sep> included
        assert float(probs[task.sep_id]) > 0.05  # not negligible, so the letters fall short of 1
        assert sum(shown.values()) < 1 - 0.04
        for letter, p in shown.items():
            assert p == pytest.approx(float(probs[task.vocab.index(letter)]), abs=5e-4)
        assert full[task.length + 1 + s] == max(shown, key=shown.get)  # greedy: likeliest letter


def test_trace_of_a_two_layer_model_shows_every_layers_heads(task):
    """Oracle: the model's own cache on the traced sequence, layer by layer."""
    model = ZeptoGPT(ModelConfig(n_layer=2), torch.Generator().manual_seed(0))
    lines = format_trace(model, task, "bca").splitlines()
    assert lines[0] == "start [b, c, a, <sep>]  (layers=2, heads=2, head_dim=3)"
    full = lines[-1].split("[")[1].split("]")[0].split(", ")
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.tensor([task.encode(full[:-1])]))
    rows = [line for line in lines if line.startswith("    ")]
    assert len(rows) == task.length * 2 * 2  # steps x layers x heads
    names = [f"    layer{i} head{h}: [" for i in range(2) for h in range(2)]
    for s in range(task.length):
        pos = task.length + s
        for row, name, (i, h) in zip(rows[4 * s : 4 * s + 4], names,
                                     [(i, h) for i in range(2) for h in range(2)]):
            assert row.startswith(name)
            expected = ", ".join(f"{t}:{float(w):.2f}" for t, w in
                                 zip(full[: pos + 1], cache[f"blocks.{i}.pattern"][0, h, pos]))
            assert row == f"{name}{expected}]"
    lines = format_trace(model, task, "caa").splitlines()
    assert lines[1].startswith("  step1: p(a)=")


def test_our_adam_is_torch_adamw_for_every_seed_alone():
    """Oracle: torch.optim.AdamW on one seed's slice, against ours over the whole stack, with
    seeds leaving halfway (their moments must leave with them)."""
    from zeptogpt.training import Adam

    g = torch.Generator().manual_seed(0)
    stacked = {"a": torch.randn(4, 3, 2, generator=g), "b": torch.randn(4, 5, generator=g)}
    grads = [{name: torch.randn(w.shape, generator=g) for name, w in stacked.items()}
             for _ in range(10)]
    ours = Adam({n: w.clone().requires_grad_(True) for n, w in stacked.items()},
                betas=(0.8, 0.85), weight_decay=0.03)
    kept = torch.tensor([0, 2])
    for t, grad in enumerate(grads):
        if t == 5:  # seeds 1 and 3 leave
            for p in ours.params.values():
                p.grad = torch.zeros_like(p)  # keep() carries gradients along too
            ours.keep(kept)
        rows = kept if t >= 5 else torch.arange(4)
        for name, p in ours.params.items():
            p.grad = grad[name][rows]
        ours.step(lr=0.03)
    for seed, row in ((0, 0), (2, 1)):
        alone = {n: w[seed].clone().requires_grad_(True) for n, w in stacked.items()}
        oracle = torch.optim.AdamW(alone.values(), lr=0.03, betas=(0.8, 0.85), weight_decay=0.03)
        for grad in grads:
            for name, p in alone.items():
                p.grad = grad[name][seed]
            oracle.step()
        for name, p in alone.items():
            torch.testing.assert_close(ours.params[name][row], p.detach())


@pytest.mark.parametrize("task", [SortTask("abc", 3, reverse=True), SortTask("0123", 3),
                                  SortTask("+-*/", 2, reverse=True)], ids=lambda t: t.name)
def test_other_tasks_train_and_decode_like_sorted(task):
    config = ModelConfig(vocab_size=task.vocab_size, block_size=task.seq_len)
    result = train(task, config, seeds=[0])
    assert result.results[0].solved
    outputs = decode(result.models[0], task, task.all_inputs()).outputs
    assert outputs == ["".join(sorted(x, reverse=task.reverse)) for x in task.all_inputs()]
    assert evaluate(result.models[0], task).correct == task.n_inputs


def test_an_evaluation_of_many_inputs_prints_only_the_wrong_rows():
    from zeptogpt.evaluation import ROWS_SHOWN, Evaluation

    n = ROWS_SHOWN + 1
    inputs = [f"{i:03d}" for i in range(n)]
    wrong = list(inputs)
    wrong[7] = "xxx"
    text = str(Evaluation(inputs, wrong, inputs)).splitlines()
    assert text == ["  007 -> xxx   target 007  ✗", f"Model accuracy on {n} triples: {n - 1}/{n}"]
    assert len(str(Evaluation(inputs[:-1], wrong[:-1], inputs[:-1])).splitlines()) == n
