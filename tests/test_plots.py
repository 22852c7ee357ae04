"""Plots: the right panels with the model's numbers written in, PNGs on disk, the CLI's paths."""

import json
import math

import pytest
import torch

from zeptogpt import ModelConfig, SortTask, ZeptoGPT, decode
from zeptogpt.anatomy import dissect
from zeptogpt.plots import (
    plot_attention,
    plot_curves,
    plot_lens,
    plot_solved_share,
    plot_weights,
    save_png,
)
from zeptogpt.runlog import LogError, log_path, read_log, write_log

PNG = b"\x89PNG\r\n\x1a\n"


def texts(ax):
    return [t.get_text() for t in ax.texts]


def panels(fig):
    """The figure's visible heatmaps, without its colour bar."""
    return [ax for ax in fig.axes if ax.get_visible() and ax not in colorbars(fig)]


def colorbars(fig):
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def colorbar_limits(fig):
    """(vmin, vmax) of the figure's one colour bar."""
    (bar,) = colorbars(fig)
    return bar.get_ylim()


@pytest.fixture(scope="module")
def two_layers():
    """An untrained model of two blocks: every layer must be drawn, trained or not."""
    return ZeptoGPT(ModelConfig(n_layer=2), torch.Generator().manual_seed(0))


@pytest.mark.parametrize("which", ["trained", "two_layers"])
def test_attention_has_one_panel_per_head_and_step_with_the_weights_written(request, task, which):
    model = request.getfixturevalue(which)
    fig = plot_attention(model, task, "cab")
    Ls, H, S = model.config.n_layer, model.config.n_head, task.length
    axes = panels(fig)
    assert len(axes) == Ls * H * S
    assert colorbar_limits(fig) == (0.0, 1.0)  # one bar: weights from 0 to 1
    decoded = decode(model, task, ["cab"])
    tokens = task.decode(decoded.ids[0])
    with torch.no_grad():  # the oracle: the model's own patterns
        _, cache = model.run_with_cache(decoded.ids[:, :-1])
    for r, (i, h) in enumerate((i, h) for i in range(Ls) for h in range(H)):
        pattern = cache[f"blocks.{i}.pattern"][0]  # [H, T, T]
        for s in range(S):
            n = task.length + s + 1  # tokens so far at step s
            ax = axes[r * S + s]
            expected = [f"{float(pattern[h, q, k]):.2f}" for q in range(n) for k in range(q + 1)]
            assert texts(ax) == expected  # causal: only keys up to the query are written
            assert [t.get_text() for t in ax.get_xticklabels()][-1].endswith(tokens[n - 1])
            layer = f"layer {i} " if Ls > 1 else ""
            assert ax.get_title() == f"{layer}head {h} · step {s + 1}: -> '{tokens[n]}'"


@pytest.mark.parametrize("which", ["trained", "two_layers"])
def test_lens_rows_are_the_models_own_distribution_at_every_layer(request, task, which):
    model = request.getfixturevalue(which)
    fig = plot_lens(model, task, "ccb")
    a = dissect(model, task, "ccb")
    rows = 1 + 2 * model.config.n_layer  # embedding, then each block's attention and MLP
    assert len(panels(fig)) == task.length
    assert colorbar_limits(fig) == (0.0, 1.0)  # probabilities
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == [*a.lens_labels[:-1], a.lens_labels[-1] + " (output)"]
    for ax, step in zip(panels(fig), a.steps):
        assert [t.get_text() for t in ax.get_xticklabels()] == list(task.vocab)  # <sep> too
        values = [float(t) for t in texts(ax)]
        assert len(values) == rows * task.vocab_size
        expected = [v for point in a.lens_points for v in step.lens[point]]
        assert values == pytest.approx(expected, abs=6e-4)
        for r in range(rows):  # each row a distribution over the whole vocabulary
            assert sum(values[r * 4 : r * 4 + 4]) == pytest.approx(1.0, abs=3e-3)
        assert values[-4:] == pytest.approx(step.probs, abs=6e-4)  # the output row


def test_lens_of_the_trained_model_ends_confident(trained, task):
    for ax in panels(plot_lens(trained, task, "ccb")):
        assert max(float(t) for t in texts(ax)[-4:]) > 0.5  # the output row: a confident choice


@pytest.mark.parametrize("which, n_panels, total", [("trained", 15, 318),
                                                    ("two_layers", 27, 558)])
