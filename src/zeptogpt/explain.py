"""How a trained model sorts, measured: attention by kind of token, direct logit attribution,
ablations and the logit lens, per decoding step; and, over many seeds, whether they all sort
the same way.

Everything is measured on every input of the task (it must have at most 100,000), with the
model's own greedy decoding: a step's query sits on ``<sep>`` or on the last answer, and sees
the inputs, ``<sep>`` and the answers so far. Each key it attends to is of one kind:

- ``same``: an input symbol equal to the symbol the step outputs;
- ``smaller`` / ``larger``: an input symbol that sorts before / after it;
- ``sep``: the separator; ``answers``: an answer already given.

An ablation runs the network with one part taken out: *zero* (its output replaced by zeros)
or *mean* (by its mean over every input, position by position), and decodes every input
again; what it leaves is the share still sorted. Positions are ablated by dropping W_pos
(zero) or replacing each row by their mean (mean). ``explain(model, task)`` returns the
numbers; ``markdown`` turns them into the page docs/how-it-sorts.md.

Usage::

    report = explain(model, SortTask())
    report.ablations["L0H1"]["zero"]          # share of inputs sorted without head 1
    print(markdown(report))
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from zeptogpt.attribution import attribute, head_outputs, part_names, stream_parts
from zeptogpt.evaluation import decode, greedy
from zeptogpt.model import ZeptoGPT
from zeptogpt.task import SortTask

KINDS = ("same", "smaller", "larger", "sep", "answers")
NEEDED = 0.99  # a part is needed when taking it out (zero) leaves under 99 % sorted


def components(model: ZeptoGPT) -> list[str]:
    """The parts an ablation can take out: each head, each MLP, and the positions."""
    return [n for n in part_names(model) if n not in ("embed", "bias")]


@torch.no_grad()
def ablated_logits(model: ZeptoGPT, idx: torch.Tensor, ablate: dict[str, str],
                   means: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """The network's logits ``[B, T, V]`` with the parts in ``ablate`` (name -> "zero" or
    "mean") replaced; ``means`` holds each part's mean output ``[T, E]`` (``part_means``)."""
    T = idx.shape[1]
    x = model.W_E[idx]  # [B, T, E]
    if model.W_pos is not None:
        pos = model.W_pos[:T]  # [T, E]
        how = ablate.get("pos")
        x = x + (pos if how is None else 0 * pos if how == "zero" else pos.mean(0))  # [B, T, E]

    def swap(name: str, out: torch.Tensor) -> torch.Tensor:  # [B, T, E]
        how = ablate.get(name)
        if how is None:
            return out
        return torch.zeros_like(out) if how == "zero" else means[name][:T].expand_as(out)

    for i, block in enumerate(model.blocks):
        heads = head_outputs(model, x, i)  # [B, H, T, E]
        x = x + sum(swap(f"L{i}H{h}", heads[:, h]) for h in range(heads.shape[1]))
        if block.mlp is not None:
            x = x + swap(f"L{i}MLP", block.mlp(block.ln2(x))[0])  # [B, T, E]
    return model.unembed(x)  # [B, T, V]


