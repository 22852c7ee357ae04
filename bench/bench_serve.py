"""How fast `zeptogpt serve` answers a trace: median of 100 requests (target <= 20 ms).

Starts the real server as its own process on a free loopback port (training a checkpoint into a
temporary folder first unless --checkpoint is given), sends the requests one after another,
prints the server-side time (the ``ms`` each answer carries: the whole forward-pass anatomy) and
the client's round trip (connect, send, compute, JSON, receive), then stops the server.

Then a burst: --burst clients connect at the same moment and each asks for a trace, as a page
opened in many tabs at once would. Its slowest round trip shows the listen backlog: a
connection the kernel's queue had no room for is retried by the client a second later, so a max
near 1000 ms means a too-short backlog, not a slow model. Timings only: it asserts nothing.

Usage: ``python bench/bench_serve.py [--requests 100] [--burst 50] [--checkpoint PATH]``
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100, help="trace requests (default 100)")
    parser.add_argument("--burst", type=int, default=50, help="simultaneous clients (default 50)")
    parser.add_argument("--checkpoint", type=Path, help="checkpoint to serve (default: train one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.checkpoint or Path(tmp) / "model.safetensors"
        if args.checkpoint is None:
            subprocess.run([sys.executable, "-m", "zeptogpt", "train", "--checkpoint", str(path)],
                           check=True, stdout=subprocess.DEVNULL)
        server = subprocess.Popen(
            [sys.executable, "-m", "zeptogpt", "serve", "--port", "0", "--checkpoint", str(path)],
            stdout=subprocess.PIPE, text=True)
        try:
            port = _port_from(server)
            server_ms, round_trip_ms = _measure(port, args.requests)
            burst_ms = _burst(port, args.burst)
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(f"{args.requests} trace requests to zeptogpt serve on 127.0.0.1:{port}")
    for name, values in (("server-side", server_ms), ("round trip", round_trip_ms)):
        values = sorted(values)
        p90 = values[int(0.9 * (len(values) - 1))]
        print(f"  {name:11s}  median {statistics.median(values):6.2f} ms   p90 {p90:6.2f} ms   "
              f"max {values[-1]:6.2f} ms")
    verdict = "meets" if statistics.median(server_ms) <= 20 else "MISSES"
    print(f"  server-side median {verdict} the 20 ms target")
    answered = sorted(ms for ms in burst_ms if isinstance(ms, float))
    failed = [e for e in burst_ms if isinstance(e, str)]
    print(f"{args.burst} clients at once: {len(answered)} answered "
          f"({sum(ms >= 1000 for ms in answered)} after a second or more), {len(failed)} failed")
    if answered:
        print(f"  round trip   median {statistics.median(answered):6.2f} ms   "
              f"max {answered[-1]:7.2f} ms")
    if failed:
        print(f"  e.g. {failed[0]}")


def _port_from(server: subprocess.Popen) -> int:
    """The port the server chose, read from its 'Open http://HOST:PORT/' line."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line:
            raise SystemExit("the server stopped before it was ready")
        if line.startswith("Open http://"):
            return int(line.split()[1].rstrip("/").rsplit(":", 1)[1])  # HOST may be [::1]
    raise SystemExit("the server did not say where it listens within 60 s")


def _measure(port: int, n: int) -> tuple[list[float], list[float]]:
    inputs = ["".join(t) for t in itertools.product("abc", repeat=3)]
    _trace(port, "abc")  # warm-up: first-call costs are not what a user waits for each time
    server_ms, round_trip_ms = [], []
    for i in range(n):
        start = time.perf_counter()
        answer = _trace(port, inputs[i % len(inputs)])
        round_trip_ms.append((time.perf_counter() - start) * 1000)
        server_ms.append(answer["ms"])
        assert answer["output"] == "".join(sorted(inputs[i % len(inputs)])), answer["output"]
    return server_ms, round_trip_ms


def _burst(port: int, n: int) -> list[float | str]:
    """The round trip (ms) of each of ``n`` trace requests whose clients all start at once, or
    the error a client got instead of an answer."""
    start_together = threading.Barrier(n)
    round_trip_ms: list[float | str] = ["never ran"] * n

    def client(i: int) -> None:
        start_together.wait()
        start = time.perf_counter()
        try:
            _trace(port, "cab")
        except OSError as e:  # a refused or reset connection is a result here, not a crash
            round_trip_ms[i] = f"{type(e).__name__}: {e}"
            return
        round_trip_ms[i] = (time.perf_counter() - start) * 1000

    clients = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    return round_trip_ms


def _trace(port: int, text: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/api/trace", body=json.dumps({"input": text}),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return json.loads(response.read())
    finally:
        conn.close()


if __name__ == "__main__":
    main()
