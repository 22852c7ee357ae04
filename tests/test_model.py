import itertools

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state

from zeptogpt import VARIANTS, ModelConfig, ZeptoGPT
from zeptogpt.model import _Divide, _LayerNorm, pairing, variant_config, variant_name
from zeptogpt.task import SortTask

EXPECTED = {"e6": 318, "e6-nopos": 276, "e4-nopos": 136, "e8-mlp2": 648}


@pytest.mark.parametrize("name", EXPECTED)
def test_parameter_counts_match_the_seed_and_the_module(name):
    config = ModelConfig(**VARIANTS[name])
    model = ZeptoGPT(config)
    counted = sum(p.numel() for p in model.parameters())
    assert config.n_params == sum(config.param_breakdown().values()) == counted == EXPECTED[name]
    assert variant_name(config) == name


def test_breakdown_is_the_seed_table():
    assert ModelConfig().param_breakdown() == {
        "token_embed": 24, "pos_embed": 42, "attn(q,k,v,proj)": 144, "mlp": 72,
        "layer_norms (2 block + final)": 36, "lm_head": 0,
    }
    assert ModelConfig().format_params().endswith("Trainable parameters: 318")


def test_lm_head_is_the_token_embedding():
    model = ZeptoGPT(ModelConfig(), torch.Generator().manual_seed(0))
    assert [n for n, p in model.named_parameters() if p.shape == (4, 6)] == ["W_E"]
    # An input made only of <sep> and 'a' still trains the rows of 'b' and 'c': only a tied
    # unembedding can carry gradient to them.
    idx = torch.tensor([[1, 1, 1, 0]])
    F.cross_entropy(model(idx)[0], torch.tensor([1, 1, 0, 1])).backward()
    assert model.W_E.grad[2:].abs().sum() > 0
    logits, cache = model.run_with_cache(idx)
    torch.testing.assert_close(logits, model.unembed(cache["resid_post"]))


def test_causality_later_tokens_never_change_earlier_logits():
    model = ZeptoGPT(ModelConfig(), torch.Generator().manual_seed(1))
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


def test_stacked_weights_run_each_model_through_the_same_code():
    config = ModelConfig()
    models = [ZeptoGPT(config, torch.Generator().manual_seed(s)) for s in range(3)]
    params, _ = stack_module_state(models)
    idx = torch.tensor([[3, 1, 1, 0, 1, 1], [2, 1, 3, 0, 1, 2]])
    stacked = functional_call(models[0], params, (idx,))  # [3, B, T, V]
    for k, m in enumerate(models):
        torch.testing.assert_close(stacked[k], m(idx))


def test_a_pass_under_inference_mode_leaves_later_training_passes_working():
    """`pairing` is remembered across calls: what it made under torch.inference_mode must still
    serve a pass that autograd records."""
    model = ZeptoGPT(ModelConfig(), torch.Generator().manual_seed(3))
    idx = torch.tensor([[2, 3, 1, 0, 1, 2], [3, 3, 2, 0, 2, 3]])  # shapes no other test uses
    with torch.inference_mode():
        expected = model(idx, 3)
    logits = model(idx, 3)
    logits.sum().backward()
    torch.testing.assert_close(logits.detach(), expected)
    assert model.W_Q.grad is not None and model.W_Q.grad.abs().sum() > 0


def test_same_generator_seed_same_weights():
    a = ZeptoGPT(ModelConfig(), torch.Generator().manual_seed(7))
    b = ZeptoGPT(ModelConfig(), torch.Generator().manual_seed(7))
    c = ZeptoGPT(ModelConfig(), torch.Generator().manual_seed(8))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.W_Q, c.W_Q)


@pytest.mark.parametrize("kwargs", [dict(n_embd=6, n_head=4), dict(n_embd=0), dict(mlp_mult=0)])
def test_bad_configs_are_refused(kwargs):
    with pytest.raises(ValueError):
        ModelConfig(**kwargs)


def test_computing_from_a_later_start_gives_the_same_outputs():
    """Skipping the prompt's queries changes nothing at the positions that are computed."""
    model = ZeptoGPT(ModelConfig(), torch.Generator().manual_seed(3))
    idx = torch.tensor([[3, 1, 2, 0, 1, 2], [1, 1, 1, 0, 1, 1]])
    full, full_cache = model.run_with_cache(idx)
    for start in range(6):
        part, cache = model.run_with_cache(idx, start)
        torch.testing.assert_close(part, full[:, start:])
        torch.testing.assert_close(cache["pattern"], full_cache["pattern"][:, :, start:])
        torch.testing.assert_close(cache["resid_post"], full_cache["resid_post"][:, start:])


