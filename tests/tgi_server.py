"""A loopback stand-in for a Text Generation Inference (TGI) server, for tests and bench/ scripts.

It answers the HTTP shapes of TGI 3.x (``POST /v1/chat/completions``, ``POST /generate``, ``POST /``,
``GET /info``, ``GET /health``) so that the real ``huggingface_hub`` client runs over real sockets.
Replies are English-looking prose that is a pure function of (prompt, seed, temperature); knobs inject
what the builder must survive: refusals, empty and near-duplicate replies, HTTP errors, HTML bodies,
slow answers and dropped connections. Stdlib only, so bench/ scripts can import it or run it by path:

    python tests/tgi_server.py --port 0 --faults 429=0.1,drop=0.02 --stats-file /tmp/stats.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import socket
import sys
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from tgi_text import EMPTY_REPLIES, REFUSALS, digest, fraction, light_edit, reply_text

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

TGI_VERSION = "3.3.6"
DEFAULT_MODEL_ID = "tgi-test/tiny-chat"
# Order matters: one uniform draw per request walks these cumulatively.
FAULT_KINDS = ("429", "424", "500", "502", "503", "504", "garbage", "slow", "drop")
# HTML a proxy in front of TGI returns when it has no backend: HTTP 200 would still not make it JSON.
_GARBAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
# (message, error_type) as TGI's router (or the gateway in front of it) words them.
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("Bad request", "validation"),
    401: ("Authorization header is correct, but the token seems invalid", "unauthorized"),
    403: ("You don't have access to this endpoint", "forbidden"),
    404: ("Model not found", "not_found"),
    422: ("Input validation error: `inputs` must have less than 4096 tokens. Given: 4100", "validation"),
    424: ("Request failed during generation: Server error: CUDA out of memory", "generation"),
    429: ("Model is overloaded", "overloaded"),
    500: ("Incomplete generation", "incomplete_generation"),
    502: ("Bad gateway: the model server did not answer", "bad_gateway"),
    503: ("Service unavailable: the model is not ready", "unhealthy"),
    504: ("Gateway timeout: the model server took too long to answer", "timeout"),
}
_HISTORY_LINES = 512  # distinct first lines (classes) remembered for near-duplicates
_HISTORY_PER_LINE = 32

Latency = float | tuple[str, float, float] | None  # seconds, or ("lognormal", median, sigma)


# ---- Knobs ----
def _check_fraction(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value!r}: use a fraction between 0 and 1")
    return float(value)


def _check_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < math.inf:
        raise ValueError(f"{name}={value!r}: use a number of seconds >= 0")
    return float(value)


def _check_latency(value: object) -> Latency:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _check_seconds("latency", value)
    if isinstance(value, (tuple, list)) and len(value) == 3 and value[0] == "lognormal":
        median, sigma = _check_seconds("latency median", value[1]), _check_seconds("latency sigma", value[2])
        if median > 0:
            return ("lognormal", median, sigma)
    raise ValueError(f"latency={value!r}: use None, seconds (e.g. 0.1) or ('lognormal', median_seconds, sigma)")


@dataclass(frozen=True)
class Behaviour:
    """The knobs, validated. The server swaps whole instances, so a request sees one consistent set."""

    refusal_rate: float = 0.0
    empty_rate: float = 0.0
    duplicate_rate: float = 0.0
    faults: Mapping[str, float] = field(default_factory=dict)
    fixed_status: int | None = None
    latency: Latency = None
    slow_seconds: float = 3.0
    retry_after: float = 0.0

    def __post_init__(self) -> None:
        for name in ("refusal_rate", "empty_rate", "duplicate_rate"):
            object.__setattr__(self, name, _check_fraction(name, getattr(self, name)))
        if not isinstance(self.faults, Mapping):
            raise ValueError(f"faults={self.faults!r}: use a dict of kind -> rate, e.g. {{'429': 0.1}}")
        faults = {str(kind): _check_fraction(f"faults[{str(kind)!r}]", rate) for kind, rate in self.faults.items()}
        unknown = sorted(set(faults) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"faults: unknown kind {unknown[0]!r}; use one of {', '.join(FAULT_KINDS)}")
        if sum(faults.values()) > 1.0 + 1e-9:
            raise ValueError(f"faults: rates add up to {sum(faults.values()):.3g}; keep the total at most 1")
        object.__setattr__(self, "faults", MappingProxyType(faults))
        status = self.fixed_status
        is_error_status = isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599
        if status is not None and not is_error_status:
            raise ValueError(f"fixed_status={status!r}: use None or an HTTP error status between 400 and 599")
        object.__setattr__(self, "latency", _check_latency(self.latency))
        for name in ("slow_seconds", "retry_after"):
            object.__setattr__(self, name, _check_seconds(name, getattr(self, name)))


_KNOBS = tuple(knob.name for knob in fields(Behaviour))


def _knob(name: str) -> property:
    def get(server: TGIServer) -> Any:
        return getattr(server._behaviour, name)

    def set_(server: TGIServer, value: Any) -> None:
        server.configure(**{name: value})

    return property(get, set_, doc=f"Knob ``{name}`` (see ``Behaviour``); assigning validates it.")


# ---- Requests ----
class _Rejected(Exception):
    """A request TGI answers with 422 (error_type "validation")."""


@dataclass(frozen=True)
class _GenerationRequest:
    prompt: str  # every message content, newline-joined: what the reply is a function of
    first_line: str  # first line of the last message: groups near-duplicates by class
    prompt_tokens: int
    max_tokens: int | None
    seed: int | None
    temperature: float | None


def _content_text(content: object) -> str:
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def _option(options: Mapping[str, Any], name: str, types: type | tuple[type, ...]) -> Any:
    value = options.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
        raise _Rejected(f"Failed to deserialize the JSON body into the target type: {name}: invalid type {value!r}")
    return value


def _parse_request(kind: str, body: Any, *, max_input: int, max_total: int) -> _GenerationRequest:
    if not isinstance(body, dict):
        raise _Rejected("Failed to deserialize the JSON body into the target type: expected a JSON object")
    if body.get("stream"):
        raise _Rejected("Input validation error: this test server does not stream; send `stream: false`")
    if kind == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise _Rejected("Failed to deserialize the JSON body into the target type: missing field `messages`")
        contents, options, limit_name = [_content_text(m.get("content")) for m in messages], body, "max_tokens"
    else:
        inputs, options = body.get("inputs"), body.get("parameters") or {}
        if not isinstance(inputs, str) or not isinstance(options, dict):
            raise _Rejected("Failed to deserialize the JSON body into the target type: missing field `inputs`")
        if not inputs.strip():
            raise _Rejected("Input validation error: `inputs` cannot be empty")
        contents, limit_name = [inputs], "max_new_tokens"
    max_tokens, seed = _option(options, limit_name, int), _option(options, "seed", int)
    temperature = _option(options, "temperature", (int, float))
    if max_tokens is not None and max_tokens < 1:
        raise _Rejected("Input validation error: `max_new_tokens` must be strictly positive")
    if temperature is not None and temperature < 0:
        raise _Rejected("Input validation error: `temperature` must be positive")
    prompt_tokens = sum(len(content.split()) for content in contents)
    if prompt_tokens > max_input:
        raise _Rejected(
            f"Input validation error: `inputs` must have less than {max_input} tokens. Given: {prompt_tokens}"
        )
    if max_tokens is not None and prompt_tokens + max_tokens > max_total:
        raise _Rejected(
            f"Input validation error: `inputs` tokens + `max_new_tokens` must be <= {max_total}. "
            f"Given: {prompt_tokens} `inputs` tokens and {max_tokens} `max_new_tokens`"
        )
    first_line = contents[-1].strip().split("\n", 1)[0].strip()
    return _GenerationRequest("\n".join(contents), first_line, prompt_tokens, max_tokens, seed, temperature)


def _truncate(text: str, max_tokens: int | None) -> tuple[str, str]:
    """Apply ``max_tokens`` (one token per word); returns the text and TGI's finish reason."""
    words = text.split()
    if max_tokens is None or len(words) <= max_tokens:
        return text, "eos_token"
    return " ".join(words[:max_tokens]), "length"


