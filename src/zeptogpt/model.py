"""The network: a decoder-only transformer with a tied LM head, written the textbook way.

Shape letters: B batch, T tokens, V vocabulary, E embedding (d_model), H heads, D head width,
M MLP width, L blocks. Weights are named like the math (TransformerLens style): W_E, W_pos, and
in each block W_Q, W_K, W_V, W_O, W_in, W_out; the unembedding is W_E.T.

This is the reference: every line is here to be read, none for speed. Training many seeds at
once runs a faster formulation of the same function (``zeptogpt.engine``), and the tests hold
that engine to this module's logits, attention patterns and gradients. The architecture it is
built from, ``ModelConfig``, lives in ``zeptogpt.config``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zeptogpt.config import ModelConfig, variant_name


@torch.no_grad()
def init_weight(
    name: str, weight: torch.Tensor,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> None:
    """Initialise the weight called ``name`` in place; ZeptoGPT draws its weights in
    ``named_parameters()`` order from one generator. A stack of K models' weights ``[K, ...]``
    takes K generators, model k's weight drawn from the k-th.
    Usage: ``init_weight("blocks.0.attn.W_Q", w, g)``; ``init_weight("W_Q", stacked, [g0, g1])``
    """
    leaf = name.rsplit(".", 1)[-1]
    if leaf in ("weight", "bias"):  # LayerNorm: the identity, drawing nothing
        weight.fill_(1.0 if leaf == "weight" else 0.0)
        return
    # unit-variance embeddings (as nn.Embedding); matrices scaled by their fan-in
    std = 1 / math.sqrt(1 if leaf in ("W_E", "W_pos") else weight.shape[-2])
    if generator is None or isinstance(generator, torch.Generator):
        weight.normal_(std=std, generator=generator)
        return
    for w, g in zip(weight, generator, strict=True):
        w.normal_(std=std, generator=g)


def sinusoidal_positions(T: int, E: int) -> torch.Tensor:
    """Fixed positions ``[T, E]``: dimensions 2i and 2i + 1 are the sine and cosine of
    t / T^(2i/E), the Transformer paper's formula with the context length T as its base (the
    paper's 10,000 suits thousands of tokens; over ours the slow dimensions would not move).
    Usage: ``sinusoidal_positions(7, 4)  # [7, 4]``
    """
    t = torch.arange(T, dtype=torch.float32)[:, None]  # [T, 1]
    pair = torch.arange(E) // 2  # [E]: dimension d belongs to pair d // 2
    angle = t / float(max(T, 2)) ** (2 * pair / E)  # [T, E]
    return torch.where(torch.arange(E) % 2 == 0, angle.sin(), angle.cos())  # [T, E]


def make_norm(config: ModelConfig) -> nn.Module:
    """The normalisation ``config.norm`` names: PyTorch's LayerNorm or RMSNorm, with or without
    a learned gain (and bias), or none at all."""
    E = config.n_embd
    return {"layernorm": lambda: nn.LayerNorm(E),
            "layernorm-fixed": lambda: nn.LayerNorm(E, elementwise_affine=False),
            "rmsnorm": lambda: nn.RMSNorm(E, eps=1e-5),
            "rmsnorm-fixed": lambda: nn.RMSNorm(E, eps=1e-5, elementwise_affine=False),
            "none": nn.Identity}[config.norm]()


class CausalSelfAttention(nn.Module):
    """H heads, each reading the tokens so far through its own queries, keys and values."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        E, H, D = config.n_embd, config.n_head, config.d_head
        # A tied weight is no parameter of its own (None here): ``weights()`` reads it from the
        # one it is tied to. The order is the draw order of the initial weights.
        self.W_Q = nn.Parameter(torch.empty(H, E, D))  # [H, E, D]
        self.W_K = None if config.tie_qk else nn.Parameter(torch.empty(H, E, D))  # [H, E, D]
        self.W_V = nn.Parameter(torch.empty(H, E, D))  # [H, E, D]
        self.W_O = None if config.tie_vo else nn.Parameter(torch.empty(H, D, E))  # [H, D, E]

    def weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """W_Q, W_K ``[H, E, D]``, W_V ``[H, E, D]``, W_O ``[H, D, E]``, ties resolved."""
        W_K = self.W_Q if self.W_K is None else self.W_K  # [H, E, D]
        W_O = self.W_V.mT if self.W_O is None else self.W_O  # [H, D, E]
        return self.W_Q, W_K, self.W_V, W_O

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The attention's output ``[B, T, E]`` and its pattern ``[B, H, T, T]`` (query, key)."""
        W_Q, W_K, W_V, W_O = self.weights()
        T, D = x.shape[1], W_Q.shape[-1]
        q = torch.einsum("bte,hed->bhtd", x, W_Q)  # [B, H, T, D]
        k = torch.einsum("bte,hed->bhtd", x, W_K)  # [B, H, T, D]
        v = torch.einsum("bte,hed->bhtd", x, W_V)  # [B, H, T, D]
        scores = q @ k.transpose(-1, -2) / math.sqrt(D)  # [B, H, T, T]
        future = torch.ones(T, T, dtype=torch.bool).triu(1)  # [T, T]: key after query
        scores = scores.masked_fill(future, float("-inf"))  # [B, H, T, T]
        pattern = scores.softmax(-1)  # [B, H, T, T]: each query's weights over its keys
        z = pattern @ v  # [B, H, T, D]: each head's weighted values
        out = torch.einsum("bhtd,hde->bte", z, W_O)  # [B, T, E]: heads summed
        return out, pattern


