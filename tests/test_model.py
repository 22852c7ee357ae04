"""The reference network: its size, its wiring, and its outputs against a per-position loop."""

import math

import pytest
import torch
import torch.nn.functional as F

from zeptogpt import VARIANTS, ModelConfig, ZeptoGPT
from zeptogpt.config import variant_config, variant_name

EXPECTED = {"e6": 318, "e6-nopos": 276, "e4-nopos": 136, "e8-mlp2": 648}


@pytest.mark.parametrize("n_layer", [1, 2, 3])
@pytest.mark.parametrize("name", EXPECTED)
def test_parameter_counts_match_the_seed_and_the_module(name, n_layer):
    config = ModelConfig(**VARIANTS[name], n_layer=n_layer)
    model = ZeptoGPT(config)
    counted = sum(p.numel() for p in model.parameters())
    assert config.n_params == sum(config.param_breakdown().values()) == counted
    if n_layer == 1:
        assert counted == EXPECTED[name] and variant_name(config) == name
    else:
        assert variant_name(config) == f"{name}-{n_layer}layers"
    # each block adds its own group of rows, and the groups add up to one block's share
    block_rows = [n for n in config.param_breakdown() if n.startswith("block ")]
    assert len(block_rows) == (0 if n_layer == 1 else 3 * n_layer)


def test_breakdown_is_the_seed_table():
    assert ModelConfig().param_breakdown() == {
        "token_embed": 24, "pos_embed": 42, "attn(q,k,v,proj)": 144, "mlp": 72,
        "layer_norms (2 block + final)": 36, "lm_head": 0,
    }
    assert ModelConfig().format_params().endswith("Trainable parameters: 318")
    two = ModelConfig(n_layer=2).param_breakdown()
    assert two["block 1 attn(q,k,v,proj)"] == 144 and two["final layer_norm"] == 12
    assert ModelConfig(n_layer=2).n_params == 318 + 144 + 72 + 24


def test_weights_are_named_like_the_math_per_block():
    model = ZeptoGPT(ModelConfig(n_layer=2))
    names = [n for n, _ in model.named_parameters()]
    assert names[:2] == ["W_E", "W_pos"]
    for i in range(2):
        for leaf in ("ln1.weight", "attn.W_Q", "attn.W_K", "attn.W_V", "attn.W_O", "mlp.W_in",
                     "mlp.W_out", "ln2.bias"):
            assert f"blocks.{i}.{leaf}" in names
    assert names[-2:] == ["ln_f.weight", "ln_f.bias"]


def test_lm_head_is_the_token_embedding():
    model = ZeptoGPT(ModelConfig(), torch.Generator().manual_seed(0))
    assert [n for n, p in model.named_parameters() if p.shape == (4, 6)] == ["W_E"]
    # An input made only of <sep> and 'a' still trains the rows of 'b' and 'c': only a tied
    # unembedding can carry gradient to them.
    idx = torch.tensor([[1, 1, 1, 0]])
    F.cross_entropy(model(idx)[0], torch.tensor([1, 1, 0, 1])).backward()
    assert model.W_E.grad[2:].abs().sum() > 0
    logits, cache = model.run_with_cache(idx)
    torch.testing.assert_close(logits, model.unembed(cache["blocks.0.resid_post"]))


@pytest.mark.parametrize("n_layer", [1, 2])
def test_causality_later_tokens_never_change_earlier_logits(n_layer):
    model = ZeptoGPT(ModelConfig(n_layer=n_layer), torch.Generator().manual_seed(1))
    base = torch.tensor([[3, 1, 2, 0, 1, 2, 3]])
    for j in range(1, 7):
        for token in range(4):
            changed = base.clone()
            changed[0, j] = token
            torch.testing.assert_close(model(changed)[:, :j], model(base)[:, :j], rtol=0, atol=1e-6)


def test_positions_matter_only_through_the_mask_without_pos_embed():
    """Without positions the model is permutation-blind except for causal order: the first
    position's output depends only on its own token."""
    model = ZeptoGPT(ModelConfig(pos_embed=False), torch.Generator().manual_seed(2))
    a = model(torch.tensor([[1, 2, 3]]))[0, 0]
    b = model(torch.tensor([[1]]))[0, 0]
    torch.testing.assert_close(a, b)


def test_same_generator_seed_same_weights():
    a = ZeptoGPT(ModelConfig(), torch.Generator().manual_seed(7))
    b = ZeptoGPT(ModelConfig(), torch.Generator().manual_seed(7))
    c = ZeptoGPT(ModelConfig(), torch.Generator().manual_seed(8))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.blocks[0].attn.W_Q, c.blocks[0].attn.W_Q)


@pytest.mark.parametrize("kwargs", [dict(n_embd=6, n_head=4), dict(n_embd=0), dict(mlp_mult=0),
                                    dict(n_layer=0)])
