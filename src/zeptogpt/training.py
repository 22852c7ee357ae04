"""Training: K seeds of one architecture as one batched computation; one seed is K = 1.

Every seed starts from the weights ``ZeptoGPT(config, generator seeded with seed)`` gives, keeps
its own Adam state (Adam is elementwise, so stacking weights changes nothing), and leaves the
batch as soon as it is solved or hits the step limit, so no more work is spent on it.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap

from zeptogpt import engine
from zeptogpt.config import ModelConfig
from zeptogpt.evaluation import greedy
from zeptogpt.model import ZeptoGPT, init_weight
from zeptogpt.task import IGNORE, OBJECTIVES, SortTask


@dataclass(frozen=True)
class Recipe:
    """How to train. One recipe serves every variant: the variants table compares architectures."""

    max_steps: int = 2000  # step limit: a seed not solved by then counts as a failure
    lr: float = 0.03  # Adam step size; full-batch gradients are exact, so it can be large
    warmup: int = 0  # steps of linear learning-rate warm-up
    betas: tuple[float, float] = (0.8, 0.85)  # Adam's memory: short, so it follows the landscape
    weight_decay: float = 0.03  # decoupled (AdamW) decay; frees seeds stuck without positions
    objective: str = "answer"  # "answer": loss on the output only; "full": every next token (seed)
    batch_size: int = 0  # 0: all sequences every step (exact gradient); N: sample N like the seed
    margin: float = 0.9  # solved = all correct greedily and every answer token has p >= margin
    decay: bool = False  # cosine decay of lr to lr / 10 at max_steps: drawn minibatches' noise
    # keeps a constant-lr run hovering near 97 % of digits5; a falling lr lets it settle

    def __post_init__(self) -> None:
        if self.max_steps < 0:  # 0 is allowed here: no update, the initial weights' verdict
            raise ValueError(f"step limit must not be negative, got {self.max_steps}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}")
        if not (self.lr > 0 and self.warmup >= 0 and self.batch_size >= 0 and 0 < self.margin < 1):
            raise ValueError("lr, margin must be positive (margin < 1); warmup, batch_size >= 0")

    def lr_at(self, step: int) -> float:
        """Learning rate for update number ``step`` (0-based)."""
        lr = self.lr * min(1.0, (step + 1) / self.warmup) if self.warmup else self.lr
        if self.decay and self.max_steps:
            lr *= 0.1 + 0.45 * (1 + math.cos(math.pi * min(step / self.max_steps, 1.0)))
        return lr


@dataclass
class SeedResult:
    """What one seed's training did. ``log`` holds (step, loss, correct) for every step."""

    seed: int
    solved: bool  # all inputs sorted greedily with every answer token at p >= margin
    steps: int  # optimizer updates made before the verdict
    loss: float  # training loss at the verdict
    correct: int  # inputs sorted correctly (greedy) at the verdict
    margin: float  # lowest probability of a correct answer token at the verdict
    seconds: float  # wall time from the start of the batch to this seed's verdict
    log: list[tuple[int, float, int]] = field(default_factory=list, repr=False)


@dataclass
class TrainResult:
    """Trained weights and results, in the order of the seeds asked for."""

    config: ModelConfig
    weights: dict[str, torch.Tensor] = field(repr=False)  # name -> [K, ...] at each verdict
    results: list[SeedResult]
    model_steps: int  # sum over steps of the seeds still in the batch: the work actually done
    checked_on: int  # inputs a solved seed sorts: all of the task's, or its evaluation set

    @cached_property
    def models(self) -> list[ZeptoGPT]:
        """One module per seed, built on first use (a sweep of 1,000 seeds never needs them)."""
        models = []
        for k in range(len(self.results)):
            model = ZeptoGPT(self.config, torch.Generator())  # leaves the global RNG alone
            model.load_state_dict({name: w[k] for name, w in self.weights.items()})
            models.append(model.requires_grad_(False))
        return models


StepCallback = Callable[[int, torch.Tensor, torch.Tensor, int], None]

FULL_BATCH_LIMIT = 20_000  # the most inputs trained on whole at every step (digits4, 10,000:
# about 0.3 GB); 100,000 took 5 GB and 13 s a step. Larger tasks draw minibatches instead.
DRAWN_BATCH = 256  # minibatch of a task beyond the limit when the recipe names none
RECHECK = 50  # steps a drawn-batch seed waits after failing the whole evaluation set


