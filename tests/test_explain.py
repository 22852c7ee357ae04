"""The explanation against its oracles: the committed page is what the command writes; logit
shares add up to the logits; ablations equal the network with that part's weights set to zero;
each head's role recounted from sorted() and the attention patterns."""

import copy
from pathlib import Path

import pytest
import torch

from zeptogpt import ModelConfig, ZeptoGPT, evaluate
from zeptogpt.attribution import attribute, head_outputs, part_names
from zeptogpt.config import config_from_name
from zeptogpt.explain import (
    KINDS,
    ablated_logits,
    explain,
    group_seeds,
    markdown,
    part_means,
    seed_reports,
)

PAGE = Path(__file__).resolve().parents[1] / "docs" / "how-it-sorts.md"


@pytest.fixture(scope="module")
def report(trained, task):
    return explain(trained, task)


def test_the_committed_page_is_what_the_command_writes(trained, task, report):
    """docs/how-it-sorts.md is `zeptogpt explain` on the default seed: every number in it,
    the 256 seeds' groups included, comes out of the code again."""
    groups = group_seeds(seed_reports(task, ModelConfig(), 256))
    assert PAGE.read_text() == markdown(report, groups)


@pytest.mark.parametrize("name", ["e6", "e6-2layers", "e4-h1x2-m0-nonorm-sin-qk",
                                  "e3-h1x2-m2-rms-pos-vo-untied", "e4-h2-mlp1-lnfixed-nopos"])
def test_logit_shares_add_up_to_the_logits(name):
    model = ZeptoGPT(config_from_name(name), torch.Generator().manual_seed(0))
    idx = torch.randint(4, (6, 7), generator=torch.Generator().manual_seed(1))
    logits, shares = attribute(model, idx)
    assert list(shares) == part_names(model)
    torch.testing.assert_close(sum(shares.values()), logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits, model(idx))
    # each head's output, summed, is the block's attention output
    _, cache = model.run_with_cache(idx)
    torch.testing.assert_close(head_outputs(model, cache["embed"], 0).sum(1),
                               cache["blocks.0.attn_out"], atol=1e-6, rtol=1e-5)


def test_zero_ablations_are_the_network_with_those_weights_zeroed(trained, task, report):
    def sorted_without(edit) -> float:
        model = copy.deepcopy(trained)
        with torch.no_grad():
            edit(model)
        return evaluate(model, task).correct / task.n_inputs

    for h in range(trained.config.n_head):
        expected = sorted_without(lambda m, h=h: m.blocks[0].attn.W_O[h].zero_())
        assert report.ablations[f"L0H{h}"]["zero"] == expected
    assert report.ablations["L0MLP"]["zero"] == sorted_without(
        lambda m: m.blocks[0].mlp.W_out.zero_())
    assert report.ablations["pos"]["zero"] == sorted_without(lambda m: m.W_pos.zero_())
    assert report.sorted == 1.0 and set(report.needed) <= set(report.ablations)


def test_mean_ablation_of_one_sequence_changes_nothing(trained, task):
    """A part's mean over a single sequence is its own output: nothing changes."""
    idx = torch.tensor([task.encode([*"cab", "<sep>", *"abc"])])[:, :-1]  # [1, T-1]
    means = part_means(trained, idx)
    clean = trained(idx)
    torch.testing.assert_close(ablated_logits(trained, idx, {}), clean)
    for part in means:
        torch.testing.assert_close(ablated_logits(trained, idx, {part: "mean"}, means), clean,
                                   atol=1e-5, rtol=1e-5)


def test_each_heads_role_recounted_from_sorted(trained, task, report):
    """The attention table, recounted input by input with sorted() telling which key is which."""
    totals = {h: dict.fromkeys(KINDS, 0.0) for h in report.roles}
    for x in task.all_inputs():
        y = task.target(x)
        idx = torch.tensor([task.encode([*x, "<sep>", *y])])[:, :-1]
        _, cache = trained.run_with_cache(idx)
        for s, out in enumerate(y):
            pos = len(x) + s
            for name in report.roles:
                row = cache["blocks.0.pattern"][0, int(name[3:]), pos]
                for key in range(pos + 1):
                    kind = ("sep" if key == len(x) else "answers" if key > len(x) else
                            "same" if x[key] == out else "smaller" if x[key] < out else "larger")
                    totals[name][kind] += float(row[key])
    n = task.n_inputs * task.length
    for name, role in report.roles.items():
        mean = {k: v / n for k, v in totals[name].items()}
        assert max(mean, key=mean.get) == role
        steps = report.steps
        for k in KINDS:
            assert sum(st.attention[name][k] for st in steps) / len(steps) == pytest.approx(
                mean[k], abs=1e-5)


def test_a_changed_model_changes_the_page(trained, task, report):
    model = copy.deepcopy(trained)
    with torch.no_grad():
        model.blocks[0].attn.W_O[0].mul_(0.5)
    assert markdown(explain(model, task)) != markdown(report)


def test_explain_through_the_cli(cli, workdir):
    code, out, err = cli("explain", "--seeds", "4", "--out", "page.md")
    assert code == 0, err
    page = (workdir / "page.md").read_text()
    assert page.startswith("# How it sorts") and "## Do all seeds sort the same way?" in page
    assert "needed (zero ablation):" in out and "Wrote page.md" in out


@pytest.mark.parametrize("args, message", [
    (["--task", "abc1-6"], "several lengths"),
    (["--task", "digits10"], "10,000,000,000 inputs"),
    (["--seeds", "-1"], "number of seeds"),
])
def test_explain_refuses_what_it_cannot_measure(cli, workdir, args, message):
    code, _, err = cli("explain", *args, "--out", "page.md")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (workdir / "page.md").exists() and not (workdir / "runs").exists()


def test_export_through_the_cli_refuses_without_a_target(cli, workdir):
    code, _, err = cli("export", "--out", "m.pt")
    assert code == 2 and "--to" in err and not (workdir / "m.pt").exists()
