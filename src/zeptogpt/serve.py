"""A local web page that shows every number of a trace and every weight, from a JSON API.

The page computes nothing of the model: every number comes from ``anatomy.dissect``, the same
PyTorch code the CLI and the plots use. The standard library's threading HTTP server is enough
for one user on loopback and adds no dependency; ``Server`` gives it the limits a server needs
against a client that misbehaves: a connection silent for READ_TIMEOUT seconds is closed, at
most MAX_CONNECTIONS are handled at once (one thread each), the kernel queues BACKLOG more, and a
client that leaves before its answer is not an error. It binds IPv4 or IPv6 addresses alike.

Routes::

    GET  /                     the page (static/index.html)
    GET  /static/NAME          a file of the package's static folder, nothing else
    GET  /api/trace?input=caa  every number of one decoding (also POST {"input": "caa"})
    GET  /api/weights          every parameter: name, shape, values
    GET  /api/params           the parameter table
    GET  /api/curve            the training log: [[step, loss, correct], ...]
    GET  /api/info             which model this is: its architecture, its task, and every input
                               of the task when there are at most PICKER_INPUTS
    GET  /favicon.ico          the page's icon (static/favicon.svg)

Errors are JSON ``{"error": "one line"}`` with 400 (bad input), 404, 411, 413 or 503 (busy).

Usage: ``serve(load("runs/e6/model.safetensors"), "runs/e6/model.safetensors")``, or
``zeptogpt serve`` and open http://127.0.0.1:8000/ (``--host ::1`` serves on IPv6 loopback).
"""

from __future__ import annotations

import ipaddress
import json
import math
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from zeptogpt.anatomy import dissect, weight_list
from zeptogpt.checkpoint import Checkpoint, describe, load_log
from zeptogpt.config import variant_name
from zeptogpt.files import json_number
from zeptogpt.task import InputError

MAX_BODY = 1024  # bytes of a POST body; an input is a few letters, so anything bigger is refused
# A browser sends a whole request at once, so a connection silent this long (seconds) is stalled
# or abandoned: Chromium even opens spare connections it may never use. Each holds a thread.
READ_TIMEOUT = 2.0
# Connections handled at once, one thread each. A browser opens at most 6 per server; without
# a cap, 1,000 stalled clients made 1,003 threads. With 64 slots freed every READ_TIMEOUT, a
# request queued behind 150 stalled clients is answered in about 5 s.
MAX_CONNECTIONS = 64
# Seconds a connection beyond the cap waits for a free slot before it is answered 503. A slot
# held by a stalled client frees within READ_TIMEOUT, so a page's request gets its real answer
# after a pause; only a flood that outlasts that gets the error, instead of hanging.
BUSY_WAIT = 5.0
# Connections the kernel holds until they are accepted. socketserver's 5 made a burst (a page
# and its files in several tabs) drop the 7th connection on: the client retried a second later
# or was reset; 128 let 300 idle clients stop the 195th from connecting. Linux caps it at
# net.core.somaxconn (4096 by default).
BACKLOG = socket.SOMAXCONN
PICKER_INPUTS = 100  # up to this many inputs the page shows a button for each (the seed's 27)
THREAD_STACK = 2 * 2**20  # bytes of stack per handler thread (see serve)
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


