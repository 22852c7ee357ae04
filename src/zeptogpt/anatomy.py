"""Every number of one decoding, as plain lists: the data behind the plots and the web page.

Both read from here, so the page, the PNGs and the CLI's trace show the same PyTorch numbers.
Positions follow the decoded sequence ``x1 x2 x3 <sep> y1 y2 y3``; the last pass of greedy
decoding sees the first T-1 of them, and decoding step s is read at position ``length + s``.
Whatever happens inside the blocks has a leading axis of L, one entry per block (layer), even
when the model has just one. Probabilities are the model's own: a softmax over the whole
vocabulary, <sep> included (greedy decoding never picks <sep>, but some probability may sit on it).

Usage::

    a = dissect(model, task, "caa")
    a.output                      # "aac"
    a.attention[0][1]             # [T-1, T-1] layer 0, head 1: query by key
    a.steps[0].lens[a.lens_points[-1]]  # p(<sep>, a, b, c) after the last MLP = the step's probs
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from zeptogpt.evaluation import decode
from zeptogpt.model import ZeptoGPT
from zeptogpt.task import SortTask


def lens_points(n_layer: int) -> list[tuple[str, str]]:
    """``(cache name, label)`` of every point of the residual stream the logit lens reads, in
    order: the embedding, then each block's stream after its attention and after its MLP; the last
    is the stream the model's output is read from.

    Usage: ``lens_points(1)  # [("embed", "after embedding"), ("blocks.0.resid_mid",
    "after attention"), ("blocks.0.resid_post", "after MLP")]``
    """
    points = [("embed", "after embedding")]
    for i in range(n_layer):
        layer = f"layer {i} " if n_layer > 1 else ""
        points += [(f"blocks.{i}.resid_mid", f"after {layer}attention"),
                   (f"blocks.{i}.resid_post", f"after {layer}MLP")]
    return points


@dataclass
class Step:
    """One decoding step: what the newest position saw and which letter it chose."""

    position: int  # index of the newest token, whose output is the next letter
    attention: list[list[list[float]]]  # [L, H, position+1] each head's weights over tokens so far
    mlp_hidden: list[list[float]]  # [L, M] each block's MLP activations (after ReLU) there
    logits: list[float]  # [V] logits at that position, <sep> first
    probs: list[float]  # [V] the model's own distribution: softmax of the logits, <sep> included
    chosen: str  # the greedy choice (never <sep>)
    # lens point (a cache name, see ``lens_points``) -> [V] the model's own distribution read off
    # the stream there through ln_f and the unembedding, <sep> included; the last point's = probs
    lens: dict[str, list[float]]


@dataclass
class Anatomy:
    """One input's decoding with every activation of the forward pass."""

    input: str
    output: str
    vocab: list[str]  # token strings by id
    tokens: list[str]  # [T] the whole decoded sequence
    n_layer: int  # L: blocks
    lens_points: list[str]  # the keys of each step's lens, in order through the stream
    lens_labels: list[str]  # their labels: "after embedding", "after attention", ...
    token_embed: list[list[float]]  # [T-1, E] W_E rows of the tokens the last pass saw
    pos_embed: list[list[float]] | None  # [T-1, E] W_pos rows, None without positions
    embed: list[list[float]]  # [T-1, E] their sum: the residual stream's start
    attention: list[list[list[list[float]]]]  # [L, H, T-1, T-1] every pattern (query, key)
    attn_out: list[list[list[float]]]  # [L, T-1, E] what each block's attention adds to the stream
    resid_mid: list[list[list[float]]]  # [L, T-1, E] the stream after each block's attention
    mlp_hidden: list[list[list[float]]]  # [L, T-1, M]
    resid_post: list[list[list[float]]]  # [L, T-1, E] after each block; the last goes to ln_f
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

    def per_block(name: str) -> torch.Tensor:  # [L, ...] the activation ``name`` of every block
        return torch.stack([cache[f"blocks.{i}.{name}"] for i in range(model.config.n_layer)])

    ids = d.ids[0, :-1]  # [T-1] the tokens the last pass saw
    tokens = task.decode(d.ids[0])
    token_embed = model.W_E[ids]  # [T-1, E]
    pos_embed = model.W_pos[: len(ids)] if model.W_pos is not None else None  # [T-1, E]
    pattern = per_block("pattern")  # [L, H, T-1, T-1]
    mlp_hidden = per_block("mlp_hidden")  # [L, T-1, M]
    points = lens_points(model.config.n_layer)
    # the logit lens: read each point of the stream through ln_f and W_E as if it were the last,
    # as the model's own distribution (softmax over the whole vocabulary)
    lens = {name: model.unembed(cache[name]).softmax(-1) for name, _ in points}  # [T-1, V] each
    steps = []
    for s in range(len(x)):
        pos = len(x) + s
        steps.append(Step(
            position=pos,
            attention=pattern[:, :, pos, : pos + 1].tolist(),
            mlp_hidden=mlp_hidden[:, pos].tolist(),
            logits=d.logits[0, pos].tolist(),
            probs=d.probs[0, s].tolist(),
            chosen=tokens[pos + 1],
            lens={name: p[pos].tolist() for name, p in lens.items()},
        ))
    return Anatomy(
        input=x, output=d.outputs[0], vocab=list(task.vocab), tokens=tokens,
        n_layer=model.config.n_layer, lens_points=[name for name, _ in points],
        lens_labels=[label for _, label in points],
        token_embed=token_embed.tolist(),
        pos_embed=pos_embed.tolist() if pos_embed is not None else None,
        embed=cache["embed"].tolist(), attention=pattern.tolist(),
        attn_out=per_block("attn_out").tolist(), resid_mid=per_block("resid_mid").tolist(),
        mlp_hidden=mlp_hidden.tolist(), resid_post=per_block("resid_post").tolist(),
        logits=d.logits[0].tolist(), steps=steps,
    )


def weight_list(model: ZeptoGPT) -> list[dict]:
    """Every trainable tensor as ``{"name", "shape", "values"}`` (values flattened row-major),
    in the model's own order (``W_E``, ``W_pos``, then ``blocks.0.ln1.weight``, ...,
    ``blocks.0.attn.W_Q``, ..., and ``ln_f.bias`` last); their sizes add up to
    ``config.n_params``."""
    return [dict(name=name, shape=list(p.shape), values=p.detach().flatten().tolist())
            for name, p in model.named_parameters()]
