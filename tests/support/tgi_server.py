"""A loopback stand-in for a Text Generation Inference (TGI) server, for tests and bench/ scripts.

It answers the HTTP shapes of TGI 3.x (``POST /v1/chat/completions``, ``POST /generate``, ``POST /``,
``GET /info``, ``GET /health``) so that the real ``huggingface_hub`` client runs over real sockets.
Replies are English-looking prose that is a pure function of (prompt, seed, temperature); knobs inject
what the builder must survive: refusals, empty and near-duplicate replies, HTTP errors, HTML bodies,
slow answers and dropped connections. Stdlib only, so bench/ scripts can import it or run it by path:

    python tests/support/tgi_server.py --port 0 --faults 429=0.1,drop=0.02 --stats-file /tmp/stats.json

This module routes requests and keeps the counters; ``tgi_behaviour`` decides faults and reply kinds,
``tgi_protocol`` speaks TGI's wire format, ``tgi_text`` writes the prose, ``tgi_cli`` parses the flags.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tgi_behaviour import (
    FAULT_KINDS,
    KNOBS,
    Behaviour,
    Burst,
    Dice,
    InFlight,
    Latency,
    ReplyHistory,
    compose_reply,
)
from tgi_cli import run
from tgi_protocol import (
    DEFAULT_MODEL_ID,
    GARBAGE_HTML,
    TGI_VERSION,
    GenerationRequest,
    Rejected,
    info_payload,
    parse_request,
    read_json,
    reply_payload,
    send,
    send_error,
    status_error,
    truncate,
)
from tgi_text import REFUSALS, light_edit, reply_text

__all__ = [
    "DEFAULT_MODEL_ID",
    "FAULT_KINDS",
    "REFUSALS",
    "TGI_VERSION",
    "Behaviour",
    "TGIServer",
    "light_edit",
    "main",
    "reply_text",
]

_PAID_ROUTES = {"/v1/chat/completions": "chat", "/generate": "generate", "/": "compat"}


def _knob(name: str) -> property:
    def get(server: TGIServer) -> Any:
        return getattr(server._behaviour, name)

    def set_(server: TGIServer, value: Any) -> None:
        server.configure(**{name: value})

    return property(get, set_, doc=f"Knob ``{name}`` (see ``Behaviour``); assigning validates it.")


# ---- HTTP plumbing ----
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "text-generation-router"
    sys_version = ""
    # Headers and body leave in separate writes: with Nagle on, each keep-alive reply would stall ~40 ms.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, is_open=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, is_open=False)

    def do_GET(self) -> None:
        self.server.owner._handle(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a stderr line per request would drown test and bench output


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024  # bursts of new connections queue instead of being refused

    def __init__(self, owner: TGIServer, port: int) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-reply (timeouts, killed workers, stop()) are routine here; bugs are not.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


# ---- Server ----
class TGIServer:
    """A TGI look-alike on 127.0.0.1, served from a daemon thread (see the module docstring).

    Counters: ``served`` (successful chat/generate replies, i.e. paid ones), ``faulted`` (kind ->
    count; a ``fixed_status`` answer counts under its status; a ``slow`` reply is also ``served``),
    ``kinds`` (served replies by ``normal``/``refusal``/``empty``/``duplicate``), ``count(route)``
    (requests received, any outcome).
    ``requests`` lists one dict per request (route, method, headers, body, status, fault, ``arrived``:
    its ``time.monotonic()``, ``in_flight``: for a chat/generate request, how many of those were being
    handled when it arrived, itself included) unless ``record_bodies=False``, which keeps only the
    counters so memory stays bounded. ``fail_next`` answers a burst of requests with an error status.
    """

    refusal_rate = _knob("refusal_rate")
    empty_rate = _knob("empty_rate")
    duplicate_rate = _knob("duplicate_rate")
    faults = _knob("faults")
    fixed_status = _knob("fixed_status")
    latency = _knob("latency")
    slow_seconds = _knob("slow_seconds")
    retry_after = _knob("retry_after")

    def __init__(
        self,
        *,
        port: int = 0,
        model_id: str = DEFAULT_MODEL_ID,
        max_input_tokens: int = 4096,
        max_total_tokens: int = 8192,
        refusal_rate: float = 0.0,
        empty_rate: float = 0.0,
        duplicate_rate: float = 0.0,
        faults: Mapping[str, float] | None = None,
        fixed_status: int | None = None,
        latency: Latency = None,
        slow_seconds: float = 3.0,
        retry_after: float = 0.0,
        fault_seed: int = 0,
        latency_seed: int = 0,
        record_bodies: bool = True,
        stats_file: str | os.PathLike[str] | None = None,
        grammar_support: bool = True,
    ) -> None:
        self._behaviour = Behaviour(
            refusal_rate=refusal_rate,
            empty_rate=empty_rate,
            duplicate_rate=duplicate_rate,
            faults=faults if faults is not None else {},
            fixed_status=fixed_status,
            latency=latency,
            slow_seconds=slow_seconds,
            retry_after=retry_after,
        )
        self.port = port
        self.model_id = model_id
        self.max_input_tokens = max_input_tokens
        self.max_total_tokens = max_total_tokens
        self.record_bodies = record_bodies
        # False: like TGI started with --disable-grammar-support, a chat request with a response_format gets 422.
        self.grammar_support = grammar_support
        self.stats_file = Path(stats_file) if stats_file is not None else None
        self.requests: list[dict[str, Any]] = []
        self.served = 0
        self.faulted: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self._routes: Counter[str] = Counter()
        self._in_flight = InFlight()
        self._burst = Burst()
        self._history = ReplyHistory()
        self._dice = Dice(fault_seed=fault_seed, latency_seed=latency_seed)
        self._lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._stats_dirty = threading.Event()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --
    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("TGIServer.url: the server is not running; call start() first")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> TGIServer:
        if self._httpd is None:
            self._stopping.clear()
            self._httpd = _HTTPServer(self, self.port)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="tgi-server", daemon=True
            )
            self._thread.start()
            self._write_stats()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()  # wakes handlers sleeping on latency or a "slow" fault
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # keep-alive clients would otherwise go on being served
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> TGIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- knobs and records --
    def configure(self, **knobs: Any) -> None:
        """Change knobs at runtime; validated, and applied from the next request on."""
        unknown = sorted(set(knobs) - set(KNOBS))
        if unknown:
            raise TypeError(f"configure(): unknown knob {unknown[0]!r}; knobs are {', '.join(KNOBS)}")
        with self._lock:
            self._behaviour = replace(self._behaviour, **knobs)

    def fail_next(self, count: int, status: int = 429) -> None:
        """Answer the next ``count`` chat/generate requests with ``status``, whatever the knobs say.

        Counted in ``faulted`` under the status, like ``fixed_status``; a 429 carries ``retry_after``.
        """
        self._burst.arm(count, status)

    def count(self, route: str | None = None) -> int:
        """Requests received (any outcome), on ``route`` or on all routes."""
        with self._lock:
            return sum(self._routes.values()) if route is None else self._routes[route]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            received = sum(self._routes.values())
            faulted, kinds = dict(self.faulted), dict(self.kinds)
            return {"served": self.served, "requests": received, "faulted": faulted, "kinds": kinds}

    def reset(self) -> None:
        """Clear records, counters, the near-duplicate history and a burst (knobs and RNG states stay)."""
        with self._lock:
            self.requests.clear()
            self.served = 0
            self.faulted.clear()
            self.kinds.clear()
            self._routes.clear()
            self._history.clear()
        self._burst.arm(0, 429)
        self._write_stats()

    def info(self) -> dict[str, Any]:
        return info_payload(
            model_id=self.model_id, max_input_tokens=self.max_input_tokens, max_total_tokens=self.max_total_tokens
        )

    def _track(self, connection: socket.socket, *, is_open: bool) -> None:
        with self._lock:
            if is_open:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _write_stats(self) -> None:
        """Bring the stats file up to date. Concurrent requests coalesce into one write: whoever holds
        the writer lock writes again while the dirty flag is set, so the last state always lands."""
        if self.stats_file is None:
            return
        self._stats_dirty.set()  # set before trying the lock, or a finishing writer could miss it
        while self._stats_dirty.is_set() and self._stats_lock.acquire(blocking=False):
            try:
                while self._stats_dirty.is_set():
                    self._stats_dirty.clear()
                    temporary = self.stats_file.with_name(self.stats_file.name + ".tmp")
                    temporary.write_text(json.dumps(self.stats()))
                    os.replace(temporary, self.stats_file)  # readers never see half a file
            finally:
                self._stats_lock.release()

    # -- serving --
    def _handle(self, handler: _Handler) -> None:
        route = urlsplit(handler.path).path
        arrived = time.monotonic()
        body, parse_error = read_json(handler)
        method = handler.command
        paid = method == "POST" and route in _PAID_ROUTES
        entry: dict[str, Any] | None = None
        in_flight: int | None = None
        leave: Callable[[], None] | None = None
        with self._lock:  # counted and listed together, so ``requests`` is in the order of the counts
            self._routes[route] += 1
            if paid:
                in_flight, leave = self._in_flight.enter()
            if self.record_bodies:
                headers = {name.lower(): value for name, value in handler.headers.items()}
                entry = {"route": route, "method": method, "headers": headers, "body": body}
                entry.update(status=None, fault=None, arrived=arrived, in_flight=in_flight)
                self.requests.append(entry)
        handler.record_entry = entry
        handler.on_answer = leave  # called by tgi_protocol.send just before the answer leaves
        status: int | None = None
        try:
            if paid:
                status = self._paid(handler, _PAID_ROUTES[route], body, parse_error, entry)
            elif method == "GET" and route in ("/info", "/"):
                status = send(handler, 200, json.dumps(self.info()).encode())
            elif method == "GET" and route == "/health":
                status = send(handler, 200, b"", content_type=None)
            elif route in _PAID_ROUTES or route in ("/info", "/health"):
                status = send_error(handler, 405, f"Method {method} not allowed on {route}", "method_not_allowed")
            else:
                status = send_error(handler, 404, f"Route {route} not found", "not_found")
        finally:
            if leave is not None:  # a dropped connection, or an error: no answer was sent
                leave()
            if entry is not None:
                with self._lock:
                    entry["status"] = status
            self._write_stats()

    def _paid(self, handler: _Handler, kind: str, body: Any, parse_error: str | None, entry: dict[str, Any] | None) -> int | None:
        behaviour = self._behaviour  # one snapshot: knobs changed mid-request apply to the next request
        fault = str(behaviour.fixed_status) if behaviour.fixed_status is not None else self._dice.fault(behaviour)
        fault = self._burst.take() or fault
        if fault is not None:
            with self._lock:
                self.faulted[fault] += 1
                if entry is not None:
                    entry["fault"] = fault
        if fault == "drop":
            handler.close_connection = True  # closes the socket without a byte of response
            return None
        if fault == "garbage":
            return send(handler, 200, GARBAGE_HTML, content_type="text/html")
        if fault == "slow":
            self._stopping.wait(behaviour.slow_seconds)
        elif fault is not None:
            status = int(fault)
            headers = {"Retry-After": f"{behaviour.retry_after:g}"} if status == 429 else {}
            return send_error(handler, status, *status_error(status), headers=headers)
        try:
            if parse_error is not None:
                raise Rejected(f"Failed to deserialize the JSON body into the target type: {parse_error}")
            request = parse_request(kind, body, max_input=self.max_input_tokens, max_total=self.max_total_tokens)
            if request.schema is not None and not self.grammar_support:
                raise Rejected("Input validation error: grammar is not supported")
        except Rejected as err:
            return send_error(handler, 422, str(err), "validation")
        full_text, reply_kind = self.compose(request, behaviour)
        text, finish = truncate(full_text, request.max_tokens)
        self._stopping.wait(self._dice.latency(behaviour))
        payload = reply_payload(kind, request, text, finish=finish, model_id=self.model_id)
        with self._lock:
            self.served += 1
            self.kinds[reply_kind] += 1
        return send(handler, 200, json.dumps(payload).encode())

    def compose(self, request: GenerationRequest, behaviour: Behaviour) -> tuple[str, str]:
        """The reply text and its kind; refusal/empty/duplicate are decided by hash(prompt, seed). A request
        with a response_format gets JSON matching its schema (kind ``json``).

        The override point: a subclass (``scripted_llm.ScriptedLLM``) or a test wraps this to answer
        differently (e.g. numbered lists, or a replica that dies mid-build).
        """
        return compose_reply(request, behaviour, history=self._history)


# ---- Command line ----
def main(argv: list[str] | None = None) -> int:
    """Serve from the command line (flags in ``tgi_cli``) until SIGTERM or SIGINT; returns the exit code."""
    return run(argv, server_class=TGIServer)


if __name__ == "__main__":
    sys.exit(main())
