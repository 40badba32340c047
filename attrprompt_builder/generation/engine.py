"""The generation engine: per-class quotas over a deterministic stream of samples.

For each class the engine walks sample indices 0, 1, 2, ...: draw attributes, render the prompt,
take the reply from the journal or send the request, commit the reply to the journal, then decide
in index order whether to keep it (filters, then near-duplicate check). It draws further indices
until the class has exactly ``samples_per_class`` kept rows. Decisions happen in index order, so
the kept rows do not depend on concurrency, timing or ``num_proc``; rows leave the engine class by
class, in index order.

The async work runs on its own thread with its own event loop; ``GenerationRun.rows()`` is the
plain generator the ``datasets`` builder consumes.
"""

from __future__ import annotations

import asyncio
import gc
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from attrprompt_builder.client.dispatch import Dispatcher, Lane
from attrprompt_builder.client.journal import Journal
from attrprompt_builder.client.journaled import JournaledClient
from attrprompt_builder.client.served_model import ServedModelQuery
from attrprompt_builder.client.types import Backend, ChatReply, ChatRequest
from attrprompt_builder.errors import BudgetExceededError
from attrprompt_builder.generation.budget import Hold, Spending
from attrprompt_builder.generation.cluster import ClusterDispatch
from attrprompt_builder.generation.decisions import RowDecisions
from attrprompt_builder.generation.judging import JudgeStage
from attrprompt_builder.generation.plan import RunSettings
from attrprompt_builder.generation.progress import BuildProgress
from attrprompt_builder.generation.prompts import PromptRenderer
from attrprompt_builder.generation.quotas import ClassQuota, keep_rate
from attrprompt_builder.generation.sampling import AttributeDraw, AttributeSampler, request_seed
from attrprompt_builder.generation.stats import BuildStats

if TYPE_CHECKING:
    from attrprompt_builder.client.ray_cluster import WorkerPool

__all__ = ["GenerationRun"]

_DONE = object()
# After a stop (Ctrl-C), replies about to arrive get this long to be journaled; the rest are abandoned.
_STOP_GRACE = 1.0
# Samples drawn and claimed in the journal together (one transaction); they wait for free slots in order.
_DRAW_AHEAD = 8


