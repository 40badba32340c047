"""One progress bar per build: kept rows against the target, with sent/retried/refused counts and tokens.

With an LLM judge the bar also shows its questions (``judged``, sent or reused), the rows it found about
another class (``mismatch``, dropped or flagged) and its tokens (``judge_tokens``); ``cost`` covers both.

While a reply is overdue the bar says how long it has waited ("waiting 12s"), and for a few seconds
after a failed attempt what failed ("retrying after timeout"); the engine refreshes it every second,
so a silent endpoint shows on a bar that would otherwise sit at 0. Events before the first reply are
lines on stderr (``note``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TYPE_CHECKING

from datasets.utils import tqdm

from attrprompt_builder.generation.stats import BuildStats

if TYPE_CHECKING:
    from attrprompt_builder.client.dispatch import Dispatcher

__all__ = ["BuildProgress"]

# A wait for a reply shows once it is this long; a failed attempt shows for this long.
_SHOW_AFTER = 5.0


class BuildProgress:
    """A tqdm bar (silenced by ``datasets.disable_progress_bars()``) whose postfix is refreshed at most twice a second."""

    def __init__(self, *, total: int, desc: str, priced: bool) -> None:
        # Nested under datasets' "Generating train split" bar: each bar keeps its own line, and ours
        # clears its line when done (leave=None) instead of redrawing itself over datasets' bar.
        self._bar = tqdm(total=total, desc=desc, unit="row", dynamic_ncols=True, position=_worker_line(), leave=None)
        self._priced = priced
        self._last_postfix = 0.0

    def advance(self, n: int = 1) -> None:
        self._bar.update(n)

    def update_counts(self, stats: BuildStats, dispatcher: Dispatcher, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_postfix < 0.5:
            return
        self._last_postfix = now
        postfix: dict[str, int | str] = {
            "sent": stats.sent,
            "reused": stats.reused,
            "retried": sum(dispatcher.retries.values()),
            "refused": stats.dropped.get("refusal", 0),
            "dup": stats.dropped.get("near_duplicate", 0) + stats.dropped.get("exact_duplicate", 0),
            "tokens": stats.total_tokens,
        }
        if stats.judge_sent or stats.judge_reused:  # the judge's questions, paid apart from generation
            postfix["judged"] = stats.judge_sent + stats.judge_reused
            postfix["mismatch"] = stats.dropped.get("label_mismatch", 0) + stats.label_flags
            postfix["judge_tokens"] = stats.judge_tokens
        if self._priced:
            postfix["cost"] = f"{stats.cost + stats.judge_cost:.4f}"
        status = _status(dispatcher, now)
        if status:
            postfix["status"] = status
        self._bar.set_postfix(postfix, refresh=True)

    async def keep_fresh(self, stats: BuildStats, dispatcher: Dispatcher) -> None:
        """Refresh the bar every second until cancelled, so that a wait shows while nothing else happens."""
        while True:
            await asyncio.sleep(1.0)
            self.update_counts(stats, dispatcher)

    def note(self, line: str) -> None:
        """One line on stderr, on a line of its own whatever the bars have drawn (they are redrawn below it)."""
        self._bar.write(line, file=sys.stderr)

    def close(self) -> None:
        self._bar.close()


def _status(dispatcher: Dispatcher, now: float) -> str | None:
    waited = now - dispatcher.last_heard
    if dispatcher.in_flight and waited >= _SHOW_AFTER:
        return f"waiting {waited:.0f}s" + (" for a first reply" if dispatcher.probing else "")
    if dispatcher.last_failure is not None and now - dispatcher.last_failure[0] < _SHOW_AFTER:
        return f"retrying after {dispatcher.last_failure[1]}"
    return None


def _worker_line() -> int | None:
    """The line of a ``num_proc`` worker's bar: one per worker below the parent's bar (else tqdm picks one).

    A forked worker inherits the parent's bar list, so tqdm alone would put every worker on line 1.
    """
    for name in ("multiprocess", "multiprocessing"):  # datasets forks with multiprocess
        module = sys.modules.get(name)
        if module is not None and module.parent_process() is not None:
            identity = module.current_process()._identity
            return identity[0] if identity else None
    return None
