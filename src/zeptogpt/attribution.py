"""Direct logit attribution: how much each part of the network adds to each token's logit.

The residual stream the logits are read from is a sum of parts: the token's embedding, its
position's, what each head of each block writes, and what each MLP writes. The final norm is
affine in the stream once its scale is held at the value it took for this stream:
ln_f(x) = (x - mean(x)) / σ · w + b for LayerNorm (no mean for RMSNorm; σ = 1 and w = 1 without
a norm). So each part's share of a logit is its own (part - mean(part)) / σ · w read through
the unembedding, the bias b adds the rest, and the shares add up to the logit exactly
(``tests/test_explain.py`` checks it). This is the standard reading of a pre-norm transformer;
it says what each part writes in the direction of a letter, not what would happen without it:
ablations (``zeptogpt.explain``) answer that.

Usage::

    logits, parts = attribute(model, idx)   # [B, T, V], {"L0H1": [B, T, V], ...}
    parts["L0H1"][0, 3, 1]                  # head 1's share of the logit of 'a' at position 3
"""

from __future__ import annotations

import torch
from torch import nn

from zeptogpt.model import ZeptoGPT


def part_names(model: ZeptoGPT) -> list[str]:
    """The parts the stream is the sum of, in order: ``embed`` (token), ``pos`` (if any), then
    per block ``L{i}H{h}`` for each head and ``L{i}MLP`` (if it has one), then ``bias``."""
    c = model.config
    names = ["embed"] + (["pos"] if model.W_pos is not None else [])
    for i, block in enumerate(model.blocks):
        names += [f"L{i}H{h}" for h in range(c.n_head)]
        names += [f"L{i}MLP"] if block.mlp is not None else []
    return names + ["bias"]


@torch.no_grad()
def head_outputs(model: ZeptoGPT, resid_pre: torch.Tensor, block: int) -> torch.Tensor:
    """What each head of ``block`` writes to the stream, ``[B, H, T, E]``, from the stream
    entering that block ``[B, T, E]``; summed over heads it is the block's ``attn_out``."""
    b = model.blocks[block]
    _, _, W_V, W_O = b.attn.weights()  # [H, E, D], [H, D, E]
    h = b.ln1(resid_pre)  # [B, T, E]
    _, pattern = b.attn(h)  # [B, H, T, T]
    v = torch.einsum("bte,hed->bhtd", h, W_V)  # [B, H, T, D]
    return torch.einsum("bhqk,bhkd,hde->bhqe", pattern, v, W_O)  # [B, H, T, E]


@torch.no_grad()
def stream_parts(model: ZeptoGPT, idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """The residual stream at the end, ``[B, T, E]``, split into the parts ``part_names`` lists
    (all but ``bias``); they add up to ``blocks.{L-1}.resid_post``."""
    T = idx.shape[1]
    _, cache = model.run_with_cache(idx)
    parts = {"embed": model.W_E[idx]}  # [B, T, E]
    if model.W_pos is not None:
        parts["pos"] = model.W_pos[:T].expand_as(parts["embed"])  # [B, T, E]
    resid = cache["embed"]  # [B, T, E]: the stream entering block 0
    for i, block in enumerate(model.blocks):
        heads = head_outputs(model, resid, i)  # [B, H, T, E]
        parts |= {f"L{i}H{h}": heads[:, h] for h in range(heads.shape[1])}
        if block.mlp is not None:
            parts[f"L{i}MLP"] = cache[f"blocks.{i}.resid_post"] - cache[f"blocks.{i}.resid_mid"]
        resid = cache[f"blocks.{i}.resid_post"]  # [B, T, E]
    return parts


@torch.no_grad()
def attribute(model: ZeptoGPT, idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The logits ``[B, T, V]`` and each part's share of them, ``{name: [B, T, V]}``, the
    shares adding up to the logits.

    Usage: ``logits, parts = attribute(model, idx); sum(parts.values())  # == logits``
    """
    parts = stream_parts(model, idx)
    x = sum(parts.values())  # [B, T, E]: the stream ln_f reads
    ln = model.ln_f
    w = getattr(ln, "weight", None)
    b = getattr(ln, "bias", None)
    E = x.shape[-1]
    centre = isinstance(ln, nn.LayerNorm)  # LayerNorm subtracts the mean; RMSNorm does not
    if isinstance(ln, nn.Identity):
        scale = torch.ones_like(x[..., :1])  # [B, T, 1]
    else:
        eps = ln.eps if ln.eps is not None else torch.finfo(x.dtype).eps
        y = x - x.mean(-1, keepdim=True) if centre else x  # [B, T, E]
        scale = torch.sqrt((y * y).mean(-1, keepdim=True) + eps)  # [B, T, 1]: σ, held
    W_U = model.W_E.T if model.W_U is None else model.W_U  # [E, V]
    shares = {}
    for name, part in parts.items():
        p = part - part.mean(-1, keepdim=True) if centre else part  # [B, T, E]
        p = p / scale * (w if w is not None else 1.0)  # [B, T, E]
        shares[name] = p @ W_U  # [B, T, V]
    bias = b if b is not None else torch.zeros(E)  # [E]
    shares["bias"] = (bias @ W_U).expand_as(shares["embed"])  # [B, T, V]
    logits = model.unembed(x)  # [B, T, V]
    return logits, shares
