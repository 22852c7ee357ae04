r"""Checkpoints: safetensors weights with the config, task and training facts as JSON metadata.

The file is readable without this package (any safetensors reader sees the tensors and the
metadata), and enough to rebuild the model: ``load(path).model``.

Format ``zeptogpt-2`` (what ``save`` writes): the tensors are ``model.state_dict()``, named as
in ``zeptogpt.model`` (``W_E``, ``W_pos``, ``blocks.0.attn.W_Q``, ``ln_f.weight``, ...); the
metadata holds ``format``, ``config``, ``task`` and ``facts`` (JSON objects) and
``weights_sha256``, a checksum of the weights, so a damaged file is refused rather than loaded
as a model that quietly sorts worse. Any reader can recompute the checksum (``weights_sha256``
below) from the file alone, with the standard library::

    data = open(path, "rb").read()
    n = int.from_bytes(data[:8], "little")  # safetensors: header length, JSON header, data
    header = json.loads(data[8:8 + n])
    h = hashlib.sha256()
    for name in sorted(k for k in header if k != "__metadata__"):
        t = header[name]
        h.update(json.dumps([name, t["dtype"], t["shape"]], separators=(",", ":")).encode())
        h.update(b"\n")
        begin, end = t["data_offsets"]
        h.update(data[8 + n + begin:8 + n + end])
    assert h.hexdigest() == header["__metadata__"]["weights_sha256"]

Format ``zeptogpt-1`` (written before models had several blocks) still loads: one block, the
same tensors under their old names (``ln1.w``, ``W_Q``, ``W_in``, ``ln_f.b``, ...), no
checksum, no ``n_layer`` in its config; ``load`` renames them.

Beside the checkpoint, ``save`` writes its training log (``zeptogpt.runlog``), whose first line
repeats ``weights_sha256``. The log is put in place first and the checkpoint last, so a save
interrupted between the two leaves a new log beside the old checkpoint, which ``load_log``
refuses, as it does an old log beside a checkpoint saved again without one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from zeptogpt.config import KNOB_FIELDS, ModelConfig, variant_name
from zeptogpt.files import from_fields, write_atomic
from zeptogpt.model import ZeptoGPT
from zeptogpt.runlog import LogError, Row, log_bytes, log_path, read_log
from zeptogpt.task import SortTask

FORMAT = "zeptogpt-2"  # what save writes; bump when the layout of the file changes
FORMAT_1 = "zeptogpt-1"  # the one-block layout before it, still read (see _renamed_from_format_1)
MAX_BYTES = 2**30  # the largest file load reads: 268M float32 numbers, far past any model here
RUNS_DIR = Path("runs")  # where checkpoints go by default; git ignores it

# Format 1's weight names and the names the same weights have now (its one block is block 0).
FORMAT_1_NAMES = {
    "W_E": "W_E", "W_pos": "W_pos",
    "ln1.w": "blocks.0.ln1.weight", "ln1.b": "blocks.0.ln1.bias",
    "W_Q": "blocks.0.attn.W_Q", "W_K": "blocks.0.attn.W_K",
    "W_V": "blocks.0.attn.W_V", "W_O": "blocks.0.attn.W_O",
    "ln2.w": "blocks.0.ln2.weight", "ln2.b": "blocks.0.ln2.bias",
    "W_in": "blocks.0.mlp.W_in", "W_out": "blocks.0.mlp.W_out",
    "ln_f.w": "ln_f.weight", "ln_f.b": "ln_f.bias",
}


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message is one line meant for a user."""


@dataclass
class Checkpoint:
    """A model with the task it was trained for and the facts of its training."""

    model: ZeptoGPT
    task: SortTask
    facts: dict = field(default_factory=dict)  # seed, steps, accuracy, recipe, ...


def default_path(config: ModelConfig, task: SortTask | None = None,
                 runs_dir: Path = RUNS_DIR) -> Path:
    """Where the CLI keeps the checkpoint of an architecture for a task:
    ``runs/e6/model.safetensors`` for the seed's task, ``runs/abc6-e6/model.safetensors``."""
    folder = variant_name(config)
    if task is not None and task.name != "abc3":
        folder = f"{task.file_name}-{folder}"
    return Path(runs_dir) / folder / "model.safetensors"


