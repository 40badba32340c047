"""How attribute discovery sends its questions: journaled like generation requests, retried when unusable.

Kept apart from the four steps in ``discover`` because it is the part that spends money: every
reply is recorded in a journal under a key built like a generation request's (backend, model,
params, seed), so rerunning discovery re-sends nothing already paid. A reply that parses to nothing
(or is a refusal) is asked again, at most ``RETRIES`` times, each time with a new derived seed.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from attrprompt_builder.client.backends import BackendSpec, make_backends
from attrprompt_builder.client.dispatch import Dispatcher
from attrprompt_builder.client.journal import Journal
from attrprompt_builder.client.journaled import JournaledClient
from attrprompt_builder.client.resilience import RetryPolicy
from attrprompt_builder.client.types import SamplingParams
from attrprompt_builder.discover.report import RETRIES, DiscoveryReport
from attrprompt_builder.filters.screening import is_refusal

__all__ = ["Asker", "Question", "run_questions"]

#: (prompt, params, journal key parts, reply parser). ``key[0]`` names the step in the journal label.
Question = tuple[str, SamplingParams, tuple[str, ...], Callable[[str], Any]]

# A greedy (temperature 0) question asked again would get the same unusable reply: retries sample.
_RETRY_TEMPERATURE = 0.7


def _seed(*parts: object) -> int:
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (2**31)  # OpenAI-compatible servers want a signed 32-bit seed


class Asker:
    """Sends questions through the generation client, journaling every reply before it is used."""

    def __init__(self, spec: BackendSpec, dispatcher: Dispatcher, journal: Journal, *, seed: int, progress: Any) -> None:
        self.client = JournaledClient(spec, journal, dispatcher)
        self.seed, self.progress = seed, progress

    @property
    def sent(self) -> int:
        """Replies paid for in this run."""
        return self.client.usage.sent

    @property
    def reused(self) -> int:
        """Replies taken from the journal instead of being paid for again."""
        return self.client.usage.reused

    async def ask(
        self, prompt: str, params: SamplingParams, key: tuple[str, ...], parse: Callable[[str], Any]
    ) -> tuple[Any, str]:
        """(the parsed reply, or None when ``RETRIES`` retries gave nothing usable; the last reply text)."""
        messages = ({"role": "user", "content": prompt},)
        text = ""
        for attempt in range(RETRIES + 1):
            used = replace(params, temperature=_RETRY_TEMPERATURE) if attempt and params.temperature == 0 else params
            request = self.client.request(messages, params=used, seed=_seed(self.seed, *key, attempt))
            reply = await self.client.ask(request, label=f"discover:{key[0]}", index=attempt)
            text = reply.text if reply is not None else ""
            result = None if is_refusal(text) else parse(text)  # "Sorry, I can't" is no one-item list
            if result is not None and result != []:
                break
        else:
            result = None
        self.progress.update(1)
        return result, text

    async def ask_all(self, questions: list[Question]) -> list[tuple[Any, str]]:
        self.progress.total = (self.progress.total or 0) + len(questions)
        self.progress.refresh()
        tasks = [asyncio.ensure_future(self.ask(*question)) for question in questions]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:  # a fatal error (bad token, dead endpoint) stops the questions still waiting
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise


_T = TypeVar("_T")


def run_questions(
    body: Callable[[Asker, Any], Awaitable[_T]],
    *,
    spec: BackendSpec,
    token: str | None,
    journal_path: Path,
    seed: int,
    max_concurrency: int,
    report: DiscoveryReport,
    desc: str,
) -> _T:
    """Run ``body(asker, progress)`` against the backends of ``spec`` with a journal, counting what was paid in
    ``report``; from a running loop (a notebook) the questions get their own loop on a thread."""

    async def run() -> _T:
        from datasets.utils import tqdm

        backends = make_backends(spec, token=token)
        journal = Journal(journal_path)
        dispatcher = Dispatcher(backends, max_concurrency=max_concurrency, policy=RetryPolicy(), max_errors=100, seed=seed)
        with tqdm(total=0, unit="question", desc=desc) as progress:
            asker = Asker(spec, dispatcher, journal, seed=seed, progress=progress)
            try:
                return await body(asker, progress)
            finally:
                report.sent, report.reused = asker.sent, asker.reused
                for each in backends:
                    await each.aclose()
                journal.close()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run())
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()
