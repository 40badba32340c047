"""The wire format of the loopback TGI server (``tgi_server``): TGI 3.x request bodies in, replies out.

Parses and validates chat/generate bodies the way TGI's router does (422 with its wording), shapes the
JSON replies and error bodies, and writes them to a ``BaseHTTPRequestHandler``. Stdlib only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from types import MappingProxyType
from typing import Any

__all__ = [
    "DEFAULT_MODEL_ID",
    "GARBAGE_HTML",
    "TGI_VERSION",
    "GenerationRequest",
    "Rejected",
    "info_payload",
    "parse_request",
    "read_json",
    "reply_payload",
    "send",
    "send_error",
    "status_error",
    "truncate",
]

TGI_VERSION = "3.3.6"
DEFAULT_MODEL_ID = "tgi-test/tiny-chat"
# HTML a proxy in front of TGI returns when it has no backend: HTTP 200 would still not make it JSON.
GARBAGE_HTML = (
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


# ---- Requests ----
class Rejected(Exception):
    """A request TGI answers with 422 (error_type "validation")."""


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str  # every message content, newline-joined: what the reply is a function of
    first_line: str  # first line of the last message: groups near-duplicates by class
    prompt_tokens: int
    max_tokens: int | None
    seed: int | None
    temperature: float | None
    schema: dict[str, Any] | None = None  # the JSON schema a chat request's response_format asks the reply to match


def _response_schema(response_format: Any) -> dict[str, Any] | None:
    """The JSON schema of a chat ``response_format``, in TGI's grammar form (``{"type": "json"|"json_object",
    "value": schema}``) or OpenAI's (``{"type": "json_schema", "json_schema": {"schema": ...}}``); None for text."""
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind in ("json", "json_object"):
        schema = response_format.get("value")
    elif kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
    else:
        raise Rejected(
            f"Failed to deserialize the JSON body into the target type: response_format: unknown variant `{kind}`, "
            "expected one of `json`, `json_object`, `json_schema`, `regex`, `text`"
        )
    if not isinstance(schema, dict) or "properties" not in schema:
        raise Rejected("Input validation error: grammar is not valid: Grammar must have a 'properties' field")
    return schema


def _content_text(content: object) -> str:
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def _option(options: Mapping[str, Any], name: str, types: type | tuple[type, ...]) -> Any:
    value = options.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
        raise Rejected(f"Failed to deserialize the JSON body into the target type: {name}: invalid type {value!r}")
    return value


def parse_request(kind: str, body: Any, *, max_input: int, max_total: int) -> GenerationRequest:
    """``body`` of a ``kind`` ("chat", "generate" or "compat") request, validated; raises ``Rejected``."""
    if not isinstance(body, dict):
        raise Rejected("Failed to deserialize the JSON body into the target type: expected a JSON object")
    if body.get("stream"):
        raise Rejected("Input validation error: this test server does not stream; send `stream: false`")
    if kind == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise Rejected("Failed to deserialize the JSON body into the target type: missing field `messages`")
        contents, options, limit_name = [_content_text(m.get("content")) for m in messages], body, "max_tokens"
    else:
        inputs, options = body.get("inputs"), body.get("parameters") or {}
        if not isinstance(inputs, str) or not isinstance(options, dict):
            raise Rejected("Failed to deserialize the JSON body into the target type: missing field `inputs`")
        if not inputs.strip():
            raise Rejected("Input validation error: `inputs` cannot be empty")
        contents, limit_name = [inputs], "max_new_tokens"
    max_tokens, seed = _option(options, limit_name, int), _option(options, "seed", int)
    temperature = _option(options, "temperature", (int, float))
    if max_tokens is not None and max_tokens < 1:
        raise Rejected("Input validation error: `max_new_tokens` must be strictly positive")
    if temperature is not None and temperature < 0:
        raise Rejected("Input validation error: `temperature` must be positive")
    prompt_tokens = sum(len(content.split()) for content in contents)
    if prompt_tokens > max_input:
        raise Rejected(f"Input validation error: `inputs` must have less than {max_input} tokens. Given: {prompt_tokens}")
    if max_tokens is not None and prompt_tokens + max_tokens > max_total:
        raise Rejected(
            f"Input validation error: `inputs` tokens + `max_new_tokens` must be <= {max_total}. "
            f"Given: {prompt_tokens} `inputs` tokens and {max_tokens} `max_new_tokens`"
        )
    first_line = contents[-1].strip().split("\n", 1)[0].strip()
    schema = _response_schema(body.get("response_format")) if kind == "chat" else None
    return GenerationRequest("\n".join(contents), first_line, prompt_tokens, max_tokens, seed, temperature, schema)


def truncate(text: str, max_tokens: int | None) -> tuple[str, str]:
    """Apply ``max_tokens`` (one token per word); returns the text and TGI's finish reason."""
    words = text.split()
    if max_tokens is None or len(words) <= max_tokens:
        return text, "eos_token"
    return " ".join(words[:max_tokens]), "length"


def read_json(handler: BaseHTTPRequestHandler) -> tuple[Any, str | None]:
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


# ---- Replies ----
def reply_payload(
    kind: str, request: GenerationRequest, text: str, *, finish: str, model_id: str
) -> dict[str, Any] | list[dict[str, Any]]:
    """The JSON body of a successful ``kind`` reply carrying ``text`` (already truncated)."""
    completion_tokens = len(text.split())
    if kind == "chat":
        return {
            "id": "",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model_id,
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
    details = {"finish_reason": finish, "generated_tokens": completion_tokens, "seed": request.seed}
    payload = {"generated_text": text, "details": {**details, "prefill": [], "tokens": []}}
    return [payload] if kind == "compat" else payload


def info_payload(*, model_id: str, max_input_tokens: int, max_total_tokens: int) -> dict[str, Any]:
    """The body of ``GET /info``, as TGI 3.x reports it."""
    return {
        "model_id": model_id,
        "model_sha": None,
        "model_dtype": "torch.bfloat16",
        "model_device_type": "cpu",
        "model_pipeline_tag": "text-generation",
        "max_concurrent_requests": 128,
        "max_best_of": 2,
        "max_stop_sequences": 4,
        "max_input_tokens": max_input_tokens,
        "max_total_tokens": max_total_tokens,
        "validation_workers": 2,
        "max_client_batch_size": 4,
        "router": "text-generation-router",
        "version": TGI_VERSION,
        "sha": None,
        "docker_label": None,
    }


def status_error(status: int) -> tuple[str, str]:
    """(message, error_type) for an error ``status``, in TGI's words where TGI has any."""
    if status in _ERRORS:
        return _ERRORS[status]
    try:
        return HTTPStatus(status).phrase, "error"
    except ValueError:
        return f"HTTP {status}", "error"


def send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    *,
    content_type: str | None = "application/json",
    headers: Mapping[str, str] = MappingProxyType({}),
) -> int:
    # Record before the bytes leave: a client may inspect server.requests as soon as it has its answer,
    # and may send its next request, which must not find this one still counted in flight.
    entry = getattr(handler, "record_entry", None)
    if entry is not None:
        entry["status"] = status
    answered = getattr(handler, "on_answer", None)
    if answered is not None:
        answered()
    handler.send_response(status)
    if content_type:
        handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)
    return status


def send_error(handler: BaseHTTPRequestHandler, status: int, message: str, error_type: str, **options: Any) -> int:
    return send(handler, status, json.dumps({"error": message, "error_type": error_type}).encode(), **options)
