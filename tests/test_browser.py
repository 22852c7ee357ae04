"""The web page in a real browser: Playwright drives the system's Chromium against the server.

Without Chromium (or Playwright) the test skips and says why; with ZEPTOGPT_REQUIRE_BROWSER=1
(as CI sets) that skip is a failure. The screenshots (1400 and 420 pixels wide) and the
first-render time are written to test-artifacts/ at the repository's root.
"""

import contextlib
import json
import os
import re
import shutil
import threading
from pathlib import Path

import pytest
import torch

from zeptogpt import InputError, ModelConfig, Recipe, SortTask, decode, evaluate, load, train
from zeptogpt.anatomy import dissect, step_sentence
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
def _page(url, responses=None, requests=None, clock=False):
    """(page, JavaScript errors so far) of ``url`` in headless Chromium, once the page says it
    is ready; the browser closes after the block. Every response's (url, status) goes into
    ``responses`` and every request's (url, body) into ``requests``, if given, from the first
    on; ``clock`` installs Playwright's fake clock, so a test moves the page's time itself."""
    sync_playwright = _browser_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            if responses is not None:
                page.on("response", lambda r: responses.append((r.url, r.status)))
            if requests is not None:
                page.on("request", lambda r: requests.append((r.url, r.post_data)))
            if clock:
                page.clock.install()
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
        # the sentences name heads by layer, as Python's do; the diagram draws both blocks
        a = dissect(model, task, "bca")
        assert page.locator("#steps .sentence").all_text_contents() == [
            step_sentence(a, k) for k in range(task.length)]
        nodes = set(page.eval_on_selector_all("#diagram [data-node]",
                                              "ns => ns.map(n => n.dataset.node)"))
        assert nodes == SEED_NODES | {n.replace("L0", "L1") for n in SEED_NODES}
        assert page.locator("#diagram rect.block").count() == L
        page.hover("#steps .step:not([hidden]) .head[data-layer='1'][data-head='0'] table")
        assert _lit(page) == ["L1H0"]
        assert page.get_attribute("#weights", "data-count") == str(model.config.n_params)
        ARTIFACTS.mkdir(exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
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
    it has no MLP, lists its weights, and draws no box it lacks; its task has 1,000 inputs, so
    the page offers a random one instead of a button each. No script error."""
    from zeptogpt.handcoded import sorter

    task = SortTask("abcdefghij", 3)
    model = sorter(task)
    with _serving(Checkpoint(model, task), tmp_path / "model.safetensors") as url:
        with _page(url) as (page, errors):
            _sort_on_page(page, "jcb")
            assert page.inner_text("#output") == "".join(sorted("jcb"))
            assert page.locator("#steps .step").count() == 3
            assert page.get_by_text("no MLP: attention only").count() == 3
            assert page.get_attribute("#weights", "data-count") == str(model.config.n_params)
            a = dissect(model, task, "jcb")
            assert page.locator("#steps .sentence").all_text_contents() == [
                step_sentence(a, k) for k in range(3)]
            nodes = page.eval_on_selector_all("#diagram [data-node]",
                                              "ns => ns.map(n => n.dataset.node)")
            assert set(nodes) == {"tokens", "embed", "L0attn", "L0H0", "L0attn-add", "unembed",
                                  "logits"}
            # no button per input: a random one, whose input sorts like any other
            assert page.locator("#picker .pick").count() == 0
            for _ in range(3):
                page.click("#random")
                page.wait_for_function("() => document.getElementById('result-input')"
                                       ".textContent === document.getElementById('input').value")
                drawn = page.input_value("#input")
                assert len(drawn) == 3 and set(drawn) <= set(task.alphabet)
                assert page.inner_text("#output") == "".join(sorted(drawn))
            assert errors == []


# --- the page tells the story (issue #29) -------------------------------------------------------

def _visible_steps(page):
    """The numbers (from 1) of the decoding steps on show."""
    return page.eval_on_selector_all(
        "#steps .step", "ss => ss.filter(s => !s.hidden).map(s => Number(s.dataset.step))")


def _lit(page):
    """The diagram's nodes lit up now."""
    return sorted(page.eval_on_selector_all("#diagram .lit", "ns => ns.map(n => n.dataset.node)"))


def _legend(page, selector):
    """(lowest, highest) written at the ends of the colour legend at ``selector``."""
    legend = page.locator(selector)
    return legend.locator(".lo").inner_text(), legend.locator(".hi").inner_text()


SEED_NODES = {"tokens", "embed", "pos", "embed-add", "L0ln1", "L0attn", "L0H0", "L0H1",
              "L0attn-add", "L0ln2", "L0MLP", "L0mlp-add", "lnf", "unembed", "logits"}


def test_page_tells_each_step_in_a_sentence_with_legends_and_a_diagram(served):
    """A button per input; per step one sentence, the one Python writes from the same numbers;
    a slider that shows one step at a time; a colour legend on every heatmap, one scale for all
    weights; a diagram of this architecture whose boxes light up with the tables; a layout
    that fits 420 pixels; and no request the page makes fails (its icon included)."""
    url, model = served
    task = SortTask()
    responses = []
    with _page(url, responses=responses) as (page, errors):
        # a button per input, each sorting its input
        assert page.locator("#picker button.pick").all_inner_texts() == task.all_inputs()
        page.click("#picker [data-input='bca']")
        page.wait_for_function("document.getElementById('result-input').textContent === 'bca'")
        assert page.inner_text("#output") == "".join(sorted("bca")) == "abc"
        assert page.get_attribute("#picker [data-input='bca']", "aria-pressed") == "true"
        assert page.get_attribute("#picker [data-input='caa']", "aria-pressed") == "false"

        # one sentence per step, the same as Python's from the model's own numbers
        a = dissect(model, task, "bca")
        expected = [step_sentence(a, k) for k in range(task.length)]
        assert page.locator("#steps .step .sentence").all_text_contents() == expected
        assert all(s.startswith(f"Step {k + 1} picks {c}: ") for k, (s, c) in
                   enumerate(zip(expected, "abc")))

        # the slider shows one step at a time, and a new input keeps the step shown
        assert _visible_steps(page) == [1]
        page.focus("#step-slider")
        page.keyboard.press("ArrowRight")
        assert _visible_steps(page) == [2] and page.inner_text("#step-shown") == "2 of 3"
        page.keyboard.press("End")
        assert _visible_steps(page) == [3]
        shown = page.locator("#steps .step:not([hidden]) .sentence")
        assert shown.inner_text() == expected[2]
        _sort_on_page(page, "cab")
        assert _visible_steps(page) == [3]
        assert shown.inner_text() == step_sentence(dissect(model, task, "cab"), 2)
        assert page.get_attribute("#picker [data-input='cab']", "aria-pressed") == "true"

        # every heatmap has a colour legend: its own, or the weights' shared one
        missing = page.eval_on_selector_all("table.heatmap", """ts => ts.filter(t =>
            !(t.closest('.figure').querySelector('.legend') ||
              (t.closest('#weights') && document.querySelector('#weights-legend .legend'))))
            .length""")
        assert missing == 0 and page.locator("table.heatmap").count() > 20
        step = "#steps .step:not([hidden])"
        assert _legend(page, f"{step} .head .legend >> nth=0") == ("0", "1")
        assert _legend(page, f"{step} table.lens >> xpath=../.. >> .legend") == ("0", "1")
        d = decode(model, task, ["cab"])
        ids = d.ids[0, :-1]
        with torch.no_grad():  # the embeddings share one scale: the largest of the three
            tables = [model.W_E[ids], model.W_pos[: len(ids)], d.cache["embed"][0]]
            vmax = max(float(t.abs().max()) for t in tables)
            mlp = float(d.cache["blocks.0.mlp_hidden"][0, task.length + 2].abs().max())
        assert _legend(page, "#embeddings .legend >> nth=0") == (f"−{vmax:.2f}", f"+{vmax:.2f}")
        assert _legend(page, f"{step} table.mlp >> xpath=../.. >> .legend") == (
            f"−{mlp:.2f}", f"+{mlp:.2f}")

        # the weights: one scale, the largest |weight| of the model, on every panel, so only
        # the tensor holding it has a cell at the scale's end colour
        largest = max(model.named_parameters(), key=lambda p: float(p[1].detach().abs().max()))
        vmax = float(largest[1].detach().abs().max())
        assert _legend(page, "#weights-legend .legend") == (f"−{vmax:.2f}", f"+{vmax:.2f}")
        at_end = page.eval_on_selector_all("#weights table.weights", """ts => ts.filter(t =>
            [...t.querySelectorAll('td')].some(td => ['rgb(180, 25, 40)', 'rgb(25, 100, 180)']
            .includes(getComputedStyle(td).backgroundColor)))
            .map(t => t.closest('.figure').querySelector('h3').textContent)""")
        assert [name.split(" [")[0] for name in at_end] == [largest[0]]

        # the diagram: this architecture's boxes, arrows between them, and every table of the
        # page names boxes that exist
        nodes = set(page.eval_on_selector_all("#diagram [data-node]",
                                              "ns => ns.map(n => n.dataset.node)"))
        assert nodes == SEED_NODES
        assert page.locator("#diagram polyline.flow[marker-end]").count() >= len(nodes) - 2
        named = page.eval_on_selector_all("main [data-part]:not(#diagram *)",
                                          "ns => ns.map(n => n.dataset.part)")
        assert len(named) > 30
        assert set(" ".join(named).split()) <= nodes
        # hovering or focusing a table lights up where it sits, and only that
        page.hover(f"{step} .head[data-head='1'] table")
        assert _lit(page) == ["L0H1"]
        page.hover(f"{step} table.lens tbody tr >> nth=1")  # after attention
        assert _lit(page) == ["L0attn-add"]
        page.hover(f"{step} table.attribution tr[data-name='bias']")
        assert _lit(page) == ["lnf"]
        page.hover("#weights .figure[data-part] >> nth=0")  # W_E: also the unembedding
        assert _lit(page) == ["embed", "unembed"]
        page.focus(f"{step} table.mlp >> xpath=../..")
        assert _lit(page) == ["L0MLP"]

        ARTIFACTS.mkdir(exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")  # the diagram sticks where the top is
        page.screenshot(path=str(ARTIFACTS / "browser-story.png"), full_page=True)

        # 420 pixels wide: nothing wider than the window but inside its own scrolling box
        page.set_viewport_size({"width": 420, "height": 900})
        assert page.evaluate("document.documentElement.scrollWidth") <= 420
        box = shown.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 420
        assert page.eval_on_selector(f"{step} .sentence",
                                     "e => parseFloat(getComputedStyle(e).fontSize)") >= 14
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(ARTIFACTS / "browser-420.png"), full_page=True)

        icon = page.evaluate("fetch(document.querySelector('link[rel=icon]').href)"
                             ".then(r => r.status)")
        assert icon == 200
        assert errors == []
    assert len(responses) > 5
    assert [r for r in responses if r[1] >= 400] == []


def test_page_decodes_as_you_type_without_a_request_storm(served):
    """Typing sends one request once typing pauses, however many keys came before; a bad
    input shows the CLI's one line. The page's clock is Playwright's, moved by the test, so
    nothing here depends on how fast the machine types."""
    url, _ = served
    task = SortTask()
    requests = []
    with _page(url, requests=requests, clock=True) as (page, errors):
        traces = lambda: [body for u, body in requests if "/api/trace" in u]  # noqa: E731
        assert len(traces()) == 1  # the page's first input
        page.clock.pause_at(page.evaluate("Date.now()") + 1000)
        for text, answer in [("bca", "abc"), ("ccab", None), ("cba", "abc")]:
            before = len(traces())
            page.click("#input", click_count=3)
            page.keyboard.type(text)  # each key an input event; the clock stands still
            page.clock.run_for(1000)
            if answer is None:
                page.wait_for_selector("#error:not([hidden])", timeout=5000)
                assert page.inner_text("#error") == parse_error(task, text)
                assert page.is_hidden("#trace-panel")
            else:
                page.wait_for_function(
                    "t => document.getElementById('result-input').textContent === t",
                    arg=text, timeout=5000)
                assert page.inner_text("#output") == answer == "".join(sorted(text))
                assert page.is_hidden("#error")
            # one request, for the whole text: none for "b", "bc", ...
            assert [json.loads(body)["input"] for body in traces()[before:]] == [text]
        assert errors == []
