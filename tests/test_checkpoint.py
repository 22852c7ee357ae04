import builtins
import errno
import hashlib
import json
import math
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import zeptogpt.checkpoint
from zeptogpt import (
    Checkpoint,
    CheckpointError,
    ModelConfig,
    SortTask,
    ZeptoGPT,
    evaluate,
    load,
    save,
)
from zeptogpt.checkpoint import load_log
from zeptogpt.runlog import LogError, log_path, write_log

# Seed 0 of the default e6 model, trained and saved by the code before format 2 (one block,
# the old weight names, no checksum); it sorts all 27 inputs.
FORMAT_1_FIXTURE = Path(__file__).parent / "fixtures" / "e6-format1.safetensors"

# The e6 model's weights as format 2 names them, written out rather than asked of the model.
E6_NAMES = {"W_E", "W_pos", "ln_f.weight", "ln_f.bias"} | {
    f"blocks.0.{n}" for n in ("ln1.weight", "ln1.bias", "attn.W_Q", "attn.W_K", "attn.W_V",
                              "attn.W_O", "ln2.weight", "ln2.bias", "mlp.W_in", "mlp.W_out")}


def _read(path):
    """A safetensors file's (metadata, tensors)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata(), {k: f.get_tensor(k) for k in f.keys()}


def _write(path, metadata, tensors):
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=metadata)
    return path


def _header(data: bytes) -> tuple[dict, int]:
    """A safetensors file's JSON header and where its data begins (the offsets count from there)."""
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n]), 8 + n


def _all_inputs(task):
    return torch.tensor([task.encode(task.sequence(x))[:-1] for x in task.all_inputs()])


def test_save_load_gives_identical_logits(tmp_path, task, trained):
    path = save(tmp_path / "m.safetensors", Checkpoint(trained, task, {"seed": 0, "steps": 51}))
    back = load(path)
    idx = _all_inputs(task)
    assert torch.equal(back.model(idx), trained(idx))
    assert back.task == task and back.facts == {"seed": 0, "steps": 51}
    assert back.model.config == trained.config


def test_file_is_plain_safetensors_with_the_new_names_and_a_checksum(tmp_path, task, trained):
    path = save(tmp_path / "m.safetensors", Checkpoint(trained, task))
    metadata, tensors = _read(path)
    config = json.loads(metadata["config"])
    assert config["n_embd"] == 6 and config["pos_embed"] is True and config["n_layer"] == 1
    assert metadata["format"] == "zeptogpt-2"
    assert set(tensors) == E6_NAMES  # tied head: no extra tensor
    assert len(metadata["weights_sha256"]) == 64 and int(metadata["weights_sha256"], 16) >= 0


def test_checksum_is_recomputed_from_the_file_alone(tmp_path, task, trained):
    """The recipe in checkpoint.py's docstring, run as written on the file's bytes with the
    standard library alone: it ends by asserting the checksum it computed is the file's."""
    path = save(tmp_path / "m.safetensors", Checkpoint(trained, task))
    doc = zeptogpt.checkpoint.__doc__
    block = doc.split("with the standard library::\n\n", 1)[1].split("\n\n", 1)[0]
    recipe = "\n".join(line.removeprefix("    ") for line in block.splitlines())
    assert recipe.startswith("data = open(path") and "assert h.hexdigest() ==" in recipe
    exec(recipe, {"path": str(path), "json": json, "hashlib": hashlib})  # raises if it differs
    # ... and the recipe does look at the bytes: one flipped bit and its assert fails
    damaged = tmp_path / "damaged.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x80
    damaged.write_bytes(bytes(data))
    with pytest.raises(AssertionError):
        exec(recipe, {"path": str(damaged), "json": json, "hashlib": hashlib})


