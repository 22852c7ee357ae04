"""The architecture of a ZeptoGPT: a frozen config, its parameter table, and the named variants.

Nothing here needs torch, so ``zeptogpt params`` prints the table without importing it.

Usage::

    config = variant_config("e6-nopos", task.vocab_size, task.seq_len)
    print(config.format_params())          # ... Trainable parameters: 276
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ModelConfig:
    """Architecture. The defaults are the seed's 318-parameter sorter."""

    vocab_size: int = 4  # <sep> plus the letters a, b, c
    block_size: int = 7  # longest context: x1 x2 x3 <sep> y1 y2 y3
    n_embd: int = 6  # E: width of the residual stream
    n_head: int = 2  # H: attention heads, each of width E // H
    mlp_mult: int = 1  # MLP hidden width as a multiple of E (the seed's "MLP x1")
    pos_embed: bool = True  # learned positions; without them order comes only from the causal mask
    n_layer: int = 1  # L: transformer blocks; the seed has one, and one is enough to sort

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_embd", "n_head", "mlp_mult", "n_layer"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")

    @property
    def d_head(self) -> int:
        return self.n_embd // self.n_head

    @property
    def d_mlp(self) -> int:
        return self.mlp_mult * self.n_embd

    def param_table(self) -> list[tuple[str, str, int]]:
        """(part, formula, count) rows in the seed's table order; the tied LM head adds none.
        With one block these are the seed's rows; each further block adds its own group."""
        V, T, E, M = self.vocab_size, self.block_size, self.n_embd, self.d_mlp
        rows = [("token_embed", f"{V} × {E}", V * E),
                ("pos_embed", f"{T} × {E}" if self.pos_embed else "off", T * E * self.pos_embed)]
        if self.n_layer == 1:
            rows += [("attn(q,k,v,proj)", f"4 × ({E} × {E})", 4 * E * E),
                     ("mlp", f"{E} × {M} + {M} × {E}", 2 * E * M),
                     ("layer_norms (2 block + final)", f"3 × (2 × {E})", 3 * 2 * E)]
        else:
            for i in range(self.n_layer):
                rows += [(f"block {i} attn(q,k,v,proj)", f"4 × ({E} × {E})", 4 * E * E),
                         (f"block {i} mlp", f"{E} × {M} + {M} × {E}", 2 * E * M),
                         (f"block {i} layer_norms (ln1, ln2)", f"2 × (2 × {E})", 2 * 2 * E)]
            rows.append(("final layer_norm", f"2 × {E}", 2 * E))
        return rows + [("lm_head", "weight-tied", 0)]

    def param_breakdown(self) -> dict[str, int]:
        """Trainable parameters by part: ``{"token_embed": 24, ...}``."""
        return {part: count for part, _, count in self.param_table()}

    def format_params(self) -> str:
        """The seed's parameter table as printed text, ending ``Trainable parameters: 318``."""
        blocks = f", {self.n_layer} blocks" if self.n_layer > 1 else ""
        head = (f"Parameter count (E={self.n_embd}, H={self.n_head}, MLP×{self.mlp_mult}, "
                f"pos={'ON' if self.pos_embed else 'OFF'}{blocks}):")
        rows = [f"  {part}: {formula} = {count}" if count else f"  {part}: {formula} (0 extra)"
                for part, formula, count in self.param_table()]
        return "\n".join([head, *rows, f"Trainable parameters: {self.n_params}"])

    @property
    def n_params(self) -> int:
        return sum(self.param_breakdown().values())

    def to_dict(self) -> dict:
        return asdict(self)


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
    for name, spec in VARIANTS.items():
        if spec == arch:
            return name + blocks
    pos = "pos" if config.pos_embed else "nopos"
    return f"e{config.n_embd}-h{config.n_head}-mlp{config.mlp_mult}-{pos}{blocks}"
