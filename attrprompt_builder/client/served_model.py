"""Which model an endpoint serves, asked once per run, so journal keys name the model and not the URL.

A reply is decided by the model that writes it, not by the address it came from: keyed on the
model, replicas share their replies and a server that moves to another host or port re-pays
nothing. TGI says which model it serves at ``GET /info`` (``model_id``); OpenAI-compatible servers
(vLLM, TGI too) at ``GET /v1/models``. A server that says neither, or does not answer within a few
seconds, cannot be told apart from another by its model: the key keeps naming its URLs
(``BackendSpec.identity``, the key part of 0.1.x). In a pool, replicas that cannot say are taken to
serve what the others said; replicas that name different models give a key naming all of them.
Inference Providers and local models keep ``BackendSpec.identity`` without asking anything.

The query sends the user's ``token`` only when one was given, like every request to an own endpoint.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2

from attrprompt_builder.client.backends import BackendSpec

__all__ = ["ServedModelQuery", "served_model"]

# Asked before the first request is sent: a replica that accepts connections and never answers
# must not hold the build up for the length of a generation timeout.
QUERY_TIMEOUT = 5.0
_SERVED = "served:"


def _root(url: str) -> str:
    """The server's root: huggingface_hub appends /v1/chat/completions to a base URL without /v1."""
    base = url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def _from_info(body: Any) -> str | None:
    model_id = body.get("model_id") if isinstance(body, dict) else None
    return model_id if isinstance(model_id, str) and model_id else None


def _from_models(body: Any, model: str | None) -> str | None:
    data = body.get("data") if isinstance(body, dict) else None
    ids = [entry.get("id") for entry in data or () if isinstance(entry, dict) and isinstance(entry.get("id"), str)]
    if model is not None:  # the request names its model: the server answers with that one, if it has it
        return model if model in ids else None
    return ids[0] if len(ids) == 1 else None


async def served_model(
    url: str, *, model: str | None = None, token: str | None = None, timeout: float = QUERY_TIMEOUT
) -> str | None:
    """The model ``url`` serves (for requests naming ``model``), or None when it does not say in ``timeout`` s."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    root = _root(url)
    try:
        async with httpx2.AsyncClient(headers=headers, timeout=timeout, follow_redirects=True) as client:

            async def ask() -> str | None:
                info = await client.get(f"{root}/info")
                if info.status_code == 200 and (said := _from_info(info.json())):
                    return said
                models = await client.get(f"{root}/v1/models")
                return _from_models(models.json(), model) if models.status_code == 200 else None

            return await asyncio.wait_for(ask(), timeout)
    except (httpx2.HTTPError, ValueError, asyncio.TimeoutError):
        return None


class ServedModelQuery:
    """The backend part of new journal keys for ``spec``: the served model when the servers say it."""

    def __init__(self, spec: BackendSpec, *, token: str | None = None, timeout: float = QUERY_TIMEOUT) -> None:
        self.spec = spec
        self._token = token
        self._timeout = min(timeout, spec.request_timeout) if spec.request_timeout > 0 else timeout

    async def identity(self) -> str:
        spec = self.spec
        if spec.kind != "endpoint":
            return spec.identity
        said = await asyncio.gather(
            *(served_model(url, model=spec.model, token=self._token, timeout=self._timeout) for url in spec.endpoints)
        )
        models = sorted({model for model in said if model})
        return _SERVED + "|".join(models) if models else spec.identity