def test_format_1_checkpoint_loads_and_sorts_every_input(task):
    checkpoint = load(FORMAT_1_FIXTURE)
    result = evaluate(checkpoint.model, task)
    assert (result.correct, result.total) == (27, 27)
    assert checkpoint.model.config == ModelConfig()  # n_layer, absent from the file: one block
    assert checkpoint.task == task and checkpoint.facts == {"seed": 0, "steps": 35}
    assert set(checkpoint.model.state_dict()) == E6_NAMES


def _format_1_logits(w: dict[str, torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
    """Logits ``[B, T, V]`` of format 1's one-block network, written out from the names in its
    file with plain torch: no zeptogpt code, so no renaming to trust."""
    T = idx.shape[1]

    def ln(x, name):
        return F.layer_norm(x, x.shape[-1:], w[f"{name}.w"], w[f"{name}.b"])

    x = w["W_E"][idx] + w["W_pos"][:T]  # [B, T, E]
    h = ln(x, "ln1")
    q, k, v = (torch.einsum("bte,hed->bhtd", h, w[n]) for n in ("W_Q", "W_K", "W_V"))
    scores = q @ k.mT / math.sqrt(q.shape[-1])  # [B, H, T, T]
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), -math.inf)
    x = x + torch.einsum("bhtd,hde->bte", scores.softmax(-1) @ v, w["W_O"])
    x = x + F.relu(ln(x, "ln2") @ w["W_in"]) @ w["W_out"]
    return ln(x, "ln_f") @ w["W_E"].T


def test_format_1_checkpoint_computes_the_network_its_old_names_describe(task):
    _, old = _read(FORMAT_1_FIXTURE)
    idx = _all_inputs(task)
    by_hand = _format_1_logits(old, idx)
    loaded = load(FORMAT_1_FIXTURE).model(idx)
    assert torch.allclose(loaded, by_hand, rtol=0, atol=1e-5)
    assert by_hand.abs().max() > 1  # the logits are not all near zero, where anything agrees


def test_format_1_checkpoint_saved_again_is_format_2_with_the_same_logits(tmp_path, task):
    old = load(FORMAT_1_FIXTURE)
    path = save(tmp_path / "m.safetensors", old)
    metadata, tensors = _read(path)
    assert metadata["format"] == "zeptogpt-2" and set(tensors) == E6_NAMES
    idx = _all_inputs(task)
    assert torch.equal(load(path).model(idx), old.model(idx))


def test_format_1_checkpoint_without_positions_loads(tmp_path, task):
    metadata, tensors = _read(FORMAT_1_FIXTURE)
    config = dict(json.loads(metadata["config"]), pos_embed=False)
    path = _write(tmp_path / "nopos.safetensors", dict(metadata, config=json.dumps(config)),
                  {k: v for k, v in tensors.items() if k != "W_pos"})
    model = load(path).model
    assert model.W_pos is None and torch.equal(model.blocks[0].attn.W_Q, tensors["W_Q"])


@pytest.mark.parametrize("rename, needle", [
    ({"ln1.w": "ln1.weight"}, 'unexpected: "ln1.weight"; missing: "ln1.w"'),
    ({"W_in": "W_in\nW_out"}, 'unexpected: "W_in\\nW_out"; missing: "W_in"'),
    ({k: "blocks.0." + k for k in ("W_Q", "W_K", "W_V", "W_O")},
     'unexpected: "blocks.0.W_K", "blocks.0.W_O", "blocks.0.W_Q", ...; missing: "W_K", "W_O"'),
])
def test_format_1_checkpoint_with_other_names_is_refused(tmp_path, rename, needle):
    metadata, tensors = _read(FORMAT_1_FIXTURE)
    path = _write(tmp_path / "renamed.safetensors", metadata,
                  {rename.get(k, k): v for k, v in tensors.items()})
    with pytest.raises(CheckpointError) as e:
        load(path)
    assert f"not named as in format zeptogpt-1 ({needle}" in str(e.value)
    assert "\n" not in str(e.value)