def test_weights_sheet_shows_every_weight(request, task, which, n_panels, total):
    """W_E, W_pos, 2 LayerNorms a block and ln_f, 4 attention matrices x 2 heads and 2 MLP
    matrices a block."""
    model = request.getfixturevalue(which)
    fig = plot_weights(model, task)
    shown = panels(fig)
    assert len(shown) == n_panels
    assert sum(len(ax.texts) for ax in shown) == total == model.config.n_params
    written = sorted(float(t) for ax in shown for t in texts(ax))
    actual = sorted(round(float(v), 2) for p in model.parameters() for v in p.detach().flatten())
    assert written == pytest.approx(actual, abs=0.006)
    titles = [ax.get_title() for ax in shown]
    if model.config.n_layer == 1:
        norms = ("ln1", "ln2", "ln_f")
        assert titles[2:5] == [f"{n} LayerNorm gain w, bias b (2, 6)" for n in norms]
        assert titles[5] == "W_Q head 0 (6, 3)" and titles[-1] == "W_out MLP out (6, 6)"
    else:
        for i in range(model.config.n_layer):
            assert f"layer {i} W_Q head 1 (6, 3)" in titles and f"layer {i} ln2" in " ".join(titles)
            assert f"layer {i} W_in MLP in (6, 6)" in titles


@pytest.mark.parametrize("which", ["trained", "two_layers"])
def test_weights_share_one_colour_scale_shown_by_one_bar(request, task, which):
    """Oracle: the largest |weight| among the model's parameters; every panel's colours run to
    it (not to its own largest), and the colour bar says so."""
    model = request.getfixturevalue(which)
    vmax = max(float(p.detach().abs().max()) for p in model.parameters())
    fig = plot_weights(model, task)
    for ax in panels(fig):
        assert ax.images[0].get_clim() == pytest.approx((-vmax, vmax))
    assert colorbar_limits(fig) == pytest.approx((-vmax, vmax))
    # the panels' own largest values differ, so one scale is not each panel's
    own = [max(abs(v) for v in ax.images[0].get_array().compressed()) for ax in panels(fig)]
    assert min(own) < 0.9 * vmax


def test_curves_and_solved_share(tmp_path):
    rows = [(0, 1.1, 3), (1, 0.5, 10), (2, 0.05, 27)]
    fig = plot_curves(rows, 27)
    loss_ax, acc_ax = fig.axes
    assert list(loss_ax.lines[0].get_ydata()) == [1.1, 0.5, 0.05]
    assert list(acc_ax.lines[0].get_ydata()) == [3, 10, 27]
    share = plot_solved_share([30, None, 10, 20], max_steps=100)
    line = share.axes[0].lines[0]
    assert list(line.get_xdata()) == [0, 10, 20, 30, 100]
    assert list(line.get_ydata()) == [0, 0.25, 0.5, 0.75, 0.75]
    assert share.axes[0].get_title() == ("3/4 seeds solved within 100 steps, median 20 steps, "
                                         "slowest solved 30")
    path = save_png(share, tmp_path / "deep" / "share.png")
    assert path.read_bytes()[:8] == PNG
    assert [p.name for p in path.parent.iterdir()] == ["share.png"]  # no temporary file left


def test_solved_share_title_has_the_sweeps_median():
    """The title's median is the sweep summary's: over the solved seeds, halfway between the
    middle two when their count is even (the oracle is statistics.median)."""
    import statistics

    steps = [60, None, 48, 51, None, 40]  # solved: 40 48 51 60, median 49.5
    title = plot_solved_share(steps, 100).axes[0].get_title()
    median = statistics.median(x for x in steps if x is not None)
    assert title == f"4/6 seeds solved within 100 steps, median {median:g} steps, slowest solved 60"
    # with most seeds unsolved the median is still the solved seeds'
    title = plot_solved_share([20, None, 10, None, None], 100).axes[0].get_title()
    assert title == "2/5 seeds solved within 100 steps, median 15 steps, slowest solved 20"


def test_log_round_trip_and_bad_logs(tmp_path):
    path = log_path(tmp_path / "model.safetensors")
    assert path.name == "model.log.jsonl"
    write_log(path, [(0, 1.5, 2), (1, 0.25, 27)])
    assert read_log(path) == [(0, 1.5, 2), (1, 0.25, 27)]
    for content in ["", "not json\n", '{"step": 1}\n']:
        path.write_text(content)
        with pytest.raises(LogError):
            read_log(path)
    with pytest.raises(LogError, match="zeptogpt train"):
        read_log(tmp_path / "missing.log.jsonl")