def save(path: str | Path, checkpoint: Checkpoint, log: Sequence[Row] | None = None) -> Path:
    """Write the checkpoint and, if given, its training log beside it (``runlog.log_path``), both
    or neither: temporary files in the same folder, then renames, so a failed or interrupted
    save leaves the previous files untouched.

    Usage: ``save("runs/e6/model.safetensors", Checkpoint(model, task, {"seed": 0}), log)``
    """
    from safetensors.torch import save as to_bytes

    path = Path(path)
    tensors = _tensors(checkpoint.model)
    checksum = weights_sha256(tensors)
    metadata = {
        "format": FORMAT,
        "config": json.dumps(checkpoint.model.config.to_dict()),
        "task": json.dumps(asdict(checkpoint.task)),
        "facts": json.dumps(checkpoint.facts),
        "weights_sha256": checksum,
    }
    files = {path: to_bytes(tensors, metadata=metadata)}
    if log is not None:  # renamed first: if the checkpoint's rename never comes, the log is
        # the new file, and it names weights the old checkpoint does not have
        files = {log_path(path): log_bytes(log, checksum)} | files
    write_atomic(files)
    return path


def load(path: str | Path) -> Checkpoint:
    """Read a checkpoint, refusing anything that is not exactly a model this package can build.

    Usage: ``model = load("runs/e6/model.safetensors").model``
    """
    from safetensors.torch import load as from_bytes

    path = Path(path)
    data = _read_file(path)
    try:
        tensors = from_bytes(data)
        n = int.from_bytes(data[:8], "little")  # valid now: the header's length, then the header
        metadata = json.loads(data[8:8 + n]).get("__metadata__") or {}
    except Exception as e:  # the reader raises several types for truncated or foreign files
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path} is not a readable safetensors file ({reason})") from None
    fmt = metadata.get("format")
    if fmt not in (FORMAT, FORMAT_1):
        raise CheckpointError(f"{path} is not a ZeptoGPT checkpoint "
                              f"(format {FORMAT} or {FORMAT_1} expected)")
    # The dtype is checked first, as the checksum spells it; whether the numbers are finite is
    # checked last, so that a damaged number is reported as damage rather than as a bad value.
    if any(v.dtype != torch.float32 for v in tensors.values()):
        raise CheckpointError(f"{path}: weights must be float32 numbers")
    if fmt == FORMAT:
        if "weights_sha256" not in metadata:
            raise CheckpointError(f"{path} has no weights_sha256 metadata, the checksum of its "
                                  f"weights that format {FORMAT} requires")
        if metadata["weights_sha256"] != weights_sha256(tensors):
            raise CheckpointError(f"{path}: its weights do not match their checksum "
                                  "(the file is damaged or was edited)")
    else:
        tensors = _renamed_from_format_1(path, tensors)
    # Every field must be there: a default would quietly fill in for a lost one. Format 1
    # predates n_layer, and had one block; files from before the architecture knobs have none.
    try:
        config = from_fields(ModelConfig, _json_object(path, metadata, "config"),
                             optional=KNOB_FIELDS + (() if fmt == FORMAT else ("n_layer",)))
    except ValueError as e:
        raise CheckpointError(
            f"{path} has a config that is not a ZeptoGPT architecture ({e})") from None
    try:
        # reverse came after format 2: a file without it sorts smallest first
        task = from_fields(SortTask, _json_object(path, metadata, "task"),
                           optional=("reverse", "min_length"))
    except ValueError as e:
        raise CheckpointError(f"{path} has a task that is not a sorting task ({e})") from None
    facts = _json_object(path, metadata, "facts") if "facts" in metadata else {}
    if (config.vocab_size, config.block_size) != (task.vocab_size, task.seq_len):
        raise CheckpointError(f"{path}: the model's vocabulary or context does not fit its task")
    # Sizes are checked before a model is built, so a hand-edited number cannot allocate
    # gigabytes: the weights by the parameter count below. A task of any size is fine: beyond
    # 100,000 inputs evaluation checks a fixed sample, and SortTask bounds the length.
    numbers = sum(v.numel() for v in tensors.values())
    # Every block has weights, so more blocks than numbers cannot fit; checked first, as the
    # parameter table has rows per block (a hand-edited n_layer of 10**9 would fill memory).
    if config.n_layer > numbers:
        raise CheckpointError(f"{path}: its weights ({numbers} numbers) cannot hold the "
                              f"{config.n_layer:,} blocks of its config")
    if numbers != config.n_params:
        raise CheckpointError(f"{path}: its weights ({numbers} numbers) do not match its config "
                              f"{variant_name(config)} ({config.n_params} parameters)")
    model = ZeptoGPT(config, torch.Generator())  # weights come from the file; global RNG untouched
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    if expected != found:
        raise CheckpointError(f"{path}: its weights do not match its config {variant_name(config)}")
    if not all(bool(v.isfinite().all()) for v in tensors.values()):
        raise CheckpointError(f"{path}: weights must be finite numbers")
    model.load_state_dict(tensors)
    model.requires_grad_(False)
    return Checkpoint(model, task, facts)