def test_bad_configs_are_refused(kwargs):
    with pytest.raises(ValueError):
        ModelConfig(**kwargs)


def per_position(model: ZeptoGPT, tokens: list[int]) -> tuple[list[list[float]], list]:
    """The network computed one position at a time in plain Python numbers: every LayerNorm,
    score, softmax and product written out, nothing shared with model.py but the weights.
    Returns each position's logits and each block's attention rows [layer][head][query][key]."""
    c = model.config
    E, H, D = c.n_embd, c.n_head, c.d_head

    def ln(norm, x):
        mean = sum(x) / E
        var = sum((a - mean) ** 2 for a in x) / E
        return [(a - mean) / math.sqrt(var + norm.eps) * w + b
                for a, w, b in zip(x, norm.weight.tolist(), norm.bias.tolist())]

    def matvec(x, W):  # x [n], W [n][m] -> [m]
        return [sum(x[i] * W[i][j] for i in range(len(x))) for j in range(len(W[0]))]

    stream = []
    for t, tok in enumerate(tokens):
        x = model.W_E[tok].tolist()
        if model.W_pos is not None:
            x = [a + b for a, b in zip(x, model.W_pos[t].tolist())]
        stream.append(x)
    patterns = []
    for block in model.blocks:
        a = block.attn
        h = [ln(block.ln1, x) for x in stream]
        rows = [[None] * len(tokens) for _ in range(H)]
        out = [[0.0] * E for _ in tokens]
        for head in range(H):
            Wq, Wk, Wv, Wo = (W[head].tolist() for W in (a.W_Q, a.W_K, a.W_V, a.W_O))
            for t in range(len(tokens)):
                q = matvec(h[t], Wq)
                scores = [sum(qi * ki for qi, ki in zip(q, matvec(h[s], Wk))) / math.sqrt(D)
                          for s in range(t + 1)]  # keys up to t only: the causal mask
                top = max(scores)
                e = [math.exp(s - top) for s in scores]
                weights = [w / sum(e) for w in e]
                rows[head][t] = weights
                z = [sum(weights[s] * matvec(h[s], Wv)[d] for s in range(t + 1))
                     for d in range(D)]
                out[t] = [o + p for o, p in zip(out[t], matvec(z, Wo))]
        stream = [[x + o for x, o in zip(xs, os)] for xs, os in zip(stream, out)]
        W_in, W_out = block.mlp.W_in.tolist(), block.mlp.W_out.tolist()
        stream = [[x + m for x, m in zip(xs, matvec([max(0.0, u) for u in
                                                      matvec(ln(block.ln2, xs), W_in)], W_out))]
                  for xs in stream]
        patterns.append(rows)
    W_E = model.W_E.tolist()
    logits = [[sum(a * b for a, b in zip(ln(model.ln_f, x), row)) for row in W_E] for x in stream]
    return logits, patterns


@pytest.mark.parametrize("config", [
    ModelConfig(), ModelConfig(pos_embed=False), ModelConfig(n_embd=8, mlp_mult=2),
    ModelConfig(n_layer=2), ModelConfig(n_embd=4, n_head=1, n_layer=3),
], ids=["e6", "e6-nopos", "e8-mlp2", "e6-2layers", "e4-h1-3layers"])
def test_the_network_is_the_per_position_computation(config):
    model = ZeptoGPT(config, torch.Generator().manual_seed(4)).requires_grad_(False)
    idx = torch.tensor([[1, 3, 2, 0, 1, 2, 3], [2, 2, 1, 0, 1, 2, 2]])
    logits, cache = model.run_with_cache(idx)
    for b, row in enumerate(idx.tolist()):
        expected, patterns = per_position(model, row)
        torch.testing.assert_close(logits[b], torch.tensor(expected), atol=1e-5, rtol=1e-5)
        for layer, rows in enumerate(patterns):
            pattern = cache[f"blocks.{layer}.pattern"][b]  # [H, T, T]
            for h, t in ((h, t) for h in range(config.n_head) for t in range(7)):
                torch.testing.assert_close(pattern[h, t, : t + 1], torch.tensor(rows[h][t]))
                assert not pattern[h, t, t + 1:].any()  # no weight on a later key


def test_the_cache_names_every_layer():
    model = ZeptoGPT(ModelConfig(n_layer=2), torch.Generator().manual_seed(0))
    logits, cache = model.run_with_cache(torch.tensor([[1, 2, 3, 0]]))
    for i in range(2):
        assert cache[f"blocks.{i}.pattern"].shape == (1, 2, 4, 4)
        assert cache[f"blocks.{i}.mlp_hidden"].shape == (1, 4, 6)
    # each block's output is the next block's input: the residual stream is one line
    block = model.blocks[1]
    again = block(cache["blocks.0.resid_post"])[0]
    torch.testing.assert_close(again, cache["blocks.1.resid_post"])
    torch.testing.assert_close(model.unembed(cache["blocks.1.resid_post"]), logits)


