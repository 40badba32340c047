"""Take a reply from the journal, else send the request and commit the reply before anyone uses it.

Generation and attribute discovery pay for replies through this one client, so both keep the promise
the journal exists for: a paid reply is durable before its caller sees it (a crash loses at most
the requests in flight), and a rerun finds it by key instead of paying again. Keys are built here,
from the ``BackendSpec`` and the request, and must stay byte-identical across releases: a journal
written by an earlier version has to resume without a single request.

Lookups and sends are separate calls so that a caller which schedules its own concurrency (the
generation engine reserves a dispatcher lane and checks its budgets before it creates a send task)
can put its own steps between them; ``ask`` does both for callers that do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from attrprompt_builder.client.backends import BackendSpec
from attrprompt_builder.client.dispatch import Dispatcher, Lane
from attrprompt_builder.client.journal import Journal, request_key
from attrprompt_builder.client.types import ChatReply, ChatRequest, SamplingParams

__all__ = ["JournaledClient", "Usage", "UsageCounts"]


class Usage(Protocol):
    """Where the client counts what it reused and paid for (the engine passes its ``BuildStats``)."""

    sent: int
    reused: int
    prompt_tokens: int
    completion_tokens: int


@dataclass
class UsageCounts:
    sent: int = 0
    reused: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class JournaledClient:
    """Requests keyed for the journal, answered from it when already paid for, else sent and recorded."""

    def __init__(self, spec: BackendSpec, journal: Journal, dispatcher: Dispatcher, *, usage: Usage | None = None) -> None:
        self.journal = journal
        self.dispatcher = dispatcher
        self.usage: Usage = usage if usage is not None else UsageCounts()
        self._model = spec.model or ""
        self._backend = spec.identity

    def request(self, messages: tuple[dict[str, str], ...], *, params: SamplingParams, seed: int) -> ChatRequest:
        key = request_key(messages, model=self._model, backend=self._backend, params=params, seed=seed)
        return ChatRequest(messages=messages, params=params, seed=seed, key=key)

    def reuse(self, request: ChatRequest) -> ChatReply | None:
        """The reply already paid for (counted as reused), or None when the journal has none."""
        reply = self.journal.get(request.key)
        if reply is not None:
            self.usage.reused += 1
        return reply

    async def acquire(self) -> Lane:
        """Reserve a dispatcher slot for the next ``send`` (waits while every backend is full)."""
        return await self.dispatcher.acquire()

    async def send(self, request: ChatRequest, *, label: str, index: int, lane: Lane | None = None) -> ChatReply | None:
        """Send without looking in the journal; the reply is committed and counted before it is returned.

        None when every attempt failed; raises what ``Dispatcher.send`` raises. ``label`` and ``index``
        say in the journal which sample the reply belongs to.
        """
        reply = await self.dispatcher.send(request, lane)
        if reply is not None:
            self.journal.record(request, reply, label=label, index=index)
            usage = self.usage
            usage.sent += 1
            usage.prompt_tokens += reply.prompt_tokens
            usage.completion_tokens += reply.completion_tokens
        return reply

    async def ask(self, request: ChatRequest, *, label: str, index: int) -> ChatReply | None:
        """``reuse``, else ``send``."""
        reply = self.reuse(request)
        if reply is None:
            reply = await self.send(request, label=label, index=index)
        return reply
