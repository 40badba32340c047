"""What the generation engine asks of an LLM backend, and what it gets back.

Two backends implement ``Backend``: ``endpoint.EndpointBackend`` (an HTTP endpoint through
``huggingface_hub.AsyncInferenceClient``) and ``transformers_backend.TransformersBackend`` (a model
run in this process). Retries and concurrency belong to ``dispatch``, the journal to ``journaled``
and the quotas to the engine; a backend only turns one ``ChatRequest`` into one ``ChatReply`` or
raises an ``errors.EndpointError`` subclass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["Backend", "ChatReply", "ChatRequest", "SamplingParams"]


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 512

    def as_dict(self) -> dict[str, float | int]:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_new_tokens": self.max_new_tokens}


@dataclass(frozen=True)
class ChatRequest:
    """One generation request; ``key`` is the journal fingerprint (see ``keys.request_key``).

    ``response_format`` (OpenAI's chat-completion field: a JSON schema the reply must match) is not part
    of the key: a judge asks the same question with or without it, and parses either reply.
    """

    messages: tuple[dict[str, str], ...]
    params: SamplingParams
    seed: int
    key: str = ""
    response_format: dict[str, Any] | None = None
    # The serialised request without the backend (keys.request_payload), so keying it again is one hash.
    payload: str = field(default="", repr=False, compare=False)

    @property
    def prompt(self) -> str:
        return self.messages[-1]["content"]


@dataclass(frozen=True)
class ChatReply:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None


@runtime_checkable
class Backend(Protocol):
    """An LLM the engine can send requests to concurrently.

    What goes into journal keys is ``backends.BackendSpec.identity``, decided before any backend exists.
    """

    async def complete(self, request: ChatRequest) -> ChatReply:
        """Answer one request or raise an ``EndpointError`` subclass."""
        ...

    async def aclose(self) -> None:
        """Release connections, threads or models."""
        ...