def _read_json(handler: BaseHTTPRequestHandler) -> tuple[Any, str | None]:
    """The request body parsed as JSON (None when empty) and the parse error, if any."""
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        chunks = []
        while size := int(handler.rfile.readline().split(b";")[0] or b"0", 16):
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
        while handler.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
            pass
        raw = b"".join(chunks)
    else:
        length = handler.headers.get("Content-Length", "")
        raw = handler.rfile.read(int(length)) if length.isdigit() else b""
    if not raw:
        return None, None
    try:
        return json.loads(raw), None
    except ValueError as err:
        return None, str(err)


def _send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    *,
    content_type: str | None = "application/json",
    headers: Mapping[str, str] = MappingProxyType({}),
) -> int:
    # Record before the bytes leave: a client may inspect server.requests as soon as it has its answer.
    entry = getattr(handler, "record_entry", None)
    if entry is not None:
        entry["status"] = status
    handler.send_response(status)
    if content_type:
        handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)
    return status


def _send_error(handler: BaseHTTPRequestHandler, status: int, message: str, error_type: str, **options: Any) -> int:
    return _send(handler, status, json.dumps({"error": message, "error_type": error_type}).encode(), **options)


def _status_error(status: int) -> tuple[str, str]:
    if status in _ERRORS:
        return _ERRORS[status]
    try:
        return HTTPStatus(status).phrase, "error"
    except ValueError:
        return f"HTTP {status}", "error"


