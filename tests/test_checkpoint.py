import json
import os

import pytest
import torch

from zeptogpt import Checkpoint, CheckpointError, ModelConfig, ZeptoGPT, load, save


def test_save_load_gives_identical_logits(tmp_path, task, trained):
    path = save(tmp_path / "m.safetensors", Checkpoint(trained, task, {"seed": 0, "steps": 51}))
    back = load(path)
    idx = torch.tensor([task.encode(task.sequence(x))[:-1] for x in task.all_inputs()])
    assert torch.equal(back.model(idx), trained(idx))
    assert back.task == task and back.facts == {"seed": 0, "steps": 51}
    assert back.model.config == trained.config


def test_file_is_plain_safetensors_with_the_config_in_metadata(tmp_path, task, trained):
    from safetensors import safe_open

    path = save(tmp_path / "m.safetensors", Checkpoint(trained, task))
    with safe_open(str(path), framework="pt") as f:
        config = json.loads(f.metadata()["config"])
        names = set(f.keys())
    assert config["n_embd"] == 6 and config["pos_embed"] is True
    assert names == {n for n, _ in trained.named_parameters()}  # tied head: no extra tensor


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
    (True, dict(config={"block_size": 200_001}, task={"length": 100_000}), "3^100000 inputs"),
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
