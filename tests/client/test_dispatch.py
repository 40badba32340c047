"""The dispatcher against loopback TGI servers through the real AsyncInferenceClient: lanes and the
probe, retries with the real retry policy, failover between replicas, and the errors that stop at once."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter

import pytest
from tgi_server import TGIServer

from attrprompt_builder.client.dispatch import Dispatcher
from attrprompt_builder.client.endpoint import EndpointBackend
from attrprompt_builder.client.resilience import RetryPolicy
from attrprompt_builder.client.types import ChatReply, ChatRequest, SamplingParams
from attrprompt_builder.errors import (
    EndpointPermanentError,
    EndpointUnreachableError,
    GenerationStoppedError,
)

CHAT = "/v1/chat/completions"
# The real policy with short delays, so retries take milliseconds.
QUICK = RetryPolicy(base_delay=0.01, max_delay=0.05)


def request(i: int) -> ChatRequest:
    messages = ({"role": "user", "content": f"Write a short news article about topic {i}."},)
    return ChatRequest(messages=messages, params=SamplingParams(max_new_tokens=16), seed=i)


def dispatcher(*urls: str, max_concurrency: int = 4, max_errors: int = 100, **options) -> Dispatcher:
    backends = [EndpointBackend(url, timeout=10.0) for url in urls]
    return Dispatcher(
        backends, max_concurrency=max_concurrency, policy=options.pop("policy", QUICK), max_errors=max_errors, **options
    )


def send_all(pool: Dispatcher, requests: list[ChatRequest]) -> list[ChatReply | None]:
    async def run() -> list[ChatReply | None]:
        try:
            return list(await asyncio.gather(*(pool.send(each) for each in requests)))
        finally:
            for lane in pool.lanes:
                await lane.backend.aclose()

    return asyncio.run(run())


def in_flight(server: TGIServer) -> list[int]:
    """For each generation request, in arrival order: how many were at the server when it arrived."""
    return [r["in_flight"] for r in server.requests if r["route"] == CHAT]


def unused_url() -> str:
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


# -- lanes ----------------------------------------------------------------------------------------
def test_a_lane_keeps_at_most_max_concurrency_in_flight_after_a_lone_probe(tgi):
    tgi.configure(latency=0.05)
    replies = send_all(dispatcher(tgi.url, max_concurrency=4), [request(i) for i in range(20)])
    assert all(reply is not None for reply in replies)
    counts = in_flight(tgi)
    assert counts[:2] == [1, 1]  # the first request went alone; the rest waited for its answer
    assert max(counts) == 4


def test_replicas_share_the_requests_each_within_its_own_limit():
    with TGIServer(latency=0.05) as first, TGIServer(latency=0.05) as second:
        replies = send_all(dispatcher(first.url, second.url, max_concurrency=3), [request(i) for i in range(30)])
        assert all(reply is not None for reply in replies)
        assert first.served + second.served == 30 and first.served >= 5 and second.served >= 5
        assert max(in_flight(first)) == 3 and max(in_flight(second)) == 3


# -- retries ----------------------------------------------------------------------------------------
def test_transient_failures_are_retried_until_each_request_succeeds(tgi):
    tgi.configure(faults={"500": 0.15, "503": 0.1, "drop": 0.05})
    pool = dispatcher(tgi.url)
    replies = send_all(pool, [request(i) for i in range(30)])
    assert all(reply is not None for reply in replies) and tgi.served == 30
    assert sum(tgi.faulted.values()) > 0
    expected = Counter(http_500=tgi.faulted["500"], http_503=tgi.faulted["503"], connection=tgi.faulted["drop"])
    assert pool.retries == expected  # every failed attempt was retried, under its own cause
    assert not pool.failures


def test_a_429_is_retried_no_sooner_than_its_retry_after(tgi):
    tgi.configure(retry_after=0.5)
    tgi.fail_next(1)
    assert send_all(dispatcher(tgi.url), [request(0)])[0] is not None
    refused, answered = tgi.requests
    assert (refused["status"], answered["status"]) == (429, 200)
    assert answered["arrived"] - refused["arrived"] >= 0.5  # QUICK's own backoff is at most 0.01 s


def test_a_request_that_keeps_failing_gives_up_after_max_attempts(tgi):
    pool = dispatcher(tgi.url, policy=RetryPolicy(max_attempts=3, base_delay=0.01))
    send_all(pool, [request(0)])  # one success: from now on a failed request is a dropped sample
    tgi.configure(faults={"500": 1.0})
    assert send_all(pool, [request(1)]) == [None]
    assert tgi.count(CHAT) == 1 + 3
    assert pool.failures == {"http_500": 1} and pool.retries == {"http_500": 2}


# -- failover ---------------------------------------------------------------------------------------
def test_a_dead_replica_listed_first_is_routed_around(tgi):
    pool = dispatcher(unused_url(), tgi.url)
    replies = send_all(pool, [request(i) for i in range(12)])
    assert all(reply is not None for reply in replies) and tgi.served == 12
    assert pool.retries["connect"] >= 1


def test_a_replica_that_answers_errors_is_routed_around():
    with TGIServer(fixed_status=503) as failing, TGIServer() as healthy:
        pool = dispatcher(failing.url, healthy.url, max_concurrency=2)
        replies = send_all(pool, [request(i) for i in range(20)])
        assert all(reply is not None for reply in replies) and healthy.served == 20
        # once it failed three times in a row the failing replica was left alone for a while
        assert failing.count(CHAT) <= 6


# -- errors that stop -------------------------------------------------------------------------------
def test_a_permanent_error_stops_at_once_without_a_retry(tgi):
    pool = dispatcher(tgi.url)
    send_all(pool, [request(0)])
    tgi.configure(fixed_status=403)
    with pytest.raises(EndpointPermanentError, match=r"\(403\)"):
        send_all(pool, [request(1)])
    assert tgi.count(CHAT) == 2 and not pool.retries


def test_nothing_but_failures_from_the_start_stops_after_a_few_attempts():
    pool = dispatcher(unused_url())
    with pytest.raises(EndpointUnreachableError, match="cannot connect"):
        send_all(pool, [request(i) for i in range(5)])
    assert pool.failed_attempts == 3  # the probe's attempts; no other request was let through


def test_the_error_budget_stops_the_requests(tgi):
    pool = dispatcher(tgi.url, max_errors=3)
    send_all(pool, [request(0)])
    tgi.configure(faults={"500": 1.0})
    with pytest.raises(GenerationStoppedError, match=r"stopped after 4 failed requests \(error budget max_errors=3"):
        send_all(pool, [request(1), request(2)])
    assert tgi.count(CHAT) == 1 + 4


def test_the_circuit_breaker_opens_when_a_replica_only_fails(tgi):
    pool = dispatcher(tgi.url, breaker_threshold=4)
    send_all(pool, [request(0)])
    tgi.configure(fixed_status=500)
    with pytest.raises(EndpointUnreachableError, match="circuit breaker open") as caught:
        send_all(pool, [request(1)])
    assert caught.value.cause == "circuit_open" and tgi.count(CHAT) == 1 + 4