def test_variant_config_keeps_every_count():
    for name, count in EXPECTED.items():
        assert variant_config(name).n_params == count


# (knob, value, parameters it saves from the seed's 318, counted by hand)
KNOBS = [
    ("head_dim", 1, 144 - 4 * 6 * 2),  # two heads of width 1: Q, K, V, O are 6 × 2
    ("mlp_width", 0, 72 + 12),  # no MLP, and so no ln2 before it
    ("mlp_width", 3, 72 - 36),
    ("norm", "rmsnorm", 3 * 6),  # a gain, no bias
    ("norm", "layernorm-fixed", 36),
    ("norm", "rmsnorm-fixed", 36),
    ("norm", "none", 36),
    ("tie_qk", True, 36),
    ("tie_vo", True, 36),
    ("tie_unembed", False, -24),  # W_U costs as much as W_E
]


@pytest.mark.parametrize("knob, value, saved", KNOBS, ids=[f"{k}={v}" for k, v, _ in KNOBS])
def test_each_knob_changes_the_count_by_hand_and_the_table_is_the_module(knob, value, saved):
    config = ModelConfig(**{knob: value})
    model = ZeptoGPT(config)
    assert config.n_params == 318 - saved == sum(p.numel() for p in model.parameters())
    assert sum(config.param_breakdown().values()) == config.n_params
    assert config.format_params().endswith(f"Trainable parameters: {318 - saved}")


def test_sinusoidal_positions_are_fixed_and_uncounted():
    config = ModelConfig(pos_embed=False, sinusoidal=True)
    model = ZeptoGPT(config)
    assert config.n_params == 276 == sum(p.numel() for p in model.parameters())
    assert "W_pos" not in model.state_dict()  # rebuilt from the config, never saved
    # the paper's formula: sin and cos of t / T^(2i/E) in dimension pairs, distinct rows
    assert model.W_pos[3, 0].item() == pytest.approx(math.sin(3), abs=1e-6)
    assert model.W_pos[3, 1].item() == pytest.approx(math.cos(3), abs=1e-6)
    assert model.W_pos[2, 2].item() == pytest.approx(math.sin(2 / 7 ** (2 / 6)), abs=1e-6)
    assert len({tuple(r) for r in model.W_pos.tolist()}) == 7
    with pytest.raises(ValueError, match="not both"):
        ModelConfig(sinusoidal=True)


def test_tied_weights_are_the_ones_they_are_tied_to():
    model = ZeptoGPT(ModelConfig(tie_qk=True, tie_vo=True), torch.Generator().manual_seed(0))
    attn = model.blocks[0].attn
    W_Q, W_K, W_V, W_O = attn.weights()
    assert W_K is attn.W_Q and torch.equal(W_O, attn.W_V.mT)
    # keys through the queries' weights make every head's scores symmetric in (query, key)
    x = torch.randn(1, 5, 6)
    q = torch.einsum("bte,hed->bhtd", x, W_Q)
    scores = q @ q.mT
    assert torch.allclose(scores, scores.mT)
    assert "blocks.0.attn.W_K" not in dict(model.named_parameters())


def test_norms_are_pytorchs():
    for norm, kind in [("layernorm", torch.nn.LayerNorm), ("rmsnorm", torch.nn.RMSNorm),
                       ("layernorm-fixed", torch.nn.LayerNorm), ("none", torch.nn.Identity)]:
        model = ZeptoGPT(ModelConfig(norm=norm))
        assert type(model.ln_f) is kind and type(model.blocks[0].ln1) is kind


def test_attention_only_block_adds_nothing_after_attention():
    model = ZeptoGPT(ModelConfig(mlp_width=0), torch.Generator().manual_seed(3))
    logits, cache = model.run_with_cache(torch.tensor([[1, 2, 3, 0, 1]]))
    assert torch.equal(cache["blocks.0.resid_post"], cache["blocks.0.resid_mid"])
    assert cache["blocks.0.mlp_hidden"].shape == (1, 5, 0)
    torch.testing.assert_close(logits, model.unembed(cache["blocks.0.resid_mid"]))


def test_untied_unembedding_is_its_own_weight():
    model = ZeptoGPT(ModelConfig(tie_unembed=False), torch.Generator().manual_seed(4))
    x = torch.randn(1, 2, 6)
    torch.testing.assert_close(model.unembed(x), model.ln_f(x) @ model.W_U)
    assert model.W_U.shape == (6, 4)


@pytest.mark.parametrize("kwargs", [dict(head_dim=-1), dict(mlp_width=-2), dict(norm="batch"),
                                    dict(n_embd=5, n_head=2)])
def test_bad_knobs_are_refused(kwargs):
    with pytest.raises(ValueError):
        ModelConfig(**kwargs)
    # a head width of its own frees E from dividing by H
    assert ModelConfig(n_embd=5, n_head=2, head_dim=3).d_head == 3
