"""The journaled client against the loopback TGI server: a paid reply is committed before the caller
has it, a journaled one is never paid for again (under the key 0.1.x wrote or the one naming the served
model), a key another client claimed is waited for instead of paid twice, and what was paid and
reused is counted."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from attrprompt_builder.client.backends import BackendSpec, make_backends
from attrprompt_builder.client.dispatch import Dispatcher
from attrprompt_builder.client.journal import Journal
from attrprompt_builder.client.journaled import JournaledClient, UsageCounts
from attrprompt_builder.client.keys import request_key
from attrprompt_builder.client.resilience import RetryPolicy
from attrprompt_builder.client.served_model import ServedModelQuery, served_model
from attrprompt_builder.client.types import ChatReply, SamplingParams

CHAT = "/v1/chat/completions"
PARAMS = SamplingParams(temperature=0.7, max_new_tokens=24)


def messages(topic: str) -> tuple[dict[str, str], ...]:
    return ({"role": "user", "content": f"Write a short news article about {topic}."},)


def make_client(*urls: str, journal: Journal, max_attempts: int = 6, served: bool = False, **options) -> JournaledClient:
    spec = BackendSpec(kind="endpoint", endpoints=urls, model="org/chat-model")
    policy = RetryPolicy(max_attempts=max_attempts, base_delay=0.01)
    dispatcher = Dispatcher(make_backends(spec, token=None), max_concurrency=4, policy=policy, max_errors=100)
    query = ServedModelQuery(spec, timeout=2.0) if served else None
    return JournaledClient(spec, journal, dispatcher, served=query, **options)


async def closing(client: JournaledClient, work):
    try:
        return await work
    finally:
        for lane in client.dispatcher.lanes:
            await lane.backend.aclose()


def test_a_paid_reply_is_committed_before_the_caller_has_it(tgi, tmp_path: Path):
    journal = Journal(tmp_path / "j.sqlite")
    watcher = Journal(tmp_path / "j.sqlite")  # another connection, as a process started after a crash would be
    client = make_client(tgi.url, journal=journal)
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
    first = make_client(tgi.url, journal=journal)
    request = first.request(messages("chess"), params=PARAMS, seed=1)
    paid = asyncio.run(closing(first, first.ask(request, label="sports", index=0)))
    again = make_client(tgi.url, journal=journal)  # a rerun: new client, same journal
    assert asyncio.run(closing(again, again.ask(request, label="sports", index=0))) == paid
    assert tgi.count(CHAT) == 1
    assert again.usage == UsageCounts(sent=0, reused=1)
    journal.close()


def test_usage_counts_paid_replies_and_their_tokens(tgi, tmp_path: Path):
    journal = Journal(tmp_path / "j.sqlite")
    client = make_client(tgi.url, journal=journal)
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
    client = make_client(tgi.url, journal=journal, max_attempts=2)
    ok = client.request(messages("cycling"), params=PARAMS, seed=1)
    failing = client.request(messages("boxing"), params=PARAMS, seed=1)

    async def one_then_a_failure() -> ChatReply | None:
        await client.ask(ok, label="sports", index=0)  # one success: later failures only drop a sample
        tgi.configure(faults={"500": 1.0})
        return await client.ask(failing, label="sports", index=1)

    assert asyncio.run(closing(client, one_then_a_failure())) is None
    assert journal.get(failing.key) is None and len(journal) == 1
    assert journal.claim(failing.key, owner="another-build", seconds=60)  # its claim was given back
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


# -- which model answers: keys name it, not the URLs ---------------------------------------------------
def identity(*urls: str, token: str | None = None, timeout: float = 2.0) -> str:
    spec = BackendSpec(kind="endpoint", endpoints=urls, model=None)
    return asyncio.run(ServedModelQuery(spec, token=token, timeout=timeout).identity())


class ModelsOnly(BaseHTTPRequestHandler):
    """An OpenAI-compatible server (vLLM): no /info, its models at /v1/models."""

    models = ("org/served-by-vllm",)

    def do_GET(self) -> None:
        found = self.path == "/v1/models"
        body = json.dumps({"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]} if found else {})
        self.send_response(200 if found else 404)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def vllm():
    server = ThreadingHTTPServer(("127.0.0.1", 0), ModelsOnly)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_replicas_of_one_model_share_an_identity_and_another_model_does_not(tgi):
    from tgi_server import TGIServer

    with TGIServer() as replica, TGIServer(model_id="org/other-model") as other:
        assert identity(tgi.url) == identity(tgi.url, replica.url) == identity(replica.url) == "served:tgi-test/tiny-chat"
        assert identity(other.url) == "served:org/other-model"
        assert identity(tgi.url, other.url) == "served:org/other-model|tgi-test/tiny-chat"
    assert tgi.count("/info") == 3 and tgi.count("/v1/chat/completions") == 0


def test_an_openai_compatible_server_says_its_model_at_v1_models(vllm):
    assert identity(vllm) == identity(vllm + "/v1/") == "served:org/served-by-vllm"
    assert asyncio.run(served_model(vllm, model="org/served-by-vllm")) == "org/served-by-vllm"
    assert asyncio.run(served_model(vllm, model="org/not-served")) is None


def test_a_server_that_cannot_say_keeps_the_url_identity(tgi):
    dead = closed_port_url()
    assert identity(dead) == BackendSpec(kind="endpoint", endpoints=(dead,)).identity
    assert identity(dead, tgi.url) == "served:tgi-test/tiny-chat"  # a pool starts on the replicas that answer
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        assert identity(url, timeout=0.3) == BackendSpec(kind="endpoint", endpoints=(url,)).identity
        assert time.monotonic() - started < 2.0


def test_the_query_carries_a_token_only_when_one_is_given(tgi, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_localtoken123")
    identity(tgi.url)
    identity(tgi.url, token="sk-own-key-42")
    assert [r["headers"].get("authorization") for r in tgi.requests] == [None, "Bearer sk-own-key-42"]


@pytest.mark.parametrize(
    "spec",
    [BackendSpec(kind="providers", model="org/m", provider="together"), BackendSpec(kind="transformers", model="/models/m")],
)
def test_providers_and_local_models_keep_their_identity(spec):
    assert asyncio.run(ServedModelQuery(spec).identity()) == spec.identity


def test_a_reply_under_the_old_key_is_reused_without_a_single_request(tgi, tmp_path: Path):
    journal = Journal(tmp_path / "j.sqlite")
    client = make_client(tgi.url, journal=journal, served=True)
    request = client.request(messages("curling"), params=PARAMS, seed=4)
    journal.record(request.key, ChatReply(text="paid by 0.1.0"), label="sports", index=0)  # the key 0.1.x wrote
    assert asyncio.run(closing(client, client.ask(request, label="sports", index=0))) == ChatReply(text="paid by 0.1.0")
    assert tgi.count() == 0  # not even the model query
    journal.close()


def test_a_reply_is_recorded_under_the_served_model_and_found_through_another_replica(tgi, tmp_path: Path):
    from tgi_server import TGIServer

    journal = Journal(tmp_path / "j.sqlite")
    first = make_client(tgi.url, journal=journal, served=True)
    request = first.request(messages("judo"), params=PARAMS, seed=2)
    paid = asyncio.run(closing(first, first.ask(request, label="sports", index=0)))
    assert paid is not None and journal.get(request.key) is None  # not under the URL key
    with TGIServer() as replica:
        moved = make_client(replica.url, journal=journal, served=True)
        again = moved.request(messages("judo"), params=PARAMS, seed=2)
        assert again.key != request.key
        assert asyncio.run(closing(moved, moved.ask(again, label="sports", index=0))) == paid
        assert replica.count("/v1/chat/completions") == 0 and moved.usage == UsageCounts(reused=1)
    assert tgi.count("/v1/chat/completions") == 1
    journal.close()


# -- leases: a key another client is paying for is waited for, not paid again -----------------------
def test_a_second_client_waits_for_the_reply_the_first_is_paying_for(tgi, tmp_path: Path):
    tgi.configure(latency=0.3)
    first = make_client(tgi.url, journal=Journal(tmp_path / "j.sqlite"), poll_seconds=0.02)
    second = make_client(tgi.url, journal=Journal(tmp_path / "j.sqlite"), poll_seconds=0.02)
    request = first.request(messages("fencing"), params=PARAMS, seed=8)

    async def both() -> tuple[ChatReply | None, ChatReply | None]:
        paying = asyncio.ensure_future(first.ask(request, label="sports", index=0))
        await asyncio.sleep(0.05)  # the first has claimed the key and is waiting for the server
        waiting = asyncio.ensure_future(second.ask(request, label="sports", index=0))
        return await paying, await waiting

    paid, waited = asyncio.run(closing(first, both()))
    assert paid is not None and waited == paid
    assert tgi.count("/v1/chat/completions") == 1
    assert second.usage == UsageCounts(reused=1) and first.usage.sent == 1


def test_the_lease_of_a_build_that_died_is_taken_over(tgi, tmp_path: Path):
    journal = Journal(tmp_path / "j.sqlite")
    client = make_client(tgi.url, journal=journal, lease_seconds=30)
    request = client.request(messages("rowing"), params=PARAMS, seed=5)
    assert journal.claim(request.key, owner="build-that-died", seconds=0.0)
    assert asyncio.run(asyncio.wait_for(closing(client, client.ask(request, label="sports", index=0)), 10)) is not None
    assert tgi.count("/v1/chat/completions") == 1
    assert journal.claim(request.key, owner="anyone", seconds=1) is False  # answered, lease gone
    journal.close()


def test_a_request_claimed_and_not_sent_gives_its_key_back(tmp_path: Path):
    journal = Journal(tmp_path / "j.sqlite")
    client = make_client("http://127.0.0.1:9", journal=journal)
    unsent = client.request(messages("luge"), params=PARAMS, seed=1)
    assert asyncio.run(client.reuse(unsent)) is None  # claimed, then a budget stop keeps it from being sent
    assert not journal.claim(unsent.key, owner="other", seconds=60)
    client.release(unsent)
    assert journal.claim(unsent.key, owner="other", seconds=60)
    journal.close()


def test_a_stop_ends_the_wait_without_claiming(tmp_path: Path):
    journal = Journal(tmp_path / "j.sqlite")
    client = make_client("http://127.0.0.1:9", journal=journal, poll_seconds=0.02)
    request = client.request(messages("darts"), params=PARAMS, seed=1)
    assert journal.claim(request.key, owner="a-live-build", seconds=60)
    threading.Timer(0.2, client.stop).start()
    assert asyncio.run(asyncio.wait_for(client.reuse(request), 5)) is None
    assert not journal.claim(request.key, owner="someone-else", seconds=60)  # still the live build's
    journal.close()