@torch.no_grad()
def part_means(model: ZeptoGPT, idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each part's output averaged over a batch of sequences, per position: ``{name: [T, E]}``
    (the mean ablation's stand-in), as the parts run in the clean network."""
    parts = stream_parts(model, idx)  # {name: [B, T, E]}
    return {name: parts[name].mean(0) for name in components(model) if name != "pos"}


@torch.no_grad()
def sorted_share(logits_of: Callable[[torch.Tensor], torch.Tensor], task: SortTask,
                 inputs: list[str]) -> float:
    """The share of ``inputs`` (one length) that greedy decoding through ``logits_of`` (ids
    ``[B, t]`` -> logits ``[B, t, V]``) sorts."""
    ids = torch.tensor([task.encode([*x, "<sep>"]) for x in inputs])  # [N, n + 1]
    for _ in range(len(inputs[0])):
        ids = torch.cat([ids, greedy(logits_of(ids)[:, -1])[:, None]], dim=1)  # [N, t + 1]
    n = len(inputs[0])
    right = sum("".join(task.decode(row[n + 1:])) == task.target(x)
                for row, x in zip(ids, inputs, strict=True))
    return right / len(inputs)


@dataclass
class StepReport:
    """One decoding step, averaged over every input."""

    step: int  # 1-based
    attention: dict[str, dict[str, float]]  # head -> key kind -> mean weight (rows sum to 1)
    shares: dict[str, float]  # part -> mean share of the chosen symbol's logit
    margin: float  # mean (chosen logit - best other symbol's logit)
    lens: dict[str, float]  # lens point label -> mean p(chosen) read there


@dataclass
class Report:
    """What ``explain`` measured for one model."""

    task: str
    arch: str
    params: int
    inputs: int
    sorted: float  # share of inputs the intact model sorts
    steps: list[StepReport]
    ablations: dict[str, dict[str, float]]  # part -> {"zero": share sorted, "mean": ...}
    roles: dict[str, str] = field(default_factory=dict)  # head -> the kind it attends to most

    @property
    def needed(self) -> list[str]:
        """The parts without which (zero ablation) under 99 % of inputs are sorted."""
        return [p for p, a in self.ablations.items() if a["zero"] < NEEDED]


def _key_kinds(task: SortTask, ids: torch.Tensor, n: int, step: int) -> torch.Tensor:
    """``[N, T]`` kind index (into KINDS) of each key the query of ``step`` (0-based) sees."""
    chosen = ids[:, n + 1 + step]  # [N]
    kinds = torch.full(ids.shape, 4)  # answers
    inputs = ids[:, :n]  # [N, n]
    order = -1 if task.reverse else 1  # "smaller" means sorts before
    before = (inputs - chosen[:, None]) * order < 0  # [N, n]
    kinds[:, :n] = torch.where(inputs == chosen[:, None], 0, torch.where(before, 1, 2))
    kinds[:, n] = 3  # <sep>
    return kinds


@torch.no_grad()
def explain(model: ZeptoGPT, task: SortTask) -> Report:
    """Every measurement of the page for ``model`` on every input of ``task``.

    Usage: ``explain(model, SortTask()).needed  # ["L0H0", "L0H1", "L0MLP"]``
    """
    if task.varies or task.n_inputs > 100_000:
        raise ValueError("explain measures tasks of one length with at most 100,000 inputs")
    from zeptogpt.anatomy import lens_points
    from zeptogpt.config import variant_name

    inputs = task.all_inputs()
    n = task.length
    d = decode(model, task, inputs)
    ids = d.ids  # [N, 2n + 1]
    seq = ids[:, :-1]  # [N, 2n]: what the last pass saw
    logits, shares = attribute(model, seq)  # [N, 2n, V], {part: [N, 2n, V]}
    _, cache = model.run_with_cache(seq)
    heads = [f"L{i}H{h}" for i in range(model.config.n_layer) for h in range(model.config.n_head)]
    steps = []
    for s in range(n):
        pos = n + s  # the query of step s + 1
        chosen = ids[:, pos + 1]  # [N]
        kinds = _key_kinds(task, ids, n, s)[:, : pos + 1]  # [N, pos + 1]
        attention = {}
        for name in heads:
            i, h = (int(t) for t in name[1:].split("H"))
            row = cache[f"blocks.{i}.pattern"][:, h, pos, : pos + 1]  # [N, pos + 1]
            attention[name] = {k: float((row * (kinds == j)).sum(1).mean())
                               for j, k in enumerate(KINDS)}
        rows = torch.arange(len(chosen))  # [N]
        at = logits[:, pos, 1:].clone()  # [N, V-1]: the symbols' logits
        best_other = at.scatter(1, (chosen - 1)[:, None], float("-inf")).max(1).values  # [N]
        margin = float((logits[rows, pos, chosen] - best_other).mean())
        lens = {label: float(model.unembed(cache[point][:, pos]).softmax(-1)[rows, chosen].mean())
                for point, label in lens_points(model.config.n_layer)}
        steps.append(StepReport(s + 1, attention,
                                {p: float(v[rows, pos, chosen].mean()) for p, v in shares.items()},
                                margin, lens))
    means = part_means(model, seq)
    ablations = {}
    for part in components(model):
        ablations[part] = {how: sorted_share(
            lambda x, part=part, how=how: ablated_logits(model, x, {part: how}, means),
            task, inputs) for how in ("zero", "mean")}
    roles = {h: max(KINDS, key=lambda k: sum(st.attention[h][k] for st in steps))
             for h in heads}
    return Report(task.name, variant_name(model.config), model.config.n_params, len(inputs),
                  sum(a == task.target(x) for a, x in zip(d.outputs, inputs, strict=True))
                  / len(inputs),
                  steps, ablations, roles)


def signature(report: Report) -> str:
    """How a model sorts, in a few words that ignore which head is which: each needed head's
    role, then whether the MLP and the positions are needed. ``"heads: answers, same; MLP"``"""
    needed = set(report.needed)
    heads = sorted(report.roles[h] for h in report.roles if h in needed)
    rest = [p for p in ("MLP", "positions") if any(
        n.endswith("MLP") if p == "MLP" else n == "pos" for n in needed)]
    return "; ".join([f"heads: {', '.join(heads) if heads else 'none needed'}", *rest])


def group_seeds(reports: dict[int, Report]) -> list[tuple[str, list[int]]]:
    """Seeds grouped by ``signature``, the largest group first."""
    groups: dict[str, list[int]] = {}
    for seed, report in reports.items():
        groups.setdefault(signature(report), []).append(seed)
    return sorted(groups.items(), key=lambda g: (-len(g[1]), g[0]))


WHAT = {"same": "the inputs equal to the symbol it outputs",
        "smaller": "the inputs that sort before the symbol it outputs",
        "larger": "the inputs that sort after the symbol it outputs",
        "sep": "the separator", "answers": "the answers already given"}


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def algorithm(report: Report) -> str:
    """The model's algorithm in plain words, generated from the measurements: where the heads
    look, what each part adds to the symbol chosen, where in the stream the choice is made."""
    steps, heads = report.steps, list(report.roles)
    weight = {k: _mean(st.attention[h][k] for st in steps for h in heads) for k in KINDS}
    sentences = [
        "At every step the heads look for the next symbol among the inputs: on average they "
        f"put {weight['same']:.0%} of their weight on the inputs equal to the symbol the step "
        f"outputs, {weight['smaller']:.0%} on inputs that sort before it (already output), "
        f"{weight['larger']:.0%} on inputs that sort after it (still to come), "
        f"{weight['sep']:.0%} on the separator and {weight['answers']:.0%} on the answers "
        "so far."]
    for head, role in report.roles.items():
        need = "it is needed" if head in report.needed else "the model sorts without it"
        sentences.append(
            f"Head {head[3:]}{f' of block {head[1]}' if len(report.roles) > 2 else ''} looks "
            f"most at {WHAT[role]} ({_mean(st.attention[head][role] for st in steps):.0%}) and "
            f"adds {_mean(st.shares[head] for st in steps):+.2f} to that symbol's logit; {need}.")
    for mlp in (p for p in report.ablations if p.endswith("MLP")):
        need = "it is needed" if mlp in report.needed else "the model sorts without it"
        sentences.append(f"The MLP{f' of block {mlp[1]}' if len(report.roles) > 2 else ''} "
                         f"adds {_mean(st.shares[mlp] for st in steps):+.2f}; {need}.")
    labels = list(steps[0].lens)
    lens = ", ".join(f"{_mean(st.lens[p] for st in steps):.2f} {p}" for p in labels)
    sentences.append(f"Read through the unembedding, the stream gives the chosen symbol p = "
                     f"{lens} (mean over steps).")
    return " ".join(sentences)


def markdown(report: Report, seeds: list[tuple[str, list[int]]] | None = None,
             command: str = "zeptogpt explain") -> str:
    """The page docs/how-it-sorts.md: every number from ``report`` (and the seed groups)."""
    pct = lambda x: f"{100 * x:.1f} %"  # noqa: E731
    lines = [
        "# How it sorts",
        "",
        f"Written by `{command}` from a trained model: {report.arch} ({report.params} "
        f"parameters) on {report.task}, measured on all {report.inputs} inputs, of which it "
        f"sorts {pct(report.sorted)}. Every number here is recomputed by the command; "
        "`tests/test_explain.py` checks the claims.",
        "",
        "## The algorithm, in plain words",
        "",
        algorithm(report) + " Taken out one at a time, the parts it cannot do without are: "
        f"{', '.join(report.needed) or 'none'}.",
        "",
        "## What each head attends to",
        "",
        "Mean attention weight of each head, by kind of key (same / smaller / larger than the "
        "symbol the step outputs, the separator, the answers so far), per decoding step:",
        "",
        "| step | head | " + " | ".join(KINDS) + " |",
        "|---|---|" + "---|" * len(KINDS),
    ]
    for st in report.steps:
        for head, row in st.attention.items():
            lines.append(f"| {st.step} | {head} | " + " | ".join(f"{row[k]:.2f}" for k in KINDS)
                         + " |")
    parts = list(report.steps[0].shares)
    lines += ["", "## What each part adds to the chosen symbol's logit", "",
              "Direct logit attribution (`zeptogpt.attribution`), mean over inputs; the parts add "
              "up to the logit. The margin is the chosen logit less the best other symbol's.", "",
              "| step | " + " | ".join(parts) + " | margin |", "|---|" + "---|" * (len(parts) + 1)]
    for st in report.steps:
        lines.append(f"| {st.step} | " + " | ".join(f"{st.shares[p]:+.2f}" for p in parts)
                     + f" | {st.margin:.2f} |")
    labels = list(report.steps[0].lens)
    lines += ["", "## The logit lens", "", "Mean probability of the chosen symbol read off the "
              "residual stream at each point:", "",
              "| step | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for st in report.steps:
        lines.append(f"| {st.step} | " + " | ".join(f"{st.lens[p]:.2f}" for p in labels) + " |")
    lines += ["", "## Ablations", "", "Share of all inputs still sorted with one part taken "
              "out: zero (its output set to 0) or mean (its mean output over every input, per "
              "position); the positions by dropping W_pos or averaging its rows.", "",
              "| part | zero | mean |", "|---|---|---|"]
    for part, a in report.ablations.items():
        lines.append(f"| {part} | {pct(a['zero'])} | {pct(a['mean'])} |")
    if seeds is not None:
        total = sum(len(s) for _, s in seeds)
        lines += ["", "## Do all seeds sort the same way?", "",
                  f"{total} seeds of the same architecture that sort every input, grouped by "
                  "which parts they need (zero ablation) and what each needed head attends to "
                  "most (head numbers ignored):", "", "| way | seeds | share | first seeds |",
                  "|---|---|---|---|"]
        for sig, group in seeds:
            lines.append(f"| {sig} | {len(group)} | {pct(len(group) / total)} | "
                         f"{', '.join(map(str, group[:6]))} |")
    return "\n".join(lines) + "\n"


def summary(report: Report, seeds: list[tuple[str, list[int]]] | None = None) -> str:
    """A few lines for the terminal."""
    lines = [f"{report.arch} on {report.task}: sorts {report.sorted:.0%} of {report.inputs}",
             f"needed (zero ablation): {', '.join(report.needed) or 'none'}",
             "roles: " + ", ".join(f"{h} {r}" for h, r in report.roles.items())]
    if seeds is not None:
        lines.append("ways over seeds: " + "; ".join(f"{len(s)} x [{sig}]" for sig, s in seeds))
    return "\n".join(lines)


def seed_reports(task: SortTask, config, seeds: int) -> dict[int, Report]:
    """``explain`` for every seed of ``config`` that sorts every input after training with the
    default recipe: ``{seed: report}``."""
    from zeptogpt.training import train

    result = train(task, config, seeds=range(seeds))
    return {r.seed: explain(m, task) for r, m in zip(result.results, result.models, strict=True)
            if r.solved}


def counted(groups: list[tuple[str, list[int]]]) -> Counter:
    """``{signature: seeds}`` counts, for tests and summaries."""
    return Counter({sig: len(s) for sig, s in groups})