def test_format_1_label_on_the_new_names_is_refused(tmp_path, task, trained):
    metadata, tensors = _read(save(tmp_path / "m.safetensors", Checkpoint(trained, task)))
    path = _write(tmp_path / "relabelled.safetensors", dict(metadata, format="zeptogpt-1"),
                  tensors)
    with pytest.raises(CheckpointError, match="not named as in format zeptogpt-1 .unexpected"):
        load(path)


def _flip_a_sign_bit(data: bytes, name: str, index: int) -> bytes:
    """The file with the sign of number ``index`` of tensor ``name`` flipped, and nothing else:
    found through the header's offsets, the sign being the top bit of a little-endian float32's
    last byte."""
    header, start = _header(data)
    assert header[name]["dtype"] == "F32"
    begin, end = header[name]["data_offsets"]
    at = start + begin + 4 * index + 3
    assert at < start + end
    return data[:at] + bytes([data[at] ^ 0x80]) + data[at + 1:]


def test_a_flipped_bit_is_refused_by_the_checksum(tmp_path, task, monkeypatch):
    good = save(tmp_path / "good.safetensors", load(FORMAT_1_FIXTURE))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(_flip_a_sign_bit(good.read_bytes(), "W_E", 13))
    with pytest.raises(CheckpointError) as e:
        load(bad)
    assert str(e.value) == (f"{bad}: its weights do not match their checksum "
                            "(the file is damaged or was edited)")

    # Without the checksum the same file is a valid checkpoint: one number of W_E negated,
    # which loads and sorts worse (8 of the 27 inputs), as the issue saw.
    stored = _read(bad)[0]["weights_sha256"]
    monkeypatch.setattr(zeptogpt.checkpoint, "weights_sha256", lambda tensors: stored)
    damaged, original = load(bad).model, load(good).model
    changed = (damaged.W_E != original.W_E).flatten().nonzero().flatten().tolist()
    assert changed == [13] and damaged.W_E.flatten()[13] == -original.W_E.flatten()[13]
    assert evaluate(damaged, task).correct < 27


@pytest.mark.parametrize("checksum, needle", [
    (None, "has no weights_sha256 metadata"),
    ("", "do not match their checksum"),
    ("0" * 64, "do not match their checksum"),
])
def test_format_2_without_its_checksum_or_with_a_wrong_one_is_refused(tmp_path, task, trained,
                                                                      checksum, needle):
    metadata, tensors = _read(save(tmp_path / "m.safetensors", Checkpoint(trained, task)))
    if checksum is None:
        del metadata["weights_sha256"]
    else:
        metadata["weights_sha256"] = checksum
    path = _write(tmp_path / "edited.safetensors", metadata, tensors)
    with pytest.raises(CheckpointError) as e:
        load(path)
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("change, needle", [
    (lambda w: w.double(), "weights must be float32 numbers"),
    (lambda w: w.index_fill(0, torch.tensor(0), math.nan), "weights must be finite numbers"),
    (lambda w: w.index_fill(0, torch.tensor(0), math.inf), "weights must be finite numbers"),
])
def test_weights_that_are_not_finite_float32_are_refused(tmp_path, task, trained, change,
                                                         needle):
    # re-signed with a checksum of the changed weights, so that only their values are wrong
    metadata, tensors = _read(save(tmp_path / "m.safetensors", Checkpoint(trained, task)))
    tensors["blocks.0.mlp.W_in"] = change(tensors["blocks.0.mlp.W_in"])
    if tensors["blocks.0.mlp.W_in"].dtype == torch.float32:
        metadata["weights_sha256"] = zeptogpt.checkpoint.weights_sha256(tensors)
    with pytest.raises(CheckpointError, match=needle):
        load(_write(tmp_path / "edited.safetensors", metadata, tensors))