class GenerationRun:
    """Generate the rows of some classes of one build (one ``datasets`` shard group)."""

    def __init__(
        self,
        settings: RunSettings,
        labels: list[str],
        *,
        backends: list[Backend],
        worker: str,
        served: ServedModelQuery | None = None,
        judge_backends: list[Backend] | None = None,
        judge_served: ServedModelQuery | None = None,
        excluded: frozenset[tuple[str, int]] = frozenset(),
        pool: WorkerPool | None = None,
    ) -> None:
        self.settings = settings
        self.excluded = excluded  # (class, sample index) pairs a label check flagged: dropped as "label_issue"
        self.labels = labels
        self.backends = [*backends, *(judge_backends or ())]  # loaded and closed together
        self.worker = worker
        self.stats = BuildStats()
        recipe = settings.recipe
        self.sampler = AttributeSampler(
            recipe, seed=settings.seed, strategy=settings.sampling, paper=settings.paper, prompting=settings.prompting
        )
        self.renderer = PromptRenderer(recipe, prompting=settings.prompting, paper=settings.paper)
        self.classes = [ClassQuota(label, pos, settings.quotas[label]) for pos, label in enumerate(labels)]
        self.dispatcher = Dispatcher(
            backends,
            max_concurrency=settings.driver_concurrency,
            policy=settings.retry_policy,
            max_errors=settings.max_errors,
            seed=settings.seed,
            first_timeout=settings.first_request_timeout,
            on_event=lambda line: self.progress.note(f"attrprompt: {line}"),
        )
        # With num_proc, each worker may spend its classes' share of a cap (by rows: paper arxiv's quotas differ),
        # so the workers together cannot exceed it.
        share = settings.budget.share(sum(settings.quotas[label] for label in labels) / max(1, settings.total_rows))
        self.spending = Spending(share, whole=settings.budget)
        # Loaded before the journal is opened, so a bad embedder leaves no connection behind.
        self.dedup = settings.make_dedup_filter()
        self.journal = Journal(settings.journal_path)
        self.client = JournaledClient(settings.backend, self.journal, self.dispatcher, usage=self.stats, served=served)
        self.progress = BuildProgress(
            total=sum(c.quota for c in self.classes), desc=settings.progress_desc, priced=settings.priced
        )
        self.judging = (
            JudgeStage(self, backends=judge_backends, served=judge_served or served) if settings.judge.enabled else None
        )
        self._out: queue.SimpleQueue = queue.SimpleQueue()
        self.decisions = RowDecisions(self, self._out)
        self._stop_requested = threading.Event()
        # The engine's loop exists only once rows() has started its thread; request_stop() wakes it.
        self._loop: asyncio.AbstractEventLoop | None = None
        # Created here, before that loop exists: since Python 3.10 an asyncio primitive binds to the loop that
        # first waits on it, and a run runs once.
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._fatal: BaseException | None = None
        self._budget_stop: str | None = None
        self._dispatching: asyncio.Task[None] | None = None
        # On a Ray cluster the workers send what the journal cannot answer; everything else stays here.
        self.cluster = ClusterDispatch(self, pool) if pool is not None else None

    # -- the consumer side (builder thread) ----------------------------------------------------
    def rows(self) -> Iterator[tuple[int, int, dict]]:
        """Yield ``(class position, row index within class, row)`` in class-major order."""
        thread = threading.Thread(target=self._thread_main, name=f"attrprompt-{self.worker}", daemon=True)
        thread.start()
        try:
            while True:
                try:
                    item = self._out.get(timeout=0.2)  # a timeout keeps Ctrl-C responsive
                except queue.Empty:
                    continue
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield from item
        except BaseException as err:
            self.request_stop()
            thread.join(timeout=_STOP_GRACE + 5.0)  # the engine stops within the grace; never hang on it
            if isinstance(err, KeyboardInterrupt):
                self.progress.note(
                    f"interrupted: every paid reply so far is saved in the journal ({self.settings.journal_path}); "
                    "run the same command again to resume without paying for them"
                )
            raise
        thread.join()

    def request_stop(self) -> None:
        self._stop_requested.set()
        self.client.stop()  # a wait for another build's reply ends too
        if self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop_dispatching)
            except RuntimeError:  # the loop has already closed: nothing left to stop
                pass

    def _stop_dispatching(self) -> None:
        # The dispatch loop may be waiting for a free slot that only a hanging request would free.
        if self._dispatching is not None:
            self._dispatching.cancel()
        self._changed.set()

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as err:  # handed to the consumer thread, which re-raises it
            self._out.put(err)
        else:
            self.decisions.hand_over(final=True)
            self._out.put(_DONE)

    # -- the async side -----------------------------------------------------------------------
    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        # Everything alive now (datasets, pyarrow, the recipe, the models) lives as long as the build: kept out
        # of the collector's generations, a collection per few hundred rows no longer walks it (about 10% of
        # the build's CPU per row, bench/throughput.py).
        gc.freeze()
        s = self.settings
        started = time.monotonic()
        ticker = asyncio.create_task(self.progress.keep_fresh(self.stats, self.dispatcher))
        try:
            for backend in self.backends:
                load = getattr(backend, "load", None)
                if load is not None:  # a local model: load (and fail) before the clock of any request starts
                    await load()
            if self.cluster is not None:
                await self.cluster.start()
            self._dispatching = asyncio.create_task(self._dispatch_loop())
            try:
                await self._dispatching
            except asyncio.CancelledError:
                if not self._stop_requested.is_set():
                    raise
            await self._drain()
            if self._fatal is not None:
                raise self._fatal
            if self._budget_stop is not None and not all(c.done for c in self.classes):
                kept = sum(c.kept for c in self.classes)
                raise BudgetExceededError(
                    f"stopped before exceeding the budget: {self._budget_stop}; {kept} rows kept so far "
                    f"and every paid reply is in the journal ({s.journal_path}); raise the cap (or lower max_new_tokens) "
                    "and rerun the same command to continue"
                )
        finally:
            if self.cluster is not None:
                self.cluster.abandon()
            ticker.cancel()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(ticker, *self._tasks, return_exceptions=True)
            for backend in self.backends:
                await backend.aclose()
            self._finish_stats(started)
            self.progress.update_counts(self.stats, self.dispatcher, force=True)
            self.progress.close()
            self.client.close()
            if self.judging is not None:
                self.judging.client.close()  # its leases too
            self.journal.close()
            if self.dedup is not None:
                self.dedup.close()
            gc.unfreeze()

    def _finish_stats(self, started: float) -> None:
        stats = self.stats
        stats.retries.update(self.dispatcher.retries)
        stats.failures.update(self.dispatcher.failures)
        stats.wall_time_s = time.monotonic() - started
        if self.dedup is not None:
            self.dedup.update_build_stats(stats)
        if self.judging is not None:
            self.judging.update_build_stats(stats)
        self.journal.save_stats(self.settings.run_id, self.worker, stats.to_dict())

    async def _dispatch_loop(self) -> None:
        # Drawn, claimed in the journal, not sent yet: the head goes out when a slot and the budget allow.
        claimed: deque[tuple[ClassQuota, ChatRequest, AttributeDraw]] = deque()
        hits = 0
        try:
            while self._fatal is None and self._budget_stop is None and not self._stop_requested.is_set():
                if all(c.done for c in self.classes):
                    return
                if not claimed:
                    jobs = self._next_jobs(_DRAW_AHEAD)
                    if not jobs:
                        if self.cluster is not None:
                            self.cluster.flush()  # a partial block: nothing more can be drawn until replies are decided
                        if self._stranded():
                            return
                        await self._wait_for_change()
                        continue
                    # One journal transaction looks the drawn requests up and claims the missing ones: no other
                    # build pays for them meanwhile.
                    cached = await self.client.reuse_many([request for _, request, _ in jobs])
                    for job, reply in zip(jobs, cached):
                        if reply is None:
                            claimed.append(job)
                        else:
                            self.decisions.deliver(*job, reply)
                            hits += 1
                    if hits >= 64:  # a long run of journal hits: let replies and the progress bar in
                        hits = 0
                        await asyncio.sleep(0)
                    continue
                state, request, draw = claimed[0]
                hold = self.spending.worst_case(request)
                cap = self.spending.over(hold)
                if cap is not None:
                    if not self.spending.holding:  # nothing out that could come back cheaper than its worst case
                        self.stop_for_budget(self.spending.stop_line(cap, hold))
                        return
                    await self._wait_for_change()
                    continue
                claimed.popleft()
                self.spending.hold(hold)
                if self.cluster is not None:
                    await self.cluster.add(state, request, draw, hold)
                    continue
                lane = await self.client.acquire()
                self.track(asyncio.create_task(self._send(state, request, draw, lane, hold)))
        finally:
            # Never sent: the keys go back, and the samples are not outstanding (newest first, so that a class's
            # trailing unsent indices are all drawn again).
            for state, request, draw in reversed(claimed):
                self.client.release(request)
                state.outstanding -= 1
                if draw.index == state.next_index - 1:
                    state.next_index -= 1

    def track(self, task: asyncio.Task[None]) -> None:
        """A task the run waits for (its reply is paid: it is journaled before the run ends) and cancels on exit."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def fail(self, err: BaseException) -> None:
        """End the run with ``err`` (the first error wins)."""
        if self._fatal is None:
            self._fatal = err
        self._changed.set()

    def stop_for_budget(self, line: str) -> None:
        """Stop drawing: the next request would exceed a cap (``line`` says which; the first stop wins)."""
        self._budget_stop = self._budget_stop or line
        self._changed.set()

    def note_change(self) -> None:
        self._changed.set()

    @property
    def stopping(self) -> bool:
        return self._stop_requested.is_set() or self._fatal is not None or self._budget_stop is not None

    async def _wait_for_change(self) -> None:
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), timeout=0.5)
        except TimeoutError:
            pass

    def _stranded(self) -> bool:
        """True when nothing is in flight and no class can draw again: quotas cannot be met."""
        if self._tasks or any(c.candidates for c in self.classes if not c.done):
            return False
        for state in self.classes:
            if not state.done and state.next_index >= self.settings.max_draws(state.label):
                self._fatal = state.not_met(self.stats.for_class(state.label).dropped)
                return True
        return False

    def _next_jobs(self, limit: int) -> list[tuple[ClassQuota, ChatRequest, AttributeDraw]]:
        """Up to ``limit`` samples to ask for next (as many as the classes want)."""
        jobs: list[tuple[ClassQuota, ChatRequest, AttributeDraw]] = []
        while len(jobs) < limit:
            job = self._next_job()
            if job is None:
                break
            jobs.append(job)
        return jobs

    def _next_job(self) -> tuple[ClassQuota, ChatRequest, AttributeDraw] | None:
        rate = keep_rate(self.classes)
        for state in self.classes:
            if not state.wants_draw(rate, max_draws=self.settings.max_draws(state.label)):
                continue
            index = state.next_index
            state.next_index += 1
            state.outstanding += 1
            draw = self.sampler.draw(state.label, index)
            messages = self.renderer.messages(draw)
            seed = request_seed(self.settings.seed, state.label, index)
            return state, self.client.request(messages, params=self.settings.params, seed=seed), draw
        return None

    async def _send(self, state: ClassQuota, request: ChatRequest, draw: AttributeDraw, lane: Lane, hold: Hold) -> None:
        try:
            reply = await self.client.send(request, label=state.label, index=draw.index, lane=lane)
        except asyncio.CancelledError:
            self.spending.settle(hold, None)
            raise
        except BaseException as err:
            self.spending.settle(hold, None)
            self.fail(err)
            return
        self.arrived(state, request, draw, hold, reply)

    def arrived(self, state: ClassQuota, request: ChatRequest, draw: AttributeDraw, hold: Hold, reply: ChatReply | None) -> None:
        """A sent request's reply (journaled and counted by the client; None: it failed) goes to the decisions."""
        self.spending.settle(hold, reply)
        if reply is not None:  # only its price is the engine's business
            self.stats.cost = self.settings.cost_of(self.stats.prompt_tokens, self.stats.completion_tokens)
        self.decisions.deliver(state, request, draw, reply)

    async def _drain(self) -> None:
        """Wait for in-flight requests (their replies are paid: journal them), briefly if stopping."""
        deadline = time.monotonic() + (_STOP_GRACE if self._stop_requested.is_set() else 3600.0)
        while self._tasks and time.monotonic() < deadline:
            if self._fatal is not None and not self._stop_requested.is_set():
                return
            await asyncio.wait(set(self._tasks), timeout=0.2)
            if self._stop_requested.is_set():
                deadline = min(deadline, time.monotonic() + _STOP_GRACE)
