"""A build starts on any replica that answers, and says what it is waiting for while none has.

Against real sockets: loopback TGI servers, a port nobody listens on, and a server that accepts
connections and never answers (the worst case: no error arrives, only silence).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from attrprompt_builder.client.dispatch import Dispatcher
from attrprompt_builder.client.endpoint import EndpointBackend
from attrprompt_builder.client.resilience import RetryPolicy
from attrprompt_builder.client.types import ChatRequest, SamplingParams
from attrprompt_builder.errors import EndpointUnreachableError
from attrprompt_builder.generation.progress import BuildProgress
from attrprompt_builder.generation.stats import BuildStats
from attrprompt_builder.pipeline import build_dataset, make_builder

QUICK = RetryPolicy(base_delay=0.01, max_delay=0.05)
NO_DEDUP = {"dedup_threshold": None}


class SilentServer:
    """Accepts every connection and never sends a byte: a wedged server behind a live port."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:  # closed
                return
            self.connections.append(connection)

    def close(self) -> None:
        self._socket.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()


def unused_url() -> str:
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def request(i: int) -> ChatRequest:
    messages = ({"role": "user", "content": f"Write a short news article about topic {i}."},)
    return ChatRequest(messages=messages, params=SamplingParams(max_new_tokens=16), seed=i)


def send_all(pool: Dispatcher, count: int) -> list:
    async def run() -> list:
        try:
            return list(await asyncio.gather(*(pool.send(request(i)) for i in range(count))))
        finally:
            for lane in pool.lanes:
                await lane.backend.aclose()

    return asyncio.run(run())


def pool_of(*urls: str, first_timeout: float | None = None, events: list[str] | None = None) -> Dispatcher:
    backends = [EndpointBackend(url, timeout=30.0) for url in urls]
    return Dispatcher(
        backends,
        max_concurrency=4,
        policy=QUICK,
        max_errors=100,
        first_timeout=first_timeout,
        on_event=None if events is None else events.append,
    )


# -- the dispatcher ---------------------------------------------------------------------------------
@pytest.mark.parametrize("healthy_at", [0, 1, 3])
def test_a_pool_starts_on_its_one_live_replica_wherever_it_is_listed(tgi, healthy_at):
    """More dead replicas than the probe's three connection attempts: each replica gets its turn."""
    urls = [unused_url(), unused_url(), unused_url()]
    urls.insert(healthy_at, tgi.url)
    replies = send_all(pool_of(*urls), 12)
    assert all(reply is not None for reply in replies) and tgi.served == 12


def test_a_replica_that_accepts_and_never_answers_costs_the_first_timeout_only(tgi, silent):
    started = time.monotonic()
    replies = send_all(pool_of(silent.url, tgi.url, first_timeout=0.5), 12)
    assert all(reply is not None for reply in replies) and tgi.served == 12
    assert time.monotonic() - started < 3
    # one request at a time until it answers: the silent replica never held more than one
    assert len(silent.connections) <= 2


def test_a_pool_where_nothing_answers_fails_with_one_line_naming_every_replica(silent):
    dead = unused_url()
    events: list[str] = []
    with pytest.raises(EndpointUnreachableError) as caught:
        send_all(pool_of(dead, silent.url, first_timeout=0.3, events=events), 3)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("none of the 2 endpoints answered")
    assert f"cannot connect to the endpoint {dead}" in message
    assert f"the endpoint {silent.url} sent no first reply within 0.3 s (first_request_timeout)" in message
    assert len(events) == 3 and all(e.startswith("no successful reply yet (attempt ") for e in events)


# -- whole builds -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "order",
    [("dead", "healthy"), ("healthy", "dead"), ("dead", "dead", "dead", "healthy"), ("dead", "healthy", "dead", "dead")],
)
def test_a_build_starts_whatever_the_order_of_dead_and_healthy_replicas(tgi, tmp_path, order):
    urls = [tgi.url if kind == "healthy" else unused_url() for kind in order]
    builder = make_builder("sst2", endpoint=urls, samples_per_class=3, journal_dir=str(tmp_path), **NO_DEDUP)
    assert build_dataset(builder).num_rows == 6 and tgi.served == 6


@pytest.mark.slow
def test_a_build_gets_its_rows_from_the_healthy_replica_within_seconds(tgi, silent, tmp_path):
    """Seconds, not request_timeout: the first request gives up on the silent replica after
    first_request_timeout (the model-identity query before it, after at most 5 s)."""
    builder = make_builder(
        "sst2", endpoint=[silent.url, tgi.url], samples_per_class=4, request_timeout=30.0,
        first_request_timeout=0.5, journal_dir=str(tmp_path), **NO_DEDUP,
    )  # fmt: skip
    started = time.monotonic()
    assert build_dataset(builder).num_rows == 8 and tgi.served == 8
    assert time.monotonic() - started < 12  # was request_timeout (30 s) per request that went to it


@pytest.mark.slow
def test_a_silent_endpoint_says_what_it_waits_for_and_stops_in_seconds(silent, tmp_path, capsys):
    """The first reply gets first_request_timeout, not request_timeout times every attempt, and each
    failed attempt is a line on stderr while the bar still shows 0 rows."""
    builder = make_builder(
        "sst2", endpoint=silent.url, samples_per_class=4, request_timeout=10.0, first_request_timeout=0.5,
        journal_dir=str(tmp_path), **NO_DEDUP,
    )  # fmt: skip
    started = time.monotonic()
    with pytest.raises(EndpointUnreachableError, match=r"sent no first reply within 0.5 s \(first_request_timeout\)"):
        build_dataset(builder)
    assert time.monotonic() - started < 12  # 3 attempts of 0.5 s after the identity query; was 6 x 10 s
    err = capsys.readouterr().err
    waiting = [line for line in err.splitlines() if "no successful reply yet" in line]
    assert len(waiting) == 3 and "attempt 1" in waiting[0] and silent.url in waiting[0]
    assert "status=retrying after timeout" in err  # and the bar says so between attempts


def test_the_bar_shows_how_long_a_reply_is_overdue(tgi, capsys):
    pool = pool_of(tgi.url)
    progress = BuildProgress(total=8, desc="build", priced=False)
    pool.lanes[0].limiter.in_flight = 1  # one request out ...
    pool.last_heard -= 12  # ... and nothing heard for 12 s
    progress.update_counts(BuildStats(), pool, force=True)
    progress.close()
    assert "status=waiting 12s for a first reply" in capsys.readouterr().err
