"""The network: a one-block, decoder-only transformer with a tied LM head.

Shape letters: B batch, T tokens so far, S positions whose output is computed (T unless asked
otherwise), V vocabulary, E embedding (d_model), H heads, D head dimension (E // H), M MLP hidden
width, U (key, query) combinations attention uses (see ``pairing``); a leading "..." is an
optional stack of models. Inside the network activations are laid out features first and batch
last, [..., E, T, B] (see ``ZeptoGPT.run_with_cache``); what it returns is the usual way round,
[..., B, T, E]. Weights are named like the math (TransformerLens style): W_E, W_pos, W_Q, W_K,
W_V, W_O, W_in, W_out; the unembedding is W_E.T.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    """Architecture. The defaults are the seed's 318-parameter sorter."""

    vocab_size: int = 4  # <sep> plus the letters a, b, c
    block_size: int = 7  # longest context: x1 x2 x3 <sep> y1 y2 y3
    n_embd: int = 6  # E: width of the residual stream
    n_head: int = 2  # H: attention heads, each of width E // H
    mlp_mult: int = 1  # MLP hidden width as a multiple of E (the seed's "MLP x1")
    pos_embed: bool = True  # learned positions; without them order comes only from the causal mask

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_embd", "n_head", "mlp_mult"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")

    @property
    def d_head(self) -> int:
        return self.n_embd // self.n_head

    @property
    def d_mlp(self) -> int:
        return self.mlp_mult * self.n_embd

    def param_table(self) -> list[tuple[str, str, int]]:
        """(part, formula, count) rows in the seed's table order; the tied LM head adds none."""
        V, T, E, M = self.vocab_size, self.block_size, self.n_embd, self.d_mlp
        return [
            ("token_embed", f"{V} × {E}", V * E),
            ("pos_embed", f"{T} × {E}" if self.pos_embed else "off", T * E * self.pos_embed),
            ("attn(q,k,v,proj)", f"4 × ({E} × {E})", 4 * E * E),
            ("mlp", f"{E} × {M} + {M} × {E}", 2 * E * M),
            ("layer_norms (2 block + final)", f"3 × (2 × {E})", 3 * 2 * E),
            ("lm_head", "weight-tied", 0),
        ]

    def param_breakdown(self) -> dict[str, int]:
        """Trainable parameters by part: ``{"token_embed": 24, ...}``."""
        return {part: count for part, _, count in self.param_table()}

    def format_params(self) -> str:
        """The seed's parameter table as printed text, ending ``Trainable parameters: 318``."""
        head = (f"Parameter count (E={self.n_embd}, H={self.n_head}, MLP×{self.mlp_mult}, "
                f"pos={'ON' if self.pos_embed else 'OFF'}):")
        rows = [f"  {part}: {formula} = {count}" if count else f"  {part}: {formula} (0 extra)"
                for part, formula, count in self.param_table()]
        return "\n".join([head, *rows, f"Trainable parameters: {self.n_params}"])

    @property
    def n_params(self) -> int:
        return sum(self.param_breakdown().values())

    def to_dict(self) -> dict:
        return asdict(self)


# The seed's variants table: name -> architecture (vocabulary and context come from the task).
VARIANTS: dict[str, dict] = {
    "e6": dict(n_embd=6, n_head=2, mlp_mult=1, pos_embed=True),  # 318, the default
    "e6-nopos": dict(n_embd=6, n_head=2, mlp_mult=1, pos_embed=False),  # 276
    "e4-nopos": dict(n_embd=4, n_head=2, mlp_mult=1, pos_embed=False),  # 136
    "e8-mlp2": dict(n_embd=8, n_head=2, mlp_mult=2, pos_embed=True),  # 648
}


def variant_config(name: str, vocab_size: int = 4, block_size: int = 7, **overrides) -> ModelConfig:
    """A named variant sized for a task, with any architecture field overridden.

    Usage: ``variant_config("e6-nopos", task.vocab_size, task.seq_len)``
    """
    return ModelConfig(vocab_size=vocab_size, block_size=block_size,
                       **(VARIANTS[name] | overrides))


def variant_name(config: ModelConfig) -> str:
    """The variant's name if the architecture is a named one, else a name built from its sizes."""
    arch = dict(n_embd=config.n_embd, n_head=config.n_head, mlp_mult=config.mlp_mult,
                pos_embed=config.pos_embed)
    for name, spec in VARIANTS.items():
        if spec == arch:
            return name
    pos = "pos" if config.pos_embed else "nopos"
    return f"e{config.n_embd}-h{config.n_head}-mlp{config.mlp_mult}-{pos}"


