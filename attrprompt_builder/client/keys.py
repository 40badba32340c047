"""What a reply is filed under in the journal: a fingerprint of everything that decides it, never a credential.

The messages, the model named in the payload, the sampling parameters and the seed, plus the backend's
identity: the served model (or, as 0.1.x wrote them, the endpoint URLs). Every journal ever written
uses these bytes, so they never change (``tests/client/test_journal.py`` pins a key).
"""

from __future__ import annotations

import hashlib
import json

from attrprompt_builder.client.types import SamplingParams

__all__ = ["backend_key", "request_key", "request_payload"]


def request_key(messages: tuple[dict[str, str], ...], *, model: str, backend: str, params: SamplingParams, seed: int) -> str:
    """Fingerprint of everything that determines a reply (never a credential)."""
    return backend_key(request_payload(messages, model=model, params=params, seed=seed), backend)


def request_payload(messages: tuple[dict[str, str], ...], *, model: str, params: SamplingParams, seed: int) -> str:
    """Everything ``request_key`` hashes except the backend, serialised once: a build looks a request up
    under two backend identities (the endpoint URLs of 0.1.x, then the served model)."""
    return json.dumps(
        {"messages": messages, "model": model, "params": params.as_dict(), "seed": seed}, sort_keys=True, ensure_ascii=False
    )


def backend_key(payload: str, backend: str) -> str:
    """``request_key`` from a ``request_payload``: sorted keys put "backend" first, so splicing it in gives
    the same bytes as serialising all five keys together (the keys of every existing journal)."""
    spliced = '{"backend": ' + json.dumps(backend, ensure_ascii=False) + ", " + payload[1:]
    return hashlib.sha256(spliced.encode("utf-8")).hexdigest()
