"""The journaled client against the loopback TGI server: a paid reply is committed before the caller
has it, a journaled one is never paid for again, and what was paid and reused is counted."""

from __future__ import annotations

import asyncio
from pathlib import Path

from attrprompt_builder.client.backends import BackendSpec, make_backends
from attrprompt_builder.client.dispatch import Dispatcher
from attrprompt_builder.client.journal import Journal, request_key
from attrprompt_builder.client.journaled import JournaledClient, UsageCounts
from attrprompt_builder.client.resilience import RetryPolicy
from attrprompt_builder.client.types import ChatReply, SamplingParams

CHAT = "/v1/chat/completions"
PARAMS = SamplingParams(temperature=0.7, max_new_tokens=24)


def messages(topic: str) -> tuple[dict[str, str], ...]:
    return ({"role": "user", "content": f"Write a short news article about {topic}."},)


def make_client(url: str, journal: Journal, *, max_attempts: int = 6) -> JournaledClient:
    spec = BackendSpec(kind="endpoint", endpoints=(url,), model="org/chat-model")
    policy = RetryPolicy(max_attempts=max_attempts, base_delay=0.01)
    dispatcher = Dispatcher(make_backends(spec, token=None), max_concurrency=4, policy=policy, max_errors=100)
    return JournaledClient(spec, journal, dispatcher)


async def closing(client: JournaledClient, work):
    try:
        return await work
    finally:
        for lane in client.dispatcher.lanes:
            await lane.backend.aclose()


def test_a_paid_reply_is_committed_before_the_caller_has_it(tgi, tmp_path: Path):
    journal = Journal(tmp_path / "j.sqlite")
    watcher = Journal(tmp_path / "j.sqlite")  # another connection, as a process started after a crash would be
    client = make_client(tgi.url, journal)
    request = client.request(messages("tennis"), params=PARAMS, seed=7)

    async def send_on_a_reserved_lane() -> ChatReply | None:
        lane = await client.acquire()  # what the engine does before it creates the send task
        return await client.send(request, label="sports", index=0, lane=lane)

    reply = asyncio.run(closing(client, send_on_a_reserved_lane()))
    assert reply is not None and watcher.get(request.key) == reply
    assert client.dispatcher.in_flight == 0
    journal.close()
    watcher.close()


def test_a_journaled_reply_is_reused_without_a_request(tgi, tmp_path: Path):
    journal = Journal(tmp_path / "j.sqlite")
    first = make_client(tgi.url, journal)
    request = first.request(messages("chess"), params=PARAMS, seed=1)
    paid = asyncio.run(closing(first, first.ask(request, label="sports", index=0)))
    again = make_client(tgi.url, journal)  # a rerun: new client, same journal
    assert asyncio.run(closing(again, again.ask(request, label="sports", index=0))) == paid
    assert tgi.count(CHAT) == 1
    assert again.usage == UsageCounts(sent=0, reused=1)
    journal.close()


def test_usage_counts_paid_replies_and_their_tokens(tgi, tmp_path: Path):
    journal = Journal(tmp_path / "j.sqlite")
    client = make_client(tgi.url, journal)
    requests = [client.request(messages(topic), params=PARAMS, seed=3) for topic in ("golf", "rugby", "sailing")]

    async def ask_all() -> list[ChatReply | None]:
        return list(await asyncio.gather(*(client.ask(r, label="sports", index=i) for i, r in enumerate(requests))))

    replies = [reply for reply in asyncio.run(closing(client, ask_all())) if reply is not None]
    assert len(replies) == 3 and tgi.served == 3
    assert client.usage == UsageCounts(
        sent=3,
        reused=0,
        prompt_tokens=sum(r.prompt_tokens for r in replies),
        completion_tokens=sum(r.completion_tokens for r in replies),
    )
    assert client.usage.prompt_tokens > 0 and client.usage.completion_tokens > 0
    journal.close()


def test_a_request_that_failed_is_neither_recorded_nor_counted(tgi, tmp_path: Path):
    journal = Journal(tmp_path / "j.sqlite")
    client = make_client(tgi.url, journal, max_attempts=2)
    ok = client.request(messages("cycling"), params=PARAMS, seed=1)
    failing = client.request(messages("boxing"), params=PARAMS, seed=1)

    async def one_then_a_failure() -> ChatReply | None:
        await client.ask(ok, label="sports", index=0)  # one success: later failures only drop a sample
        tgi.configure(faults={"500": 1.0})
        return await client.ask(failing, label="sports", index=1)

    assert asyncio.run(closing(client, one_then_a_failure())) is None
    assert journal.get(failing.key) is None and len(journal) == 1
    assert client.usage.sent == 1
    journal.close()


def test_keys_name_the_backend_by_its_identity_not_the_url_as_typed(tmp_path: Path):
    spec = BackendSpec(kind="endpoint", endpoints=("http://user:secret@127.0.0.1:8080/",), model="org/chat-model")
    journal = Journal(tmp_path / "j.sqlite")
    dispatcher = Dispatcher(make_backends(spec, token=None), max_concurrency=1, policy=RetryPolicy(), max_errors=1)
    request = JournaledClient(spec, journal, dispatcher).request(messages("polo"), params=PARAMS, seed=9)
    expected = request_key(messages("polo"), model="org/chat-model", backend="http://127.0.0.1:8080", params=PARAMS, seed=9)
    assert request.key == expected and request.seed == 9 and request.params == PARAMS
    journal.close()
