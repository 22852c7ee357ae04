"""Checkpoints: safetensors weights with the config, task and training facts as JSON metadata.

The file is readable without this package (any safetensors reader sees the tensors and the
metadata), and enough to rebuild the model: ``load(path).model``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from zeptogpt.files import from_fields, write_atomic
from zeptogpt.model import ModelConfig, ZeptoGPT, variant_name
from zeptogpt.runlog import Row, log_bytes, log_path
from zeptogpt.task import SortTask

FORMAT = "zeptogpt-1"  # bump when the layout of the file changes
MAX_INPUTS = 10**7  # inputs of the largest task a checkpoint may claim (see load)
RUNS_DIR = Path("runs")  # where checkpoints go by default; git ignores it


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message is one line meant for a user."""


@dataclass
class Checkpoint:
    """A model with the task it was trained for and the facts of its training."""

    model: ZeptoGPT
    task: SortTask
    facts: dict = field(default_factory=dict)  # seed, steps, accuracy, recipe, ...


def default_path(config: ModelConfig, runs_dir: Path = RUNS_DIR) -> Path:
    """Where the CLI keeps the checkpoint of an architecture: ``runs/e6/model.safetensors``."""
    return Path(runs_dir) / variant_name(config) / "model.safetensors"


def save(path: str | Path, checkpoint: Checkpoint, log: Sequence[Row] | None = None) -> Path:
    """Write the checkpoint and, if given, its training log beside it (``runlog.log_path``), both
    or neither: temporary files in the same folder, then renames, so a failed or interrupted
    save leaves the previous files untouched.

    Usage: ``save("runs/e6/model.safetensors", Checkpoint(model, task, {"seed": 0}), log)``
    """
    from safetensors.torch import save as to_bytes

    path = Path(path)
    tensors = {k: v.detach().contiguous() for k, v in checkpoint.model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "config": json.dumps(checkpoint.model.config.to_dict()),
        "task": json.dumps(asdict(checkpoint.task)),
        "facts": json.dumps(checkpoint.facts),
    }
    files = {path: to_bytes(tensors, metadata=metadata)}
    if log is not None:
        files = {log_path(path): log_bytes(log)} | files
    write_atomic(files)
    return path


def load(path: str | Path) -> Checkpoint:
    """Read a checkpoint, refusing anything that is not exactly a model this package can build.

    Usage: ``model = load("runs/e6/model.safetensors").model``
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # the reader raises several types for truncated or foreign files
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path} is not a readable safetensors file ({reason})") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a ZeptoGPT checkpoint (format {FORMAT} expected)")
    try:
        config = from_fields(ModelConfig, _json_object(path, metadata, "config"))
    except ValueError as e:
        raise CheckpointError(
            f"{path} has a config that is not a ZeptoGPT architecture ({e})") from None
    try:
        task = from_fields(SortTask, _json_object(path, metadata, "task"))
    except ValueError as e:
        raise CheckpointError(f"{path} has a task that is not a sorting task ({e})") from None
    facts = _json_object(path, metadata, "facts") if "facts" in metadata else {}
    if (config.vocab_size, config.block_size) != (task.vocab_size, task.seq_len):
        raise CheckpointError(f"{path}: the model's vocabulary or context does not fit its task")
    # Sizes are checked before a model is built, so a hand-edited number cannot allocate
    # gigabytes: the weights by the parameter count below, and the task by what training and
    # evaluation can enumerate, as both run over every input (in logs: no huge powers).
    if task.length > math.log(MAX_INPUTS) / math.log(len(task.alphabet)):
        raise CheckpointError(f"{path}: its task has {len(task.alphabet)}^{task.length} inputs, "
                              f"more than the {MAX_INPUTS:,} this package can enumerate")
    numbers = sum(v.numel() for v in tensors.values())
    if numbers != config.n_params:
        raise CheckpointError(f"{path}: its weights ({numbers} numbers) do not match its config "
                              f"{variant_name(config)} ({config.n_params} parameters)")
    model = ZeptoGPT(config, torch.Generator())  # weights come from the file; global RNG untouched
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    if expected != found:
        raise CheckpointError(f"{path}: its weights do not match its config {variant_name(config)}")
    if any(v.dtype != torch.float32 or not bool(v.isfinite().all()) for v in tensors.values()):
        raise CheckpointError(f"{path}: weights must be finite float32 numbers")
    model.load_state_dict(tensors)
    model.requires_grad_(False)
    return Checkpoint(model, task, facts)


def _json_object(path: Path, metadata: dict[str, str], key: str) -> dict:
    """The metadata entry ``key`` as a JSON object; CheckpointError if missing or anything else."""
    if key not in metadata:
        raise CheckpointError(f"{path} has no {key} metadata")
    try:
        value = json.loads(metadata[key])
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        value = None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: its {key} metadata is not a JSON object")
    return value


def describe(checkpoint: Checkpoint) -> str:
    """One line about where a checkpoint came from, for the CLI."""
    f = checkpoint.facts
    parts = [variant_name(checkpoint.model.config), f"{checkpoint.model.config.n_params} params"]
    if "seed" in f:
        parts.append(f"seed {f['seed']}")
    if "steps" in f:
        parts.append(f"{f['steps']} steps")
    if "correct" in f and "total" in f:
        parts.append(f"{f['correct']}/{f['total']} sorted")
    if isinstance(f.get("margin"), float) and not math.isnan(f["margin"]):
        parts.append(f"min p {f['margin']:.3f}")
    return ", ".join(parts)
