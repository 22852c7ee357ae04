"""The web server over real HTTP on loopback: answers from the PyTorch model, one-line errors,
bounded bodies, 404 for anything that is not a route or a static file."""

import http.client
import json
import socket
import threading

import pytest
import torch

from zeptogpt import InputError, ModelConfig, SortTask, ZeptoGPT, decode, load
from zeptogpt.cli import main
from zeptogpt.serve import MAX_BODY, make_server


@pytest.fixture(scope="module")
def checkpoint_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "model.safetensors"
    assert main(["train", "--checkpoint", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def server(checkpoint_path):
    server = make_server(load(checkpoint_path), checkpoint_path, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


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
    two = make_server(Checkpoint(model, task), tmp_path / "model.safetensors", port=0)
    threading.Thread(target=two.serve_forever, daemon=True).start()
    try:
        _, a = get_json(two, "/api/trace?input=bca")
        _, info = get_json(two, "/api/info")
        _, w = get_json(two, "/api/weights")
        status, curve = get_json(two, "/api/curve")
    finally:
        two.shutdown()
        two.server_close()
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
    diverged = make_server(load(path), path, port=0)
    thread = threading.Thread(target=diverged.serve_forever, daemon=True)
    thread.start()
    try:
        status, ctype, body = request(diverged, "GET", "/api/curve")
    finally:
        diverged.shutdown()
        diverged.server_close()
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
    with pytest.raises(SystemExit) as e:
        main(["serve", "--port", "70000"])
    assert e.value.code == 2 and "port" in capsys.readouterr().err
