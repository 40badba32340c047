"""How the engine sends on a Ray cluster: its requests go to the workers in blocks, its decisions stay here.

The driver runs the same ``GenerationRun`` as a one-machine build: the same sample plan, admission,
budgets, journal lookups and claims, and the same decisions in sample-index order (screening,
near-duplicates, the judge, quotas). Only the sending moves: a request the journal cannot answer joins
a block, and a block goes to the worker with the fewest blocks in hand (``client.ray_workers``). So the
rows are those of a one-machine build by construction, whatever the number of workers or the timing.

A block's replies are durable in the worker's reply segments before they arrive here; the driver then
commits them to its journal in one transaction and hands them to the decisions. When a worker dies the
block's requests come back: what the worker flushed is absorbed from its segments (not paid again) and
the rest is sent again in a new block, at most ``MAX_WORKER_DEATHS`` times per request.

Backpressure: at most two blocks per worker are out, and a block is about one worker's share of
``max_concurrency``; the driver holds only the requests of those blocks, whatever the size of the plan.
Until the first reply arrives one request is out in all, so a wrong URL or token costs one request.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from attrprompt_builder import errors
from attrprompt_builder.client.ray_workers import Block, BlockResult
from attrprompt_builder.client.segments import PaidReply, absorb_segments
from attrprompt_builder.client.types import ChatReply, ChatRequest
from attrprompt_builder.filters.dedup.embedders import load_embedder
from attrprompt_builder.filters.dedup.vectors import identity_of, text_hash
from attrprompt_builder.filters.screening import screen_reply
from attrprompt_builder.generation.budget import Hold
from attrprompt_builder.generation.quotas import ClassQuota
from attrprompt_builder.generation.sampling import AttributeDraw

if TYPE_CHECKING:
    from attrprompt_builder.client.ray_cluster import WorkerPool
    from attrprompt_builder.generation.engine import GenerationRun

__all__ = ["BLOCKS_PER_WORKER", "ClusterDispatch", "MAX_WORKER_DEATHS", "ReplyVectors"]

# A block is a quarter of its worker's share of max_concurrency and a worker has eight in hand: two shares'
# worth, one being sent and one waiting, cut small so that a slow reply holds back only its own block.
BLOCKS_PER_SHARE = 4
BLOCKS_PER_WORKER = 8
MAX_WORKER_DEATHS = 3
# How long a dead worker may take to come back (Ray restarts it; a local model loads again) before the run stops.
REVIVE_SECONDS = 600.0


@dataclass(frozen=True)
class ReplyVectors:
    """Run by each worker on its block's replies: the vectors the driver's near-duplicate check will ask for.

    Embedding is the driver's one heavy step per row; done where the replies arrive, it scales with the
    workers. The texts are those screening keeps (the same cleaning as on the driver), so the vectors are
    stored under the keys the check looks up; a worker whose encoder differs (another precision on
    another CPU) stores nothing and the driver embeds those texts itself.
    """

    embedder: str | None
    precision: str
    refusals: tuple[str, ...] | None
    ascii_only: bool

    def __call__(self, replies: list[ChatReply | None]) -> tuple[str, list[bytes], np.ndarray] | None:
        texts = []
        for reply in replies:
            if reply is not None:
                text, verdict = screen_reply(reply.text, refusals=self.refusals, ascii_only=self.ascii_only)
                if verdict is True:
                    texts.append(text)
        if not texts:
            return None
        model = load_embedder(self.embedder, precision=self.precision)
        identity = identity_of(model)
        if identity is None:
            return None
        return identity, [text_hash(text) for text in texts], np.asarray(model.encode(texts), dtype=np.float32)


@dataclass
class _Job:
    state: ClassQuota
    request: ChatRequest
    draw: AttributeDraw
    hold: Hold
    key: str
    deaths: int = 0


class ClusterDispatch:
    def __init__(self, run: GenerationRun, pool: WorkerPool) -> None:
        self.run = run
        self.pool = pool
        self.replies = pool.spec.replies
        self.session = pool.spec.session  # the start of this run's segment names
        self.in_hand = [0] * len(pool.actors)
        self.down: set[int] = set()  # workers Ray is restarting: no block goes to them until they are ready again
        self.pending: list[_Job] = []
        self._answered = False
        self._freed = asyncio.Event()

    @property
    def _capacity(self) -> int:
        return BLOCKS_PER_WORKER * len(self.in_hand) if self._answered else 1

    def _block_size(self, worker: int) -> int:
        return math.ceil(self.pool.shares[worker] / BLOCKS_PER_SHARE) if self._answered else 1

    def _free_worker(self) -> int | None:
        live = [i for i in range(len(self.in_hand)) if i not in self.down]
        if not live or sum(self.in_hand) >= self._capacity:
            return None
        worker = min(live, key=lambda i: self.in_hand[i])
        return worker if self.in_hand[worker] < BLOCKS_PER_WORKER else None

    async def add(self, state: ClassQuota, request: ChatRequest, draw: AttributeDraw, hold: Hold) -> None:
        """Queue a claimed request; waits while every worker has its blocks in hand and a block is ready."""
        key = await self.run.client.claimed_key(request)
        self.pending.append(_Job(state, request, draw, hold, key))
        while self.pending and not self.flush(full_only=True):
            if len(self.pending) < self._block_size(0) or self.run.stopping:
                return
            self._freed.clear()
            await self._freed.wait()

    def flush(self, *, full_only: bool = False) -> bool:
        """Hand out blocks while a worker is free; True when nothing waits for one."""
        while self.pending:
            worker = self._free_worker()
            if worker is None:
                return False
            size = self._block_size(worker)
            if full_only and len(self.pending) < size:
                return False
            jobs, self.pending = self.pending[:size], self.pending[size:]
            self._launch(worker, jobs)
        return True

    def _launch(self, worker: int, jobs: list[_Job]) -> None:
        self.in_hand[worker] += 1
        block = Block([(job.key, job.state.label, job.draw.index, job.request) for job in jobs])
        task = asyncio.create_task(self._run(worker, block, jobs))
        self.run.track(task)

    async def _run(self, worker: int, block: Block, jobs: list[_Job]) -> None:
        import ray

        try:
            try:
                result: BlockResult = await self.pool.actors[worker].run_block.remote(block)
            finally:
                self.in_hand[worker] -= 1
                self._freed.set()
        except ray.exceptions.RayActorError:
            self._lost(worker)
            self._recover(jobs)
            return
        except asyncio.CancelledError:
            raise
        except BaseException as err:
            self.run.fail(err)
            return
        self._merge_counts(result)
        if result.error is not None:
            name, message = result.error
            error_class = getattr(errors, name, errors.GenerationStoppedError)
            self.run.fail(error_class(message))
        self._answered = self._answered or any(reply is not None for reply in result.replies)
        client = self.run.client
        paid = [PaidReply(job.key, job.state.label, job.draw.index, r) for job, r in zip(jobs, result.replies) if r]
        client.journal.record_many(paid)  # the worker's segment holds them too; this is the journal a rerun reads
        self._keep_vectors(result.extra)
        for job, reply in zip(jobs, result.replies):
            if reply is None:
                client.release(job.request)
            else:
                client.paid(job.request, reply)
            self.run.arrived(job.state, job.request, job.draw, job.hold, reply)
        self.flush()

    def _keep_vectors(self, extra: tuple[str, list[bytes], np.ndarray] | None) -> None:
        dedup = self.run.dedup
        if extra is None or dedup is None or dedup.store is None:
            return
        identity, keys, vectors = extra
        if identity == identity_of(dedup.filter.embedder):
            dedup.store.put(identity, keys, vectors)

    def _lost(self, worker: int) -> None:
        """The worker died (its other blocks in hand fail with it): no more blocks until Ray has restarted it."""
        if worker not in self.down:
            self.down.add(worker)
            self.run.track(asyncio.create_task(self._revive(worker)))

    async def _revive(self, worker: int) -> None:
        import ray

        deadline = time.monotonic() + REVIVE_SECONDS
        while True:
            try:
                await self.pool.actors[worker].ready.remote()  # the new process loads its backends, checks the folder
                break
            except ray.exceptions.ActorUnavailableError:  # still restarting
                if time.monotonic() > deadline:
                    self.run.fail(
                        errors.GenerationStoppedError(
                            f"a Ray worker did not come back within {REVIVE_SECONDS:g} s; {self._saved}"
                        )
                    )
                    return
                await asyncio.sleep(0.5)
            except ray.exceptions.RayError as err:
                cause = getattr(err, "cause", None)
                self.run.fail(cause if isinstance(cause, errors.AttrPromptError) else err)
                return
        self.down.discard(worker)
        self._freed.set()
        self.flush()

    @property
    def _saved(self) -> str:
        return f"every paid reply is saved ({self.replies}); check the workers' logs (`ray logs`) and rerun the same command"

    def _recover(self, jobs: list[_Job]) -> None:
        """A worker died with ``jobs`` in hand: take what it flushed from its segments, queue the rest again."""
        client = self.run.client
        absorb_segments(client.journal, self.replies, prefix=self.session)
        again: list[_Job] = []
        for job in jobs:
            reply: ChatReply | None = client.journal.get(job.key)
            if reply is not None:
                client.paid(job.request, reply)  # paid in this run, by the worker that died
                self.run.arrived(job.state, job.request, job.draw, job.hold, reply)
                continue
            job.deaths += 1
            if job.deaths >= MAX_WORKER_DEATHS:
                self.run.fail(
                    errors.GenerationStoppedError(
                        f"a Ray worker died {job.deaths} times while sending the request for sample {job.draw.index} of "
                        f"class {job.state.label!r}; {self._saved}"
                    )
                )
            again.append(job)
        self.pending[:0] = again
        self.run.note_change()
        self.flush()

    def _merge_counts(self, result: BlockResult) -> None:
        dispatcher = self.run.dispatcher
        dispatcher.retries.update(result.retries)
        dispatcher.failures.update(result.failures)
        dispatcher.last_heard = time.monotonic()
        if sum(result.retries.values()) and result.last_failure is not None:
            dispatcher.last_failure = (dispatcher.last_heard, result.last_failure)

    def abandon(self) -> None:
        """The run ends with requests never handed out: give up their claims and budget holds."""
        for job in self.pending:
            self.run.client.release(job.request)
            self.run.spending.settle(job.hold, None)
        self.pending.clear()

    async def start(self) -> None:
        """Absorb the segments earlier runs left (a driver that died), then wait for the workers."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, absorb_segments, self.run.client.journal, self.replies)
        await self.pool.start()