# ---- Server ----
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


_PAID_ROUTES = {"/v1/chat/completions": "chat", "/generate": "generate", "/": "compat"}


class TGIServer:
    """A TGI look-alike on 127.0.0.1, served from a daemon thread (see the module docstring).

    Counters: ``served`` (successful chat/generate replies, i.e. paid ones), ``faulted`` (kind ->
    count; a ``fixed_status`` answer counts under its status; a ``slow`` reply is also ``served``),
    ``kinds`` (served replies by ``normal``/``refusal``/``empty``/``duplicate``), ``count(route)``
    (requests received, any outcome).
    ``requests`` lists one dict per request (route, method, headers, body, status, fault) unless
    ``record_bodies=False``, which keeps only the counters so memory stays bounded.
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
        self.stats_file = Path(stats_file) if stats_file is not None else None
        self.requests: list[dict[str, Any]] = []
        self.served = 0
        self.faulted: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self._routes: Counter[str] = Counter()
        self._history: OrderedDict[str, deque[str]] = OrderedDict()
        self._lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._stats_dirty = threading.Event()
        # Faults and latency draw from their own RNGs, not the prompt hash, so a retry can succeed.
        self._fault_rng = random.Random(fault_seed)
        self._latency_rng = random.Random(latency_seed)
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
        unknown = sorted(set(knobs) - set(_KNOBS))
        if unknown:
            raise TypeError(f"configure(): unknown knob {unknown[0]!r}; knobs are {', '.join(_KNOBS)}")
        with self._lock:
            self._behaviour = replace(self._behaviour, **knobs)

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
        """Clear records, counters and the near-duplicate history (knobs and RNG states stay)."""
        with self._lock:
            self.requests.clear()
            self.served = 0
            self.faulted.clear()
            self.kinds.clear()
            self._routes.clear()
            self._history.clear()
        self._write_stats()

    def info(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "model_sha": None,
            "model_dtype": "torch.bfloat16",
            "model_device_type": "cpu",
            "model_pipeline_tag": "text-generation",
            "max_concurrent_requests": 128,
            "max_best_of": 2,
            "max_stop_sequences": 4,
            "max_input_tokens": self.max_input_tokens,
            "max_total_tokens": self.max_total_tokens,
            "validation_workers": 2,
            "max_client_batch_size": 4,
            "router": "text-generation-router",
            "version": TGI_VERSION,
            "sha": None,
            "docker_label": None,
        }

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
        body, parse_error = _read_json(handler)
        entry: dict[str, Any] | None = None
        with self._lock:
            self._routes[route] += 1
            if self.record_bodies:
                headers = {name.lower(): value for name, value in handler.headers.items()}
                entry = {"route": route, "method": handler.command, "headers": headers, "body": body}
                entry.update(status=None, fault=None)
                self.requests.append(entry)
        handler.record_entry = entry
        status: int | None = None
        try:
            method = handler.command
            if method == "POST" and route in _PAID_ROUTES:
                status = self._paid(handler, _PAID_ROUTES[route], body, parse_error, entry)
            elif method == "GET" and route in ("/info", "/"):
                status = _send(handler, 200, json.dumps(self.info()).encode())
            elif method == "GET" and route == "/health":
                status = _send(handler, 200, b"", content_type=None)
            elif route in _PAID_ROUTES or route in ("/info", "/health"):
                status = _send_error(handler, 405, f"Method {method} not allowed on {route}", "method_not_allowed")
            else:
                status = _send_error(handler, 404, f"Route {route} not found", "not_found")
        finally:
            if entry is not None:
                with self._lock:
                    entry["status"] = status
            self._write_stats()

    def _paid(
        self, handler: _Handler, kind: str, body: Any, parse_error: str | None, entry: dict[str, Any] | None
    ) -> int | None:
        behaviour = self._behaviour  # one snapshot: knobs changed mid-request apply to the next request
        fault = str(behaviour.fixed_status) if behaviour.fixed_status is not None else self._draw_fault(behaviour)
        if fault is not None:
            with self._lock:
                self.faulted[fault] += 1
                if entry is not None:
                    entry["fault"] = fault
        if fault == "drop":
            handler.close_connection = True  # closes the socket without a byte of response
            return None
        if fault == "garbage":
            return _send(handler, 200, _GARBAGE, content_type="text/html")
        if fault == "slow":
            self._stopping.wait(behaviour.slow_seconds)
        elif fault is not None:
            status = int(fault)
            headers = {"Retry-After": f"{behaviour.retry_after:g}"} if status == 429 else {}
            return _send_error(handler, status, *_status_error(status), headers=headers)
        try:
            if parse_error is not None:
                raise _Rejected(f"Failed to deserialize the JSON body into the target type: {parse_error}")
            request = _parse_request(kind, body, max_input=self.max_input_tokens, max_total=self.max_total_tokens)
        except _Rejected as err:
            return _send_error(handler, 422, str(err), "validation")
        full_text, reply_kind = self.compose(request, behaviour)
        text, finish = _truncate(full_text, request.max_tokens)
        self._stopping.wait(self._draw_latency(behaviour))
        completion_tokens = len(text.split())
        if kind == "chat":
            payload: Any = {
                "id": "",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.model_id,
                "system_fingerprint": f"{TGI_VERSION}-native",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "logprobs": None,
                        "finish_reason": "length" if finish == "length" else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": request.prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": request.prompt_tokens + completion_tokens,
                },
            }
        else:
            details = {"finish_reason": finish, "generated_tokens": completion_tokens, "seed": request.seed}
            payload = {"generated_text": text, "details": {**details, "prefill": [], "tokens": []}}
            payload = [payload] if kind == "compat" else payload
        with self._lock:
            self.served += 1
            self.kinds[reply_kind] += 1
        return _send(handler, 200, json.dumps(payload).encode())

    def compose(self, request: _GenerationRequest, behaviour: Behaviour) -> tuple[str, str]:
        """The reply text and its kind; refusal/empty/duplicate are decided by hash(prompt, seed).

        The override point: a subclass (``scripted_llm.ScriptedLLM``) or a test wraps this to answer
        differently (e.g. numbered lists, or a replica that dies mid-build).
        """
        prompt, seed = request.prompt, request.seed
        if fraction("refusal", prompt, seed) < behaviour.refusal_rate:
            return REFUSALS[digest("refusal-text", prompt, seed) % len(REFUSALS)], "refusal"
        if fraction("empty", prompt, seed) < behaviour.empty_rate:
            return EMPTY_REPLIES[digest("empty-text", prompt, seed) % len(EMPTY_REPLIES)], "empty"
        if fraction("duplicate", prompt, seed) < behaviour.duplicate_rate:
            with self._lock:
                earlier = list(self._history.get(request.first_line, ()))
            if earlier:
                rng = random.Random(digest("duplicate", prompt, seed))
                return light_edit(rng.choice(earlier), rng), "duplicate"
        text = reply_text(prompt, seed=seed, temperature=request.temperature)
        with self._lock:
            replies = self._history.pop(request.first_line, None) or deque(maxlen=_HISTORY_PER_LINE)
            replies.append(text)
            self._history[request.first_line] = replies
            while len(self._history) > _HISTORY_LINES:
                self._history.popitem(last=False)
        return text, "normal"

    def _draw_fault(self, behaviour: Behaviour) -> str | None:
        if not behaviour.faults:
            return None
        with self._lock:
            draw = self._fault_rng.random()
        edge = 0.0
        for kind in FAULT_KINDS:
            edge += behaviour.faults.get(kind, 0.0)
            if draw < edge:
                return kind
        return None

    def _draw_latency(self, behaviour: Behaviour) -> float:
        latency = behaviour.latency
        if not isinstance(latency, tuple):
            return latency or 0.0
        _, median, sigma = latency
        with self._lock:
            return self._latency_rng.lognormvariate(math.log(median), sigma)


# ---- Command line ----
def _parse_faults(text: str) -> dict[str, float]:
    faults: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, separator, rate = item.partition("=")
        try:
            if not separator:
                raise ValueError(item)
            faults[kind.strip()] = float(rate)
        except ValueError as err:
            raise ValueError(f"--faults: {item!r} is not KIND=RATE; write e.g. 429=0.1,drop=0.02") from err
    return faults


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Loopback TGI-compatible test server; prints 'URL http://...'.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model-id", default=DEFAULT_MODEL_ID)
    timing = parser.add_mutually_exclusive_group()
    timing.add_argument("--latency", type=float, metavar="SECONDS", help="fixed delay before each successful reply")
    timing.add_argument("--latency-lognormal", type=float, nargs=2, metavar=("MEDIAN", "SIGMA"))
    parser.add_argument("--faults", default="", metavar="KIND=RATE,...", help=f"kinds: {', '.join(FAULT_KINDS)}")
    parser.add_argument("--fault-seed", type=int, default=0)
    parser.add_argument("--slow-seconds", type=float, default=3.0)
    parser.add_argument("--retry-after", type=float, default=0.0)
    parser.add_argument("--refusal-rate", type=float, default=0.0)
    parser.add_argument("--empty-rate", type=float, default=0.0)
    parser.add_argument("--duplicate-rate", type=float, default=0.0)
    parser.add_argument("--fixed-status", type=int)
    parser.add_argument("--stats-file", type=Path, help="JSON counters, rewritten atomically after every request")
    args = parser.parse_args(argv)
    latency = args.latency if args.latency_lognormal is None else ("lognormal", *args.latency_lognormal)
    try:
        server = TGIServer(
            port=args.port,
            model_id=args.model_id,
            refusal_rate=args.refusal_rate,
            empty_rate=args.empty_rate,
            duplicate_rate=args.duplicate_rate,
            faults=_parse_faults(args.faults),
            fixed_status=args.fixed_status,
            latency=latency,
            slow_seconds=args.slow_seconds,
            retry_after=args.retry_after,
            fault_seed=args.fault_seed,
            record_bodies=False,  # a long-running process keeps counters only
            stats_file=args.stats_file,
        )
    except ValueError as err:
        parser.error(str(err))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        server.start()
    except OSError as err:
        parser.exit(1, f"tgi_server: cannot listen on 127.0.0.1:{args.port}: {err.strerror}\n")
    print(f"URL {server.url}", flush=True)
    while not stop.wait(0.5):  # a timed wait lets the signal handler run promptly
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