def test_a_diverged_loss_is_written_as_json_null_and_read_back_as_nan(tmp_path):
    path = write_log(tmp_path / "m.log.jsonl", [(0, 1.5, 2), (1, math.nan, 0), (2, math.inf, 0)])
    lines = path.read_text().splitlines()

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    assert [json.loads(line, parse_constant=refuse)["loss"] for line in lines] == [1.5, None, None]
    rows = read_log(path)
    assert rows[0] == (0, 1.5, 2) and [r[0] for r in rows] == [0, 1, 2]
    assert all(math.isnan(r[1]) for r in rows[1:])
    path.write_text('[[[[' * 50_000 + "\n")  # nested deeper than Python's JSON reader can go
    with pytest.raises(LogError, match="line 1 is not a training-log line"):
        read_log(path)


def test_sweep_files_are_checked(tmp_path):
    from zeptogpt.sweep import SweepFileError, read_sweeps

    path = tmp_path / "sweep.json"
    for content in ["", "[]", "[1, 2]", '[{"steps": [5]}]', "nonsense"]:
        path.write_text(content)
        with pytest.raises(SweepFileError) as e:
            read_sweeps(path)
        assert "\n" not in str(e.value)


def test_cli_train_writes_the_log_and_plot_draws_every_picture(workdir, cli):
    code, out, _ = cli("train")
    assert code == 0
    ckpt = workdir / "runs" / "e6" / "model.safetensors"
    rows = read_log(log_path(ckpt))
    from zeptogpt import load

    facts = load(ckpt).facts
    assert rows[-1][0] == facts["steps"] and rows[-1][2] == facts["correct"] == 27
    assert [r[0] for r in rows] == list(range(len(rows)))
    for argv, name in [(["attention", "CAB"], "attention-cab.png"),
                       (["lens", "bca"], "lens-bca.png"),
                       (["weights"], "weights.png"), (["curves"], "curves.png")]:
        code, out, err = cli("plot", *argv)
        assert code == 0, err
        assert out.strip() == f"runs/e6/{name}"
        assert (workdir / out.strip()).read_bytes()[:8] == PNG


def test_cli_plot_curves_of_a_sweep(workdir, cli):
    code, _, err = cli("sweep", "--seeds", "3", "--steps", "60", "--threads", "1",
                       "--json", "s.json", "--csv", "s.csv")
    assert code == 0, err
    code, out, err = cli("plot", "curves", "--sweep", "s.json", "--out", "pics")
    assert code == 0, err
    assert out.strip() == "pics/solved-share.png" and (workdir / "pics/solved-share.png").is_file()


@pytest.mark.parametrize("argv, needle", [
    (["plot", "attention"], "needs an INPUT"),
    (["plot", "lens", "abz"], "3 letters from {a, b, c}"),
    (["plot", "attention", "x" * 5000], "3 letters from {a, b, c}"),
    (["plot", "weights", "abc"], "takes no INPUT"),
    (["plot", "pie"], "invalid choice"),
    (["plot", "weights", "--checkpoint", "nowhere.safetensors"], "no checkpoint at"),
    (["plot", "curves", "--sweep", "missing.json"], "cannot read the sweep results"),
    (["plot", "attention", "abc", "--sweep", "x.json"], "--sweep goes with"),
])
def test_cli_plot_errors_are_one_line_exit_2(workdir, cli, argv, needle):
    code, out, err = cli(*argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err
    assert not list(workdir.rglob("*.png"))  # nothing half-written


def test_cli_plot_curves_without_a_log_says_how_to_make_one(workdir, cli):
    cli("train")
    (workdir / "runs/e6/model.log.jsonl").unlink()
    code, _, err = cli("plot", "curves")
    assert code == 2 and "no training log" in err and "zeptogpt train" in err


def test_importing_the_plots_does_not_import_matplotlib():
    import subprocess
    import sys

    code = ("import sys, zeptogpt.cli, zeptogpt.plots, zeptogpt.serve; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr  # `zeptogpt sort` does not pay for pictures


def test_a_long_answer_draws_one_row_per_step_and_a_panel_per_head():
    from zeptogpt.plots import STEPS_IN_FULL

    task = SortTask("0123456789", 10)
    model = ZeptoGPT(ModelConfig(vocab_size=task.vocab_size, block_size=task.seq_len),
                     torch.Generator().manual_seed(0))
    fig = plot_attention(model, task, "3141592653")
    heatmaps = [ax for ax in fig.axes if ax.images]
    assert len(heatmaps) == model.config.n_head and 10 > STEPS_IN_FULL
    assert colorbar_limits(fig) == (0.0, 1.0)
    for ax in heatmaps:
        assert len(ax.get_yticklabels()) == 10 and len(ax.get_xticklabels()) == 20
        rows = ax.images[0].get_array()  # step s sees the 11 + s tokens up to its position
        assert [int((~rows.mask[s]).sum()) for s in range(10)] == [11 + s for s in range(10)]
