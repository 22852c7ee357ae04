"""The engine: many one-block ZeptoGPTs at once, fast on the CPU, the reference's function.

What it computes: ``logits(params, config, idx, start)`` gives, for K models stacked along the
first axis of every weight (``params``: the reference's parameter names -> ``[K, ...]``), the
next-token logits ``[K, B, S, V]`` that ``ZeptoGPT(config)`` with model k's weights gives at
positions ``start`` and later (S = T - start). Training calls it for every seed at every step.

What it covers: every config with one block (``covers(config)``), whatever its vocabulary,
context, width, heads and head width, MLP (or none), normalisation, positions and ties. With
more blocks ``train`` runs the reference itself over the stacked weights (``torch.func``).

Why it is exact: it reorders the reference's arithmetic, it approximates nothing.
1. In one block, positions before ``start`` reach later ones only as keys and values, so
   their queries, MLP and logits are never needed for an answer-only loss: they are skipped.
2. Attention reads a token only through its embedding plus its position's, and there are just
   V x T such (token, position) pairs. LayerNorm 1, Q, K and V are therefore computed once per
   pair, in tables, and each token looks its row up; a score depends only on the (key pair,
   query pair) it joins, so each of those is computed once too.
3. A query's output is sum_t e^score_t v_t / sum_t e^score_t over its keys t up to its own
   position (the causal mask). Both sums add up entries of per-combination tables, so each is
   one product with a 0/1 matrix that says which combinations each query adds up
   (``pairing``). Every score is first lowered by the best score of its query pair, as
   softmax lowers a row by its best: the shift is shared by a query's keys and cancels in the
   quotient. If all keys of a query sit so far below that best that float32 sums vanish, the
   sums are taken again in float64 (``attend``).
4. Activations are laid out features first, ``[K, E, T, B]``: with K models in front, every
   element-wise operator then runs along rows of T x B numbers rather than E, and each weight
   product is one batched product. Only the layout changes, not the numbers.
The tests check logits, attention patterns and every weight's gradient against the reference
for every named variant, random configs and weights large enough to take the float64 path.
What each part buys is in docs/engine.md (``python bench/bench_engine.py``).

Shape letters as in model.py, plus K models, S computed positions, U (key pair, query pair)
combinations a batch uses.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from zeptogpt.config import ModelConfig
from zeptogpt.model import sinusoidal_positions


def covers(config: ModelConfig) -> bool:
    """Whether the engine computes this architecture (one block); else train uses the reference."""
    return config.n_layer == 1


def lookup(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[..., index]``: entries of the last axis, in the shape of ``index``.

    A broadcast ``gather``: on the CPU 3x faster here than ``index_select``, and unlike
    indexing its backward adds in a fixed order, so training runs repeat bit for bit.
    Usage: ``lookup(v, key)  # [..., N], [T, B] -> [..., T, B]``
    """
    flat = index.flatten().expand(*table.shape[:-1], -1)  # [..., T * B]
    return table.gather(-1, flat).unflatten(-1, index.shape)  # [..., T, B]


class Pairing(NamedTuple):
    """Which (key pair, query pair) combinations a batch's attention uses, and where."""

    key: torch.Tensor  # [U]: each combination's key pair (index into a [V, T] table)
    query: torch.Tensor  # [U]: its query pair (index into a [V, S] table)
    sums: torch.Tensor  # [U, S * B]: 1 where query s of sequence b attends through combination u
    slot: torch.Tensor  # [T, S, B]: the combination of key t and query s in sequence b; U if t > s


