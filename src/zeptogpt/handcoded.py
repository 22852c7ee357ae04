"""A sorter with its weights set by hand: one attention head that averages, and four numbers.

The algorithm (docs/board.md has the proof). Call the symbols 1..k in sorting order and let
C_t be how many input symbols are ≤ t. Answer step i (i = 0..n-1, reading the token at position
n + i: ``<sep>`` first, then the answers so far) must output the smallest s with C_s > i.

1. The head's scores are all zero, so it averages the values of the N = n + 1 + i tokens it
   may see: the n inputs, ``<sep>`` and the i answers so far, which are the i smallest inputs.
   Counting symbols ≤ t over all of them gives A_t = C_t + min(i, C_t), and A_t > 2i exactly
   when C_t > i (if C_t > i, A_t = C_t + i; else A_t = 2 C_t ≤ 2i).
2. The values make that test a sign: value dimension t (t = 1..k-1) of a token is
   [token ≤ t] - 2 u, where u is 1 for a symbol and -(n - 1/4) for ``<sep>``. Averaged, it is
   (A_t - 2i - 1/2) / N: positive exactly when C_t > i, and never 0.
3. The unembedding is the token embedding (tied), and symbol s's embedding has a 1 in every
   dimension t ≥ s, so the logit of s adds up the stream's dimensions t = s..k-1. The output
   writes β times the average into them; the logits then rise while C_t ≤ i and fall after,
   so the largest is the smallest s with C_s > i: the next symbol of ``sorted()``.
4. The current token's own embedding adds at most 1 to a dimension, less than the β/(2N) the
   average contributes when β = 8n (N ≤ 2n): it cannot move the peak.

No positions, no normalisation, no MLP: the causal mask is the only sense of order. Every weight
entry is 0 or ± one of 1, 2, n - 1/4 and 8n: four free scalars, whatever n and k (k + 1 tokens,
width k, one head of width k - 1). ``reverse`` reverses the order the symbols are counted in.

Usage::

    model = sorter(SortTask("abc", 3))   # ZeptoGPT(e3-h1x2-m0-nonorm-nopos: ..., 4 free scalars)
"""

from __future__ import annotations

import torch

from zeptogpt.config import ModelConfig
from zeptogpt.model import ZeptoGPT
from zeptogpt.task import SortTask


def sorter_config(task: SortTask) -> ModelConfig:
    """The hand-coded sorter's architecture for a task: width k, one head of width k - 1,
    no MLP, no norm, no positions, tied unembedding."""
    k = len(task.alphabet)
    return ModelConfig(vocab_size=task.vocab_size, block_size=task.seq_len, n_embd=k, n_head=1,
                       head_dim=k - 1, mlp_width=0, norm="none", pos_embed=False)


@torch.no_grad()
def sorter(task: SortTask) -> ZeptoGPT:
    """The reference network with the weights above: sorts every input of ``task`` (one length).

    Usage: ``sorter(SortTask("0123456789", 5)).W_E  # [11, 10]``
    """
    if task.varies:
        raise ValueError("the hand-coded sorter counts on one input length; "
                         f"{task.name} has several")
    n, k = task.length, len(task.alphabet)
    model = ZeptoGPT(sorter_config(task))
    for p in model.parameters():
        p.zero_()
    # rank r(s) = 1..k of each symbol in sorting order (token ids are 1..k in Python's order)
    rank = list(range(k, 0, -1)) if task.reverse else list(range(1, k + 1))
    W_E = model.W_E  # [k + 1, k]: cumulative indicators in 0..k-2, the symbol flag u in k-1
    for token, r in enumerate(rank, start=1):
        W_E[token, r - 1: k - 1] = 1.0  # [r ≤ t] for t = 1..k-1 (dimension t - 1)
        W_E[token, k - 1] = 1.0  # u = 1 for a symbol
    W_E[0, k - 1] = -(n - 0.25)  # u = -(n - 1/4) for <sep>
    attn = model.blocks[0].attn  # W_Q = W_K = 0: every score 0, an average over the prefix
    attn.W_V[0, : k - 1, :] = torch.eye(k - 1)  # [E, D]: value t reads [token ≤ t] ...
    attn.W_V[0, k - 1, :] = -2.0  # ... less 2u
    attn.W_O[0, :, : k - 1] = 8.0 * n * torch.eye(k - 1)  # [D, E]: β = 8n into dimension t
    return model
