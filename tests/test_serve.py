"""The web server over real HTTP on loopback: answers from the PyTorch model, one-line errors,
bounded bodies, 404 for anything that is not a route or a static file; and, against clients
that misbehave (issue #26), bounded threads and no tracebacks, a deep listen queue, IPv6, and a
warning when the page is open to the network. Every test talks to a real server over sockets."""

import contextlib
import http.client
import json
import re
import select
import socket
import struct
import threading
import time
from urllib.parse import urlsplit

import pytest
import torch

from zeptogpt import InputError, ModelConfig, SortTask, ZeptoGPT, decode, load
from zeptogpt.cli import main
from zeptogpt.serve import MAX_BODY, Server, make_server, serve


@pytest.fixture(scope="module")
def checkpoint_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "model.safetensors"
    assert main(["train", "--checkpoint", str(path)]) == 0
    return path


@contextlib.contextmanager
def serving(server):
    """``server`` answering from a thread during the block, then stopped and closed."""
    # shutdown() waits for the loop to look at its flag: every 0.5 s by default, 0.05 s here
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def server(checkpoint_path):
    with serving(make_server(load(checkpoint_path), checkpoint_path, port=0)) as server:
        yield server


def request(server, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        conn.close()


def get_json(server, path, method="GET", body=None):
    status, ctype, data = request(server, method, path, body)
    assert ctype == "application/json"
    return status, json.loads(data)


def parse_error(text):
    try:
        SortTask().parse(text)
    except InputError as e:
        return str(e)
    raise AssertionError(f"{text!r} is valid")


def test_binds_loopback_by_default(server):
    assert server.server_address[0] == "127.0.0.1"


def test_trace_sorts_every_input_like_sorted(server):
    for x in SortTask().all_inputs():
        status, a = get_json(server, f"/api/trace?input={x.upper()}")
        assert status == 200 and a["output"] == "".join(sorted(x))
        status, b = get_json(server, "/api/trace", "POST", json.dumps({"input": x}))
        assert status == 200 and b["output"] == a["output"]


def per_block(cache, name, n_layer):
    """``[L, ...]``: the activation ``name`` of every block, batch axis dropped (the oracle)."""
    return torch.stack([cache[f"blocks.{i}.{name}"][0] for i in range(n_layer)])


def test_trace_numbers_are_pytorchs(server, checkpoint_path):
    model, task = load(checkpoint_path).model, SortTask()
    _, a = get_json(server, "/api/trace?input=cba")
    ids = torch.tensor([task.encode(a["tokens"][:-1])])
    logits, cache = model.run_with_cache(ids)
    assert a["n_layer"] == 1
    assert torch.allclose(torch.tensor(a["attention"]), per_block(cache, "pattern", 1), atol=1e-7)
    assert torch.allclose(torch.tensor(a["mlp_hidden"]), per_block(cache, "mlp_hidden", 1),
                          atol=1e-7)
    assert torch.allclose(torch.tensor(a["logits"]), logits[0], atol=1e-6)
    assert len(a["steps"]) == 3 and all(len(s["attention"][0]) == 2 for s in a["steps"])
    for s in a["steps"]:  # the model's own distribution, <sep> included
        probs = logits[0, s["position"]].softmax(-1)
        assert torch.allclose(torch.tensor(s["probs"]), probs, atol=1e-6)
        assert s["lens"]["blocks.0.resid_post"] == pytest.approx(s["probs"], abs=1e-6)
    assert a["ms"] >= 0


def test_a_two_layer_model_is_served_with_every_layer(tmp_path):
    """Oracle: the model's own cache, block by block, and its own parameters."""
    from zeptogpt.checkpoint import Checkpoint

    task = SortTask()
    model = ZeptoGPT(ModelConfig(n_layer=2), torch.Generator().manual_seed(0))
    with serving(make_server(Checkpoint(model, task), tmp_path / "model.safetensors",
                             port=0)) as two:
        _, a = get_json(two, "/api/trace?input=bca")
        _, info = get_json(two, "/api/info")
        _, w = get_json(two, "/api/weights")
        status, curve = get_json(two, "/api/curve")
    assert status == 200 and curve["rows"] == [] and "zeptogpt train" in curve["note"]
    assert info["n_layer"] == 2 and info["n_params"] == model.config.n_params == 558
    assert a["output"] == decode(model, task, ["bca"]).outputs[0]
    ids = torch.tensor([task.encode(a["tokens"][:-1])])
    with torch.no_grad():
        logits, cache = model.run_with_cache(ids)
    assert a["n_layer"] == 2
    for name in ("pattern", "attn_out", "resid_mid", "mlp_hidden", "resid_post"):
        key = "attention" if name == "pattern" else name
        assert torch.allclose(torch.tensor(a[key]), per_block(cache, name, 2), atol=1e-6), name
    assert torch.allclose(torch.tensor(a["logits"]), logits[0], atol=1e-6)
    assert a["lens_points"] == ["embed", "blocks.0.resid_mid", "blocks.0.resid_post",
                                "blocks.1.resid_mid", "blocks.1.resid_post"]
    for s in a["steps"]:
        pos = s["position"]
        assert torch.allclose(torch.tensor(s["attention"]),
                              per_block(cache, "pattern", 2)[:, :, pos, : pos + 1], atol=1e-6)
        assert len(s["mlp_hidden"]) == 2 and set(s["lens"]) == set(a["lens_points"])
        for point in a["lens_points"]:
            lens = model.unembed(cache[point][0, pos]).softmax(-1)
            assert torch.allclose(torch.tensor(s["lens"][point]), lens, atol=1e-6)
    named = dict(model.named_parameters())
    assert [p["name"] for p in w["weights"]] == list(named)
    assert "blocks.1.attn.W_Q" in named
    for p in w["weights"]:
        assert torch.equal(torch.tensor(p["values"]), named[p["name"]].detach().flatten())


def test_fixed_panels(server, checkpoint_path):
    model = load(checkpoint_path).model
    _, w = get_json(server, "/api/weights")
    assert sum(len(p["values"]) for p in w["weights"]) == 318
    named = dict(model.named_parameters())
    for p in w["weights"]:
        assert torch.equal(torch.tensor(p["values"]), named[p["name"]].flatten())
    _, params = get_json(server, "/api/params")
    assert params["total"] == 318 == sum(r["count"] for r in params["rows"])
    _, curve = get_json(server, "/api/curve")
    assert curve["total"] == 27 and curve["rows"][-1][2] == 27
    assert [r[0] for r in curve["rows"]] == list(range(len(curve["rows"])))
    _, info = get_json(server, "/api/info")
    assert info["n_layer"] == 1 and info["n_head"] == 2 and info["n_params"] == 318


def test_info_lists_every_input_of_a_small_task_and_the_architecture(server, checkpoint_path):
    """The page's buttons and diagram come from here: oracle, the task's inputs and the
    checkpoint's own config."""
    config = load(checkpoint_path).model.config
    _, info = get_json(server, "/api/info")
    assert info["inputs"] == SortTask().all_inputs() and len(info["inputs"]) == 27
    assert info["n_inputs"] == 27 and (info["alphabet"], info["min_length"]) == ("abc", 3)
    assert info["arch"] == dict(n_layer=1, n_head=2, n_embd=6, d_head=3, d_mlp=config.d_mlp,
                                norm="layernorm", positions="learned", tie_qk=False,
                                tie_vo=False, tie_unembed=True)


def test_a_large_task_lists_no_inputs_and_a_bare_model_says_what_it_lacks(tmp_path):
    from zeptogpt.checkpoint import Checkpoint
    from zeptogpt.handcoded import sorter

    task = SortTask("abcdefghij", 3)  # 1,000 inputs: the page draws one at random instead
    with serving(make_server(Checkpoint(sorter(task), task), tmp_path / "m.safetensors",
                             port=0)) as big:
        _, info = get_json(big, "/api/info")
        _, a = get_json(big, "/api/trace?input=jab")
    assert info["inputs"] is None and info["n_inputs"] == 1000
    assert info["arch"]["d_mlp"] == 0 and info["arch"]["norm"] == "none"
    assert info["arch"]["positions"] == "none"
    assert a["output"] == "abj" and a["parts"] == ["embed", "L0H0", "bias"]


def test_trace_steps_carry_each_parts_share_of_the_chosen_logit(server, checkpoint_path):
    """Oracle: the model's own logits, which the shares add up to."""
    model, task = load(checkpoint_path).model, SortTask()
    _, a = get_json(server, "/api/trace?input=bca")
    assert a["parts"] == ["embed", "pos", "L0H0", "L0H1", "L0MLP", "bias"]
    ids = torch.tensor([task.encode(a["tokens"][:-1])])
    with torch.no_grad():
        logits = model(ids)[0]  # [T-1, V]
    for s in a["steps"]:
        chosen = a["vocab"].index(s["chosen"])
        assert list(s["attribution"]) == a["parts"]
        assert sum(s["attribution"].values()) == pytest.approx(
            float(logits[s["position"], chosen]), abs=1e-4)


def test_the_icon_is_served(server):
    status, _, page = request(server, "GET", "/")
    assert 'href="/static/favicon.svg"' in page.decode()
    for path in ("/static/favicon.svg", "/favicon.ico"):
        status, ctype, body = request(server, "GET", path)
        assert (status, ctype) == (200, "image/svg+xml") and body.startswith(b"<svg")


def strict_json(data):
    """JSON as every reader accepts it: NaN and Infinity are not JSON."""
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(data, parse_constant=refuse)


def test_curve_of_a_diverged_run_is_json_with_null_losses(tmp_path, checkpoint_path):
    from zeptogpt.runlog import log_path, write_log

    path = tmp_path / "model.safetensors"
    path.write_bytes(checkpoint_path.read_bytes())
    write_log(log_path(path), [(0, 1.25, 3), (1, float("nan"), 0), (2, float("inf"), 0)])
    with serving(make_server(load(path), path, port=0)) as diverged:
        status, ctype, body = request(diverged, "GET", "/api/curve")
    assert (status, ctype) == (200, "application/json"), body
    assert strict_json(body)["rows"] == [[0, 1.25, 3], [1, None, 0], [2, None, 0]]


def test_page_and_its_files_are_served(server):
    status, ctype, body = request(server, "GET", "/")
    assert status == 200 and ctype.startswith("text/html")
    page = body.decode()
    for name in ("style.css", "app.js"):
        assert f"/static/{name}" in page
        status, _, data = request(server, "GET", f"/static/{name}")
        assert status == 200 and data
    assert "http://" not in page and "https://" not in page  # nothing from elsewhere


BAD_INPUTS = ["", "ab", "abcd", "abz", "a c", "ça", "x" * 500]


@pytest.mark.parametrize("text", BAD_INPUTS)
def test_bad_input_is_the_clis_one_line_error(server, text):
    status, body = get_json(server, "/api/trace", "POST", json.dumps({"input": text}))
    assert status == 400 and body == {"error": parse_error(text)}
    assert "\n" not in body["error"]


@pytest.mark.parametrize("body, needle", [
    ("{bad", "malformed JSON"),
    (b"\xff\xfe", "malformed JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"input": 3}', "expected a JSON object"),
    ('{"letters": "abc"}', "expected a JSON object"),
])
def test_malformed_requests_are_400(server, body, needle):
    status, answer = get_json(server, "/api/trace", "POST", body)
    assert status == 400 and needle in answer["error"]


def test_bodies_are_bounded(server):
    big = json.dumps({"input": "a" * (2 * MAX_BODY)})
    status, answer = get_json(server, "/api/trace", "POST", big)
    assert status == 413 and "too large" in answer["error"]
    status, _, _ = request(server, "POST", "/api/trace", body=b"",
                           headers={"Content-Length": "-1"})
    assert status == 400
    status, answer = get_json(server, "/api/trace")
    assert status == 400 and "?input=" in answer["error"]


@pytest.mark.parametrize("path", [
    "/nope", "/api", "/api/trace/x", "/static/", "/static/missing.js", "/static/../serve.py",
    "/static/%2e%2e/serve.py", "/static/..%2fserve.py", "/static//etc/passwd", "/../../etc/passwd",
    "/static/../../../../etc/passwd", "/static/.%2e/__init__.py", "//etc/passwd",
])
def test_unknown_paths_and_traversal_are_404(server, path):
    status, _, body = request(server, "GET", path)
    assert status == 404
    assert b"root:" not in body and b"import" not in body


def test_server_survives_garbage(server):
    with socket.create_connection(server.server_address[:2], timeout=5) as s:
        s.sendall(b"\x00\x01 nonsense\r\n\r\n")
        s.recv(1024)
    status, answer = get_json(server, "/api/trace?input=bca")
    assert status == 200 and answer["output"] == "abc"


def test_serve_without_a_checkpoint_says_how_to_make_one(tmp_path, capsys):
    code = main(["serve", "--checkpoint", str(tmp_path / "none.safetensors")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "no checkpoint at" in err and "zeptogpt train" in err


def test_serve_refuses_a_bad_port(capsys):
    assert main(["serve", "--port", "70000"]) == 2
    assert "port" in capsys.readouterr().err


# --- clients that misbehave (issue #26) ---------------------------------------------------------

def wait_until(condition, seconds=10):
    """Whether ``condition()`` came true within ``seconds`` (a bound on waiting, not a claim
    about speed: on a quiet machine it is true at once)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def half_request(server):
    """A connection that sends a request line and one header, then nothing: a stalled client."""
    s = socket.create_connection(server.server_address[:2], timeout=10)
    s.sendall(b"GET /api/info HTTP/1.1\r\nHost: zeptogpt\r\n")
    return s


def reset(s):
    """Close ``s`` with a reset (RST) instead of the polite FIN, as a crashed client does."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


@pytest.fixture
def limited(checkpoint_path):
    """A fresh server of its own, so that a test can shrink its limits and fill them."""
    with serving(make_server(load(checkpoint_path), checkpoint_path, port=0)) as server:
        yield server


def test_stalled_clients_are_timed_out_and_hold_at_most_the_cap_of_threads(limited):
    limited.read_timeout, limited.max_connections, limited.busy_wait = 0.5, 4, 10
    before = threading.active_count()
    stalled = [half_request(limited) for _ in range(3 * limited.max_connections)]
    # An uncapped server takes all 12 at once, each on a thread that waits forever; this one
    # takes 4 and leaves the rest in the kernel's queue until a slot frees.
    assert wait_until(lambda: limited.open >= limited.max_connections)
    most = before
    for _ in range(100):
        most = max(most, threading.active_count())
        time.sleep(0.01)
    assert most <= before + limited.max_connections
    # a normal request still gets its answer, once the stalled ones ahead of it time out
    status, answer = get_json(limited, "/api/trace?input=cab")
    assert status == 200 and answer["output"] == "abc"
    for s in stalled:  # each was closed by the server, without an answer
        assert s.recv(1024) == b""
        s.close()
    assert threading.active_count() <= before + limited.max_connections


def test_beyond_the_cap_a_client_is_told_the_server_is_busy(limited):
    limited.read_timeout, limited.max_connections, limited.busy_wait = 60, 2, 0.1
    stalled = [half_request(limited) for _ in range(limited.max_connections)]
    assert wait_until(lambda: limited.open == limited.max_connections)
    status, answer = get_json(limited, "/api/info")
    assert status == 503 and "busy" in answer["error"]
    for s in stalled:
        s.close()
    assert wait_until(lambda: limited.open == 0)
    assert get_json(limited, "/api/info")[0] == 200


def test_a_thread_that_cannot_start_is_a_503_not_a_dropped_connection(limited, monkeypatch):
    """Under a memory limit, `can't start new thread`: the client is told, and the slot freed."""
    def no_thread(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    status, answer = get_json(limited, "/api/info")  # the accept loop's thread already runs
    assert status == 503 and "busy" in answer["error"]
    monkeypatch.undo()
    assert limited.open == 0 and get_json(limited, "/api/info")[0] == 200


def leave_at_once(s):
    s.close()


def reset_at_once(s):
    reset(s)


def request_line_then_leave(s):
    s.sendall(b"GET /api/weights HTTP/1.1\r\n")
    s.close()


def request_line_then_reset(s):
    s.sendall(b"GET /api/weights HTTP/1.1\r\n")
    reset(s)


def request_then_leave(s):
    s.sendall(b"GET /api/weights HTTP/1.0\r\n\r\n")
    s.close()


def request_then_reset(s):
    s.sendall(b"GET /api/weights HTTP/1.0\r\n\r\n")
    reset(s)


def read_a_little_then_reset(s):
    s.sendall(b"GET /api/weights HTTP/1.0\r\n\r\n")
    s.recv(10)
    reset(s)


def half_a_body_then_reset(s):
    s.sendall(b'POST /api/trace HTTP/1.0\r\nContent-Length: 100\r\n\r\n{"input"')
    reset(s)


def half_a_body_then_leave(s):
    s.sendall(b'POST /api/trace HTTP/1.0\r\nContent-Length: 100\r\n\r\n{"input"')
    s.close()


def garbage_then_reset(s):
    s.sendall(b"\x00\x01 nonsense\r\n\r\n")  # the server's 400 goes to a reset socket
    reset(s)


LEAVING = [leave_at_once, reset_at_once, request_line_then_leave, request_line_then_reset,
           request_then_leave, request_then_reset, read_a_little_then_reset,
           half_a_body_then_reset, half_a_body_then_leave, garbage_then_reset]


def test_clients_that_leave_early_print_no_traceback(limited, capfd):
    for _ in range(5):  # whether a write fails depends on when the reset arrives: try often
        for leave in LEAVING:
            leave(socket.create_connection(limited.server_address[:2], timeout=10))
    # connections are accepted in order, so when this is answered every one above was taken
    status, answer = get_json(limited, "/api/trace?input=bca")
    assert status == 200 and answer["output"] == "abc"
    assert wait_until(lambda: limited.open == 0)  # and now every handler has finished
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Error" not in err, err


def test_a_burst_of_connections_fits_in_the_listen_queue(checkpoint_path):
    server = make_server(load(checkpoint_path), checkpoint_path, port=0)
    clients = []
    try:
        assert server.request_queue_size >= 128  # socketserver's default is 5
        # Nothing accepts (serve_forever is not running), so each connection stays in the
        # kernel's queue: with room for 5, the 7th and later get no answer to their SYN.
        for _ in range(50):
            c = socket.socket()
            clients.append(c)
            c.setblocking(False)
            c.connect_ex(server.server_address[:2])
        waiting = set(clients)
        deadline = time.monotonic() + 10
        while waiting and time.monotonic() < deadline:
            _, writable, _ = select.select([], list(waiting), [], 0.1)
            waiting -= set(writable)
        assert not waiting, f"{len(waiting)} of 50 connections not established"
        assert all(c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 for c in clients)
    finally:
        for c in clients:
            c.close()
        server.server_close()


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no IPv6 loopback")


@needs_ipv6
def test_serves_over_ipv6_loopback(checkpoint_path):
    with serving(make_server(load(checkpoint_path), checkpoint_path, host="::1", port=0)) as six:
        assert six.address_family == socket.AF_INET6 and six.server_address[0] == "::1"
        status, answer = get_json(six, "/api/trace?input=cba")
    assert status == 200 and answer["output"] == "abc"


@pytest.mark.parametrize("host, url_host, warned", [
    ("0.0.0.0", "127.0.0.1", True),
    ("", "127.0.0.1", True),
    pytest.param("::", "[::1]", True, marks=needs_ipv6),
    ("127.0.0.1", "127.0.0.1", False),
    pytest.param("::1", "[::1]", False, marks=needs_ipv6),
])
def test_serve_prints_a_url_that_works_and_warns_when_the_network_can_see_it(
        checkpoint_path, capsys, monkeypatch, host, url_host, warned):
    printed, statuses = [], []
    serve_forever = Server.serve_forever

    def open_the_printed_url_then_ctrl_c(self):
        printed.append(capsys.readouterr())  # what serve() printed before it served
        threading.Thread(target=serve_forever, args=(self, 0.05), daemon=True).start()
        try:
            url = urlsplit(re.search(r"Open (\S+)", printed[0].out).group(1))
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
            conn.request("GET", url.path + "api/info")
            statuses.append(conn.getresponse().status)
            conn.close()
        finally:
            self.shutdown()
        raise KeyboardInterrupt

    monkeypatch.setattr(Server, "serve_forever", open_the_printed_url_then_ctrl_c)
    serve(load(checkpoint_path), checkpoint_path, host=host, port=0)
    out, err = printed[0]
    assert re.search(rf"^Open http://{re.escape(url_host)}:[1-9]\d*/ ", out, re.M), out
    assert statuses == [200]
    if warned:
        assert len(err.splitlines()) == 1
        assert "warning" in err and "every network interface" in err and "other machines" in err
    else:
        assert err == ""