class MLP(nn.Module):
    """A ReLU layer of width M, applied to each position alone."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(config.n_embd, config.d_mlp))  # [E, M]
        self.W_out = nn.Parameter(torch.empty(config.d_mlp, config.n_embd))  # [M, E]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The MLP's output ``[B, T, E]`` and its hidden activations ``[B, T, M]``."""
        hidden = F.relu(x @ self.W_in)  # [B, T, M]
        return hidden @ self.W_out, hidden  # [B, T, E], [B, T, M]


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attention(ln1(x)), then x + mlp(ln2(x)); an
    attention-only block (MLP width 0) stops after the first."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.ln1 = make_norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln2 = make_norm(config) if config.d_mlp else None  # it would normalise nothing
        self.mlp = MLP(config) if config.d_mlp else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The residual stream after the block ``[B, T, E]`` and what happened inside it."""
        attn_out, pattern = self.attn(self.ln1(x))  # [B, T, E], [B, H, T, T]
        resid_mid = x + attn_out  # [B, T, E]
        if self.mlp is None:  # attention only: nothing is added, no neuron fires
            mlp_hidden = x.new_zeros(*x.shape[:-1], 0)  # [B, T, 0]
            resid_post = resid_mid  # [B, T, E]
        else:
            mlp_out, mlp_hidden = self.mlp(self.ln2(resid_mid))  # [B, T, E], [B, T, M]
            resid_post = resid_mid + mlp_out  # [B, T, E]
        return resid_post, dict(pattern=pattern, attn_out=attn_out, resid_mid=resid_mid,
                                mlp_hidden=mlp_hidden, resid_post=resid_post)


class ZeptoGPT(nn.Module):
    """Decoder-only transformer: embed, ``n_layer`` pre-LayerNorm blocks, final LayerNorm, and
    the token embedding again as the unembedding (a tied LM head)."""

    def __init__(self, config: ModelConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        V, T, E = config.vocab_size, config.block_size, config.n_embd
        self.W_E = nn.Parameter(torch.empty(V, E))  # [V, E], also the LM head when tied
        if config.pos_embed:
            self.W_pos = nn.Parameter(torch.empty(T, E))  # [T, E]
        elif config.sinusoidal:  # a formula, not a weight: rebuilt from the config, never saved
            self.register_buffer("W_pos", sinusoidal_positions(T, E), persistent=False)
        else:
            self.W_pos = None
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = make_norm(config)
        self.W_U = None if config.tie_unembed else nn.Parameter(torch.empty(E, V))  # [E, V]
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Initialise every weight from ``generator``, so a seed fixes the whole model."""
        for name, p in self.named_parameters():
            init_weight(name, p, generator)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Next-token logits at every position. Usage: ``model(idx)  # [B, T] -> [B, T, V]``"""
        return self.run_with_cache(idx)[0]

    def run_with_cache(self, idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits ``[B, T, V]`` plus every intermediate activation by name: ``embed``
        ``[B, T, E]``, and for each block i ``blocks.i.pattern`` ``[B, H, T, T]`` (query, key),
        ``blocks.i.attn_out``, ``blocks.i.resid_mid``, ``blocks.i.resid_post`` ``[B, T, E]``
        and ``blocks.i.mlp_hidden`` ``[B, T, M]``.

        Usage: ``logits, cache = model.run_with_cache(idx); cache["blocks.0.pattern"]``
        """
        T = idx.shape[1]
        x = self.W_E[idx]  # [B, T, E]: each token's embedding
        if self.W_pos is not None:
            x = x + self.W_pos[:T]  # [B, T, E]: plus its position's
        cache = {"embed": x}
        for i, block in enumerate(self.blocks):
            x, inside = block(x)  # [B, T, E]
            cache |= {f"blocks.{i}.{name}": a for name, a in inside.items()}
        return self.unembed(x), cache  # [B, T, V]

    def unembed(self, resid: torch.Tensor) -> torch.Tensor:
        """Logits read off any point of the residual stream through ln_f and W_E (logit lens).

        Usage: ``model.unembed(cache["blocks.0.resid_mid"])  # [B, T, E] -> [B, T, V]``
        """
        W_U = self.W_E.T if self.W_U is None else self.W_U  # [E, V]
        return self.ln_f(resid) @ W_U  # [B, T, V]

    def __repr__(self) -> str:
        c = self.config
        blocks = f"{c.n_layer} blocks, " if c.n_layer > 1 else ""
        return f"ZeptoGPT({variant_name(c)}: {blocks}{c.describe()}, {c.n_params} parameters)"
