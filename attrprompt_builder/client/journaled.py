"""Take a reply from the journal, else send the request and commit the reply before anyone uses it.

Generation and attribute discovery pay for replies through this one client, so both keep the promise
the journal exists for: a paid reply is durable before its caller sees it (a crash loses at most
the requests in flight), and a rerun finds it by key instead of paying again.

Keys are built here. A reply is recorded under the key that names the served model (asked once per
run, see ``served_model``), so replicas and moved servers share it; it is looked up under the key
0.1.x wrote (naming the endpoint URLs, ``ChatRequest.key``) first and then under the served key, so
a journal written by an earlier version resumes without a single request, and with no request at
all to the server when every reply is found under the old key.

Lookups and sends are separate calls so that a caller which schedules its own concurrency (the
generation engine reserves a dispatcher lane and checks its budgets before it creates a send task)
can put its own steps between them; ``ask`` does both for callers that do not. A lookup that finds
nothing claims the key in the journal (a lease), so another build sharing the journal waits for
this reply instead of paying for it; ``reuse`` waits the same way for a key another build claimed.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from typing import Protocol

from attrprompt_builder.client.backends import BackendSpec
from attrprompt_builder.client.dispatch import Dispatcher, Lane
from attrprompt_builder.client.journal import Journal
from attrprompt_builder.client.keys import backend_key, request_payload
from attrprompt_builder.client.served_model import ServedModelQuery
from attrprompt_builder.client.types import ChatReply, ChatRequest, SamplingParams

__all__ = ["JournaledClient", "Usage", "UsageCounts"]

# A lease outlives its owner by at most this long; the owner renews it every third of it while the
# request is in flight (retries and slow replies included).
LEASE_SECONDS = 60.0
POLL_SECONDS = 0.2


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
    """Requests keyed for the journal, answered from it when already paid for, else sent and recorded.

    ``served`` asks the servers which model they serve (without it, keys name the endpoint URLs as in
    0.1.x). ``stop`` (a ``threading.Event``) ends a wait for another build's reply early.
    """

    def __init__(
        self,
        spec: BackendSpec,
        journal: Journal,
        dispatcher: Dispatcher,
        *,
        usage: Usage | None = None,
        served: ServedModelQuery | None = None,
        lease_seconds: float = LEASE_SECONDS,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.journal = journal
        self.dispatcher = dispatcher
        self.usage: Usage = usage if usage is not None else UsageCounts()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.stopping = threading.Event()
        self._model = spec.model or ""
        self._backend = spec.identity
        self._served = served
        self._identity: str | None = None if served is not None else spec.identity
        self._identity_task: asyncio.Future[str] | None = None
        self._claims: dict[str, str] = {}  # ChatRequest.key -> the served key this client holds a lease on
        self._renewer: asyncio.Task[None] | None = None
        self._ended: list[str] = []  # keys with a recorded reply whose lease this client has not dropped yet

    def request(self, messages: tuple[dict[str, str], ...], *, params: SamplingParams, seed: int) -> ChatRequest:
        payload = request_payload(messages, model=self._model, params=params, seed=seed)
        return ChatRequest(messages=messages, params=params, seed=seed, key=backend_key(payload, self._backend), payload=payload)

    async def served_key(self, request: ChatRequest) -> str:
        """The key a reply to ``request`` is recorded under (asks the servers on first use)."""
        if self._identity is None:
            task = self._identity_task
            if task is None or task.get_loop() is not asyncio.get_running_loop():
                assert self._served is not None  # the identity is known from the start otherwise
                task = self._identity_task = asyncio.ensure_future(self._served.identity())
            self._identity = await asyncio.shield(task)
        if self._identity == self._backend:
            return request.key
        payload = request.payload or request_payload(
            request.messages, model=self._model, params=request.params, seed=request.seed
        )
        return backend_key(payload, self._identity)

    async def reuse(self, request: ChatRequest) -> ChatReply | None:
        """The reply already paid for (counted as reused), or None: then the key is claimed for this client.

        A key another build has claimed is waited for (its reply is reused) until that build records
        it, gives it up or its lease expires. After ``stopping`` is set it returns None unclaimed:
        the caller must check ``stopping`` before sending, and ``release`` is harmless then.
        """
        return (await self.reuse_many([request]))[0]

    async def reuse_many(self, requests: list[ChatRequest]) -> list[ChatReply | None]:
        """``reuse`` for requests drawn together, looked up and claimed in one journal transaction."""
        replies: list[ChatReply | None] = [None] * len(requests)
        missing = list(range(len(requests)))
        if self._identity is None:
            # Under the key 0.1.x wrote first: when every reply is there, the servers are never asked who they are.
            for i in missing:
                replies[i] = self.journal.get(requests[i].key)
            missing = [i for i in missing if replies[i] is None]
        keys = [await self._lookup_keys(requests[i]) for i in missing]
        outcomes: list[ChatReply | bool] = []
        if keys:
            ended, self._ended = self._ended, []
            outcomes = self.journal.lookup_or_claim_many(keys, owner=self.owner, seconds=self.lease_seconds, ended=ended)
        for i, lookup, outcome in zip(missing, keys, outcomes):
            while outcome is False and not self.stopping.is_set():  # another build is paying for it: wait for its reply
                await asyncio.sleep(self.poll_seconds)
                outcome = self.journal.lookup_or_claim(lookup, owner=self.owner, seconds=self.lease_seconds)
            if outcome is True:
                self._hold(requests[i].key, lookup[-1])
            elif outcome is not False:
                replies[i] = outcome
        self.usage.reused += sum(reply is not None for reply in replies)
        return replies

    async def _lookup_keys(self, request: ChatRequest) -> tuple[str, ...]:
        """The keys a reply may be under, the served one (which a claim takes) last."""
        key = await self.served_key(request)
        return (request.key,) if key == request.key else (request.key, key)

    def release(self, request: ChatRequest) -> None:
        """Give up the claim ``reuse`` took, for a request that will not be sent (a budget stop)."""
        key = self._claims.pop(request.key, None)
        if key is not None:
            self.journal.release(key, owner=self.owner)

    def _hold(self, request_key: str, key: str) -> None:
        self._claims[request_key] = key
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_leases())

    async def _renew_leases(self) -> None:
        while self._claims:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                self.journal.renew(self.owner, seconds=self.lease_seconds)
            except sqlite3.OperationalError:  # busy for a minute: try again; at worst another build pays too
                continue

    async def acquire(self) -> Lane:
        """Reserve a dispatcher slot for the next ``send`` (waits while every backend is full)."""
        return await self.dispatcher.acquire()

    async def send(self, request: ChatRequest, *, label: str, index: int, lane: Lane | None = None) -> ChatReply | None:
        """Send without looking in the journal; the reply is committed and counted before it is returned.

        None when every attempt failed; raises what ``Dispatcher.send`` raises. ``label`` and ``index``
        say in the journal which sample the reply belongs to. The claim ``reuse`` took ends either way.
        """
        try:
            key = await self.claimed_key(request)
            reply = await self.dispatcher.send(request, lane)
        except BaseException:
            self.release(request)
            raise
        if reply is None:
            self.release(request)
            return None
        self.journal.record(key, reply, label=label, index=index, end_lease=False)
        self._ended.append(key)  # dropped with the next claims, in their transaction
        self.paid(request, reply)
        return reply

    async def claimed_key(self, request: ChatRequest) -> str:
        """The key a reply to ``request`` goes under; the one ``reuse`` claimed is known without hashing again."""
        return self._claims.get(request.key) or await self.served_key(request)

    def paid(self, request: ChatRequest, reply: ChatReply) -> None:
        """Count a reply paid for on this client's behalf and already recorded in the journal (its claim ends)."""
        self._claims.pop(request.key, None)
        usage = self.usage
        usage.sent += 1
        usage.prompt_tokens += reply.prompt_tokens
        usage.completion_tokens += reply.completion_tokens

    async def ask(self, request: ChatRequest, *, label: str, index: int) -> ChatReply | None:
        """``reuse``, else ``send``."""
        reply = await self.reuse(request)
        if reply is None and not self.stopping.is_set():
            reply = await self.send(request, label=label, index=index)
        return reply

    def stop(self) -> None:
        """End waits for other builds' replies (thread-safe: the engine's consumer thread calls it)."""
        self.stopping.set()

    def close(self) -> None:
        """Give up every lease still held (the run is ending) and stop renewing them."""
        if self._renewer is not None:
            self._renewer.cancel()
        self._claims.clear()
        self._ended.clear()
        self.journal.release_all(self.owner)
