"""Pictures of a trained model: attention, the logit lens, every weight, training curves.

Each ``plot_*`` function returns a matplotlib ``Figure`` (shown inline by a notebook);
``save_png`` writes one to disk. matplotlib is imported inside the functions, so importing this
module (or running ``zeptogpt sort``) does not pay for it, and no pyplot global state is used.

Usage::

    fig = plot_attention(model, task, "caa")
    save_png(fig, "runs/e6/attention-caa.png")
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from zeptogpt.anatomy import dissect
from zeptogpt.files import write_atomic
from zeptogpt.model import ZeptoGPT
from zeptogpt.task import SortTask

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage

def plot_attention(model: ZeptoGPT, task: SortTask, text: str) -> Figure:
    """One panel per head (rows, layer by layer) and decoding step (columns): the causal attention
    pattern over the tokens so far, query on the y axis, key on the x axis, the newest
    (predicting) row boxed."""
    from matplotlib.figure import Figure

    a = dissect(model, task, text)
    heads = [(i, h) for i in range(a.n_layer) for h in range(len(a.attention[i]))]
    S = len(a.steps)
    if S > STEPS_IN_FULL:
        return _attention_rows(a, heads)
    fig = Figure(figsize=(3.6 * S + 0.6, 3.4 * len(heads) + 0.6), layout="constrained")
    axes = fig.subplots(len(heads), S, squeeze=False)
    for s, step in enumerate(a.steps):
        n = step.position + 1
        labels = _position_labels(a.tokens[:n])
        for r, (i, h) in enumerate(heads):
            pattern = a.attention[i][h]
            rows = [[w if k <= q else math.nan for k, w in enumerate(pattern[q][:n])]
                    for q in range(n)]
            ax = axes[r][s]
            image = _heatmap(ax, rows, labels, labels, cmap="Blues", vmin=0.0, vmax=1.0,
                             fmt="{:.2f}")
            ax.add_patch(_box(step.position, n))
            layer = f"layer {i} " if a.n_layer > 1 else ""
            ax.set_title(f"{layer}head {h} · step {s + 1}: -> '{step.chosen}'", fontsize=10)
            ax.set_xlabel("key (attended to)", fontsize=8)
            ax.set_ylabel("query", fontsize=8)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="attention weight")
    fig.suptitle(f"Attention while sorting {a.input!r} -> {a.output!r} "
                 "(boxed row: the position that predicts)", fontsize=12)
    return fig


STEPS_IN_FULL = 4  # longer answers draw only each step's predicting row: 10 full panels of
# 20 x 20 cells each were 4,000 pixels wide with unreadable numbers


def _attention_rows(a, heads) -> Figure:
    """The attention of a long answer: one panel per head, a row per decoding step, which is
    the predicting position's row of that step's pattern (the boxed row of the full view)."""
    from matplotlib.figure import Figure

    seen = len(a.tokens) - 1  # tokens the last pass saw
    columns = _position_labels(a.tokens[:seen])
    rows = [f"step {s + 1} -> '{step.chosen}'" for s, step in enumerate(a.steps)]
    fig = Figure(figsize=(0.55 * seen + 2.2, (0.4 * len(rows) + 1.2) * len(heads) + 0.6),
                 layout="constrained")
    axes = fig.subplots(len(heads), 1, squeeze=False)[:, 0]
    for ax, (i, h) in zip(axes, heads):
        pattern = a.attention[i][h]
        matrix = [[w if k <= step.position else math.nan for k, w in
                   enumerate(pattern[step.position][:seen])] for step in a.steps]
        image = _heatmap(ax, matrix, rows, columns, cmap="Blues", vmin=0.0, vmax=1.0,
                         fmt="{:.2f}")
        layer = f"layer {i} " if a.n_layer > 1 else ""
        ax.set_title(f"{layer}head {h}", fontsize=10)
        ax.set_xlabel("key (attended to)", fontsize=8)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="attention weight")
    fig.suptitle(f"Attention while sorting {a.input!r} -> {a.output!r}: each step's "
                 "predicting position over the tokens so far", fontsize=12)
    return fig


def plot_lens(model: ZeptoGPT, task: SortTask, text: str) -> Figure:
    """The logit lens: for each decoding step, each token's probability read off the residual
    stream after the embedding, then after each block's attention and MLP (the last row is the
    model's real output). Each row is the model's own distribution, a softmax over the whole
    vocabulary, so <sep> has a column too (greedy decoding never picks it)."""
    from matplotlib.figure import Figure

    a = dissect(model, task, text)
    P = len(a.lens_points)
    labels = [*a.lens_labels[:-1], f"{a.lens_labels[-1]} (output)"]
    fig = Figure(figsize=(max(3.3 * len(a.steps) + 1.6, 8), 0.5 * P + 1.7), layout="constrained")
    axes = fig.subplots(1, len(a.steps), squeeze=False)[0]
    for s, (ax, step) in enumerate(zip(axes, a.steps)):
        rows = [step.lens[p] for p in a.lens_points]
        image = _heatmap(ax, rows, labels, a.vocab, cmap="Greens", vmin=0.0, vmax=1.0,
                         fmt="{:.3f}")
        ax.add_patch(_box(P - 1, 1, col=a.vocab.index(step.chosen)))
        ax.set_title(f"step {s + 1} (position {step.position}): -> '{step.chosen}'", fontsize=10)
        if s:
            ax.set_yticklabels([])
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="p(token)")
    fig.suptitle(f"Logit lens of {a.input!r} -> {a.output!r}: p(token) at each point of the "
                 "residual stream, <sep> included", fontsize=11)
    return fig


def plot_weights(model: ZeptoGPT, task: SortTask) -> Figure:
    """Every weight of the model on one sheet, each matrix a heatmap with its values written in.

    Per-head attention matrices are drawn per head; LayerNorm gains and biases as two rows. With
    several blocks the panels go by kind (LayerNorms, attention, MLP), block by block within each.
    Every panel has the same colour scale, the largest |weight| of all, shown by one colour bar.
    """
    from matplotlib.figure import Figure

    panels = _weight_panels(model, task)
    cols = 5
    nrows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(3.9 * cols, 3.5 * nrows), layout="constrained")
    axes = fig.subplots(nrows, cols, squeeze=False).flatten()
    # one scale for all, so a panel's colours compare with every other's
    vmax = max(abs(v) for _, matrix, _, _ in panels for row in matrix for v in row) or 1.0
    for ax, (title, matrix, rows, columns) in zip(axes, panels):
        image = _heatmap(ax, matrix, rows, columns, cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                         fmt="{:.2f}")
        ax.set_title(title, fontsize=10)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.colorbar(image, ax=list(axes), shrink=0.5, label="weight (one scale for every panel)")
    n = sum(p.numel() for p in model.parameters())
    fig.suptitle(f"All {n} weights of {model!r} (red > 0 > blue, one scale: |w| ≤ {vmax:.2f})",
                 fontsize=12)
    return fig


def plot_curves(rows: Sequence[tuple[int, float, int]], total: int, title: str = "") -> Figure:
    """Training loss (log scale) and inputs sorted (out of ``total``) at every step of one run,
    from ``read_log`` rows ``(step, loss, correct)``."""
    from matplotlib.figure import Figure

    steps = [r[0] for r in rows]
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    loss_ax, acc_ax = fig.subplots(2, 1, sharex=True)
    loss_ax.plot(steps, [r[1] for r in rows], color="tab:red", lw=1.2)
    loss_ax.set_yscale("log")
    loss_ax.set_ylabel("training loss (log)")
    loss_ax.grid(alpha=0.3)
    acc_ax.plot(steps, [r[2] for r in rows], color="tab:blue", lw=1.2, drawstyle="steps-post")
    acc_ax.set_ylim(-0.5, total + 0.5)
    acc_ax.axhline(total, color="gray", lw=0.8, ls="--")
    acc_ax.set_ylabel(f"inputs sorted (of {total})")
    acc_ax.set_xlabel("step")
    acc_ax.grid(alpha=0.3)
    fig.suptitle(title or f"Training: {rows[-1][0]} steps, final loss {rows[-1][1]:.4f}, "
                 f"{rows[-1][2]}/{total} sorted")
    return fig


def plot_solved_share(steps_to_solve: Sequence[int | None], max_steps: int | None = None,
                      title: str = "") -> Figure:
    """Share of seeds solved by each step, from each seed's steps-to-solve (None: not solved
    within the step limit ``max_steps``, if known). A sweep's whole story in one curve; ``title``
    (e.g. the variant) goes before the summary."""
    from matplotlib.figure import Figure

    from zeptogpt.sweep import solved_median  # here: sweep imports training, which is heavy

    if not steps_to_solve:
        raise ValueError("no seeds to plot")
    n = len(steps_to_solve)
    solved = sorted(s for s in steps_to_solve if s is not None)
    # The axis runs to the step limit only when some seed hit it; otherwise the rise is the story
    unsolved = len(solved) < n
    end = max_steps if max_steps is not None and unsolved else max(solved, default=1)
    xs = [0, *solved, end]
    ys = [0.0, *[(i + 1) / n for i in range(len(solved))], len(solved) / n]
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.plot(xs, ys, drawstyle="steps-post", color="tab:green", lw=1.5)
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, end * (1.02 if unsolved else 1.1))
    ax.set_xlabel("training step")
    ax.set_ylabel("share of seeds solved")
    ax.grid(alpha=0.3)
    summary = f"{len(solved)}/{n} seeds solved"
    if max_steps is not None:
        summary += f" within {max_steps} steps"
    if solved:  # the sweep summary's median, over the solved seeds, formatted as it does
        summary += f", median {solved_median(steps_to_solve):g} steps, slowest solved {solved[-1]}"
    ax.set_title(f"{title}: {summary}" if title else summary)
    return fig


def plot_board(entries: Sequence, searches: dict[str, tuple], title: str = "SortBoard"
               ) -> Figure:
    """The board's picture: each search's architectures as share of seeds solved against
    parameters, its Pareto front as a line, and the board's entries on top (a hand-coded one
    is a single model: drawn at the top as a star). ``entries`` are ``board.Entry`` rows,
    ``searches`` a search's name -> its task and ``search.Row`` rows (``read_searches``)."""
    from matplotlib.figure import Figure

    from zeptogpt.search import front

    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")
    for (name, (_, rows)), color in zip(searches.items(), colors, strict=False):
        ax.scatter([r.params for r in rows], [r.share for r in rows], s=8, alpha=0.35,
                   color=color, label=f"{name}: {len(rows)} architectures")
        best = front(rows)
        ax.plot([r.params for r in best], [r.share for r in best], drawstyle="steps-post",
                color=color, lw=1.5)
    points: dict[tuple[int, float, bool], list[str]] = {}  # entries at one point share a label
    for e in entries:
        hand = e.category == "hand-coded"
        solved, _, seeds = e.seeds.partition("/")
        if not (hand or seeds):  # a trained entry no search ran: no share to draw it at
            continue
        share = 1.0 if hand else int(solved) / int(seeds)
        points.setdefault((e.params, share, hand), []).append(e.task)
    for (params, share, hand), tasks in points.items():
        ax.scatter([params], [share], marker="*" if hand else "o", s=90, color="black", zorder=3)
        what = "hand-coded" if hand else "trained"
        ax.annotate(f"{', '.join(tasks)} {what} {params}", (params, share), fontsize=7,
                    xytext=(4, -10 if hand else 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.08)
    ax.set_xlabel("parameters (free scalars, the board's rules)")
    ax.set_ylabel("share of seeds that train to 100 %")
    ax.grid(alpha=0.3)
    ax.legend(loc="center right", fontsize=8)
    ax.set_title(title)
    return fig


def save_png(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write the figure as a PNG atomically (temporary file, then rename); returns the path."""
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=dpi)
    write_atomic({Path(path): png.getvalue()})
    return Path(path)


# --- drawing pieces -----------------------------------------------------------------------------

def _heatmap(ax: Axes, matrix: Sequence[Sequence[float]], rows: Sequence[str],
             columns: Sequence[str], *, cmap: str, vmin: float, vmax: float, fmt: str
             ) -> AxesImage:
    """A labelled heatmap with each value written in its cell (NaN cells stay blank); returns
    its image, for a colour bar."""
    import matplotlib as mpl

    image = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.tick_params(length=0)
    norm, colormap = mpl.colors.Normalize(vmin, vmax), mpl.colormaps[cmap]
    size = 8 if len(columns) <= 6 else 7
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            if math.isnan(v):
                continue
            r, g, b, _ = colormap(norm(v))
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5  # white text on dark cells
            ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=size,
                    color="white" if dark else "black")
    return image


def _box(row: int, width: int, col: int = 0):
    """A rectangle around cells ``row, col .. col+width-1`` of a heatmap."""
    from matplotlib.patches import Rectangle

    return Rectangle((col - 0.5, row - 0.5), width, 1, fill=False, ec="darkorange", lw=2.2)


def _position_labels(tokens: Sequence[str]) -> list[str]:
    """``['0 c', '1 a', '2 a', '3 <sep>']``: repeated letters stay tellable apart."""
    return [f"{i} {t}" for i, t in enumerate(tokens)]


def _weight_panels(model: ZeptoGPT, task: SortTask):
    """(title, matrix, row labels, column labels) for every weight, split per head: the
    embeddings, every LayerNorm, every attention matrix, every MLP matrix (with one block the
    titles name no block, as ``ln1``; with several ``layer 1 ln1``)."""
    E = model.config.n_embd
    dims = [f"e{i}" for i in range(E)]
    mlp = [f"m{i}" for i in range(model.config.d_mlp)]
    blocks = [(f"layer {i} " if len(model.blocks) > 1 else "", b)
              for i, b in enumerate(model.blocks)]
    c = model.config
    head = " (also the LM head)" if c.tie_unembed else ""
    panels = [(f"W_E token embedding {tuple(model.W_E.shape)}{head}",
               model.W_E.tolist(), list(task.vocab), dims)]
    if model.W_pos is not None:
        kind = "position embedding" if c.pos_embed else "fixed sinusoidal positions"
        panels.append((f"W_pos {kind} {tuple(model.W_pos.shape)}",
                       model.W_pos.tolist(), [f"pos {i}" for i in range(len(model.W_pos))], dims))
    if model.W_U is not None:
        panels.append((f"W_U unembedding {tuple(model.W_U.shape)}", model.W_U.tolist(), dims,
                       list(task.vocab)))
    norms = [(f"{layer}{name}", getattr(b, name)) for layer, b in blocks for name in ("ln1", "ln2")]
    for name, ln in [*norms, ("ln_f", model.ln_f)]:
        learned = [(n, t) for n, t in (("w", getattr(ln, "weight", None)),
                                       ("b", getattr(ln, "bias", None))) if t is not None]
        if learned:  # a fixed norm (or none) has nothing to show
            what = ", ".join({"w": "gain w", "b": "bias b"}[n] for n, _ in learned)
            panels.append((f"{name} {type(ln).__name__} {what} ({len(learned)}, {E})",
                           [t.tolist() for _, t in learned], [n for n, _ in learned], dims))
    # a tied weight has no panel of its own: the one it reads again says so
    shared = {"W_Q": " (W_K = W_Q)" if c.tie_qk else "", "W_V": " (W_O = W_Vᵀ)" if c.tie_vo else ""}
    for layer, b in blocks:
        for name in ("W_Q", "W_K", "W_V", "W_O"):
            w = getattr(b.attn, name)  # [H, E, D] or [H, D, E]; None where tied
            if w is None:
                continue
            for h in range(w.shape[0]):
                rows, cols = (dims, [f"d{i}" for i in range(w.shape[2])]) if name != "W_O" else (
                    [f"d{i}" for i in range(w.shape[1])], dims)
                panels.append((f"{layer}{name} head {h} {tuple(w[h].shape)}{shared.get(name, '')}",
                               w[h].tolist(), rows, cols))
    for layer, b in blocks:
        if b.mlp is None:
            continue
        W_in, W_out = b.mlp.W_in, b.mlp.W_out  # [E, M], [M, E]
        panels.append((f"{layer}W_in MLP in {tuple(W_in.shape)}", W_in.tolist(), dims, mlp))
        panels.append((f"{layer}W_out MLP out {tuple(W_out.shape)}", W_out.tolist(), mlp, dims))
    return panels
