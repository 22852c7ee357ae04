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
    a.steps[2].attribution["L0H1"]  # head 1's share of the logit of the letter step 3 chose
    step_sentence(a, 2)           # "Step 3 picks c: head 1 puts 0.99 of its weight on ..."
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal

import torch

from zeptogpt.attribution import attribute, part_names
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
    # part (see ``Anatomy.parts``) -> its share of the chosen letter's logit at this position,
    # from direct logit attribution (``zeptogpt.attribution``); the shares add up to that logit
    attribution: dict[str, float]


@dataclass
class Anatomy:
    """One input's decoding with every activation of the forward pass."""

    input: str
    output: str
    vocab: list[str]  # token strings by id
    tokens: list[str]  # [T] the whole decoded sequence
    n_layer: int  # L: blocks
    parts: list[str]  # what the final stream is the sum of: embed, pos, L0H0, ..., L0MLP, bias
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
    _, shares = attribute(model, d.ids[:, :-1])  # {part: [1, T-1, V]}: each part's share
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
            attribution={name: share[0, pos, d.ids[0, pos + 1]].item()
                         for name, share in shares.items()},
        ))
    return Anatomy(
        input=x, output=d.outputs[0], vocab=list(task.vocab), tokens=tokens,
        n_layer=model.config.n_layer, parts=part_names(model),
        lens_points=[name for name, _ in points], lens_labels=[label for _, label in points],
        token_embed=token_embed.tolist(),
        pos_embed=pos_embed.tolist() if pos_embed is not None else None,
        embed=cache["embed"].tolist(), attention=pattern.tolist(),
        attn_out=per_block("attn_out").tolist(), resid_mid=per_block("resid_mid").tolist(),
        mlp_hidden=mlp_hidden.tolist(), resid_post=per_block("resid_post").tolist(),
        logits=d.logits[0].tolist(), steps=steps,
    )


NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
                9: "nine"}


def step_sentence(a: Anatomy, k: int) -> str:
    """Decoding step ``k`` (from 0) in one sentence, from its numbers only: the head that adds
    most to the chosen letter's logit, which token takes most of that head's weight, and what
    every other part adds (a part that adds less than 0.05 either way is left out). The page's
    ``stepSentence`` (static/app.js) writes the same sentence from the same JSON.

    Usage: ``step_sentence(dissect(model, task, "caa"), 2)``  # "Step 3 picks c: head 1 puts
    0.99 of its weight on the c (position 0) and adds +9.6 to c's logit of 10.1; head 0 ..."
    """
    s = a.steps[k]
    c, shares = s.chosen, s.attribution
    heads = [p for p in a.parts if re.fullmatch(r"L\d+H\d+", p)]
    top = max(heads, key=lambda p: shares[p])  # the first of equals, as the page picks
    layer, head = map(int, re.fullmatch(r"L(\d+)H(\d+)", top).groups())
    # the head's weights at this step summed per token, tokens in order of first appearance
    groups: dict[str, list[int]] = {}
    for i in range(s.position + 1):
        groups.setdefault(a.tokens[i], []).append(i)
    row = s.attention[layer][head]
    weight = {t: sum(row[i] for i in where) for t, where in groups.items()}
    most = max(weight, key=weight.get)  # the first of equals
    where = groups[most]
    if len(where) == 1:
        on = f"the {most} (position {where[0]})"
    else:
        count = NUMBER_WORDS.get(len(where), str(len(where)))
        on = f"the {count} {most}'s (positions {', '.join(map(str, where))})"
    logit = s.logits[a.vocab.index(c)]
    sentence = (f"Step {k + 1} picks {c}: {_part_label(a, top)} puts "
                f"{_fixed(weight[most], 2)} of its weight on {on} and adds {_signed(shares[top])} "
                f"to {c}'s logit of {'−' if logit < 0 else ''}{_fixed(abs(logit), 1)}")
    # then every other part, the embeddings as one
    embeddings = shares["embed"] + shares.get("pos", 0.0)
    rest = [(_part_label(a, p), shares[p]) for p in a.parts
            if p != top and p not in ("embed", "pos", "bias")]
    rest.append(("the embeddings" if "pos" in shares else "the token embedding", embeddings))
    rest.append(("ln_f's bias", shares["bias"]))
    for label, v in rest:
        if _fixed(abs(v), 1) != "0.0":
            verb = "add" if label == "the embeddings" else "adds"
            sentence += f"; {label} {verb} {_signed(v)}"
    return sentence + "."


def _part_label(a: Anatomy, part: str) -> str:
    """``head 1`` or ``the MLP`` for one block; ``layer 0 head 1``, ``layer 0's MLP`` for more."""
    layer, head = re.fullmatch(r"L(\d+)(?:H(\d+)|MLP)", part).groups()
    if head is not None:
        return f"head {head}" if a.n_layer == 1 else f"layer {layer} head {head}"
    return "the MLP" if a.n_layer == 1 else f"layer {layer}'s MLP"


def _fixed(v: float, digits: int) -> str:
    """``v`` (0 or more) to ``digits`` decimals, halves rounded up as JavaScript's ``toFixed``
    does, so the page and Python print the same digits (Python's format rounds halves to even)."""
    return str(Decimal(v).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def _signed(v: float) -> str:
    """``+3.2`` or ``−0.4`` (a minus sign, not a hyphen)."""
    return ("−" if v < 0 else "+") + _fixed(abs(v), 1)


def weight_list(model: ZeptoGPT) -> list[dict]:
    """Every trainable tensor as ``{"name", "shape", "values"}`` (values flattened row-major),
    in the model's own order (``W_E``, ``W_pos``, then ``blocks.0.ln1.weight``, ...,
    ``blocks.0.attn.W_Q``, ..., and ``ln_f.bias`` last); their sizes add up to
    ``config.n_params``."""
    return [dict(name=name, shape=list(p.shape), values=p.detach().flatten().tolist())
            for name, p in model.named_parameters()]
