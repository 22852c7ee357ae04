"""Export a ZeptoGPT as a TransformerLens ``HookedTransformer``, for the interpretability tools.

TransformerLens is an optional extra (``pip install -e '.[lens]'``, pinned to 3.9.0: the last
release that still ships ``HookedTransformer``; docs/transformer-lens.md says why). Nothing here
imports it until a function runs, so the rest of the package never needs it.

The exported model computes the same function. On every input its logits match ours to float32's
rounding (1.05e-5 on the trained default, under 2e-5 for every variant; in float64 the two agree
to 1e-10), and its attention patterns (``blocks.{i}.attn.hook_pattern``) match ours
(``blocks.{i}.pattern``) to 1e-6: tests/test_export.py checks this for every variant. It is
built from a config and a state dict on this machine: nothing is downloaded.

Usage::

    from zeptogpt.export import to_transformer_lens
    lens = to_transformer_lens(model)
    logits, cache = lens.run_with_cache(ids)      # ids [B, T] -> logits [B, T, V]
    cache["blocks.0.attn.hook_pattern"]           # [B, H, T, T], as ours
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from zeptogpt.config import ModelConfig, variant_name
from zeptogpt.files import write_atomic
from zeptogpt.model import ZeptoGPT

if TYPE_CHECKING:  # the extra is imported where it is used, never with the package
    from transformer_lens import HookedTransformer

LENS_VERSION = "3.9.0"  # the version the `lens` extra pins and the tests measure
FORMAT = "zeptogpt-lens-1"  # what save_transformer_lens writes; bump when the file's layout changes

# Our normalisations and TransformerLens's names for the same computation. "LNPre" and "RMSPre"
# normalise without a learned gain or bias, as our "-fixed" ones do; None is no normalisation.
NORMALIZATION = {"layernorm": "LN", "rmsnorm": "RMS", "layernorm-fixed": "LNPre",
                 "rmsnorm-fixed": "RMSPre", "none": None}
EPS = 1e-5  # PyTorch's LayerNorm default and what make_norm gives RMSNorm; TL's default too


def lens_config(config: ModelConfig) -> dict:
    """The keyword arguments of TransformerLens's ``HookedTransformerConfig`` for an
    architecture, as plain values (so a file can hold them); ValueError with one line for one
    that TransformerLens cannot compute exactly.

    Usage: ``HookedTransformerConfig(**lens_config(model.config))``
    """
    if config.norm not in NORMALIZATION:
        raise ValueError(f"TransformerLens has no normalisation like {config.norm!r}")
    return dict(
        model_name=f"zeptogpt-{variant_name(config)}",
        original_architecture="ZeptoGPT",  # matches none of TL's special cases (post-norm, ...)
        d_vocab=config.vocab_size,
        d_vocab_out=config.vocab_size,
        n_ctx=config.block_size,
        d_model=config.n_embd,
        n_heads=config.n_head,
        d_head=config.d_head,
        n_layers=config.n_layer,
        # An attention-only block has neither MLP nor ln2, in TL as in ours.
        d_mlp=config.d_mlp or None,
        attn_only=config.d_mlp == 0,
        act_fn="relu",
        normalization_type=NORMALIZATION[config.norm],
        eps=EPS,
        # Learned and sinusoidal positions are both a [T, E] table added to the embedding; with
        # no positions the table is zeros, and adding zero changes nothing.
        positional_embedding_type="standard",
        attention_dir="causal",
        use_attn_scale=True,  # scores / sqrt(D), as ours
        # Our vocabulary has no BOS and no tokenizer: inputs are token ids, <sep> is id 0.
        default_prepend_bos=False,
        tokenizer_name=None,
        # Every weight is copied in, so TL's own random initialisation would only waste time.
        init_weights=False,
        device="cpu",  # TL would otherwise pick a GPU when one is there; `.to()` moves it
    )


@torch.no_grad()
def lens_state_dict(model: ZeptoGPT, dtype: torch.dtype = torch.float32
                    ) -> dict[str, torch.Tensor]:
    """Our weights under TransformerLens's parameter names, as ``dtype`` on the CPU, ties
    resolved by copying; every bias TransformerLens has and we do not is zero (ours has none).

    Usage: ``lens.load_state_dict(lens_state_dict(model), strict=False)``
    """
    config = model.config
    E, T = config.n_embd, config.block_size
    if config.norm not in NORMALIZATION:
        raise ValueError(f"TransformerLens has no normalisation like {config.norm!r}")
    norm = NORMALIZATION[config.norm]

    def norm_weights(prefix: str, ln: torch.nn.Module) -> dict[str, torch.Tensor]:
        if norm == "LN":
            return {f"{prefix}.w": ln.weight, f"{prefix}.b": ln.bias}
        if norm == "RMS":
            return {f"{prefix}.w": ln.weight}
        return {}  # LNPre, RMSPre and None have no weights

    # The tied unembedding is W_E transposed: TL keeps W_U as a weight of its own, so it gets a
    # copy (editing one in TL then leaves the other as it was).
    W_U = model.W_E.T if model.W_U is None else model.W_U  # [E, V]
    W_pos = model.W_pos if model.W_pos is not None else torch.zeros(T, E)  # [T, E]
    out = {"embed.W_E": model.W_E, "pos_embed.W_pos": W_pos, "unembed.W_U": W_U,
           "unembed.b_U": torch.zeros(config.vocab_size)}
    out |= norm_weights("ln_final", model.ln_f)
    H, D = config.n_head, config.d_head
    for i, block in enumerate(model.blocks):
        p = f"blocks.{i}"
        # weights() resolves the ties: W_K is W_Q (tie_qk), W_O is W_V transposed (tie_vo).
        W_Q, W_K, W_V, W_O = block.attn.weights()
        out |= {f"{p}.attn.W_Q": W_Q, f"{p}.attn.W_K": W_K, f"{p}.attn.W_V": W_V,
                f"{p}.attn.W_O": W_O, f"{p}.attn.b_Q": torch.zeros(H, D),
                f"{p}.attn.b_K": torch.zeros(H, D), f"{p}.attn.b_V": torch.zeros(H, D),
                f"{p}.attn.b_O": torch.zeros(E)}
        out |= norm_weights(f"{p}.ln1", block.ln1)
        if block.mlp is not None:
            out |= norm_weights(f"{p}.ln2", block.ln2)
            out |= {f"{p}.mlp.W_in": block.mlp.W_in, f"{p}.mlp.W_out": block.mlp.W_out,
                    f"{p}.mlp.b_in": torch.zeros(config.d_mlp), f"{p}.mlp.b_out": torch.zeros(E)}
    # Copies: the export shares no storage with the model it came from.
    return {k: v.detach().to("cpu", dtype).clone().contiguous() for k, v in out.items()}


def to_transformer_lens(model: ZeptoGPT, dtype: torch.dtype = torch.float32
                        ) -> HookedTransformer:
    """The model as a TransformerLens ``HookedTransformer`` computing the same function, in eval
    mode, on the CPU, float32 (``dtype=torch.float64`` computes both in double precision, as the
    tests do to show the two agree beyond float32's rounding); ImportError naming the extra when
    TransformerLens is missing.

    Usage: ``logits, cache = to_transformer_lens(model).run_with_cache(ids)``
    """
    HookedTransformer, HookedTransformerConfig = _lens()
    weights = lens_state_dict(model, dtype)
    with warnings.catch_warnings():
        # 3.x warns that HookedTransformer goes away in 4.0: the pin is a deliberate choice
        # (docs/transformer-lens.md), so the warning would only be noise here.
        warnings.filterwarnings("ignore", "HookedTransformer is deprecated",
                                DeprecationWarning)
        lens = HookedTransformer(HookedTransformerConfig(**lens_config(model.config),
                                                         dtype=dtype))
    # A plain load_state_dict, so no LayerNorm folding and no centring: the export is the model
    # as trained, and its logits and residual stream are ours. TL's from_pretrained and
    # load_and_process_state_dict fold and centre by default. Centring W_U shifts each position's
    # logits by a constant; centring the weights that write to the residual stream changes the
    # function unless a LayerNorm reads every such write (not with RMSNorm or no norm); folding
    # is exact only in exact arithmetic. And in 3.9.0 the MLP fold tells W_in's two axes apart by
    # their sizes: with an MLP as wide as the stream (d_mlp = d_model, as in e6) it scales the
    # wrong axis, and the trained e6's logits move by up to 6.9 (docs/transformer-lens.md).
    missing, unexpected = lens.load_state_dict(weights, strict=False)
    parameters = {name for name, _ in lens.named_parameters()}
    left = sorted(parameters & set(missing))
    if left or unexpected:  # every parameter set, nothing unknown: else the mapping is wrong
        raise ValueError(f"TransformerLens export left {left} unset, got unknown {unexpected}")
    return lens.eval()


def save_transformer_lens(model: ZeptoGPT, path: str | Path,
                          vocab: Sequence[str] | None = None) -> Path:
    """Write the exported model to ``path`` as one ``torch.save`` file that TransformerLens
    alone loads (see ``load_transformer_lens`` for the three lines); ``vocab`` (the task's token
    strings by id, ``task.vocab``) is kept beside it for reading the logits. Returns the path.

    Usage: ``save_transformer_lens(model, "runs/e6/model.tl.pt", task.vocab)``
    """
    lens = to_transformer_lens(model)
    state = {name: t.detach().clone() for name, t in lens.state_dict().items()}
    saved = {"format": FORMAT, "transformer_lens": LENS_VERSION,
             "cfg": lens_config(model.config), "state_dict": state,
             "zeptogpt_config": model.config.to_dict(),
             "vocab": list(vocab) if vocab is not None else None}
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    path = Path(path)
    write_atomic({path: buffer.getvalue()})
    return path


def load_transformer_lens(path: str | Path) -> HookedTransformer:
    """Load what ``save_transformer_lens`` wrote. Without this package, the same three lines::

        saved = torch.load(path)  # weights_only: plain values and tensors
        model = HookedTransformer(HookedTransformerConfig(**saved["cfg"]))
        model.load_state_dict(saved["state_dict"])

    Usage: ``lens = load_transformer_lens("runs/e6/model.tl.pt")``
    """
    HookedTransformer, HookedTransformerConfig = _lens()
    saved = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"{path} is not a ZeptoGPT TransformerLens export ({FORMAT})")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "HookedTransformer is deprecated",
                                DeprecationWarning)
        lens = HookedTransformer(HookedTransformerConfig(**saved["cfg"]))
    lens.load_state_dict(saved["state_dict"])
    return lens.eval()


def _lens() -> tuple[type, type]:
    """TransformerLens's HookedTransformer and HookedTransformerConfig, imported now; an
    ImportError that says how to install them."""
    try:
        from transformer_lens import HookedTransformer, HookedTransformerConfig
    except ImportError as e:
        # 4.x raises ImportError here too: it removed HookedTransformer.
        raise ImportError(f"exporting to TransformerLens needs transformer-lens=={LENS_VERSION} "
                          "(3.x: 4.x has no HookedTransformer): pip install -e '.[lens]'") from e
    return HookedTransformer, HookedTransformerConfig