def test_interrupted_save_keeps_the_old_file(tmp_path, task, trained, monkeypatch):
    path = save(tmp_path / "m.safetensors", Checkpoint(trained, task, {"seed": 0}))
    before = path.read_bytes()

    def crash(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    other = ZeptoGPT(ModelConfig(), torch.Generator().manual_seed(9))
    with pytest.raises(KeyboardInterrupt):
        save(path, Checkpoint(other, task, {"seed": 9}))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no temp file left


def _corrupt(good: bytes, kind: str) -> bytes:
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "garbage":
        return b"\x00\xffnot a checkpoint" * 10
    if kind == "empty":
        return b""
    if kind == "text":
        return b"hello world\n"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty", "text"])
def test_broken_files_are_refused(tmp_path, task, trained, kind):
    path = save(tmp_path / "m.safetensors", Checkpoint(trained, task))
    path.write_bytes(_corrupt(path.read_bytes(), kind))
    with pytest.raises(CheckpointError) as e:
        load(path)
    assert "\n" not in str(e.value)


def test_foreign_and_mismatched_files_are_refused(tmp_path, task, trained):
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a ZeptoGPT checkpoint"):
        load(foreign)
    save_file({"w": torch.zeros(2)}, str(foreign), metadata={"format": "zeptogpt-3"})
    with pytest.raises(CheckpointError, match=r"not a ZeptoGPT checkpoint \(format zeptogpt-2 or"):
        load(foreign)

    path = save(tmp_path / "m.safetensors", Checkpoint(trained, task))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    lying = dict(meta, config=json.dumps(dict(json.loads(meta["config"]), n_embd=8)))
    save_file(tensors, str(tmp_path / "lying.safetensors"), metadata=lying)
    with pytest.raises(CheckpointError, match="do not match"):
        load(tmp_path / "lying.safetensors")

    unknown = dict(meta, config=json.dumps({"n_embd": 6, "depth": 12}))
    save_file(tensors, str(tmp_path / "unknown.safetensors"), metadata=unknown)
    with pytest.raises(CheckpointError, match="not a ZeptoGPT architecture .unknown field 'depth'"):
        load(tmp_path / "unknown.safetensors")

    with pytest.raises(CheckpointError, match="no checkpoint"):
        load(tmp_path / "missing.safetensors")


def _edited(tmp_path, model, task, /, **changes):
    """A good checkpoint of ``model`` with metadata entries changed: a dict is merged into the
    JSON object there, a string replaces the entry's text."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    good = save(tmp_path / "good.safetensors", Checkpoint(model, task, {"seed": 0}))
    with safe_open(str(good), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    for key, change in changes.items():
        meta[key] = (json.dumps(json.loads(meta[key]) | change) if isinstance(change, dict)
                     else change)
    path = tmp_path / "edited.safetensors"
    save_file(tensors, str(path), metadata=meta)
    return path


ARCH = "has a config that is not a ZeptoGPT architecture"


@pytest.mark.parametrize("changes, needle", [
    (dict(config={"n_embd": 6.0}), f"{ARCH} (n_embd must be an integer, got 6.0)"),
    (dict(config={"n_head": True}), f"{ARCH} (n_head must be an integer, got true)"),
    (dict(config={"pos_embed": "no"}), f'{ARCH} (pos_embed must be true or false, got "no")'),
    (dict(config={"pos_embed": 1}), f"{ARCH} (pos_embed must be true or false, got 1)"),
    (dict(config={"n_head": 4}), f"{ARCH} (n_embd (6) must be divisible by n_head (4))"),
    (dict(config="[6, 2]"), "config metadata is not a JSON object"),
    (dict(task={"alphabet": 5}), "a task that is not a sorting task (alphabet must be a string"),
    (dict(task={"length": "3"}), 'not a sorting task (length must be an integer, got "3")'),
    (dict(facts="[1]"), "facts metadata is not a JSON object"),
    (dict(facts="{seed: 0"), "facts metadata is not a JSON object"),
    (dict(facts="[" * 100_000), "facts metadata is not a JSON object"),
    # every field, as format 2 writes them all: a default would stand in for a lost one
    (dict(config="{}"), f"{ARCH} (vocab_size is missing)"),
    (dict(config=json.dumps({k: v for k, v in ModelConfig().to_dict().items()
                             if k != "n_layer"})), f"{ARCH} (n_layer is missing)"),
    (dict(task="{}"), "has a task that is not a sorting task (alphabet is missing)"),
])
def test_hand_edited_metadata_is_refused_with_what_was_expected(tmp_path, task, trained,
                                                                changes, needle):
    path = _edited(tmp_path, trained, task, **changes)
    with pytest.raises(CheckpointError) as e:
        load(path)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_metadata_that_only_looks_edited_still_loads(tmp_path, task, trained):
    # the same values written another way are still the same checkpoint
    path = _edited(tmp_path, trained, task, facts='{"seed": 0, "note": [1, 2]}')
    assert load(path).facts == {"seed": 0, "note": [1, 2]}
    assert load(path).model.config == trained.config


@pytest.mark.parametrize("nopos, changes, needle", [
    # 4 * E * E attention weights alone: 160 GB if it were built
    (False, dict(config={"n_embd": 200_000}), "318 numbers) do not match"),
    # no weight depends on the context without positions, but its T x T mask is 160 GB
    (True, dict(config={"block_size": 200_001}, task={"length": 100_000}),
     "length must be from 1 to 32, got 100000"),
    # its parameter table has rows per block: 10**9 of them would fill memory
    (False, dict(config={"n_layer": 10**9}), "(318 numbers) cannot hold the 1,000,000,000 blocks"),
])
def test_implausible_sizes_are_refused_before_a_model_is_built(tmp_path, task, trained,
                                                               monkeypatch, nopos, changes,
                                                               needle):
    import zeptogpt.checkpoint

    model = ZeptoGPT(ModelConfig(pos_embed=False), torch.Generator()) if nopos else trained
    path = _edited(tmp_path, model, task, **changes)

    def refuse(*args):
        raise AssertionError("a model was built before its sizes were checked")

    monkeypatch.setattr(zeptogpt.checkpoint, "ZeptoGPT", refuse)
    with pytest.raises(CheckpointError) as e:
        load(path)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_format_1_needs_every_field_it_had(tmp_path):
    """Format 1 wrote every field but n_layer, which came later; it may lack that one only."""
    metadata, tensors = _read(FORMAT_1_FIXTURE)
    assert "n_layer" not in json.loads(metadata["config"])
    config = json.loads(metadata["config"])
    del config["n_head"]
    path = _write(tmp_path / "lost.safetensors", dict(metadata, config=json.dumps(config)),
                  tensors)
    with pytest.raises(CheckpointError, match=r"not a ZeptoGPT architecture \(n_head is missing"):
        load(path)


LOG = [(0, 1.25, 3), (1, math.nan, 20), (2, 0.5, 27)]


def _same_rows(rows, expected=LOG):
    """Rows equal, NaN (a diverged step's loss) matching NaN."""
    return len(rows) == len(expected) and all(
        a[0] == b[0] and a[2] == b[2] and (a[1] == b[1] or math.isnan(a[1]) and math.isnan(b[1]))
        for a, b in zip(rows, expected))


def test_a_save_interrupted_between_its_renames_leaves_a_log_that_is_refused(
        tmp_path, task, trained, monkeypatch):
    path = save(tmp_path / "m.safetensors", Checkpoint(trained, task, {"seed": 0}), LOG)
    assert _same_rows(load_log(path, load(path)))
    renames = []
    rename = os.replace

    def second_fails(src, dst):
        renames.append(Path(dst).name)
        if len(renames) == 2:
            raise OSError(errno.EIO, "Input/output error")
        rename(src, dst)

    monkeypatch.setattr(os, "replace", second_fails)
    other = ZeptoGPT(ModelConfig(), torch.Generator().manual_seed(9))
    with pytest.raises(OSError, match="Input/output error"):
        save(path, Checkpoint(other, task, {"seed": 9}), [(0, 1.1, 0)])
    monkeypatch.undo()
    assert renames == ["m.log.jsonl", "m.safetensors"]  # the log first, the checkpoint last
    kept = load(path)
    assert kept.facts == {"seed": 0} and torch.equal(kept.model.W_E, trained.W_E)
    with pytest.raises(LogError) as e:
        load_log(path, kept)  # the log is the other run's: its curve is not this model's
    assert str(e.value).startswith(f"{log_path(path)} belongs to another checkpoint")
    assert "retrain" in str(e.value) and "\n" not in str(e.value)
    # the other model, which the log does belong to, reads it
    assert load_log(path, Checkpoint(other, task)) == [(0, 1.1, 0)]


def test_a_log_left_by_an_earlier_save_is_refused_and_an_old_log_still_read(tmp_path, task,
                                                                           trained):
    path = save(tmp_path / "m.safetensors", Checkpoint(trained, task), LOG)
    other = ZeptoGPT(ModelConfig(), torch.Generator().manual_seed(9))
    save(path, Checkpoint(other, task))  # no log: the first save's stays, and is not this one's
    with pytest.raises(LogError, match="belongs to another checkpoint"):
        load_log(path, load(path))
    # a log from before logs named their weights has nothing to check, and is read as it is
    write_log(log_path(path), LOG)
    assert log_path(path).read_text().startswith('{"step": 0,')
    assert _same_rows(load_log(path, load(path)))


def test_a_name_that_is_not_utf8_saves_and_loads(tmp_path, task, trained):
    path = tmp_path / os.fsdecode(b"m\xffx.safetensors")
    save(path, Checkpoint(trained, task, {"seed": 0}), LOG)
    assert os.fsencode(path.name) in os.listdir(os.fsencode(tmp_path))
    back = load(path)
    idx = _all_inputs(task)
    assert torch.equal(back.model(idx), trained(idx)) and back.facts == {"seed": 0}
    assert _same_rows(load_log(path, back))


def test_an_unreadable_checkpoint_says_why_in_one_line(tmp_path, task, trained, monkeypatch):
    path = save(tmp_path / "m.safetensors", Checkpoint(trained, task))
    path.chmod(0)
    try:
        path.open("rb").close()
    except PermissionError:
        pass  # not root: the mode alone refuses it
    else:  # root reads whatever the mode says: refuse it as the system refuses anyone else
        real_open = builtins.open

        def denied(file, *args, **kwargs):
            if os.fspath(file) == os.fspath(path):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", denied)
    with pytest.raises(CheckpointError) as e:
        load(path)
    assert str(e.value) == f"cannot read {path} (Permission denied)"


def test_a_log_that_sorts_more_inputs_than_the_task_has_is_refused(tmp_path, task, trained):
    path = save(tmp_path / "m.safetensors", Checkpoint(trained, task), [(0, 1.0, 28)])
    with pytest.raises(LogError, match="counts more inputs sorted than the task's 27"):
        load_log(path, load(path))


@pytest.mark.parametrize("task", [SortTask("abc", 3, reverse=True), SortTask("+-*/", 2),
                                  SortTask("0123456789", 2)], ids=lambda t: t.name)
def test_a_checkpoint_keeps_its_task(tmp_path, task):
    model = ZeptoGPT(ModelConfig(vocab_size=task.vocab_size, block_size=task.seq_len),
                     torch.Generator().manual_seed(0))
    assert load(save(tmp_path / "m.safetensors", Checkpoint(model, task))).task == task


def test_a_checkpoint_from_before_reverse_sorts_smallest_first(tmp_path, task, trained):
    """Format 2 came before the task had ``reverse``: a task without it is a forward one."""
    path = _edited(tmp_path, trained, task, task=json.dumps({"alphabet": "abc", "length": 3}))
    assert load(path).task == SortTask() and not load(path).task.reverse