def train(
    task: SortTask,
    config: ModelConfig,
    recipe: Recipe = Recipe(),
    seeds: Sequence[int] = (0,),
    on_step: StepCallback | None = None,
    reference: bool = False,
) -> TrainResult:
    """Train one model per seed, all at once, each until solved or out of steps.

    A task of at most ``FULL_BATCH_LIMIT`` inputs trains on all of them (or, with
    ``recipe.batch_size``, on minibatches counted out of them) and is solved when every input
    is. A larger one draws each seed's minibatches from the seed's own generator, and a seed
    whose minibatch is all right is checked on ``task.evaluation_inputs()``: solved when every
    one of those is (``TrainResult.checked_on`` says how many).
    ``on_step(step, loss[K], correct[K], K)`` is called once per step with the seeds still
    active (``correct``: of the step's sequences). The engine computes the network wherever it
    covers the config; ``reference=True`` runs the reference network instead, as a check.
    Usage: ``model = train(SortTask(), ModelConfig(), seeds=[0]).models[0]``
    """
    if not seeds:
        raise ValueError("at least one seed is needed")
    started = time.perf_counter()
    template = ZeptoGPT(config, torch.Generator())  # the one network; weights come from `params`
    params = initial_weights(template, seeds)  # name -> [K, ...]
    final = {name: torch.empty_like(p) for name, p in params.items()}  # each seed's verdict
    optimizer = Adam(params, recipe.betas, recipe.weight_decay)
    drawn = task.n_inputs > FULL_BATCH_LIMIT
    # The answer objective needs outputs from the first <sep> on only: the model skips the rest.
    start = task.answer.start if recipe.objective == "answer" else 0
    if drawn:
        # Each seed draws its own minibatches from its own generator, so it gets the same ones
        # whichever seeds it is trained with; the evaluation set is fixed by the task.
        samplers = [random.Random(s) for s in seeds]
        edges = task.edge_cases()
        checks = Batch(task, task.evaluation_inputs(), start, recipe.objective)
        next_check = [0] * len(seeds)
    else:
        data = Batch(task, task.all_inputs(), start, recipe.objective)
        # Sampled minibatches (the seed's way): each seed counts its own out of every sequence.
        counters = [torch.Generator().manual_seed(s) for s in seeds] if recipe.batch_size else []

    active = list(range(len(seeds)))  # positions in `seeds` of the models still training
    results: list[SeedResult | None] = [None] * len(seeds)
    logs: list[list] = [[] for _ in seeds]
    model_steps = 0
    for step in range(recipe.max_steps + 1):
        if drawn:
            batches = [Batch(task, draw(task, samplers[k], recipe.batch_size or DRAWN_BATCH,
                                        edges), start, recipe.objective) for k in active]
            idx = torch.stack([b.idx for b in batches])  # [K, B, T-1]: each seed its own
            targets = torch.stack([b.targets for b in batches])  # [K, B, S]
            logits = vmap(lambda p, x: functional_call(template, p, (x,)))(
                optimizer.params, idx)[:, :, start:]  # [K, B, S, V]
            loss = per_model_loss(logits, targets)  # [K]
            answers = torch.stack([b.answer for b in batches])  # [K, B, L]
            with torch.no_grad():
                correct, margin = score(logits[:, :, batches[0].at_answer], answers)  # [K] each
            full = (correct == idx.shape[1]) & (margin >= recipe.margin)  # [K]
            seen = correct.clone()  # [K]: of the minibatch, for on_step
            checked = torch.zeros(len(active), dtype=torch.bool)  # [K]
            for i, k in enumerate(active):  # the whole set only for a seed that may be done
                if step == recipe.max_steps or (bool(full[i]) and step >= next_check[k]):
                    weights = {name: p.detach()[i] for name, p in optimizer.params.items()}
                    correct[i], margin[i] = checks.score(template, weights)
                    checked[i], next_check[k] = True, step + RECHECK
            solved = checked & (correct == len(checks.words)) & (margin >= recipe.margin)
        else:
            logits = stacked_logits(template, optimizer.params, data.idx, start,
                                    reference)  # [K, N, S, V]
            loss = per_model_loss(logits, data.targets)  # [K]
            with torch.no_grad():
                correct, margin = score(logits[:, :, data.at_answer], data.answer)  # [K] each
            solved = (correct == task.n_inputs) & (margin >= recipe.margin)  # [K]
        done = solved | (step == recipe.max_steps)  # [K]
        if on_step is not None:
            on_step(step, loss.detach(), seen if drawn else correct, len(active))
        elapsed = time.perf_counter() - started
        losses, corrects = loss.tolist(), correct.tolist()
        for i, k in enumerate(active):
            logs[k].append((step, losses[i], corrects[i]))
        leaving = done.nonzero()[:, 0]  # [K_done]
        for i in leaving.tolist():
            k = active[i]
            results[k] = SeedResult(seeds[k], bool(solved[i]), step, losses[i], corrects[i],
                                    float(margin[i]), elapsed, logs[k])
        if len(leaving):
            to = torch.tensor(active)[leaving]  # [K_done] positions in `seeds`
            for name, p in optimizer.params.items():
                final[name][to] = p.detach()[leaving]
        if bool(done.all()):
            break
        if not drawn and counters:
            # The verdict's forward pass already holds every sequence's logits: a minibatch's loss
            # is their loss with each sequence counted as often as it was drawn.
            N = len(data.words)
            counts = torch.stack([torch.randint(N, (recipe.batch_size,), generator=counters[k])
                                  .bincount(minlength=N) for k in active])  # [K, N]
            loss = per_model_loss(logits, data.targets, counts)  # [K]
        loss.sum().backward()  # seeds share no weights, so each gets its own gradient
        if bool(done.any()):
            keep = (~done).nonzero()[:, 0]  # [K']
            optimizer.keep(keep)
            active = [active[i] for i in keep.tolist()]
        model_steps += len(active)
        optimizer.step(recipe.lr_at(step))
    checked_on = len(checks.words) if drawn else task.n_inputs
    return TrainResult(config, final, [r for r in results if r is not None], model_steps,
                       checked_on)


