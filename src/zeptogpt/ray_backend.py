"""The shard plan's shards as Ray tasks: a local Ray, or a cluster joined by its address.

Ray is an optional extra (``pip install zeptogpt[ray]``) and is imported only here, inside the
functions. A local Ray is started without its dashboard and with usage statistics off, so it
sends nothing anywhere; its logs stay out of the terminal. Its servers still listen on every
interface of the machine, as Ray's always do (it turns a loopback node address into the
machine's own, by design): on an open network, firewall a machine that runs it.

Usage: ``with connect(None, cpus=2) as ray_info: run_plan(..., executor=ray_executor())``
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

from zeptogpt.plan import Executor, train_shard

# HTTP/2's client preface and an empty SETTINGS frame
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
MAX_RETRIES = 3  # a shard whose worker died is run again, up to this many times


class RayError(RuntimeError):
    """Ray could not be started or reached; the message is one line for a user."""


@dataclass
class RayInfo:
    """Which Ray this run used."""

    address: str | None  # None: a local Ray started for this run
    cpus: int  # the cluster's CPUs: how many shards train at once
    nodes: int
    start_seconds: float  # starting or joining Ray


def _check_address(address: str) -> None:
    """A quick TCP check first: ``ray.init`` at an address where nothing listens retries for
    minutes instead of failing."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise RayError(f"cannot reach Ray at {address} (expected HOST:PORT, the address "
                       "`ray start --head` printed)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5) as s:
            # Ray's GCS speaks gRPC (HTTP/2): it answers HTTP/2's opening with a SETTINGS frame
            # (type 4). Anything else (a web server, a database) is not Ray, and ray.init
            # would wait on it for minutes.
            s.sendall(HTTP2_PREFACE)
            reply = b""
            while len(reply) < 9:
                chunk = s.recv(9 - len(reply))
                if not chunk:
                    break
                reply += chunk
    except OSError as e:
        raise RayError(f"cannot reach Ray at {address} ({e.strerror or e})") from None
    if len(reply) < 9 or reply[3] != 4:
        raise RayError(f"cannot reach Ray at {address} (something listens there, but not "
                       "Ray's gRPC)")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """stderr to /dev/null at the file descriptor, where Ray's C++ core writes its warnings."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            with contextlib.redirect_stderr(null):
                yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def connect(address: str | None, cpus: int = 2) -> Iterator[RayInfo]:
    """Start a local Ray with ``cpus`` CPUs (``address`` None) or join the cluster at
    ``address``; shut it down (or leave the cluster) on the way out."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report to anyone
    try:
        import ray
    except ImportError:
        raise RayError("--backend ray needs Ray: pip install 'zeptogpt[ray]'") from None
    if address is not None:
        _check_address(address)
    start = time.perf_counter()
    options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                   configure_logging=True)
    try:
        with _quiet():
            if address is None:
                ray.init(num_cpus=cpus, **options)
            else:
                ray.init(address=address, **options)
    except Exception as e:  # noqa: BLE001 (Ray raises many kinds; each becomes one line)
        reason = str(e).strip().splitlines()[0][:150] if str(e).strip() else type(e).__name__
        raise RayError(f"cannot reach Ray at {address or 'a new local Ray'} ({reason})") from None
    try:
        info = RayInfo(address, int(ray.cluster_resources().get("CPU", 0)),
                       len([n for n in ray.nodes() if n.get("Alive")]),
                       round(time.perf_counter() - start, 2))
        yield info
    finally:
        ray.shutdown()


def ray_executor(max_retries: int = MAX_RETRIES) -> Executor:
    """Each pending shard a Ray task of one CPU; results yielded as they finish (``ray.wait``).
    A task whose worker died is retried by Ray up to ``max_retries`` times."""
    import ray

    remote = ray.remote(num_cpus=1, max_retries=max_retries)(train_shard)

    def run(task, config, recipe, pending):
        refs = {remote.remote(task, config, recipe, seeds): k for k, seeds in pending.items()}
        try:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                for ref in ready:
                    yield refs.pop(ref), ray.get(ref)
        finally:
            for ref in refs:  # Ctrl-C or an error: no shard keeps training for nobody
                ray.cancel(ref, force=True)
    return run
