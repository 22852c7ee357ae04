"""The engine against its oracle, the reference network: logits, attention and gradients."""

import itertools
import random

import pytest
import torch
import torch.nn.functional as F

from zeptogpt import ModelConfig, SortTask, ZeptoGPT, engine
from zeptogpt.config import VARIANTS, variant_config
from zeptogpt.training import initial_weights


def stacked(models: list[ZeptoGPT]) -> dict[str, torch.Tensor]:
    """The models' weights stacked along a new first axis, as training holds them."""
    names = [n for n, _ in models[0].named_parameters()]
    return {n: torch.stack([dict(m.named_parameters())[n] for m in models]) for n in names}


def random_configs(n: int) -> list[ModelConfig]:
    """Configs the variants table does not name: other vocabularies, contexts, widths, heads."""
    rng = random.Random(0)
    configs = []
    for _ in range(n):
        H = rng.choice([1, 2, 3])
        configs.append(ModelConfig(vocab_size=rng.randint(2, 6), block_size=rng.randint(3, 9),
                                   n_embd=H * rng.randint(1, 4), n_head=H,
                                   mlp_mult=rng.randint(1, 3), pos_embed=rng.random() < 0.5))
    return configs


def knob_configs() -> list[ModelConfig]:
    """Every architecture knob past the seed's at each of its values at least once, mixed."""
    return [
        ModelConfig(n_embd=4, n_head=1, head_dim=3, mlp_width=0, norm="none", pos_embed=False,
                    tie_qk=True),
        ModelConfig(n_embd=3, n_head=2, head_dim=2, mlp_width=5, norm="rmsnorm",
                    pos_embed=False, sinusoidal=True, tie_vo=True),
        ModelConfig(vocab_size=5, block_size=9, n_embd=5, n_head=1, norm="rmsnorm-fixed",
                    tie_unembed=False, tie_qk=True, tie_vo=True),
        ModelConfig(n_embd=4, n_head=2, mlp_width=2, norm="layernorm-fixed", pos_embed=False,
                    sinusoidal=True, tie_unembed=False),
    ]


CONFIGS = [variant_config(name) for name in VARIANTS] + random_configs(6) + knob_configs()
IDS = list(VARIANTS) + [f"random{i}" for i in range(6)] + [f"knobs{i}" for i in range(4)]


