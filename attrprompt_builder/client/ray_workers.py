"""The workers of a cluster build: Ray actors that hold the backends and pay for blocks of requests.

Each worker is one Ray actor with its own backends (HTTP clients to the endpoints, or a local model on
its GPU) and its own ``Dispatcher``, so retries, adaptive concurrency, the circuit breaker and the
first-reply probe work exactly as in a one-machine build. The driver hands it blocks of requests it
has already keyed and claimed in its journal; the worker sends them, writes every reply to a reply
segment (``segments``) and flushes before it returns the block, so nothing reaches the driver that is
not already durable.

Why each worker gets a fixed share of ``max_concurrency`` instead of asking a coordinating actor for
every request: the shares add up to the cap whatever happens, a worker that dies cannot leak permits
it held, and no request waits on a round trip to one central actor. The driver keeps the shares busy
by giving the next block to the worker with the fewest blocks in hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from attrprompt_builder.client.backends import BackendSpec, make_backends
from attrprompt_builder.client.dispatch import Dispatcher
from attrprompt_builder.client.resilience import RetryPolicy
from attrprompt_builder.client.segments import FLUSH_SECONDS, PaidReply, SegmentWriter, require_writable
from attrprompt_builder.client.types import ChatReply, ChatRequest
from attrprompt_builder.errors import AttrPromptError

__all__ = ["Block", "BlockResult", "ReplyWorker", "WorkerSpec", "concurrency_shares"]

GROUP_COMMIT_SECONDS = 0.02


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker of a build needs (picklable; the token travels apart, straight into the backends)."""

    backend: BackendSpec
    max_attempts: int
    max_errors: int
    seed: int
    first_timeout: float | None
    replies: str  # the folder (any fsspec URL every node can write) the reply segments go to
    session: str  # names this driver run's segments
    # Work on a block's replies that the driver would otherwise do alone (the build embeds them for its
    # near-duplicate check): a picklable callable whose result travels back with the block.
    after_block: Callable[[list[ChatReply | None]], Any] | None = None


@dataclass(frozen=True)
class Block:
    """Requests for one worker: (journal key, class, sample index, request) each."""

    requests: list[tuple[str, str, int, ChatRequest]]


@dataclass
class BlockResult:
    """Replies in the block's order (None: every attempt failed) and the worker's counts since its last block.

    ``error`` is the (class name, message) of an error that ends the build, raised again by the driver.
    """

    replies: list[ChatReply | None]
    retries: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)
    last_failure: str | None = None
    error: tuple[str, str] | None = None
    extra: Any = None  # what ``WorkerSpec.after_block`` made of the replies


def concurrency_shares(max_concurrency: int, workers: int) -> list[int]:
    """Each worker's cap on requests in flight: together exactly ``max_concurrency`` (each at least 1)."""
    base, extra = divmod(max_concurrency, workers)
    return [base + (1 if i < extra else 0) for i in range(workers)]


class ReplyWorker:
    """One worker (the class Ray turns into an actor: ``ray.remote(ReplyWorker)``)."""

    def __init__(self, spec: WorkerSpec, *, max_concurrency: int, position: int, token: str | None) -> None:
        self.spec = spec
        self.backends = make_backends(spec.backend, token=token)
        self.dispatcher = Dispatcher(
            self.backends,
            max_concurrency=max_concurrency,
            policy=RetryPolicy(max_attempts=spec.max_attempts),
            max_errors=spec.max_errors,
            seed=spec.seed + position,
            first_timeout=spec.first_timeout,
        )
        # A restarted actor is a new instance: its segments never overwrite those of the one that died.
        self.writer = SegmentWriter(spec.replies, f"{spec.session}-w{position}-{uuid.uuid4().hex[:8]}")
        self._reported: tuple[Counter, Counter] = (Counter(), Counter())
        self._flusher: asyncio.Task[None] | None = None
        self._commit: asyncio.Future[None] | None = None

    async def ready(self) -> None:
        """Load a local model and prove the replies folder is writable (again after a restart)."""
        for backend in self.backends:
            load = getattr(backend, "load", None)
            if load is not None:
                await load()
        require_writable(self.spec.replies, where=f"a Ray worker on {socket.gethostname()}")

    async def run_block(self, block: Block) -> BlockResult:
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_on_time())
        error: tuple[str, str] | None = None
        results = await asyncio.gather(*(self._pay(*item) for item in block.requests), return_exceptions=True)
        replies: list[ChatReply | None] = []
        for result in results:
            if isinstance(result, AttrPromptError):
                error = error or (type(result).__name__, str(result))
                replies.append(None)
            elif isinstance(result, BaseException):
                raise result
            else:
                replies.append(result)
        await self._durable()  # before the driver sees a single one of them
        report = self._report(replies, error)
        if self.spec.after_block is not None and error is None:
            # Off the event loop: the other blocks of this worker keep sending meanwhile.
            report.extra = await asyncio.to_thread(self.spec.after_block, replies)
        return report

    async def _pay(self, key: str, label: str, index: int, request: ChatRequest) -> ChatReply | None:
        reply = await self.dispatcher.send(request)
        if reply is not None:
            self.writer.add(PaidReply(key, label, index, reply))
        return reply

    def _report(self, replies: list[ChatReply | None], error: tuple[str, str] | None) -> BlockResult:
        retries, failures = Counter(self.dispatcher.retries), Counter(self.dispatcher.failures)
        result = BlockResult(replies, retries - self._reported[0], failures - self._reported[1], error=error)
        if self.dispatcher.last_failure is not None:
            result.last_failure = self.dispatcher.last_failure[1]
        self._reported = (retries, failures)
        return result

    async def _durable(self) -> None:
        """Flush the replies so far, sharing one segment with the blocks that end within ``GROUP_COMMIT_SECONDS``
        (many small blocks would otherwise make a file each)."""
        commit = self._commit
        if commit is None:
            commit = self._commit = asyncio.ensure_future(self._commit_soon())
        await asyncio.shield(commit)

    async def _commit_soon(self) -> None:
        await asyncio.sleep(GROUP_COMMIT_SECONDS)
        self._commit = None  # a block ending from now on waits for the next write
        self.writer.flush()

    async def _flush_on_time(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS / 4)
            with contextlib.suppress(OSError):  # the next flush (at the latest the block's end) raises it
                self.writer.flush_if_due()

    async def close(self) -> None:
        """Write what the timer has not written yet (a stopped build's last replies), then let the backends go."""
        self.writer.flush()
        for backend in self.backends:
            await backend.aclose()