EDGE_SHARE = 16  # one drawn sequence in 16 is an edge case: a uniform draw all but never
# makes 0000000000 or 0999999999, and digits10 models got exactly those wrong


def draw(task: SortTask, rng: random.Random, size: int, edges: Sequence[str]) -> list[str]:
    """A drawn minibatch: ``size`` inputs from ``task.sample``, one in ``EDGE_SHARE`` of them
    one of the ``edges`` instead.
    Usage: ``draw(task, random.Random(seed), 256, task.edge_cases())``"""
    n_edges = size // EDGE_SHARE
    return task.sample(rng, size - n_edges) + rng.choices(edges, k=n_edges)


class Batch:
    """Sequences of a task ready for the network: ``idx`` [N, T-1] tokens in, ``targets``
    [N, S] what the loss reads from position ``start`` on, ``answer`` [N, L] the sorted
    symbols at the answer positions (IGNORE past a shorter input's end), under either objective.
    """

    def __init__(self, task: SortTask, words: Sequence[str], start: int, objective: str) -> None:
        self.words = words
        self.idx, targets = task.dataset(objective, words)  # [N, T-1] each
        self.targets = targets[:, start:]  # [N, S]
        if objective != "answer":  # the prompt's targets are not answers
            targets = task.dataset("answer", words)[1]
        self.answer = targets[:, task.answer]  # [N, L]
        self.positions = task.answer  # where the answers are along the T-1 axis
        self.at_answer = slice(task.answer.start - start, None)  # and along the S axis

    @torch.no_grad()
    def score(self, model: ZeptoGPT, weights: dict[str, torch.Tensor], chunk: int = 8192
              ) -> tuple[int, float]:
        """One model's (inputs sorted, lowest probability of a right answer token) over the
        batch, through the reference network a chunk at a time."""
        correct, margin = 0, 1.0
        for i in range(0, len(self.words), chunk):
            logits = functional_call(model, weights, (self.idx[i: i + chunk],))  # [n, T-1, V]
            c, m = score(logits[None, :, self.positions], self.answer[i: i + chunk])
            correct, margin = correct + int(c), min(margin, float(m))
        return correct, margin


