"""SortBoard: the hand-coded sorter, architecture names, the search and its front, the entries,
and their commands, against sorted() through the independent verifier."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from zeptogpt.board import ENTRIES, SPECS, build, entry_files, reproduce, rows
from zeptogpt.checkpoint import load
from zeptogpt.config import ModelConfig, config_from_name, variant_name
from zeptogpt.handcoded import sorter
from zeptogpt.search import Row, front, grid, run_search
from zeptogpt.task import TASKS, SortTask
from zeptogpt.training import Recipe
from zeptogpt.verify import count_parameters, verify

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("task", [
    SortTask("abc", 3), SortTask("abc", 6), SortTask("abc", 4, reverse=True),
    SortTask("ab", 7), SortTask("0123456789", 3), SortTask("+-*/", 4, reverse=True),
    SortTask("0123456789", 4),
], ids=lambda t: t.name)
def test_hand_coded_sorter_sorts_every_input_with_four_numbers(task):
    verdict = verify(sorter(task), task)
    assert verdict.passed and verdict.scope == "exhaustive"
    assert verdict.parameters.free == 4  # 1, 2, n - 1/4 and 8n, whatever n and k


def test_hand_coded_sorter_is_a_transformer_of_the_reference_network():
    task = SortTask("abc", 3)
    model = sorter(task)
    attn = model.blocks[0].attn
    # the attention is real: scores all 0 make each position average everything before it
    _, cache = model.run_with_cache(torch.tensor([[3, 1, 1, 0, 1]]))
    pattern = cache["blocks.0.pattern"][0, 0]  # [T, T]
    assert torch.allclose(pattern[4], torch.full((5,), 0.2))
    assert torch.allclose(pattern[3, :4], torch.full((4,), 0.25))
    assert not attn.W_Q.any() and not attn.W_K.any()
    # every entry is 0 or ± one of the four free scalars
    values = {abs(v) for p in model.parameters() for v in p.flatten().tolist() if v}
    assert values == {1.0, 2.0, 2.75, 24.0}


def test_hand_coded_sorter_wrong_in_one_number_fails():
    task = SortTask("abc", 3)
    model = sorter(task)
    with torch.no_grad():
        model.W_E[0, -1] = -1.0  # <sep>'s flag: the threshold no longer sits between counts
    assert not verify(model, task).passed


def test_hand_coded_sorter_refuses_several_lengths():
    with pytest.raises(ValueError, match="one input length"):
        sorter(TASKS["abc1-6"])


CONFIGS = [ModelConfig(), ModelConfig(n_layer=2), ModelConfig(pos_embed=False, n_embd=4),
           ModelConfig(n_embd=4, n_head=1, head_dim=2, mlp_width=0, norm="none",
                       pos_embed=False, sinusoidal=True, tie_qk=True),
           ModelConfig(n_embd=5, n_head=2, head_dim=3, mlp_width=7, norm="rmsnorm-fixed",
                       tie_vo=True, tie_unembed=False, n_layer=3),
           ModelConfig(norm="layernorm-fixed", mlp_mult=2), ModelConfig(norm="rmsnorm")]


@pytest.mark.parametrize("config", CONFIGS, ids=variant_name)
def test_architecture_names_round_trip(config):
    again = config_from_name(variant_name(config), config.vocab_size, config.block_size)
    assert variant_name(again) == variant_name(config)
    assert again.describe() == config.describe() and again.n_params == config.n_params


@pytest.mark.parametrize("name", ["e2-h9", "e6-3", "e5-h2-mlp1-pos", "e4-h1-m0-bad-pos", ""])
def test_names_of_no_architecture_are_refused(name):
    with pytest.raises(ValueError):
        config_from_name(name)


def test_grid_is_small_first_within_the_limit_and_named_once():
    configs = grid(SortTask(), 30)
    sizes = [c.n_params for c in configs]
    assert sizes == sorted(sizes) and max(sizes) <= 30
    names = [variant_name(c) for c in configs]
    assert len(set(names)) == len(names)
    assert all(sum(p.numel() for p in __import__("zeptogpt").ZeptoGPT(c).parameters())
               == c.n_params for c in configs[:: max(1, len(configs) // 20)])


def test_front_keeps_what_no_smaller_architecture_matches():
    rows = [Row("a", 10, 8, 2, 100.0, 1.0), Row("b", 12, 8, 2, 90.0, 1.0),
            Row("c", 14, 8, 6, 80.0, 1.0), Row("d", 14, 8, 7, 70.0, 1.0),
            Row("e", 20, 8, 5, 60.0, 1.0), Row("f", 30, 8, 8, 50.0, 1.0)]
    assert [r.arch for r in front(rows)] == ["a", "d", "f"]


def test_a_small_search_reproduces_its_stored_figures(tmp_path):
    """tests/fixtures/search-two.jsonl was written by
    ``zeptogpt search --arch e6 e4-h1x2-m0-nonorm-sin-qk --seeds 8 --steps 400 --threads 1``."""
    stored = (FIXTURES / "search-two.jsonl").read_text().splitlines()
    head = json.loads(stored[0])["search"]
    task, recipe = SortTask(**head["task"]), Recipe(**head["recipe"] | {
        "betas": tuple(head["recipe"]["betas"])})
    configs = [config_from_name(json.loads(line)["arch"]) for line in stored[1:]]
    rows = run_search(task, configs, head["seeds"], recipe, results=tmp_path / "s.jsonl")
    expected = [json.loads(line) for line in stored[1:]]
    got = [dataclasses.asdict(r) | {"wall_seconds": None} for r in rows]
    assert got == [e | {"wall_seconds": None} for e in expected]
    # the file holds the same search again, and a rerun trains nothing: it is all there
    assert (tmp_path / "s.jsonl").read_text().splitlines()[0] == stored[0]
    assert run_search(task, configs, head["seeds"], recipe, results=tmp_path / "s.jsonl",
                      on_row=lambda r: pytest.fail("trained again")) == rows


def test_a_search_refuses_a_results_file_of_another_recipe(tmp_path):
    out = tmp_path / "s.jsonl"
    run_search(SortTask(), [config_from_name("e6")], 2, Recipe(max_steps=5), results=out)
    with pytest.raises(ValueError, match="new search"):
        run_search(SortTask(), [config_from_name("e6")], 2, Recipe(max_steps=6), results=out)


def test_every_board_entry_verifies_and_counts_as_its_architecture():
    files = entry_files()
    assert {f.name for f in files} == {s.file for s in SPECS}
    for entry in rows():
        assert entry.correct == entry.total, entry
        checkpoint = load(ENTRIES / entry.file)
        count = count_parameters(checkpoint.model)
        if entry.category == "trained":  # every trained weight is its own free scalar
            assert entry.params == count.stored == checkpoint.model.config.n_params
        assert checkpoint.facts["reproduce"] == reproduce(
            next(s for s in SPECS if s.file == entry.file))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.file)
def test_each_entry_is_what_its_recipe_builds(spec, tmp_path):
    """Hand-coded: the module's weights; trained: one seed alone with the default recipe, bit
    for bit (what ``reproduce`` says to run)."""
    built = load(build(spec, tmp_path)).model.state_dict()
    stored = load(ENTRIES / spec.file).model.state_dict()
    assert built.keys() == stored.keys()
    assert all(torch.equal(built[k], stored[k]) for k in built)


def test_verify_and_handcode_through_the_cli(cli, workdir):
    code, out, err = cli("handcode", "--alphabet", "0123", "--length", "3", "--reverse")
    assert code == 0 and "0123x3-reverse: 4 parameters" in out and "64/64 exhaustive" in out
    path = workdir / "runs" / "0123x3-reverse-hand-coded" / "model.safetensors"
    code, out, _ = cli("verify", str(path))
    assert code == 0 and out.strip().endswith("64/64 exhaustive: verified")
    # a model that does not sort exits 1, with the first wrong answers named
    checkpoint = load(path)
    with torch.no_grad():
        checkpoint.model.blocks[0].attn.W_O.mul_(-1)
    from zeptogpt.checkpoint import save

    save(workdir / "wrong.safetensors", checkpoint)
    code, out, _ = cli("verify", "wrong.safetensors")
    assert code == 1 and "FAILED" in out


@pytest.mark.parametrize("args, message", [
    (["verify", "missing.safetensors"], "no checkpoint at missing.safetensors"),
    (["verify", "."], "is a folder"),
    (["handcode", "--task", "abc1-6"], "one input length"),
    (["train", "--arch", "e9-h2"], "names no architecture"),
    (["train", "--arch", "e6", "--variant", "e6"], "give one"),
    (["params", "--positions", "sinusoidal", "--pos"], "contradicts --pos"),
    (["params", "--norm", "batch"], "unknown norm"),
    (["search", "--arch", "e2-h3-x"], "names no architecture"),
])
def test_bad_board_options_are_one_line(cli, workdir, args, message):
    code, out, err = cli(*args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (workdir / "runs").exists()


def test_params_shows_each_knob(cli):
    code, out, _ = cli("params", "--arch", "e4-h1x2-m0-nonorm-sin-qk")
    assert code == 0 and out.strip().endswith("Trainable parameters: 40")
    assert "pos_embed: fixed sinusoidal (0 extra)" in out and "(W_K = W_Q)" in out
    assert "mlp: none (attention only)" in out


@pytest.mark.parametrize("name, fixed", [("e2-h1-m0-nonorm-nopos-qk-vo", 0),
                                         ("e4-h1x2-m0-rmsfixed-sin-qk", 7 * 4),
                                         ("e3-h1x2-m2-rms-pos-vo-untied", 0)])
def test_weights_sheet_shows_each_learned_weight_once(name, fixed):
    """A tied weight has no panel of its own, a fixed norm none; fixed positions are drawn
    (they are not parameters, so they are counted apart)."""
    from zeptogpt import ZeptoGPT
    from zeptogpt.plots import plot_weights

    model = ZeptoGPT(config_from_name(name), torch.Generator().manual_seed(0))
    fig = plot_weights(model, SortTask())
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert sum(len(ax.texts) for ax in shown) == model.config.n_params + fixed
    titles = " ".join(ax.get_title() for ax in shown)
    assert ("W_K head" in titles) != model.config.tie_qk
    assert ("W_O head" in titles) != model.config.tie_vo
    assert ("W_U" in titles) != model.config.tie_unembed


def test_board_picture_draws_every_search_and_entry(cli, workdir):
    from zeptogpt.board import SEARCHES, Entry
    from zeptogpt.plots import plot_board
    from zeptogpt.search import read_searches

    searches = read_searches(SEARCHES)
    entries = [Entry("hand-coded", "abc3", 4, "", 27, 27, "exhaustive", "-", "", ""),
               Entry("hand-coded", "abc6", 4, "", 729, 729, "exhaustive", "-", "", ""),
               Entry("trained", "abc3", 30, "", 27, 27, "exhaustive", "251/256", "", "")]
    ax = plot_board(entries, searches).axes[0]
    # one cloud per search, one marker per point: the two hand-coded ones share theirs
    assert len(ax.collections) == len(searches) + 2
    labels = sorted(t.get_text() for t in ax.texts)
    assert labels == ["abc3 trained 30", "abc3, abc6 hand-coded 4"]
    code, out, _ = cli("board", "--out", "board.png")
    assert code == 0 and (workdir / "board.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.count("| hand-coded |") == 2