def batch(config: ModelConfig, n: int = 5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(config.vocab_size, (n, config.block_size), generator=g)  # [B, T]


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_logits_and_patterns_are_the_references(config):
    models = [ZeptoGPT(config, torch.Generator().manual_seed(s)) for s in range(3)]
    idx = batch(config)
    T = idx.shape[1]
    for start in sorted({0, 1, T // 2, T - 1}):
        out, pattern = engine.logits(stacked(models), config, idx, start, with_pattern=True)
        for k, model in enumerate(models):
            expected, cache = model.run_with_cache(idx)
            torch.testing.assert_close(out[k], expected[:, start:], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(pattern[k], cache["blocks.0.pattern"][:, :, start:],
                                       atol=1e-6, rtol=1e-5)


def answer_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, -2), targets.flatten())


@pytest.mark.parametrize("scale", [1, 10], ids=["usual weights", "scores past float32"])
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_gradients_are_the_references(config, scale):
    """Every weight's gradient of a loss on the last positions, through the engine (with its
    written-out derivatives) and through the reference by autograd. Query and key weights ten
    times their size put scores 100 times apart, which takes some queries to float64."""
    model = ZeptoGPT(config, torch.Generator().manual_seed(1))
    with torch.no_grad():
        attn = model.blocks[0].attn
        attn.W_Q.mul_(scale)
        if attn.W_K is not None:  # a tied W_K is W_Q, scaled already
            attn.W_K.mul_(scale)
    idx = batch(config, 8)
    start = config.block_size // 2
    targets = batch(config, 8, seed=1)[:, start:]
    params = {n: p.detach()[None].requires_grad_() for n, p in model.named_parameters()}
    ours = torch.autograd.grad(answer_loss(engine.logits(params, config, idx, start)[0], targets),
                               list(params.values()))
    theirs = torch.autograd.grad(answer_loss(model(idx)[:, start:], targets),
                                 list(model.parameters()))
    for name, a, b in zip(params, ours, theirs, strict=True):
        assert torch.isfinite(a).all(), name
        torch.testing.assert_close(a[0], b, atol=1e-5 * scale**2, rtol=1e-4, msg=name)


def test_scores_past_float32s_range_still_give_the_references_outputs():
    """Each query's softmax is summed from e^(score - the best score of its query pair). If
    all of a query's keys score ~87 below that best, float32 gives 0 / 0; the engine then sums
    in float64. Query and key weights 10 times their usual size take some queries there."""
    model = ZeptoGPT(ModelConfig(), torch.Generator().manual_seed(0))
    attn = model.blocks[0].attn
    with torch.no_grad():
        attn.W_Q.mul_(10), attn.W_K.mul_(10)
    idx = SortTask().dataset("answer")[0]  # [27, 6]
    logits, cache = model.run_with_cache(idx)
    T, start = 6, 3
    scores = ((attn.W_Q.shape[-1]) ** -0.5 * torch.einsum(  # [B, H, T, T]
        "bhqd,bhkd->bhqk", *(torch.einsum("bte,hed->bhtd", model.blocks[0].ln1(
            model.W_E[idx] + model.W_pos[:T]), W) for W in (attn.W_Q, attn.W_K))))
    scores = scores[..., start:, :].masked_fill(
        torch.ones(T, T, dtype=torch.bool).triu(1)[start:], float("-inf"))  # [B, H, S, T]
    best = scores.amax(-1)  # [B, H, S]: each query's best key
    pair_best = torch.full((4, 3, 2), float("-inf"))  # [V, S, H]: best of each query pair
    for b, s in itertools.product(range(27), range(3)):
        v = idx[b, start + s]
        pair_best[v, s] = torch.maximum(pair_best[v, s], best[b, :, s])
    gap = pair_best[idx[:, start:], torch.arange(3)].mT - best  # [B, H, S]
    assert gap.max() > 90  # the premise: float32 alone would fail here
    params = {n: p.detach()[None] for n, p in model.named_parameters()}
    out, pattern = engine.logits(params, model.config, idx, start, with_pattern=True)
    # scores 100 times the usual size carry 100 times the rounding, in both computations
    torch.testing.assert_close(out[0], logits[:, start:], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(pattern[0], cache["blocks.0.pattern"][:, :, start:],
                               atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("order", ["as listed", "reversed"])
def test_pairing_names_each_key_query_combination_once(order):
    """Oracle: walk every (key position, query position, sequence) of the 27 inputs. In
    reverse order, the same shape must not get the remembered answer for the first order."""
    idx, start = SortTask().dataset("answer")[0], 3  # [27, 6], queries from <sep> on
    idx = idx.flip(0) if order == "reversed" else idx
    (B, T), S, V = idx.shape, idx.shape[1] - start, 4
    key = idx.mT * T + torch.arange(T)[:, None]  # [T, B]: token v at position t is v * T + t
    query = idx.mT[start:] * S + torch.arange(S)[:, None]  # [S, B]
    pair = engine.pairing(key, query, V * S)
    U = len(pair.key)
    assert len(set(zip(pair.key.tolist(), pair.query.tolist()))) == U  # each combination once
    for t, s, b in itertools.product(range(T), range(S), range(B)):
        u = int(pair.slot[t, s, b])
        if t > start + s:  # a later key: no combination
            assert u == U
        else:
            assert (pair.key[u], pair.query[u]) == (key[t, b], query[s, b])
            assert pair.sums[u, s * B + b] == 1
    # each query sums exactly its own keys: every earlier position and its own
    assert pair.sums.sum(0).tolist() == [start + s + 1 for s in range(S) for _ in range(B)]


def test_divisions_written_out_derivative_is_the_derivative():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 2, 4, 5, generator=g, dtype=torch.float64)  # [K, H, D, N]
    b = torch.rand(3, 2, 1, 5, generator=g, dtype=torch.float64) + 0.1  # [K, H, 1, N]
    assert torch.autograd.gradcheck(engine.Divide.apply, (a.requires_grad_(), b.requires_grad_()))


def test_the_engine_refuses_what_it_does_not_cover():
    config = ModelConfig(n_layer=2)
    assert not engine.covers(config) and engine.covers(ModelConfig())
    with pytest.raises(ValueError, match="one block"):
        engine.logits(initial_weights(ZeptoGPT(config), [0]), config, batch(config), 0)
