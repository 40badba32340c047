"""Strip secrets from anything we write down: URL credentials, token-like strings, local paths.

Generation records carry endpoint URLs and model paths a user typed; a card, log line or error
message shows them only after passing through here. Token patterns cover HF (``hf_``), OpenAI-style
(``sk-``/``sk_``), generic ``api_``/``key_`` prefixes and ``Bearer`` headers.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["display_name", "endpoint_identity", "host_only", "redact"]

_TOKEN_RE = re.compile(r"\b(?:hf|sk|api|key)_[A-Za-z0-9_-]{4,}|\bsk-[A-Za-z0-9_-]{4,}|\bBearer\s+\S+", re.IGNORECASE)
_URL_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@]*@")


def redact(text: str) -> str:
    """``text`` without URL credentials (``user:pass@``) or token-like strings."""
    return _TOKEN_RE.sub("[redacted]", _URL_USERINFO_RE.sub(r"\1", text))


def endpoint_identity(url: str) -> str:
    """A URL reduced to what identifies the server: no user, password, query or fragment (journal keys)."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme.lower(), host.lower(), parts.path.rstrip("/"), "", ""))


def host_only(value: str) -> str:
    """The host (and port) of an endpoint URL or host string: never its credentials, path or query."""
    parts = urlsplit(value if "://" in value else f"//{value}")
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or ""
    return redact(f"{host}:{port}" if port else host)


def display_name(value: Any) -> str:
    """A model or embedder name for the card: a local folder shows only its last two path parts."""
    text = redact(str(value))
    if text.startswith(("/", "~", "\\")) or re.match(r"^[A-Za-z]:[\\/]", text):
        parts = [part for part in re.split(r"[\\/]+", text) if part]
        return "local folder …/" + "/".join(parts[-2:])
    return text