def textbook(model: ZeptoGPT, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The same block written the usual way, as in minGPT: every position of every sequence
    gets its own q, k and v, activations are [B, T, E], LayerNorm is PyTorch's.
    Returns the logits, the attention pattern and the scores it came from."""
    T, D = idx.shape[-1], model.config.d_head
    x = model.W_E[idx] + (model.W_pos[:T] if model.W_pos is not None else 0)  # [B, T, E]

    def ln(m, x):
        return F.layer_norm(x, x.shape[-1:], m.w, m.b, m.eps)

    h = ln(model.ln1, x)
    q, k, v = (torch.einsum("bte,hed->bhtd", h, W) for W in (model.W_Q, model.W_K, model.W_V))
    scores = q @ k.transpose(-1, -2) / D**0.5  # [B, H, T, T]: query, key
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    pattern = scores.masked_fill(future, float("-inf")).softmax(-1)  # [B, H, T, T]
    x = x + torch.einsum("bhtd,hde->bte", pattern @ v, model.W_O)
    x = x + F.relu(ln(model.ln2, x) @ model.W_in) @ model.W_out
    return ln(model.ln_f, x) @ model.W_E.T, pattern, scores


@pytest.mark.parametrize("order", ["as listed", "reversed"])
def test_pairing_names_each_key_query_combination_once(order):
    """Oracle: walk every (key position, query position, sequence) of the 27 inputs. In
    reverse order, the same shape must not get the remembered answer for the first order."""
    idx, start = SortTask().dataset("answer")[0], 3  # [27, 6], queries from <sep> on
    idx = idx.flip(0) if order == "reversed" else idx
    (B, T), S, V = idx.shape, idx.shape[1] - start, 4
    key = idx.mT * T + torch.arange(T)[:, None]  # [T, B]: token v at position t is v * T + t
    query = idx.mT[start:] * S + torch.arange(S)[:, None]  # [S, B]
    pair = pairing(key, query, V * S)
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


def test_attention_past_float32s_range_still_gives_the_textbook_outputs():
    """Each query's softmax is summed from e^(score - the best score of its query pair). If
    all of a query's keys score ~87 below that best, float32 gives 0 / 0; the model then sums
    in float64. Query and key weights 10 times their usual size take some queries there."""
    model = ZeptoGPT(ModelConfig(), torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.W_Q.mul_(10), model.W_K.mul_(10)
    idx = SortTask().dataset("answer")[0]  # [27, 6]
    expected_logits, expected_pattern, scores = textbook(model, idx)
    scores = scores[..., 3:, :].masked_fill(  # [B, H, S, T]
        torch.ones(6, 6, dtype=torch.bool).triu(1)[3:], float("-inf"))
    best = scores.amax(-1)  # [B, H, S]: each query's best key
    pair_best = torch.full((4, 3, 2), float("-inf"))  # [V, S, H]: best of each query pair
    for b, s in itertools.product(range(27), range(3)):
        v = idx[b, 3 + s]
        pair_best[v, s] = torch.maximum(pair_best[v, s], best[b, :, s])
    gap = pair_best[idx[:, 3:], torch.arange(3)].mT - best  # [B, H, S]
    assert gap.max() > 90  # the premise: float32 alone would fail here
    logits, cache = model.run_with_cache(idx)
    # scores 100 times the usual size carry 100 times the rounding, in both computations
    torch.testing.assert_close(logits, expected_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(cache["pattern"], expected_pattern, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("stack", [(), (3,)], ids=["one model", "three stacked"])
def test_layer_norms_written_out_derivative_is_the_derivative(stack):
    """gradcheck: the backward pass against finite differences of the forward, in float64."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*stack, 6, 3, 5, generator=g, dtype=torch.float64)  # [..., E, T, B]
    w, b = (torch.randn(*stack, 6, generator=g, dtype=torch.float64) for _ in range(2))
    inputs = tuple(t.requires_grad_() for t in (x, w, b))
    assert torch.autograd.gradcheck(lambda x, w, b: _LayerNorm.apply(x, w, b, 1e-5), inputs)


def test_divisions_written_out_derivative_is_the_derivative():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 2, 4, 5, generator=g, dtype=torch.float64)  # [K, H, D, N]
    b = torch.rand(3, 2, 1, 5, generator=g, dtype=torch.float64) + 0.1  # [K, H, 1, N]
    assert torch.autograd.gradcheck(_Divide.apply, (a.requires_grad_(), b.requires_grad_()))


@pytest.mark.parametrize("scale", [1, 10], ids=["usual weights", "scores past float32"])
@pytest.mark.parametrize("name", EXPECTED)
def test_gradients_are_the_textbook_transformers(name, scale):
    """Every weight's gradient of the answer loss, through the tables with their written-out
    derivatives, equals autograd's through the plain block; also with query and key weights ten
    times their size, which for e6 takes some queries' sums to float64 (test above)."""
    model = ZeptoGPT(variant_config(name), torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.W_Q.mul_(scale), model.W_K.mul_(scale)
    idx, targets = SortTask().dataset("answer")  # [27, 6] each
    losses = {
        "tables": F.cross_entropy(model(idx, 3).flatten(0, 1), targets[:, 3:].flatten()),
        "textbook": F.cross_entropy(textbook(model, idx)[0][:, 3:].flatten(0, 1),
                                    targets[:, 3:].flatten()),
    }
    grads = {way: torch.autograd.grad(loss, list(model.parameters()))
             for way, loss in losses.items()}
    for weight, ours, theirs in zip(dict(model.named_parameters()), *grads.values(), strict=True):
        assert torch.isfinite(ours).all(), weight
        torch.testing.assert_close(ours, theirs, atol=1e-5 * scale**2, rtol=1e-4, msg=weight)


@pytest.mark.parametrize("name", EXPECTED)
def test_the_tables_compute_the_textbook_transformer(name):
    """The model looks attention up in (token, position) tables and keeps activations features
    first; the outputs must be those of the plain per-position block, for every variant."""
    model = ZeptoGPT(variant_config(name), torch.Generator().manual_seed(5))
    idx = torch.tensor([[1, 3, 2, 0, 1, 2, 3], [2, 2, 1, 0, 1, 2, 2], [3, 1, 1, 0, 1, 1, 3]])
    for T in (1, 4, 7):
        logits, cache = model.run_with_cache(idx[:, :T])
        expected_logits, expected_pattern, _ = textbook(model, idx[:, :T])
        torch.testing.assert_close(logits, expected_logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(cache["pattern"], expected_pattern, atol=1e-6, rtol=1e-5)
