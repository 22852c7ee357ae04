"""The network: a one-block, decoder-only transformer with a tied LM head.

Shape letters: B batch, T tokens so far, S positions whose output is computed (T unless asked
otherwise), V vocabulary, E embedding (d_model), H heads, D head dimension (E // H), M MLP hidden
width; a leading "..." is an optional stack of models. Weights are named like the math
(TransformerLens style): W_E, W_pos, W_Q, W_K, W_V, W_O, W_in, W_out; the unembedding is W_E.T.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

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
def init_weight(name: str, weight: torch.Tensor, generator: torch.Generator | None = None) -> None:
    """Initialise the weight called ``name`` in place; ZeptoGPT draws its weights in
    ``named_parameters()`` order from one generator. Usage: ``init_weight("W_Q", w, g)``"""
    if name.startswith("ln"):
        weight.fill_(1.0 if name.endswith(".w") else 0.0)  # identity LayerNorm
        return
    # unit-variance embeddings (as nn.Embedding); matrices scaled by their fan-in
    fan_in = 1 if name in ("W_E", "W_pos") else weight.shape[-2]
    weight.normal_(std=1 / math.sqrt(fan_in), generator=generator)


class LayerNorm(nn.Module):
    """LayerNorm whose weight and bias may carry a leading stack of models (see ZeptoGPT).

    Written out rather than F.layer_norm: over rows of 6 numbers the fused kernel is slower
    than these few element-wise ops (2x in training, at any number of stacked models).
    """

    def __init__(self, n: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.w = nn.Parameter(torch.ones(n))  # [E]
        self.b = nn.Parameter(torch.zeros(n))  # [E]

    def extra_repr(self) -> str:
        return f"{self.w.shape[-1]}, eps={self.eps}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x - x.mean(-1, keepdim=True)  # [..., B, T, E]
        x = x * torch.rsqrt((x * x).mean(-1, keepdim=True) + self.eps)  # [..., B, T, E]
        return x * self.w[..., None, None, :] + self.b[..., None, None, :]  # [..., B, T, E]


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
        # Added to the scores, indexed [key, query]: -inf where the key comes after the query.
        # A buffer, so it moves with the module.
        later = torch.ones(T, T, dtype=torch.bool).tril(-1)  # [T, T]
        self.register_buffer("causal_mask", torch.zeros(T, T).masked_fill(later, float("-inf")),
                             persistent=False)
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Initialise every weight from ``generator``, so a seed fixes the whole model."""
        for name, p in self.named_parameters():
            init_weight(name, p, generator)

    def forward(self, idx: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Next-token logits from position ``start`` on. Usage: ``model(idx)  # [B, T, V]``"""
        return self.run_with_cache(idx, start)[0]

    def run_with_cache(
        self, idx: torch.Tensor, start: int = 0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits plus every intermediate activation by name, for traces and the logit lens.

        Past the keys and values, only positions ``start`` and later are computed (S = T - start
        of them): in one block, earlier positions reach later ones only as keys and values, so a
        loss on the answer alone need not pay for the prompt's queries, MLP and logits.

        Two choices only serve speed on the CPU with many stacked models (docs/engine.md): the
        weights come first in the Q/K/V products, the operand order whose batched products run
        2x faster; and attention is laid out [keys, queries], so the softmax runs over an inner
        axis rather than a last axis of 6, where PyTorch's CPU kernel is slow.
        """
        T, D = idx.shape[-1], self.config.d_head
        # index_select rather than W_E[..., idx, :]: the same numbers, but its backward adds into
        # W_E in a fixed order, where indexing's can use atomics whose order (and so the last
        # bits) changes from run to run on a busy machine.
        x = self.W_E.index_select(-2, idx.flatten()).unflatten(-2, idx.shape)  # [..., B, T, E]
        if self.W_pos is not None:
            x = x + self.W_pos[..., None, :T, :]  # [..., B, T, E]
        embed = x
        h = self.ln1(x)  # [..., B, T, E]
        q = torch.einsum("...hed,...bse->...bhsd", self.W_Q, h[..., start:, :])  # [..., B, H, S, D]
        k = torch.einsum("...hed,...bte->...bhtd", self.W_K, h)  # [..., B, H, T, D]
        v = torch.einsum("...hed,...bte->...bhtd", self.W_V, h)  # [..., B, H, T, D]
        scores = torch.einsum("...bhtd,...bhsd->...bhts", k, q) / math.sqrt(D)  # [..., B, H, T, S]
        scores = scores + self.causal_mask[:T, start:T]  # [..., B, H, T, S]: later keys -inf
        pattern_kq = scores.softmax(dim=-2)  # [..., B, H, T, S]: each query's weights on keys
        z = torch.einsum("...bhts,...bhtd->...bhsd", pattern_kq, v)  # [..., B, H, S, D]
        attn_out = torch.einsum("...bhsd,...hde->...bse", z, self.W_O)  # [..., B, S, E]
        x = x[..., start:, :] + attn_out  # [..., B, S, E]
        resid_mid = x
        h = self.ln2(x)  # [..., B, S, E]
        hidden = F.relu(torch.einsum("...bse,...em->...bsm", h, self.W_in))  # [..., B, S, M]
        x = x + torch.einsum("...bsm,...me->...bse", hidden, self.W_out)  # [..., B, S, E]
        resid_post = x
        logits = self.unembed(x)  # [..., B, S, V]
        pattern = pattern_kq.transpose(-1, -2)  # [..., B, H, S, T], the usual way round
        cache = dict(embed=embed, pattern=pattern, attn_out=attn_out, resid_mid=resid_mid,
                     mlp_hidden=hidden, resid_post=resid_post)
        return logits, cache

    def unembed(self, resid: torch.Tensor) -> torch.Tensor:
        """Logits read off any point of the residual stream through ln_f and W_E (logit lens)."""
        return torch.einsum("...bte,...ve->...btv", self.ln_f(resid), self.W_E)  # [..., B, T, V]

    def __repr__(self) -> str:
        c = self.config
        pos = "learned positions" if c.pos_embed else "no positions"
        return (f"ZeptoGPT({variant_name(c)}: E={c.n_embd}, H={c.n_head}x{c.d_head}, "
                f"MLP={c.d_mlp}, {pos}, {c.n_params} parameters)")