class ApiError(Exception):
    """An answer other than 200: an HTTP status and one line for the user."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class App:
    """The model and the answers of every route, with no HTTP in it (tests call it directly)."""

    def __init__(self, checkpoint: Checkpoint, checkpoint_path: str | Path) -> None:
        from zeptogpt.runlog import LogError

        self.checkpoint = checkpoint
        self.lock = threading.Lock()  # one forward pass at a time: torch's own threads do the rest
        model, task = checkpoint.model, checkpoint.task
        config = model.config
        # Everything but the trace is fixed for the life of the server: answer it from memory.
        try:
            # JSON has no NaN (_send_json refuses it): a diverged step's loss is null, as in the log
            rows = [[step, json_number(loss), correct]
                    for step, loss, correct in load_log(checkpoint_path, checkpoint)]
            curve = dict(rows=rows, note="")
        except LogError as e:
            curve = dict(rows=[], note=str(e))
        self.fixed = {
            "/api/info": dict(
                model=repr(model), variant=variant_name(config), about=describe(checkpoint),
                checkpoint=str(checkpoint_path), task=task.describe(), length=task.length,
                example=task.examples()[0],
                vocab=list(task.vocab), n_layer=config.n_layer, n_head=config.n_head,
                n_params=config.n_params, alphabet=task.alphabet, min_length=task.min_length,
                n_inputs=task.n_inputs,
                inputs=task.all_inputs() if task.n_inputs <= PICKER_INPUTS else None,
                # what the page's diagram draws: which boxes there are, and what they hold
                arch=dict(n_layer=config.n_layer, n_head=config.n_head, n_embd=config.n_embd,
                          d_head=config.d_head, d_mlp=config.d_mlp, norm=config.norm,
                          positions=config.positions, tie_qk=config.tie_qk,
                          tie_vo=config.tie_vo, tie_unembed=config.tie_unembed)),
            "/api/params": dict(
                rows=[dict(part=p, formula=f, count=c) for p, f, c in config.param_table()],
                total=config.n_params, text=config.format_params()),
            "/api/weights": dict(weights=weight_list(model)),
            "/api/curve": dict(curve, total=task.n_inputs),
        }
        self.static = _static_files()

    def trace(self, text: object) -> dict:
        """Every number of the decoding of ``text``, with the time it took (``ms``)."""
        if not isinstance(text, str):
            raise ApiError(HTTPStatus.BAD_REQUEST, 'expected a JSON object like {"input": "caa"}')
        start = time.perf_counter()
        try:
            with self.lock:
                answer = dissect(self.checkpoint.model, self.checkpoint.task, text).to_dict()
        except InputError as e:
            raise ApiError(HTTPStatus.BAD_REQUEST, str(e)) from None
        answer["ms"] = (time.perf_counter() - start) * 1000
        return answer


class Server(ThreadingHTTPServer):
    """The standard threading HTTP server with limits on slow and numerous clients, on IPv4 or
    IPv6. Usage: ``Server(("::1", 0), handler).serve_forever()``

    The limits are attributes, so a test can make them small: ``read_timeout`` (seconds of
    silence before a connection is closed), ``max_connections``, ``busy_wait``.
    """

    daemon_threads = True  # a stuck client never keeps the process alive
    request_queue_size = BACKLOG
    read_timeout = READ_TIMEOUT
    max_connections = MAX_CONNECTIONS
    busy_wait = BUSY_WAIT

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = _family(address[0])  # socketserver's class default is IPv4 only
        self.open = 0  # connections being handled, each by its own thread
        self.slot_freed = threading.Condition()
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, tuple]:
        connection, client = super().get_request()
        # Without a timeout a client that sends half a request holds its thread forever. It
        # bounds each read and write, so it also frees a client that stops reading its answer.
        connection.settimeout(self.read_timeout)
        return connection, client

    def process_request(self, request: socket.socket, client_address: tuple) -> None:
        # This runs in the accept loop: while it waits, further connections wait in the
        # kernel's queue and cost no thread.
        with self.slot_freed:
            free = self.slot_freed.wait_for(lambda: self.open < self.max_connections,
                                            self.busy_wait)
            if free:
                self.open += 1
        if not free:
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)  # starts the thread
        except RuntimeError:  # "can't start new thread": out of memory or of threads
            self._release()
            self._refuse(request)
        except BaseException:
            self._release()
            raise

    def process_request_thread(self, request: socket.socket, client_address: tuple) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self.slot_freed:
            self.open -= 1
            self.slot_freed.notify()

    def _refuse(self, request: socket.socket) -> None:
        """Answer 503 from the accept loop itself: no thread, so a flood cannot add any."""
        body = json.dumps({"error": f"the server is busy ({self.max_connections} connections "
                                    "open): try again in a moment"}).encode()
        head = ("HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nRetry-After: {math.ceil(self.read_timeout)}\r\n"
                "Connection: close\r\n\r\n")
        try:
            request.sendall(head.encode() + body)
        except OSError:
            pass  # the client already left
        self.shutdown_request(request)


def make_server(checkpoint: Checkpoint, checkpoint_path: str | Path, host: str = "127.0.0.1",
                port: int = 8000) -> Server:
    """A server ready to ``serve_forever()``; port 0 picks a free one (see ``server_address``)."""
    app = App(checkpoint, checkpoint_path)

    class Handler(_Handler):
        pass

    Handler.app = app
    return Server((host, port), Handler)


def serve(checkpoint: Checkpoint, checkpoint_path: str | Path, host: str = "127.0.0.1",
          port: int = 8000) -> None:
    """Serve until Ctrl-C, printing where, and a warning if other machines can open the page."""
    # A handler thread runs a forward pass of a few hundred numbers: it needs far less than the
    # usual 8 MB of stack, and 64 of those would take 512 MB of address space under a limit.
    threading.stack_size(THREAD_STACK)
    server = make_server(checkpoint, checkpoint_path, host, port)
    url, warning = _where(server)
    print(f"Serving {describe(checkpoint)} from {checkpoint_path}")
    if warning:
        print(warning, file=sys.stderr)
    print(f"Open {url}  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nstopped")
    finally:
        server.server_close()


class _Handler(BaseHTTPRequestHandler):
    """Routes a request to the App and writes its answer; never lets an exception through."""

    app: App
    server_version = "zeptogpt"
    sys_version = ""

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:
            # The client reset the connection or left while its request was read (or an error
            # page written): nobody is left to answer and nothing of ours failed, so no
            # traceback, which socketserver would print for anything that gets out of here.
            self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        try:
            if url.path == "/api/trace":
                self._send_json(self.app.trace(_query_input(url.query)))
            elif url.path in self.app.fixed:
                self._send_json(self.app.fixed[url.path])
            elif url.path in ("/", "/index.html"):
                self._send_file("index.html")
            elif url.path == "/favicon.ico":  # asked for by browsers that ignore the page's link
                self._send_file("favicon.svg")
            elif url.path.startswith("/static/"):
                self._send_file(url.path.removeprefix("/static/"))
            else:
                raise ApiError(HTTPStatus.NOT_FOUND, f"no such page: {url.path[:80]}")
        except ApiError as e:
            self._send_json({"error": str(e)}, e.status)
        except Exception as e:  # a bug must not print a traceback per request or kill the thread
            self._send_json({"error": f"internal error ({type(e).__name__})"}, 500)

    def do_POST(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        try:
            if url.path != "/api/trace":
                raise ApiError(HTTPStatus.NOT_FOUND, f"no such API: {url.path[:80]}")
            self._send_json(self.app.trace(self._read_json().get("input")))
        except ApiError as e:
            self._send_json({"error": str(e)}, e.status)
        except Exception as e:
            self._send_json({"error": f"internal error ({type(e).__name__})"}, 500)

    def _read_json(self) -> dict:
        """The request body as a JSON object, bounded by MAX_BODY."""
        length = self.headers.get("Content-Length")
        if length is None:
            self.close_connection = True
            raise ApiError(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
        try:
            size = int(length)
            if size < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise ApiError(HTTPStatus.BAD_REQUEST, "bad Content-Length header") from None
        if size > MAX_BODY:
            self.close_connection = True  # the body is not read, so the connection is unusable
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"request body of {size} bytes is too large (at most {MAX_BODY})")
        body = self.rfile.read(size)
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ApiError(HTTPStatus.BAD_REQUEST,
                           'malformed JSON: expected an object like {"input": "caa"}') from None
        if not isinstance(data, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, 'expected a JSON object like {"input": "caa"}')
        return data

    def _send_file(self, name: str) -> None:
        # Only names found in the static folder at start-up exist: no path is ever joined, so
        # "../" or an absolute path cannot reach another file.
        if name not in self.app.static:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no such file: {name[:80]}")
        body, content_type = self.app.static[name]
        self._send(body, content_type, HTTPStatus.OK)

    def _send_json(self, data: dict, status: int = HTTPStatus.OK) -> None:
        body = json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
        self._send(body, "application/json", status)

    def _send(self, body: bytes, content_type: str, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        try:
            self.end_headers()  # the first write to the socket
            self.wfile.write(body)
        except OSError:
            # The client left before reading its answer (or stopped reading it): not an error
            # of ours, and the connection is no use for another request.
            self.close_connection = True

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        pass  # quiet: one user on loopback does not need an access log


def _family(host: str) -> socket.AddressFamily:
    """IPv6 for an IPv6 address ("::1", "::") or a name that has only IPv6 addresses; IPv4 for
    anything else, "" included (every IPv4 interface, as in socketserver)."""
    if ":" in host:
        return socket.AF_INET6
    if not host:
        return socket.AF_INET
    # A name with both (often "localhost") keeps IPv4, so 127.0.0.1 goes on working for it.
    families = {info[0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)}
    return socket.AF_INET6 if families == {socket.AF_INET6} else socket.AF_INET


def _where(server: Server) -> tuple[str, str | None]:
    """(the page's address for a browser on this machine, a one-line warning or None).

    The address is the one the server is bound to, except for every interface ("", 0.0.0.0,
    ::), where it is the loopback address of the same family: that one always works.
    """
    host, port = server.server_address[:2]
    address = ipaddress.ip_address(host.split("%")[0])  # "%": an IPv6 scope such as fe80::1%eth0
    if address.is_unspecified:
        host = "127.0.0.1" if address.version == 4 else "::1"
    url = f"http://[{host}]:{port}/" if address.version == 6 else f"http://{host}:{port}/"
    if address.is_loopback:
        return url, None
    where = "every network interface" if address.is_unspecified else f"{address}, not loopback"
    return url, (f"warning: listening on {where}: other machines on the network can open this "
                 "page too (the default, 127.0.0.1, keeps it to this machine)")


def _query_input(query: str) -> str | None:
    values = parse_qs(query, keep_blank_values=True).get("input")
    if values is None:
        raise ApiError(HTTPStatus.BAD_REQUEST, "expected ?input=LETTERS, e.g. /api/trace?input=caa")
    return values[0]


def _static_files() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, content type) of every file directly in the package's static folder."""
    folder = resources.files("zeptogpt") / "static"
    files = {}
    for entry in folder.iterdir():
        suffix = Path(entry.name).suffix
        if entry.is_file() and suffix in CONTENT_TYPES:
            files[entry.name] = (entry.read_bytes(), CONTENT_TYPES[suffix])
    return files
