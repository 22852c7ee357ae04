"""Every number of one decoding, as plain lists: the data behind the plots and the web page.

Both read from here, so the page, the PNGs and the CLI's trace show the same PyTorch numbers.
Positions follow the decoded sequence ``x1 x2 x3 <sep> y1 y2 y3``; the last pass of greedy
decoding sees the first T-1 of them, and decoding step s is read at position ``length + s``.

Usage::

    a = dissect(model, task, "caa")
    a.output                      # "aac"
    a.steps[0].lens["mlp"]        # p(<sep>, a, b, c) read after the MLP = the step's probs
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from zeptogpt.evaluation import decode, letter_probs
from zeptogpt.model import ZeptoGPT
from zeptogpt.task import SortTask

LENS_POINTS = ("embed", "attn", "mlp")  # residual stream after embedding, attention, MLP


@dataclass
class Step:
    """One decoding step: what the newest position saw and which letter it chose."""

    position: int  # index of the newest token, whose output is the next letter
    attention: list[list[float]]  # [H, position+1] each head's weights over the tokens so far
    mlp_hidden: list[float]  # [M] MLP activations (after ReLU) at that position
    logits: list[float]  # [V] logits at that position, <sep> first
    probs: list[float]  # [V] probabilities decoding used (<sep> forbidden, so 0)
    chosen: str  # the greedy choice
    lens: dict[str, list[float]]  # LENS_POINTS -> [V] probabilities read off the residual stream


@dataclass
class Anatomy:
    """One input's decoding with every activation of the forward pass."""

    input: str
    output: str
    vocab: list[str]  # token strings by id
    tokens: list[str]  # [T] the whole decoded sequence
    token_embed: list[list[float]]  # [T-1, E] W_E rows of the tokens the last pass saw
    pos_embed: list[list[float]] | None  # [T-1, E] W_pos rows, None without positions
    embed: list[list[float]]  # [T-1, E] their sum: the residual stream's start
    attention: list[list[list[float]]]  # [H, T-1, T-1] every head's pattern (query, key)
    attn_out: list[list[float]]  # [T-1, E] what attention adds to the stream
    mlp_hidden: list[list[float]]  # [T-1, M]
    resid_post: list[list[float]]  # [T-1, E] the stream before ln_f and the unembedding
    logits: list[list[float]]  # [T-1, V]
    steps: list[Step]

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def dissect(model: ZeptoGPT, task: SortTask, text: str) -> Anatomy:
    """Decode one input and keep every number; InputError (one line) if the input is not valid."""
    x = task.parse(text)
    d = decode(model, task, [x])
    cache = {k: v[0] for k, v in d.cache.items()}  # drop the batch axis
    ids = d.ids[0, :-1]  # [T-1] the tokens the last pass saw
    tokens = task.decode(d.ids[0])
    token_embed = model.W_E[ids]  # [T-1, E]
    pos_embed = model.W_pos[: len(ids)] if model.W_pos is not None else None  # [T-1, E]
    # the logit lens: read each point of the stream through ln_f and W_E as if it were the last
    lens = {point: letter_probs(model.unembed(resid[None]), task.sep_id)[0]  # [T-1, V]
            for point, resid in zip(LENS_POINTS,
                                    (cache["embed"], cache["resid_mid"], cache["resid_post"]))}
    steps = []
    for s in range(task.length):
        pos = task.length + s
        steps.append(Step(
            position=pos,
            attention=cache["pattern"][:, pos, : pos + 1].tolist(),
            mlp_hidden=cache["mlp_hidden"][pos].tolist(),
            logits=d.logits[0, pos].tolist(),
            probs=d.probs[0, s].tolist(),
            chosen=tokens[pos + 1],
            lens={point: p[pos].tolist() for point, p in lens.items()},
        ))
    return Anatomy(
        input=x, output=d.outputs[0], vocab=list(task.vocab), tokens=tokens,
        token_embed=token_embed.tolist(),
        pos_embed=pos_embed.tolist() if pos_embed is not None else None,
        embed=cache["embed"].tolist(), attention=cache["pattern"].tolist(),
        attn_out=cache["attn_out"].tolist(), mlp_hidden=cache["mlp_hidden"].tolist(),
        resid_post=cache["resid_post"].tolist(), logits=d.logits[0].tolist(), steps=steps,
    )


def weight_list(model: ZeptoGPT) -> list[dict]:
    """Every trainable tensor as ``{"name", "shape", "values"}`` (values flattened row-major),
    in the model's own order; their sizes add up to ``config.n_params``."""
    return [dict(name=name, shape=list(p.shape), values=p.detach().flatten().tolist())
            for name, p in model.named_parameters()]
