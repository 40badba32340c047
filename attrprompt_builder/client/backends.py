"""Which LLM answers a build, and the backends that reach it.

``BackendSpec`` is a picklable value (datasets ships it to ``num_proc`` workers); ``make_backends``
turns it into live ``Backend`` objects in the worker. ``BackendSpec.identity`` is the one identity of
"what answers" that goes into every journal key: backends themselves carry only a display label.
"""

from __future__ import annotations

from dataclasses import dataclass

from attrprompt_builder.client.types import Backend
from attrprompt_builder.redaction import endpoint_identity

__all__ = ["BackendSpec", "make_backends"]


@dataclass(frozen=True)
class BackendSpec:
    """Which LLM answers: ``kind`` is "endpoint", "providers" or "transformers"."""

    kind: str
    endpoints: tuple[str, ...] = ()
    model: str | None = None
    provider: str | None = None
    request_timeout: float = 300.0
    batch_size: int = 8

    @property
    def identity(self) -> str:
        """Part of every journal key: where replies come from, without credentials."""
        if self.kind == "endpoint":
            return "|".join(sorted(endpoint_identity(url) for url in self.endpoints))
        if self.kind == "providers":
            return f"hf-inference-providers/{self.provider or 'auto'}"
        return f"transformers:{self.model}"

    @property
    def hosts(self) -> list[str]:
        return [endpoint_identity(url) for url in self.endpoints]


def make_backends(spec: BackendSpec, *, token: str | None) -> list[Backend]:
    if spec.kind == "transformers":
        from attrprompt_builder.client.transformers_backend import (
            TransformersBackend,  # torch is an optional dependency
        )

        return [TransformersBackend(spec.model or "", batch_size=spec.batch_size)]
    from attrprompt_builder.client.endpoint import EndpointBackend

    if spec.kind == "providers":
        return [EndpointBackend(None, model=spec.model, token=token, provider=spec.provider, timeout=spec.request_timeout)]
    return [
        EndpointBackend(url, model=spec.model, token=token, timeout=spec.request_timeout) for url in spec.endpoints
    ]