def pairing(key: torch.Tensor, query: torch.Tensor, n_query: int) -> Pairing:
    """The combinations a batch's queries meet their keys through, each once, causal ones only.

    ``key`` [T, B] and ``query`` [S, B] are each token's pair index; queries are the last S
    positions. For the 27 sorting inputs and their 3 answer positions that is 73 combinations,
    where the queries see 405 keys.
    Usage: ``pairing(key, query, V * S).sums.sum(0)  # [S * B]: how many keys each query sees``
    """
    (T, B), S = key.shape, query.shape[0]
    combo = key[:, None, :] * n_query + query  # [T, S, B]
    causal = (torch.arange(T)[:, None] <= torch.arange(T - S, T))[..., None].expand(T, S, B)
    used, slot = torch.unique(combo[causal], return_inverse=True)  # [U], [causal count]
    sums = torch.zeros(len(used), S * B)  # [U, S * B]
    sums[slot, torch.arange(S * B).view(S, B).expand(T, S, B)[causal]] = 1.0
    slots = torch.full((T, S, B), len(used)).masked_scatter_(causal, slot)  # [T, S, B]
    return Pairing(used // n_query, used % n_query, sums, slots)


def normalise(x: torch.Tensor, p: dict[str, torch.Tensor], name: str, kind: str,
              eps: float = 1e-5) -> torch.Tensor:
    """``model.make_norm``'s module ``name`` over the features, which lie on axis -3 here:
    ``[K, E, T, B]``, with each model's gain and bias ``[K, E]`` where it learns them."""
    if kind == "none":
        return x
    if kind.startswith("layernorm"):
        x = x - x.mean(-3, keepdim=True)  # [K, E, T, B]
    x = x * torch.rsqrt((x * x).mean(-3, keepdim=True) + eps)  # [K, E, T, B]
    if f"{name}.weight" in p:
        x = x * p[f"{name}.weight"][..., :, None, None]  # [K, E, T, B]
    if f"{name}.bias" in p:
        x = x + p[f"{name}.bias"][..., :, None, None]  # [K, E, T, B]
    return x


class Divide(torch.autograd.Function):
    """a / b, b broadcast over a, with a derivative that never forms 1 / b^2.

    Autograd's derivative of a division squares the divisor, which overflows float32 once
    b < 1e-19, and the attention's sums go down to 1e-30 (``attend``). This one takes the
    gradient over b as (grad / b) times the quotient. Usage: ``Divide.apply(numer, denom)``
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        quotient = a / b
        ctx.save_for_backward(quotient, b)
        return quotient

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        quotient, b = ctx.saved_tensors
        grad_a = grad / b
        return grad_a, -(grad_a * quotient).sum_to_size(b.shape)


def attend(scores: torch.Tensor, values: torch.Tensor, pair: Pairing, n_query: int
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every query's attention output from the per-combination scores ``[..., H, U]`` and
    values ``[..., H, D, U]``: ``(z [..., H, D, S * B], weights [..., H, U], denom [..., H, S *
    B])``, where weights / denom, read through ``pair.slot``, is the attention pattern."""
    with torch.no_grad():
        # Each score less the highest of its query pair, as softmax subtracts the highest of
        # its row: e^score cannot overflow, and the shift cancels in the quotient.
        peak = torch.full((*scores.shape[:-1], n_query), -math.inf).scatter_reduce(
            -1, pair.query.expand_as(scores), scores, "amax")  # [..., H, V * S]
    shifted = scores - lookup(peak, pair.query)  # [..., H, U], at most 0
    for dtype in (scores.dtype, torch.float64):
        weights, sums = torch.exp(shifted.to(dtype)), pair.sums.to(dtype)  # [..., H, U]
        denom = weights @ sums  # [..., H, S * B]
        # If every key of some query scores over ~69 below the best of its query pair, its
        # float32 sums fall under 1e-30 (and past e^-87 to 0 / 0): then they are taken again
        # in float64, whose exp reaches e^-700. No trained model came past e^-55 here.
        if bool(denom.amin() > 1e-30):
            break
    numer = (weights[..., None, :] * values.to(dtype)) @ sums  # [..., H, D, S * B]
    z = Divide.apply(numer, denom[..., None, :])  # [..., H, D, S * B]: weighted values
    return z.to(scores.dtype), weights, denom


def logits(params: dict[str, torch.Tensor], config: ModelConfig, idx: torch.Tensor,
           start: int = 0, with_pattern: bool = False):
    """K stacked one-block models' logits ``[K, B, S, V]`` from position ``start`` on, and with
    ``with_pattern`` also their attention ``[K, B, H, S, T]``: what ``ZeptoGPT.run_with_cache``
    gives each model at those positions.

    Usage: ``logits(stacked_weights, config, idx, start=3)  # [K, B, T - 3, V]``
    """
    if not covers(config):
        raise ValueError(f"the engine computes one block, not {config.n_layer}")
    p = {name.removeprefix("blocks.0."): w for name, w in params.items()}
    V, (B, T), D, norm = config.vocab_size, idx.shape, config.d_head, config.norm
    # a tied weight is the other one, read again (so its gradient adds up in one place)
    W_K = p["attn.W_Q"] if config.tie_qk else p["attn.W_K"]  # [K, H, E, D]
    W_O = p["attn.W_V"].mT if config.tie_vo else p["attn.W_O"]  # [K, H, D, E]
    W_U = p["W_E"] if config.tie_unembed else p["W_U"].mT  # [K, V, E]
    S = T - start
    # The tables below hold each (token, position) pair once, flattened; these say where each
    # sequence finds its own tokens in them.
    key = idx.mT * T + torch.arange(T)[:, None]  # [T, B]: pair of each token, in [V, T]
    query = idx.mT[start:] * S + torch.arange(S)[:, None]  # [S, B]: pair, in [V, S]
    pairs = p["W_E"].mT[..., :, None]  # [K, E, V, 1]
    if config.pos_embed:
        pairs = pairs + p["W_pos"].mT[..., None, :T]  # [K, E, V, T]
    elif config.sinusoidal:
        fixed = sinusoidal_positions(config.block_size, config.n_embd)  # [T, E], no K axis
        pairs = pairs + fixed.mT[:, None, :T]  # [K, E, V, T]
    pairs = pairs.expand(*pairs.shape[:-1], T)  # [K, E, V, T]: every pair's embedding
    x = lookup(pairs.flatten(-2), key[start:])  # [K, E, S, B]: the residual stream
    h = normalise(pairs, p, "ln1", norm)  # [K, E, V, T]
    W_QKV = torch.stack([p["attn.W_Q"], W_K, p["attn.W_V"]], -4)  # [K, 3, H, E, D]
    qkv = torch.einsum("...jhed,...evt->...jhdvt", W_QKV, h)  # [K, 3, H, D, V, T]
    q, k, v = qkv.unbind(-5)  # [K, H, D, V, T] each: one product for all three
    q = q[..., start:]  # [K, H, D, V, S]
    pair = pairing(key, query, V * S)
    scores = (lookup(k.flatten(-2), pair.key) * lookup(q.flatten(-2), pair.query)
              ).sum(-2) / math.sqrt(D)  # [K, H, U]: every score the batch needs, once
    values = lookup(v.flatten(-2), pair.key)  # [K, H, D, U]
    z, weights, denom = attend(scores, values, pair, V * S)  # [K, H, D, S * B]
    W_O = W_O.flatten(-3, -2).mT  # [K, E, H * D]
    x = x + (W_O @ z.flatten(-3, -2)).unflatten(-1, (S, B))  # [K, E, S, B]
    if config.d_mlp:  # an attention-only block stops here
        h = normalise(x, p, "ln2", norm)  # [K, E, S, B]
        hidden = F.relu(torch.einsum("...em,...esb->...msb", p["mlp.W_in"], h))  # [K, M, S, B]
        x = x + torch.einsum("...me,...msb->...esb", p["mlp.W_out"], hidden)  # [K, E, S, B]
    x = normalise(x, p, "ln_f", norm)  # [K, E, S, B]
    out = torch.einsum("...ve,...esb->...vsb", W_U, x).transpose(-1, -3)  # [K, B, S, V]
    if not with_pattern:  # training: the pattern is for people, not for the loss
        return out
    after = torch.zeros_like(weights[..., :1])  # [K, H, 1]: the weight of a later key
    pattern = lookup(torch.cat([weights, after], -1), pair.slot)  # [K, H, T, S, B]
    pattern = pattern / denom.unflatten(-1, (S, B))[..., None, :, :]  # [K, H, T, S, B]
    pattern = pattern.movedim(-1, -4).transpose(-1, -2).to(z.dtype)  # [K, B, H, S, T]
    return out, pattern
