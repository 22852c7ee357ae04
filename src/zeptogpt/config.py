"""The architecture of a ZeptoGPT: a frozen config, its parameter table, and the named variants.

Nothing here needs torch, so ``zeptogpt params`` prints the table without importing it.

Usage::

    config = variant_config("e6-nopos", task.vocab_size, task.seq_len)
    print(config.format_params())          # ... Trainable parameters: 276
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

# Normalisations: name -> learned numbers per feature. "-fixed" ones normalise without a learned
# gain or bias; "none" leaves the stream as it is (ln1, ln2 and ln_f become the identity).
NORMS = {"layernorm": 2, "rmsnorm": 1, "layernorm-fixed": 0, "rmsnorm-fixed": 0, "none": 0}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture. The defaults are the seed's 318-parameter sorter."""

    vocab_size: int = 4  # <sep> plus the letters a, b, c
    block_size: int = 7  # longest context: x1 x2 x3 <sep> y1 y2 y3
    n_embd: int = 6  # E: width of the residual stream
    n_head: int = 2  # H: attention heads
    mlp_mult: int = 1  # MLP hidden width as a multiple of E (the seed's "MLP x1")
    pos_embed: bool = True  # learned positions; without them order comes only from the causal mask
    n_layer: int = 1  # L: transformer blocks; the seed has one, and one is enough to sort
    # The knobs below let a search (and a hand-coded sorter) go below the seed's shape; their
    # defaults are the seed's, so a config without them is the seed's kind of network.
    head_dim: int = 0  # D: each head's width; 0 splits E evenly, E // H, as the seed does
    mlp_width: int = -1  # M: the MLP's hidden width; -1 takes mlp_mult × E; 0 drops the MLP
    norm: str = "layernorm"  # see NORMS: which normalisation, and whether it learns gain and bias
    sinusoidal: bool = False  # fixed sine/cosine positions (pos_embed off): order, not learned
    tie_qk: bool = False  # keys read through the queries' weights: W_K is W_Q
    tie_vo: bool = False  # each head writes back through its value weights: W_O is W_V transposed
    tie_unembed: bool = True  # the LM head is W_E transposed, as in the seed; False learns W_U

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_embd", "n_head", "mlp_mult", "n_layer"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.head_dim < 0:
            raise ValueError(f"head_dim must be at least 0, got {self.head_dim}")
        if self.mlp_width < -1:
            raise ValueError(f"mlp_width must be -1 (mlp_mult × E), 0 (none) or more, "
                             f"got {self.mlp_width}")
        if not self.head_dim and self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if self.sinusoidal and self.pos_embed:
            raise ValueError("positions are either learned (pos_embed) or sinusoidal, not both")

    @property
    def d_head(self) -> int:
        return self.head_dim or self.n_embd // self.n_head

    @property
    def d_mlp(self) -> int:
        return self.mlp_mult * self.n_embd if self.mlp_width < 0 else self.mlp_width

    @property
    def positions(self) -> str:
        """"learned", "sinusoidal" or "none"."""
        return "learned" if self.pos_embed else "sinusoidal" if self.sinusoidal else "none"

    @property
    def norm_params(self) -> int:
        """Learned numbers in one normalisation: gain and bias (LayerNorm), gain (RMSNorm)."""
        return NORMS[self.norm] * self.n_embd

    @property
    def is_seed_shape(self) -> bool:
        """Whether every knob past the seed's fields is at its default (the seed's table rows)."""
        return (self.head_dim in (0, self.n_embd // self.n_head) and self.mlp_width < 0
                and self.norm == "layernorm" and not (self.sinusoidal or self.tie_qk
                                                      or self.tie_vo) and self.tie_unembed)

    def param_table(self) -> list[tuple[str, str, int]]:
        """(part, formula, count) rows in the seed's table order; a part the knobs remove or tie
        counts 0 and says why. With one block these are the seed's rows; each further block adds
        its own group."""
        V, T, E, H, D, M = (self.vocab_size, self.block_size, self.n_embd, self.n_head,
                            self.d_head, self.d_mlp)
        positions = {"learned": (f"{T} × {E}", T * E), "sinusoidal": ("fixed sinusoidal", 0),
                     "none": ("off", 0)}[self.positions]
        rows = [("token_embed", f"{V} × {E}", V * E), ("pos_embed", *positions)]
        # W_Q, W_K, W_V and W_O are E × H·D each; a tied one is another's numbers
        n_attn = 4 - self.tie_qk - self.tie_vo
        ties = [t for t, on in (("W_K = W_Q", self.tie_qk), ("W_O = W_Vᵀ", self.tie_vo)) if on]
        attn = (f"{n_attn} × ({E} × {E})" if H * D == E else f"{n_attn} × ({E} × {H}·{D})")
        attn += f" ({', '.join(ties)})" if ties else ""
        mlp = (f"{E} × {M} + {M} × {E}", 2 * E * M) if M else ("none (attention only)", 0)
        per_norm = {"layernorm": f"(2 × {E})", "rmsnorm": f"{E} rmsnorm"}.get(self.norm,
                                                                               self.norm)

        def norms(n: int) -> tuple[str, int]:  # n normalisations: their formula and count
            if self.norm == "none":
                return "none", 0
            return f"{n} × {per_norm}", n * self.norm_params

        per_block = 2 if M else 1  # ln1, and ln2 before an MLP
        if self.n_layer == 1:
            rows += [("attn(q,k,v,proj)", attn, n_attn * E * H * D), ("mlp", *mlp),
                     (f"layer_norms ({per_block} block + final)", *norms(per_block + 1))]
        else:
            for i in range(self.n_layer):
                rows += [(f"block {i} attn(q,k,v,proj)", attn, n_attn * E * H * D),
                         (f"block {i} mlp", *mlp), (f"block {i} layer_norms (ln1, ln2)"
                                                    if M else f"block {i} layer_norm (ln1)",
                                                    *norms(per_block))]
            rows.append(("final layer_norm", *norms(1)))
        head = ("weight-tied", 0) if self.tie_unembed else (f"{E} × {V}", E * V)
        return rows + [("lm_head", *head)]

    def param_breakdown(self) -> dict[str, int]:
        """Trainable parameters by part: ``{"token_embed": 24, ...}``."""
        return {part: count for part, _, count in self.param_table()}

    def format_params(self) -> str:
        """The seed's parameter table as printed text, ending ``Trainable parameters: 318``."""
        blocks = f", {self.n_layer} blocks" if self.n_layer > 1 else ""
        if self.is_seed_shape:
            head = (f"Parameter count (E={self.n_embd}, H={self.n_head}, MLP×{self.mlp_mult}, "
                    f"pos={'ON' if self.pos_embed else 'OFF'}{blocks}):")
        else:
            head = f"Parameter count ({self.describe()}{blocks}):"
        rows = [f"  {part}: {formula} = {count}" if count else f"  {part}: {formula} (0 extra)"
                for part, formula, count in self.param_table()]
        return "\n".join([head, *rows, f"Trainable parameters: {self.n_params}"])

    def describe(self) -> str:
        """The architecture in a phrase: ``E=4, H=1×2, MLP 0, rmsnorm, no positions, W_K = W_Q``."""
        positions = {"learned": "positions", "sinusoidal": "sinusoidal positions",
                     "none": "no positions"}[self.positions]
        parts = [f"E={self.n_embd}", f"H={self.n_head}×{self.d_head}", f"MLP {self.d_mlp}",
                 "no norm" if self.norm == "none" else self.norm, positions]
        parts += [t for t, on in (("W_K = W_Q", self.tie_qk), ("W_O = W_Vᵀ", self.tie_vo),
                                  ("untied W_U", not self.tie_unembed)) if on]
        return ", ".join(parts)

    @property
    def n_params(self) -> int:
        return sum(self.param_breakdown().values())

    def to_dict(self) -> dict:
        return asdict(self)


POSITIONS = ("learned", "sinusoidal", "none")  # ModelConfig.positions: what pos_embed and
# sinusoidal say together

# The fields past the seed's: a checkpoint from before them has none, and is the seed's shape.
KNOB_FIELDS = ("head_dim", "mlp_width", "norm", "sinusoidal", "tie_qk", "tie_vo", "tie_unembed")

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
    """The variant's name if the architecture is a named one (``e6``, or ``e6-2layers`` with two
    blocks), else a name built from its sizes."""
    arch = dict(n_embd=config.n_embd, n_head=config.n_head, mlp_mult=config.mlp_mult,
                pos_embed=config.pos_embed)
    blocks = f"-{config.n_layer}layers" if config.n_layer > 1 else ""
    if config.is_seed_shape:
        for name, spec in VARIANTS.items():
            if spec == arch:
                return name + blocks
        pos = "pos" if config.pos_embed else "nopos"
        return f"e{config.n_embd}-h{config.n_head}-mlp{config.mlp_mult}-{pos}{blocks}"
    c = config  # a knob past the seed's: every one that is not the seed's is in the name
    head = f"x{c.d_head}" if c.d_head * c.n_head != c.n_embd else ""
    mlp = f"mlp{c.mlp_mult}" if c.mlp_width < 0 else f"m{c.mlp_width}"
    norm = {"layernorm": "", "rmsnorm": "-rms", "layernorm-fixed": "-lnfixed",
            "rmsnorm-fixed": "-rmsfixed", "none": "-nonorm"}[c.norm]
    pos = {"learned": "pos", "sinusoidal": "sin", "none": "nopos"}[c.positions]
    ties = "".join(t for t, on in (("-qk", c.tie_qk), ("-vo", c.tie_vo),
                                   ("-untied", not c.tie_unembed)) if on)
    return f"e{c.n_embd}-h{c.n_head}{head}-{mlp}{norm}-{pos}{ties}{blocks}"


_NAME = re.compile(r"e(\d+)-h(\d+)(?:x(\d+))?-(?:mlp(\d+)|m(\d+))(-rms|-lnfixed|-rmsfixed|-nonorm)?"
                   r"-(pos|sin|nopos)(-qk)?(-vo)?(-untied)?(?:-(\d+)layers)?")
_NORM_SUFFIX = {None: "layernorm", "-rms": "rmsnorm", "-lnfixed": "layernorm-fixed",
                "-rmsfixed": "rmsnorm-fixed", "-nonorm": "none"}


def config_from_name(name: str, vocab_size: int = 4, block_size: int = 7) -> ModelConfig:
    """The architecture ``variant_name`` calls ``name``, sized for a task; ValueError if no
    architecture has that name.

    Usage: ``config_from_name("e4-h1x2-m0-nonorm-sin-qk").n_params  # 40``
    """
    if name in VARIANTS:
        return variant_config(name, vocab_size, block_size)
    head, _, tail = name.rpartition("-")
    if head in VARIANTS and re.fullmatch(r"\d+layers", tail):
        return variant_config(head, vocab_size, block_size, n_layer=int(tail[:-6]))
    m = _NAME.fullmatch(name)
    if not m:
        raise ValueError(f"{name!r} names no architecture (e6, or like e4-h1x2-m0-nonorm-sin-qk)")
    E, H, D, mult, width, norm, pos, qk, vo, untied, layers = m.groups()
    return ModelConfig(vocab_size=vocab_size, block_size=block_size, n_embd=int(E),
                       n_head=int(H), head_dim=int(D or 0), mlp_mult=int(mult or 1),
                       mlp_width=-1 if width is None else int(width), norm=_NORM_SUFFIX[norm],
                       pos_embed=pos == "pos", sinusoidal=pos == "sin", tie_qk=bool(qk),
                       tie_vo=bool(vo), tie_unembed=not untied, n_layer=int(layers or 1))