@torch.no_grad()
def init_weight(
    name: str, weight: torch.Tensor,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> None:
    """Initialise the weight called ``name`` in place; ZeptoGPT draws its weights in
    ``named_parameters()`` order from one generator. A stack of K models' weights ``[K, ...]``
    takes K generators, model k's weight drawn from the k-th.
    Usage: ``init_weight("W_Q", w, g)``; ``init_weight("W_Q", stacked, [g0, g1])``"""
    if name.startswith("ln"):
        weight.fill_(1.0 if name.endswith(".w") else 0.0)  # identity LayerNorm, drawing nothing
        return
    # unit-variance embeddings (as nn.Embedding); matrices scaled by their fan-in
    std = 1 / math.sqrt(1 if name in ("W_E", "W_pos") else weight.shape[-2])
    if generator is None or isinstance(generator, torch.Generator):
        weight.normal_(std=std, generator=generator)
        return
    for w, g in zip(weight, generator, strict=True):
        w.normal_(std=std, generator=g)


def lookup(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[..., index]``: entries of the last axis, in the shape of ``index``.

    ``gather`` with the index broadcast: on the CPU 3x faster here than ``index_select``, and
    unlike indexing its backward adds in a fixed order, so training runs repeat exactly.
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
    where the queries see 405 keys. Remembered for the last few batches asked about: training
    asks about the same inputs at every step (docs/engine.md).
    Usage: ``pairing(key, query, V * S).sums.sum(0)  # [S * B]: how many keys each query sees``
    """
    return _pairing(key.long().numpy().tobytes(), query.long().numpy().tobytes(), key.shape[1],
                    n_query)


@functools.lru_cache(maxsize=16)
@torch.inference_mode(False)  # remembered tensors made under inference mode would refuse autograd
def _pairing(key_bytes: bytes, query_bytes: bytes, B: int, n_query: int) -> Pairing:
    key = torch.frombuffer(bytearray(key_bytes), dtype=torch.long).view(-1, B)  # [T, B]
    query = torch.frombuffer(bytearray(query_bytes), dtype=torch.long).view(-1, B)  # [S, B]
    T, S = key.shape[0], query.shape[0]
    combo = key[:, None, :] * n_query + query  # [T, S, B]
    causal = (torch.arange(T)[:, None] <= torch.arange(T - S, T))[..., None].expand(T, S, B)
    used, slot = torch.unique(combo[causal], return_inverse=True)  # [U], [causal count]
    sums = torch.zeros(len(used), S * B)  # [U, S * B]
    sums[slot, torch.arange(S * B).view(S, B).expand(T, S, B)[causal]] = 1.0
    slots = torch.full((T, S, B), len(used)).masked_scatter_(causal, slot)  # [T, S, B]
    return Pairing(used // n_query, used % n_query, sums, slots)


class LayerNorm(nn.Module):
    """LayerNorm over the features axis, which ZeptoGPT keeps third from last (``[..., E, T, B]``);
    its weight and bias may carry a leading stack of models (see ZeptoGPT).

    Written out rather than F.layer_norm, which wants the features last, and with its derivative
    written out too (``_LayerNorm``) rather than left to autograd (docs/engine.md).
    """

    def __init__(self, n: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.w = nn.Parameter(torch.ones(n))  # [E]
        self.b = nn.Parameter(torch.zeros(n))  # [E]

    def extra_repr(self) -> str:
        return f"{self.w.shape[-1]}, eps={self.eps}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _LayerNorm.apply(x, self.w, self.b, self.eps)  # [..., E, T, B]


class _LayerNorm(torch.autograd.Function):
    """y = x̂ w + b, with x̂ = (x - mean) / sqrt(var + eps) over the features (axis -3).

    Its derivative is written out because autograd's, taken through those few lines, makes
    about eleven passes over the activations and keeps three of them for the backward pass;
    this one makes five and keeps x̂ alone (docs/engine.md). Checked by gradcheck in the tests.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float) -> torch.Tensor:
        x = x - x.mean(-3, keepdim=True)  # [..., E, T, B]
        r = torch.rsqrt((x * x).mean(-3, keepdim=True) + eps)  # [..., 1, T, B]: 1 / std
        x_hat = x.mul_(r)  # [..., E, T, B]
        ctx.save_for_backward(x_hat, r, w)
        return torch.addcmul(b[..., :, None, None], x_hat, w[..., :, None, None])  # [..., E, T, B]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
        x_hat, r, w = ctx.saved_tensors
        grad_w = (grad * x_hat).sum((-1, -2)).sum_to_size(w.shape)  # [..., E]
        grad_b = grad.sum((-1, -2)).sum_to_size(w.shape)  # [..., E]
        g = grad * w[..., :, None, None]  # [..., E, T, B]: the gradient at x̂
        # x̂ moves only within the sphere of zero mean and unit variance: take out the part of g
        # along its mean and along x̂ itself, then undo the scaling by 1 / std.
        along = (g * x_hat).mean(-3, keepdim=True)  # [..., 1, T, B]
        g = g.sub_(g.mean(-3, keepdim=True)).addcmul_(x_hat, along, value=-1)  # [..., E, T, B]
        return g.mul_(r), grad_w, grad_b, None


class _Divide(torch.autograd.Function):
    """a / b, b broadcast over a. Autograd's derivative divides a by b again, twice, and negates
    the whole gradient, five passes over a's size in all; this one reuses the quotient, two
    passes (docs/engine.md). Checked by gradcheck in the tests."""

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
        # d(a / b)/db = -(a / b) / b, taken as grad_a times the quotient: never 1 / b^2, which
        # overflows float32 once b < 1e-19 (the attention's sums go down to 1e-30).
        return grad_a, -(grad_a * quotient).sum_to_size(b.shape)


class ZeptoGPT(nn.Module):
    """Decoder-only transformer: embed, one pre-LayerNorm block, final LayerNorm, tied unembed.

    Every weight may carry a leading stack of K models: ``torch.func.functional_call`` with
    stacked weights ``[K, ...]`` runs K independent models through this same code (the "..."
    in the shape comments), which is how ``train`` trains many seeds at once.
    """

    def __init__(self, config: ModelConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        V, T, E, H, D, M = (config.vocab_size, config.block_size, config.n_embd, config.n_head,
                            config.d_head, config.d_mlp)
        self.W_E = nn.Parameter(torch.empty(V, E))  # [V, E], also the LM head (tied)
        self.W_pos = nn.Parameter(torch.empty(T, E)) if config.pos_embed else None  # [T, E]
        self.ln1 = LayerNorm(E)
        self.W_Q = nn.Parameter(torch.empty(H, E, D))  # [H, E, D]
        self.W_K = nn.Parameter(torch.empty(H, E, D))  # [H, E, D]
        self.W_V = nn.Parameter(torch.empty(H, E, D))  # [H, E, D]
        self.W_O = nn.Parameter(torch.empty(H, D, E))  # [H, D, E]
        self.ln2 = LayerNorm(E)
        self.W_in = nn.Parameter(torch.empty(E, M))  # [E, M]
        self.W_out = nn.Parameter(torch.empty(M, E))  # [M, E]
        self.ln_f = LayerNorm(E)
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Initialise every weight from ``generator``, so a seed fixes the whole model."""
        for name, p in self.named_parameters():
            init_weight(name, p, generator)

    def forward(self, idx: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Next-token logits from position ``start`` on. Usage: ``model(idx)  # [B, T, V]``"""
        return self._run(idx, start, cache=False)[0]

    def run_with_cache(
        self, idx: torch.Tensor, start: int = 0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits ``[..., B, S, V]`` plus every intermediate activation by name, for traces and
        the logit lens: ``embed``, ``attn_out``, ``resid_mid``, ``resid_post`` ``[..., B, S, E]``,
        ``pattern`` ``[..., B, H, S, T]``, ``mlp_hidden`` ``[..., B, S, M]``.

        Past the keys and values, only positions ``start`` and later are computed (S = T - start
        of them): in one block, earlier positions reach later ones only as keys and values, so a
        loss on the answer alone need not pay for the prompt's queries, MLP and logits.

        Inside, two choices serve speed on the CPU with many stacked models (docs/engine.md):
        - Attention reads a token only through its (token, position) pair, and there are just
          V x T of those, so LayerNorm 1, Q, K and V are computed once per pair, in tables.
          A score then depends only on the (key pair, query pair) it joins, so each is computed
          once too, and the softmax's two sums over a query's keys are one product each with
          a 0/1 matrix that says which of those scores each query adds up (``pairing``).
        - Activations are laid out features first and batch last, ``[..., E, T, B]``: with K
          models stacked in front, every element-wise operator then runs along rows of B * T
          numbers rather than E, and the weight products are one batched product per weight.
        The outputs are returned the usual way round, as views.
        """
        return self._run(idx, start, cache=True)

    def _run(self, idx: torch.Tensor, start: int, cache: bool) -> tuple[torch.Tensor, dict]:
        V, (B, T), D = self.config.vocab_size, idx.shape, self.config.d_head
        S = T - start
        # The tables below hold each (token, position) pair once, flattened; these say where
        # each sequence finds its own tokens in them.
        key = idx.mT * T + torch.arange(T)[:, None]  # [T, B]: pair of each token, in [V, T]
        query = idx.mT[start:] * S + torch.arange(S)[:, None]  # [S, B]: pair, in [V, S]
        pairs = self.W_E.mT[..., :, None]  # [..., E, V, 1]
        if self.W_pos is not None:
            pairs = pairs + self.W_pos.mT[..., None, :T]  # [..., E, V, T]
        pairs = pairs.expand(*pairs.shape[:-1], T)  # [..., E, V, T]: every pair's embedding
        x = lookup(pairs.flatten(-2), key[start:])  # [..., E, S, B]: the residual stream
        embed = x
        h = self.ln1(pairs)  # [..., E, V, T]
        W_QKV = torch.stack([self.W_Q, self.W_K, self.W_V], -4)  # [..., 3, H, E, D]
        qkv = torch.einsum("...jhed,...evt->...jhdvt", W_QKV, h)  # [..., 3, H, D, V, T]
        q, k, v = qkv.unbind(-5)  # [..., H, D, V, T] each: one product for all three
        q = q[..., start:]  # [..., H, D, V, S]
        # Attention without a per-sequence softmax. A score depends only on the (key pair,
        # query pair) it joins, so each query's output, sum_t e^score_t v_t / sum_t e^score_t
        # over its keys t, adds up a few entries of per-combination tables; `pairing` says which
        # (only keys up to the query's own position: that is the causal mask).
        pair = pairing(key, query, V * S)
        scores = (lookup(k.flatten(-2), pair.key) * lookup(q.flatten(-2), pair.query)
                  ).sum(-2) / math.sqrt(D)  # [..., H, U]: every score the batch needs, once
        with torch.no_grad():
            # Each score less the highest of its query pair, as softmax subtracts the highest of
            # its row: e^score cannot overflow, and the shift cancels in the quotient.
            peak = torch.full((*scores.shape[:-1], V * S), -math.inf).scatter_reduce(
                -1, pair.query.expand_as(scores), scores, "amax")  # [..., H, V * S]
        shifted = scores - lookup(peak, pair.query)  # [..., H, U], at most 0
        values = lookup(v.flatten(-2), pair.key)  # [..., H, D, U]
        for dtype in (scores.dtype, torch.float64):
            weights, sums = torch.exp(shifted.to(dtype)), pair.sums.to(dtype)  # [..., H, U]
            denom = weights @ sums  # [..., H, S * B]
            # If every key of some query scores over ~69 below the best of its query pair, its
            # float32 sums fall under 1e-30 (and past e^-87 to 0 / 0): then they are taken again
            # in float64, whose exp reaches e^-700. No trained model came past e^-55 here.
            if bool(denom.amin() > 1e-30):
                break
        numer = (weights[..., None, :] * values.to(dtype)) @ sums  # [..., H, D, S * B]
        z = _Divide.apply(numer, denom[..., None, :])  # [..., H, D, S * B]: weighted values
        z = z.to(scores.dtype)  # [..., H, D, S * B]
        W_O = self.W_O.flatten(-3, -2).mT  # [..., E, H * D]
        attn_out = (W_O @ z.flatten(-3, -2)).unflatten(-1, (S, B))  # [..., E, S, B]
        x = x + attn_out  # [..., E, S, B]
        resid_mid = x
        h = self.ln2(x)  # [..., E, S, B]
        hidden = F.relu(torch.einsum("...em,...esb->...msb", self.W_in, h))  # [..., M, S, B]
        x = x + torch.einsum("...me,...msb->...esb", self.W_out, hidden)  # [..., E, S, B]
        logits = self._unembed(x).transpose(-1, -3)  # [..., B, S, V]
        if not cache:  # training: the pattern below is for people, not for the loss
            return logits, {}
        acts = dict(embed=embed, attn_out=attn_out, resid_mid=resid_mid, mlp_hidden=hidden,
                    resid_post=x)
        acts = {name: a.transpose(-1, -3) for name, a in acts.items()}  # [..., B, S, E or M]
        after = torch.zeros_like(weights[..., :1])  # [..., H, 1]: the weight of a later key
        pattern = lookup(torch.cat([weights, after], -1), pair.slot)  # [..., H, T, S, B]
        pattern = pattern / denom.unflatten(-1, (S, B))[..., None, :, :]  # [..., H, T, S, B]
        pattern = pattern.movedim(-1, -4).transpose(-1, -2).to(z.dtype)  # [..., B, H, S, T]
        return logits, acts | dict(pattern=pattern)

    def unembed(self, resid: torch.Tensor) -> torch.Tensor:
        """Logits read off any point of the residual stream through ln_f and W_E (logit lens).

        Usage: ``model.unembed(cache["resid_mid"])  # [..., B, T, E] -> [..., B, T, V]``
        """
        return self._unembed(resid.transpose(-1, -3)).transpose(-1, -3)

    def _unembed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("...ve,...etb->...vtb", self.W_E, self.ln_f(x))  # [..., V, T, B]

    def __repr__(self) -> str:
        c = self.config
        pos = "learned positions" if c.pos_embed else "no positions"
        return (f"ZeptoGPT({variant_name(c)}: E={c.n_embd}, H={c.n_head}x{c.d_head}, "
                f"MLP={c.d_mlp}, {pos}, {c.n_params} parameters)")