def score(logits: torch.Tensor, answer: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """K models' (inputs sorted greedily, lowest probability of a right answer token) from
    their teacher-forced logits at the answer positions ``[K, N, L, V]`` and the answers
    ``[N, L]``, or each model's own ``[K, N, L]`` (IGNORE where a shorter input has none):
    ``([K], [K])``.

    Teacher-forced answers equal greedy decoding's whenever every earlier answer token is
    right, so an input counts as sorted here exactly when greedy decoding sorts it.
    Usage: ``correct, margin = score(logits[:, :, task.answer], targets[:, task.answer])``
    """
    # Read in the network's own layout, vocabulary first (a view of the same logits): there
    # these reductions run over an outer axis, several times faster.
    z = logits.transpose(1, 3)  # [K, V, L, N]
    answer = answer.mT  # [L, N] or [K, L, N]
    ignored = answer == IGNORE  # [L, N] or [K, L, N]
    hit = (greedy(z, dim=1) == answer) | ignored  # [K, L, N]
    correct = hit.all(1).sum(-1)  # [K]
    # p(answer) with <sep> forbidden: 1 / (the sum over letters l of e^(z_l - z_answer))
    z_answer = z.gather(1, answer.clamp(min=0).expand(hit.shape)[:, None])  # [K, 1, L, N]
    rest = (z[:, 1:] - z_answer).exp_().sum(1).masked_fill_(ignored, 1.0)  # [K, L, N]
    return correct, rest.amax((-1, -2)).reciprocal()  # [K] each


def stacked_logits(model: ZeptoGPT, params: dict[str, torch.Tensor], idx: torch.Tensor,
                   start: int = 0, reference: bool = False) -> torch.Tensor:
    """K models' logits ``[K, B, T - start, V]``: ``model``'s network with each of the stacked
    weights ``params`` (name -> ``[K, ...]``), from position ``start`` on. The engine computes
    it where it covers the config (measured 5-12x faster than the reference from K = 64 on,
    for 3 and for 6 letters: docs/engine.md); elsewhere, or with ``reference``, the reference
    runs over the stack (``vmap``).
    Usage: ``stacked_logits(template, initial_weights(template, range(8)), idx)``
    """
    if engine.covers(model.config) and not reference:
        return engine.logits(params, model.config, idx, start)
    return vmap(lambda p: functional_call(model, p, (idx,)))(params)[:, :, start:]


def initial_weights(model: ZeptoGPT, seeds: Sequence[int]) -> dict[str, torch.Tensor]:
    """Each seed's initial weights stacked, ``name -> [K, ...]``: seed s gets exactly what
    ``ZeptoGPT(config, torch.Generator().manual_seed(s))`` gets; ``model`` gives the shapes.

    Drawn straight into the stack: building K modules would cost more than training them.
    """
    stacked = {name: torch.empty(len(seeds), *p.shape) for name, p in model.named_parameters()}
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    for name, weights in stacked.items():  # named_parameters() order, as the module draws
        init_weight(name, weights, generators)
    return {name: w.requires_grad_(True) for name, w in stacked.items()}


def per_model_loss(
    logits: torch.Tensor, targets: torch.Tensor, counts: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean next-token cross-entropy of each model over the unmasked targets: [K, N, S, V] -> [K],
    the targets ``[N, S]`` shared or each model's own ``[K, N, S]``.

    ``counts`` [K, N] weighs each model's sequences, as a minibatch that drew sequence n
    ``counts[k, n]`` times would; without it every sequence counts once.
    Usage: ``per_model_loss(logits, targets)  # logits [K, N, S, V], targets [N, S]``
    """
    K = logits.shape[0]
    # The vocabulary as axis 1, the layout the network computes in (docs/engine.md), where
    # cross_entropy's softmax runs over an outer axis rather than a last axis of 4.
    nll = F.cross_entropy(logits.transpose(1, -1), targets.mT.expand(K, -1, -1),
                          ignore_index=IGNORE, reduction="none")  # [K, S, N], 0 where masked
    per_sequence = nll.sum(1)  # [K, N]
    scored = (targets != IGNORE).sum(-1)  # [N] or [K, N]: targets the loss reads per sequence
    if counts is None:
        return per_sequence.sum(-1) / scored.sum(-1)  # [K]
    return (per_sequence * counts).sum(-1) / (counts * scored).sum(-1)  # [K]


class Adam:
    """AdamW (Loshchilov & Hutter, 2019) over stacked weights, each seed's slice its own optimizer.

    Not torch.optim's: its first use imports torch._dynamo (about 1.3 s, several times a whole
    training run here), and shrinking its state when seeds leave is awkward. The update itself
    is PyTorch's fused kernel, one pass per weight (docs/engine.md).
    """

    def __init__(self, params: dict[str, torch.Tensor], betas: tuple[float, float] = (0.9, 0.999),
                 weight_decay: float = 0.0, eps: float = 1e-8) -> None:
        self.params, self.betas, self.eps, self.t = params, betas, eps, 0  # name -> [K, ...]
        self.weight_decay = weight_decay
        self.m = [torch.zeros_like(p) for p in params.values()]  # first moments
        self.v = [torch.zeros_like(p) for p in params.values()]  # second moments

    @torch.no_grad()
    def step(self, lr: float) -> None:
        """One update from the gradients ``g`` in ``p.grad``, which it then clears:
        ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``, and with ``m^``, ``v^`` those
        divided by ``1 - b^t``: ``p = p (1 - lr weight_decay) - lr m^ / (sqrt(v^) + eps)``."""
        self.t += 1
        params = list(self.params.values())
        t = torch.tensor(float(self.t))  # the kernel reads the step count from a tensor
        torch._fused_adamw_(params, [p.grad for p in params], self.m, self.v, [],
                            [t] * len(params), lr=lr, beta1=self.betas[0], beta2=self.betas[1],
                            weight_decay=self.weight_decay, eps=self.eps, amsgrad=False,
                            maximize=False)
        for p in params:
            p.grad = None

    def keep(self, keep: torch.Tensor) -> None:
        """Drop every seed not in ``keep`` (indices along K) from weights, gradients and moments."""
        kept = {}
        for name, p in self.params.items():
            kept[name] = p.detach()[keep].requires_grad_(True)
            kept[name].grad = p.grad[keep]
        self.params = kept
        self.m = [m[keep] for m in self.m]
        self.v = [v[keep] for v in self.v]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of sorted ``values``; nan when empty."""
    if not values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(values)))
    return float(values[rank - 1])
