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
    with pytest.raises(CheckpointError, match="unknown config"):
        load(tmp_path / "unknown.safetensors")

    with pytest.raises(CheckpointError, match="no checkpoint"):
        load(tmp_path / "missing.safetensors")