def load_log(path: str | Path, checkpoint: Checkpoint) -> list[Row]:
    """The training log saved beside the checkpoint file ``path`` (``runlog.read_log`` rows),
    refused with a one-line ``runlog.LogError`` if it was saved with other weights than
    ``checkpoint``'s, the model in hand; a log from before logs named their weights is read
    unchecked.

    Usage: ``rows = load_log(path, load(path))``
    """
    rows = read_log(log_path(path), weights_sha256(_tensors(checkpoint.model)))
    total = checkpoint.task.n_inputs
    if any(correct > total for _, _, correct in rows):
        raise LogError(f"{log_path(path)} counts more inputs sorted than the task's {total}")
    return rows


def _read_file(path: Path) -> bytes:
    """The bytes of the file at ``path``, or CheckpointError with one line saying why not.

    Read here, not by the safetensors reader, which opens only names that are valid UTF-8,
    while ``save`` writes to any name the system takes. The size is checked before reading.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise CheckpointError(f"no checkpoint at {path} (it is not a file)")
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read(MAX_BYTES + 1) if size <= MAX_BYTES else b""
    except (FileNotFoundError, NotADirectoryError):
        raise CheckpointError(f"no checkpoint at {path}") from None
    except OSError as e:  # the real reason, e.g. Permission denied
        raise CheckpointError(f"cannot read {path} ({e.strerror or e})") from None
    if size > MAX_BYTES or len(data) > MAX_BYTES:
        raise CheckpointError(f"{path} is larger than {MAX_BYTES:,} bytes, too large to be "
                              "a checkpoint of this package")
    return data


def _tensors(model: ZeptoGPT) -> dict[str, torch.Tensor]:
    """The weights as the file stores them, and as their checksum covers them."""
    return {k: v.detach().contiguous() for k, v in model.state_dict().items()}


def weights_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """The checksum a checkpoint keeps of its weights (metadata ``weights_sha256``), in hex.

    SHA-256 over the tensors in order of name (Python's ``sorted``: by code point), each as one
    line naming it, ``json.dumps([name, "F32", shape], separators=(",", ":"))`` and a newline
    (``["W_E","F32",[4,6]]``), then its numbers' raw bytes: little-endian float32, row-major, as
    the file stores them. ``F32`` is float32 as the safetensors header spells it, so the
    module docstring's recipe gives the same hash from the file alone.
    """
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype != torch.float32:
            raise ValueError(f"weights_sha256 covers float32 weights only; {name} is {t.dtype}")
        h.update(json.dumps([name, "F32", list(t.shape)], separators=(",", ":")).encode())
        h.update(b"\n")
        data = t.detach().cpu().reshape(-1).view(torch.uint8)  # [4 * numel]: row-major bytes
        if sys.byteorder == "big":  # the machine's order; the file's is little-endian
            data = data.view(-1, 4).flip(-1).reshape(-1)
        # a fresh copy owns exactly these bytes, and its storage hands them over as they are
        h.update(bytes(data.clone().untyped_storage()))
    return h.hexdigest()


def _renamed_from_format_1(path: Path,
                           tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A format-1 file's tensors under today's names; CheckpointError unless the names are
    exactly format 1's (``W_pos`` is absent without positions; the config decides, later)."""
    unexpected = tensors.keys() - FORMAT_1_NAMES.keys()
    missing = FORMAT_1_NAMES.keys() - tensors.keys() - {"W_pos"}
    if unexpected or missing:
        found = "; ".join(f"{what}: {_some(names)}" for what, names in
                          (("unexpected", unexpected), ("missing", missing)) if names)
        raise CheckpointError(f"{path}: its weights are not named as in format {FORMAT_1} "
                              f"({found})")
    return {FORMAT_1_NAMES[k]: v for k, v in tensors.items()}


def _some(names: set[str], most: int = 3) -> str:
    """A few of ``names`` for a one-line message: quoted (a name may hold a newline), sorted."""
    shown = sorted(names)[:most]
    return ", ".join(json.dumps(n) for n in shown) + (", ..." if len(names) > most else "")


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
