"""Which LLM answers a build, and the backends that reach it.

``BackendSpec`` is a picklable value (datasets ships it to ``num_proc`` workers); ``make_backends``
turns it into live ``Backend`` objects in the worker. ``BackendSpec.identity`` names "what answers"
without asking it: the key part of every journal key 0.1.x wrote, and of today's keys for Inference
Providers, local models and servers that do not say which model they serve (``served_model``).
Backends themselves carry only a display label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from attrprompt_builder.client.types import Backend
from attrprompt_builder.errors import ConfigError
from attrprompt_builder.redaction import endpoint_identity, redact

__all__ = ["BACKENDS", "BackendSpec", "DEFAULT_MODEL", "endpoint_urls", "make_backends"]

BACKENDS = ("auto", "endpoint", "providers", "transformers")
#: What answers when a build names no endpoint, provider or model: a small instruct model (360M parameters,
#: Apache-2.0) that the transformers backend runs on a CPU. Downloaded once from the Hub (about 0.7 GB);
#: ``model=`` (``--model``) picks another, a local folder included.
DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-360M-Instruct"


@dataclass(frozen=True)
class BackendSpec:
    """Which LLM answers: ``kind`` is "endpoint", "providers" or "transformers"."""

    kind: str
    endpoints: tuple[str, ...] = ()
    model: str | None = None
    provider: str | None = None
    request_timeout: float = 300.0
    batch_size: int = 8

    @classmethod
    def resolve(
        cls,
        *,
        backend: str = "auto",
        endpoint: str | Sequence[str] | None = None,
        model: str | None = None,
        provider: str | None = None,
        request_timeout: float = 300.0,
        batch_size: int = 8,
    ) -> BackendSpec:
        """The backend a user's choices name ("auto" picks from what was given), or a one-line ``ConfigError``.

        ``endpoint`` is one URL or several; messages quote a URL without its credentials.
        """
        if backend not in BACKENDS:
            raise ConfigError(f"backend: got {backend!r}; use one of {', '.join(BACKENDS)}")
        endpoints = endpoint_urls(endpoint)
        for url in endpoints:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
                raise ConfigError(
                    f"endpoint: got {url!r}; use a base URL such as http://localhost:8080 (TGI) or http://host:8000/v1 (vLLM)"
                )
            _check_port(url)
        hosts = ", ".join(endpoint_identity(url) for url in endpoints)  # what a message may quote: no credentials
        if provider is not None and endpoints:
            raise ConfigError(
                f"provider + endpoint: got provider={provider!r} and endpoint {hosts}; a provider serves the model on "
                "HF Inference Providers, an endpoint is your own server: pass one of them"
            )
        kind = backend
        if kind == "auto":
            kind = "endpoint" if endpoints else ("providers" if provider else "transformers")
        if kind == "endpoint" and not endpoints:
            raise ConfigError(f"endpoint: got {endpoint!r}; pass endpoint='http://host:port' for backend='endpoint'")
        if kind == "transformers" and model is None:
            model = DEFAULT_MODEL
        if kind in ("providers", "transformers") and not model:
            hint = "a Hub model id" if kind == "providers" else "a chat model's Hub id or local folder"
            raise ConfigError(f"model: got {model!r}; pass model= ({hint}) for backend={kind!r}, or an endpoint= URL")
        if kind != "endpoint" and endpoints:
            raise ConfigError(f"endpoint: got {hosts}; backend={kind!r} does not use an endpoint; drop one of them")
        if kind == "transformers" and provider is not None:
            raise ConfigError(f"provider: got {provider!r}; backend='transformers' runs the model here; drop one of them")
        return cls(
            kind=kind,
            endpoints=endpoints,
            model=model,
            provider=provider,
            request_timeout=request_timeout,
            batch_size=batch_size,
        )

    @property
    def identity(self) -> str:
        """Where replies come from, without credentials: the endpoint URLs (sorted), provider or local model.

        Frozen: journals written under it must keep being found (``journaled`` looks them up first).
        """
        if self.kind == "endpoint":
            return "|".join(sorted(endpoint_identity(url) for url in self.endpoints))
        if self.kind == "providers":
            return f"hf-inference-providers/{self.provider or 'auto'}"
        return f"transformers:{self.model}"

    @property
    def hosts(self) -> list[str]:
        return [endpoint_identity(url) for url in self.endpoints]


def _check_port(url: str) -> None:
    try:
        port = urlsplit(url).port  # None when absent; ValueError when not a number in 0-65535
    except ValueError as err:
        raise ConfigError(f"endpoint: got {redact(url)!r}; its port is not a number from 1 to 65535") from err
    if port == 0:
        raise ConfigError(f"endpoint: got {redact(url)!r}; port 0 cannot be connected to, use the server's port")


def endpoint_urls(endpoint: str | Sequence[str] | None) -> tuple[str, ...]:
    """An ``endpoint`` value (one URL, several, or none) as a tuple of URLs."""
    if endpoint is None:
        return ()
    if isinstance(endpoint, (list, tuple)):
        return tuple(endpoint)
    # A str; or a wrong type, kept as given so that resolve's URL check quotes it.
    return (endpoint,)  # type: ignore[return-value]


def make_backends(spec: BackendSpec, *, token: str | None) -> list[Backend]:
    if spec.kind == "transformers":
        from attrprompt_builder.client.transformers_backend import (
            TransformersBackend,  # torch is an optional dependency
        )

        return [TransformersBackend(spec.model or "", batch_size=spec.batch_size)]
    from attrprompt_builder.client.endpoint import EndpointBackend

    if spec.kind == "providers":
        return [EndpointBackend(None, model=spec.model, token=token, provider=spec.provider, timeout=spec.request_timeout)]
    return [EndpointBackend(url, model=spec.model, token=token, timeout=spec.request_timeout) for url in spec.endpoints]
