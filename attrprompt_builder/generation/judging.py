"""The judge stage of a build: label checks before a row is kept, adherence questions after.

A candidate that passed screening and the near-duplicate check goes to the judge (``verify.judge``)
when ``label_check="judge"``; answers arrive in any order, but rows are decided in sample index order
(the first candidates that pass every stage are the kept rows, whatever the timing). A row whose
judged label differs is dropped as ``label_mismatch`` and its class draws again, or, with
``on_mismatch="flag"``, kept with the judged label(s) in its ``label_check`` column. A judge that
gives no usable answer cannot confirm the label: the row is dropped as ``label_unchecked`` (or
flagged with an empty ``label_check``).

Judge requests are paid like generation requests: they wait for the same budget (``Spending``), go
through a dispatcher lane (the build's own, or the judge endpoint's) and are journaled before use.
After a row is kept, the first rows of each class (``adherence_sample`` in all, spread over the
classes) are asked, per dimension the judge is asked about, whether they follow the drawn value (a
catch-all value, "Others <dimension> for <class>.", asks for nothing that can be checked and is skipped).
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from attrprompt_builder.client.dispatch import Dispatcher
from attrprompt_builder.client.journaled import JournaledClient
from attrprompt_builder.client.served_model import ServedModelQuery
from attrprompt_builder.client.types import Backend, ChatReply, ChatRequest
from attrprompt_builder.generation.quotas import Candidate, ClassQuota
from attrprompt_builder.generation.stats import BuildStats
from attrprompt_builder.verify.judge import LABEL_CHECK_COLUMN, Judge

if TYPE_CHECKING:
    from attrprompt_builder.generation.engine import GenerationRun

__all__ = ["JudgeStage", "adherence_share"]


class _BudgetStop(Exception):
    """A judge request would break a budget cap and nothing in flight can free it: the build stops."""


@dataclass
class _Pending:
    candidate: Candidate
    labels: tuple[str, ...] | None = None
    done: bool = False


def _stat(name: str) -> property:
    return property(lambda usage: getattr(usage.stats, name), lambda usage, n: setattr(usage.stats, name, n))


class _JudgeUsage:
    """``JournaledClient`` counts a judge's replies and tokens into the build's ``judge_*`` counts."""

    def __init__(self, stats: BuildStats) -> None:
        self.stats = stats

    sent = _stat("judge_sent")
    reused = _stat("judge_reused")
    prompt_tokens = _stat("judge_prompt_tokens")
    completion_tokens = _stat("judge_completion_tokens")


def adherence_share(total: int, *, position: int, classes: int) -> int:
    """How many kept rows of the class at ``position`` (of ``classes``) are asked about adherence: ``total`` spread evenly."""
    return total // classes + (1 if position < total % classes else 0)


class JudgeStage:
    """The judge of one ``GenerationRun``; ``backends`` (with ``served``) when it is not the build's own backend."""

    def __init__(self, run: GenerationRun, *, backends: list[Backend] | None, served: ServedModelQuery | None) -> None:
        settings = run.settings
        self.run = run
        self.spec = settings.judge
        recipe = settings.recipe
        if self.spec.backend is None:  # the build's own endpoint judges, in the same lanes as generation
            backend_spec, dispatcher = settings.backend, run.dispatcher
        else:
            backend_spec = self.spec.backend
            dispatcher = Dispatcher(
                backends or [],
                max_concurrency=settings.max_concurrency,
                policy=settings.retry_policy,
                max_errors=settings.max_errors,
                seed=settings.seed,
                first_timeout=settings.first_timeout_of(backend_spec),
                on_event=lambda line: run.progress.note(f"attrprompt: judge: {line}"),
            )
        self.dispatcher = dispatcher
        self.client = JournaledClient(backend_spec, run.journal, dispatcher, usage=_JudgeUsage(run.stats), served=served)
        self.client.stopping = run.client.stopping  # a stop (Ctrl-C) ends the judge's waits for other builds too
        self.judge = Judge(self.client, recipe, send=self._send)
        self.checks_labels = self.spec.label_check
        self._pending: dict[int, deque[_Pending]] = {}
        self._dimensions = self.spec.dimensions(recipe, prompting=settings.prompting)
        self._positions = {label: position for position, label in enumerate(recipe.label_names)}
        self._classes = len(recipe.label_names)

    # -- label check ---------------------------------------------------------------------------
    def submit(self, state: ClassQuota, candidate: Candidate) -> None:
        """Ask the judge about ``candidate``; it is kept or dropped once it and every earlier candidate are judged."""
        entry = _Pending(candidate)
        self._pending.setdefault(state.position, deque()).append(entry)
        state.judging += 1
        self._spawn(self._check(state, entry))

    async def _check(self, state: ClassQuota, entry: _Pending) -> None:
        entry.labels = await self.judge.labels(entry.candidate.text, label=state.label, index=entry.candidate.index)
        entry.done = True
        queue = self._pending[state.position]
        while queue and queue[0].done:
            self._decide(state, queue.popleft())
        self.run.decisions.emit()
        self.run.decisions.offer(state)  # a dropped row makes room for the next candidate

    def _decide(self, state: ClassQuota, entry: _Pending) -> None:
        state.judging -= 1
        run, candidate = self.run, entry.candidate
        if state.done:  # a surplus reply: paid and journaled, not needed
            state.outstanding -= 1
            return
        draw = candidate.draw
        expected = set(draw.labels) if run.settings.recipe.multi_label else {draw.label}
        agrees = entry.labels is not None and set(entry.labels) == expected
        if not agrees and self.spec.on_mismatch == "drop":
            run.decisions.drop(state, "label_mismatch" if entry.labels is not None else "label_unchecked")
            return
        if not agrees:
            run.stats.label_flags += 1
        run.decisions.keep(state, candidate, **{LABEL_CHECK_COLUMN: list(entry.labels or ())})

    # -- adherence -------------------------------------------------------------------------------
    def kept(self, state: ClassQuota, candidate: Candidate) -> None:
        """A row was kept as the class's ``state.kept``-th: ask about its dimensions if it is in the sample."""
        share = adherence_share(self.spec.adherence_sample, position=self._positions[state.label], classes=self._classes)
        if state.kept <= share:
            for dimension in self._dimensions:
                self._spawn(self._adherence(state.label, candidate, dimension))

    async def _adherence(self, label: str, candidate: Candidate, dimension: str) -> None:
        value = candidate.draw.values[dimension]
        if value == self.run.settings.recipe.catch_all_for(dimension, label):  # "Others ... for <class>.": nothing to check
            return
        said = await self.judge.adheres(candidate.text, dimension=dimension, value=value, label=label, index=candidate.index)
        outcome = "unclear" if said is None else ("yes" if said else "no")
        self.run.stats.adherence.setdefault(dimension, Counter())[outcome] += 1

    # -- sending ----------------------------------------------------------------------------------
    async def _send(self, request: ChatRequest, tag: str, index: int) -> ChatReply | None:
        """Send a claimed judge request within the build's budget; the reply is journaled and counted."""
        run, spending = self.run, self.run.spending
        hold = spending.worst_case(request)
        while (cap := spending.over(hold)) is not None:
            if not spending.holding:  # nothing in flight can come back cheaper: stop, as generation does
                self.client.release(request)
                run.stop_for_budget(spending.stop_line(cap, hold))
                raise _BudgetStop
            await asyncio.sleep(0.1)
        spending.hold(hold)
        reply = None
        try:
            lane = await self.client.acquire()
            reply = await self.client.send(request, label=tag, index=index, lane=lane)
        except BaseException:
            self.client.release(request)
            raise
        finally:
            spending.settle(hold, reply)
        stats = run.stats
        stats.judge_cost = run.settings.cost_of(stats.judge_prompt_tokens, stats.judge_completion_tokens)
        return reply

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self.run.track(asyncio.get_running_loop().create_task(self._guard(work)))

    async def _guard(self, work: Coroutine[Any, Any, None]) -> None:
        run = self.run
        try:
            await work
        except (asyncio.CancelledError, _BudgetStop):
            pass
        except BaseException as err:
            run.fail(err)
        finally:
            run.note_change()

    def update_build_stats(self, stats: BuildStats) -> None:
        if self.dispatcher is not self.run.dispatcher:  # the judge's own endpoint: its retries and failures too
            stats.retries.update({f"judge_{cause}": n for cause, n in self.dispatcher.retries.items()})
            stats.failures.update({f"judge_{cause}": n for cause, n in self.dispatcher.failures.items()})
        constrained = self.judge.support.constrained
        if constrained is not None:  # None: every answer came from the journal
            stats.judge_response_format = "json_schema" if constrained else "plain"
