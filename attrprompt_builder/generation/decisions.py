"""Replies become rows: each class's replies are decided in sample index order, then handed to the consumer.

A reply is screened (failed, refused, flagged by an earlier label check), then goes through the
near-duplicate stage when there is one, then the judge when it checks labels, and is kept or dropped.
Kept rows leave class by class, in index order, in batches for the ``datasets`` consumer thread.
Because every step takes a class's candidates in index order, the kept rows do not depend on which
reply arrived first.
"""

from __future__ import annotations

import asyncio
import queue
import time
from typing import TYPE_CHECKING, Any

from attrprompt_builder.client.types import ChatReply, ChatRequest
from attrprompt_builder.filters.screening import screen_reply
from attrprompt_builder.generation.quotas import Candidate, ClassQuota
from attrprompt_builder.generation.sampling import AttributeDraw

if TYPE_CHECKING:
    from attrprompt_builder.generation.engine import GenerationRun

__all__ = ["RowDecisions"]

# Rows go to the consumer thread this many at a time, or this often.
_HAND_OVER_ROWS = 64
_HAND_OVER_SECONDS = 0.1


class RowDecisions:
    """The decisions of one ``GenerationRun``; kept rows go to ``out`` as lists of ``(class position, row index, row)``."""

    def __init__(self, run: GenerationRun, out: queue.SimpleQueue) -> None:
        self.run = run
        self.classes = run.classes
        self.settings = run.settings
        self.stats = run.stats
        self.out = out
        self._emit_ptr = 0
        self._outbox: list[tuple[int, int, dict]] = []  # rows ready for the consumer, not handed over yet
        self._handed_at = 0.0
        self._dedup_running = False

    def deliver(self, state: ClassQuota, request: ChatRequest, draw: AttributeDraw, reply: ChatReply | None) -> None:
        """A reply (None: every attempt failed), from the journal or the endpoint, in whatever order replies arrive."""
        state.results[draw.index] = (draw, request, reply)
        while state.next_decide in state.results:
            draw, request, reply = state.results.pop(state.next_decide)
            state.next_decide += 1
            self._screen(state, draw, request, reply)
        self.offer(state)

    def offer(self, state: ClassQuota) -> None:
        """Hand the class's waiting candidates on (near-duplicate check, else the decision) and wake the dispatch loop."""
        run = self.run
        if run.dedup is not None:
            self._schedule_dedup()
        else:
            self.finalize(state, [True] * state.ready)
        run.progress.update_counts(self.stats, run.dispatcher)
        run.note_change()

    def _screen(self, state: ClassQuota, draw: AttributeDraw, request: ChatRequest, reply: ChatReply | None) -> None:
        if reply is None:
            self.drop(state, "failed")
            return
        text, verdict = screen_reply(reply.text, refusals=self.settings.paper_refusals, ascii_only=self.settings.cleans_ascii)
        if verdict is True and (state.label, draw.index) in self.run.excluded:  # flagged by a label check earlier
            verdict = (False, "label_issue")
        if verdict is not True:
            self.drop(state, verdict[1])
            return
        state.candidates.append(Candidate(draw.index, draw, request.prompt, text))

    def drop(self, state: ClassQuota, reason: str) -> None:
        state.decided(kept=False)
        self.stats.count_decision(state.label, dropped=reason)

    def finalize(self, state: ClassQuota, keep: list[bool | str | None]) -> None:
        """Apply decisions (True, or the drop reason) to the first ``len(keep)`` candidates of a class."""
        judging = self.run.judging
        decided, state.candidates = state.candidates[: len(keep)], state.candidates[len(keep) :]
        for candidate, verdict in zip(decided, keep):
            if state.done:  # a surplus reply: paid and journaled, not needed
                state.outstanding -= 1
            elif verdict is not True:
                self.drop(state, str(verdict))
            elif judging is not None and judging.checks_labels:
                judging.submit(state, candidate)  # kept or dropped in index order once judged
            else:
                self.keep(state, candidate)
        self.emit()

    def keep(self, state: ClassQuota, candidate: Candidate, **checked: Any) -> None:
        state.decided(kept=True)
        self.stats.count_decision(state.label)
        state.rows.append({**self.settings.make_row(candidate.draw, candidate.text, candidate.prompt), **checked})
        state.kept_indices.append(candidate.index)
        if self.run.judging is not None:
            self.run.judging.kept(state, candidate)

    def emit(self) -> None:
        """Move kept rows to the outbox, class by class in order: a class's rows wait until the classes before it are done."""
        while self._emit_ptr < len(self.classes):
            state = self.classes[self._emit_ptr]
            if state.rows:
                first = state.emitted
                self._outbox.extend((state.position, first + i, row) for i, row in enumerate(state.rows))
                state.emitted += len(state.rows)
                self.run.progress.advance(len(state.rows))
            state.rows.clear()
            if not state.done:
                break
            self._emit_ptr += 1
        self.hand_over()

    def hand_over(self, *, final: bool = False) -> None:
        """Pass the rows ready so far to the consumer thread, in batches: waking it (and handing it the GIL) per row
        cost CPU on every row."""
        now = time.monotonic()
        if self._outbox and (final or len(self._outbox) >= _HAND_OVER_ROWS or now - self._handed_at >= _HAND_OVER_SECONDS):
            self.out.put(self._outbox)
            self._outbox, self._handed_at = [], now

    # -- near-duplicate stage -------------------------------------------------------------------
    def _schedule_dedup(self) -> None:
        if not self._dedup_running and any(c.candidates for c in self.classes):
            self._dedup_running = True
            self.run.track(asyncio.create_task(self._dedup_worker()))

    async def _dedup_worker(self) -> None:
        run = self.run
        assert run.dedup is not None  # scheduled only when near-duplicates are filtered
        try:
            async for _ in run.dedup.batches(self.classes, in_order=self.settings.decides_classes_in_order, decide=self.finalize):
                run.progress.update_counts(self.stats, run.dispatcher)
                run.note_change()
        except BaseException as err:
            if not isinstance(err, asyncio.CancelledError):
                run.fail(err)
            raise
        finally:
            self._dedup_running = False
