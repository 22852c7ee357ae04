"""The web page in a real browser: Playwright drives the system's Chromium against the server.

Without Chromium (or Playwright) the test skips and says why; with ZEPTOGPT_REQUIRE_BROWSER=1
(as CI sets) that skip is a failure. The screenshot and the first-render time are written to
test-artifacts/ at the repository's root.
"""

import contextlib
import json
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

from zeptogpt import InputError, ModelConfig, Recipe, SortTask, decode, evaluate, load, train
from zeptogpt.checkpoint import Checkpoint
from zeptogpt.cli import main
from zeptogpt.serve import make_server

CHROMIUM = os.environ.get("ZEPTOGPT_CHROMIUM", "/usr/bin/chromium")
# This machine's network is closed: without these Chromium tries (and fails) to reach Google.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

pytestmark = pytest.mark.slow


def _browser_or_skip():
    """Playwright's sync API, or a skip that says why (a failure when the browser is required)."""
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "Playwright for Python is not installed (pip install -r requirements.txt)"
    if reason is None and not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        reason = (f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver, "
                  "or set ZEPTOGPT_CHROMIUM)")
    if reason is not None:
        if os.environ.get("ZEPTOGPT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"ZEPTOGPT_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    return sync_playwright


@contextlib.contextmanager
def _serving(checkpoint, path):
    """The page of ``checkpoint`` served on a free loopback port, at the address yielded."""
    server = make_server(checkpoint, path, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def _page(url):
    """(page, JavaScript errors so far) of ``url`` in headless Chromium, once the page says it
    is ready; the browser closes after the block."""
    sync_playwright = _browser_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.wait_for_function("document.body.dataset.ready === '1'", timeout=15000)
            yield page, errors
        finally:
            browser.close()


def _sort_on_page(page, text: str) -> None:
    """Type ``text``, press Sort, and wait until the page shows its result."""
    page.fill("#input", text)
    page.click("#sort")
    page.wait_for_function("t => document.getElementById('result-input').textContent === t",
                           arg=text, timeout=5000)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(page address, model) of a freshly trained checkpoint served on a free loopback port."""
    path = tmp_path_factory.mktemp("browser") / "model.safetensors"
    assert main(["train", "--checkpoint", str(path)]) == 0
    checkpoint = load(path)
    assert evaluate(checkpoint.model, checkpoint.task).correct == 27  # so sorted() is the oracle
    with _serving(checkpoint, path) as url:
        yield url, checkpoint.model


def test_page_sorts_shows_every_head_and_explains_bad_input(served, capsys):
    url, model = served
    task = SortTask()
    with _page(url) as (page, errors):
        first_render_ms = page.evaluate("window.zeptoFirstRender")

        # the page's own first input, then typed ones, each checked against sorted()
        assert page.inner_text("#output") == "".join(sorted(page.input_value("#input")))
        for text in ["cab", "BCA", "bbb", "acb", "ccA"]:
            page.fill("#input", text)
            page.click("#sort")
            page.wait_for_function(
                "t => document.getElementById('result-input').textContent === t",
                arg=text.lower(), timeout=5000)
            assert page.inner_text("#output") == "".join(sorted(text.lower()))
            assert page.is_hidden("#error")
            chosen = page.locator(".step .chosen").all_inner_texts()
            assert "".join(chosen) == "".join(sorted(text.lower()))

        # one attention heatmap per head at every step
        steps = page.locator("#steps .step")
        assert steps.count() == task.length
        for k in range(task.length):
            heads = steps.nth(k).locator(".attention .head")
            assert heads.count() == 2
            assert heads.nth(0).locator("tr.newest").count() == 1

        # the probabilities are the model's own, <sep> included, and the page says so
        assert "<sep> included" in page.inner_text("#trace-panel")
        probs = decode(model, task, ["ccA".lower()]).probs[0]  # [length, V]
        for k in range(task.length):
            shown = steps.nth(k).locator("table.logits tr td:nth-child(3)").all_inner_texts()
            assert shown == [f"{float(v):.3f}" for v in probs[k]]

        # every weight is on the page, and hovering one names it
        assert page.get_attribute("#weights", "data-count") == "318"
        page.hover("#weights table.weights td >> nth=0")
        shown = page.inner_text("#hover")
        assert re.fullmatch(r"W_E\[0, 0\] = -?\d+\.\d{4}", shown), shown
        assert float(shown.split("= ")[1]) == pytest.approx(float(model.W_E[0, 0]), abs=1e-4)
        assert page.locator("#params tr.total").inner_text().split()[-1] == "318"
        assert page.locator("#curve svg polyline").count() == 2

        ARTIFACTS.mkdir(exist_ok=True)
        page.fill("#input", "cab")
        page.click("#sort")
        page.wait_for_function("document.getElementById('output').textContent === 'abc'")
        page.screenshot(path=str(ARTIFACTS / "browser.png"), full_page=True)

        # bad input: the same one line as the CLI, and no answer shown
        for text in ["abz", "ab", "", "a" * 2000]:
            page.fill("#input", text)
            page.click("#sort")
            page.wait_for_selector("#error:not([hidden])", timeout=5000)
            message = page.inner_text("#error")
            if len(text) < 500:
                assert message == parse_error(task, text)
            else:
                assert "too large" in message  # bounded before the model sees it
            assert page.is_hidden("#result") and page.is_hidden("#trace-panel")
            page.fill("#input", "abc")
            page.click("#sort")
            page.wait_for_selector("#error", state="hidden", timeout=5000)
        page.fill("#input", "abz")
        page.click("#sort")
        page.wait_for_selector("#error:not([hidden])")
        page.screenshot(path=str(ARTIFACTS / "browser-error.png"))
        assert errors == []  # no JavaScript error on the way
    (ARTIFACTS / "browser.json").write_text(json.dumps({"first_render_ms": first_render_ms}))
    with capsys.disabled():  # the figure is reported on every run, not asserted
        print(f"\n[browser] first render {first_render_ms:.0f} ms after navigation start "
              f"(screenshot {ARTIFACTS / 'browser.png'})")


@pytest.fixture(scope="module")
def served_two_layers(tmp_path_factory):
    """(page address, model) of a two-block model, trained a little, served on a free port."""
    task = SortTask()
    model = train(task, ModelConfig(n_layer=2), Recipe(max_steps=200), seeds=[0]).models[0]
    path = tmp_path_factory.mktemp("browser2") / "model.safetensors"  # no log: no curve
    with _serving(Checkpoint(model, task), path) as url:
        yield url, model


def test_page_of_a_two_layer_model_shows_every_layer(served_two_layers):
    """Every layer's heads, MLP activations, lens rows and weights are on the page; the oracle
    is the model's own decoding and parameters."""
    url, model = served_two_layers
    task, L, H = SortTask(), model.config.n_layer, model.config.n_head
    assert L == 2
    with _page(url) as (page, errors):
        _sort_on_page(page, "bca")
        d = decode(model, task, ["bca"])
        tokens = task.decode(d.ids[0])
        assert page.inner_text("#output") == d.outputs[0]
        steps = page.locator("#steps .step")
        assert steps.count() == task.length
        for k in range(task.length):
            step = steps.nth(k)
            layers = step.locator(".attention")
            assert layers.count() == L
            for i in range(L):
                heads = layers.nth(i).locator(".head")
                assert heads.count() == H
                assert [heads.nth(h).locator("h3").inner_text() for h in range(H)] == [
                    f"layer {i} head {h}" for h in range(H)]
                # the newest row of each head: the model's own pattern at this step
                pos = task.length + k
                pattern = d.cache[f"blocks.{i}.pattern"][0]  # [H, T-1, T-1]
                for h in range(H):
                    row = heads.nth(h).locator("tr.newest td").all_inner_texts()
                    assert row == [f"{float(w):.2f}" for w in pattern[h, pos, : pos + 1]]
            lens_rows = step.locator("table.lens tbody th").all_inner_texts()
            assert lens_rows == ["after embedding", "after layer 0 attention",
                                 "after layer 0 MLP", "after layer 1 attention",
                                 "after layer 1 MLP"]
            mlp_rows = step.locator("table.heatmap:not(.lens) tbody th").all_inner_texts()
            assert [r for r in mlp_rows if r.startswith("layer ")] == [
                f"layer {i} · {pos} {tokens[pos]}" for i in range(L)]
        groups = page.locator("#weights .weight-group > h3").all_inner_texts()
        assert groups == ["embeddings", "layer 0", "layer 1", "final LayerNorm"]
        assert page.get_attribute("#weights", "data-count") == str(model.config.n_params)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "browser-2layers.png"), full_page=True)
        assert errors == []


def parse_error(task, text):
    try:
        task.parse(text)
    except InputError as e:
        return str(e)
    raise AssertionError(f"{text!r} is valid")


def test_page_of_the_hand_coded_sorter_shows_attention_only(tmp_path):
    """A model without MLP, norm or positions (the hand-coded sorter) sorts on the page, says
    it has no MLP, and lists its weights; no script error."""
    from zeptogpt.handcoded import sorter

    task = SortTask()
    model = sorter(task)
    with _serving(Checkpoint(model, task), tmp_path / "model.safetensors") as url:
        with _page(url) as (page, errors):
            _sort_on_page(page, "cba")
            assert page.inner_text("#output") == "".join(sorted("cba"))
            assert page.locator("#steps .step").count() == 3
            assert page.get_by_text("no MLP: attention only").count() == 3
            assert page.get_attribute("#weights", "data-count") == str(model.config.n_params)
            assert errors == []
