"""Never lose or re-pay a request: faults, kill -9, Ctrl-C, permanent errors, budgets, tokens."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import datasets
import pytest

from attrprompt_builder.client.journal import Journal
from attrprompt_builder.client.resilience import (
    AdaptiveLimiter,
    CircuitBreaker,
    RetryPolicy,
)
from attrprompt_builder.errors import (
    BudgetExceededError,
    EndpointPermanentError,
    EndpointUnreachableError,
    QuotaNotMetError,
)
from attrprompt_builder.pipeline import build_dataset, make_builder

NO_DEDUP = {"dedup_threshold": None}
CHAT = "/v1/chat/completions"


def build(url: str, preset: str = "agnews", **kwargs) -> tuple[datasets.Dataset, object]:
    builder = make_builder(preset, endpoint=url, **{**NO_DEDUP, **kwargs})
    return build_dataset(builder), builder


def per_class_counts(ds: datasets.Dataset) -> list[int]:
    return [ds["label"].count(i) for i in range(len(ds.features["label"].names))]


# -- pure parts ------------------------------------------------------------------------------
def test_retry_delays_grow_with_full_jitter_and_honour_retry_after():
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0)
    rng = random.Random(0)
    delays = [[policy.delay(attempt, rng=rng) for _ in range(200)] for attempt in (1, 3, 6)]
    assert all(0 <= d <= 0.5 for d in delays[0]) and all(0 <= d <= 2.0 for d in delays[1])
    assert all(0 <= d <= 8.0 for d in delays[2]) and max(delays[2]) > 4.0  # capped, still jittered
    assert policy.delay(1, retry_after=3.0, rng=rng) >= 3.0
    assert policy.delay(1, retry_after=1e6, rng=rng) == policy.max_retry_after


def test_aimd_halves_once_per_burst_and_grows_back_additively():
    limiter = AdaptiveLimiter(16, cooldown=60.0)
    limiter.on_overload()
    limiter.on_overload()  # same burst: counted once
    assert limiter.limit == 8.0
    for _ in range(8):
        limiter.on_success()
    assert 8.9 < limiter.limit < 9.1  # about +1 per window of `limit` successes
    for _ in range(1000):
        limiter.on_success()
    assert limiter.limit == 16.0


def test_circuit_breaker_opens_after_consecutive_failures_only():
    breaker = CircuitBreaker(threshold=3)
    for success in (False, False, True, False, False):
        breaker.record(success=success)
    assert not breaker.open
    breaker.record(success=False)
    assert breaker.open


# -- against the loopback server ---------------------------------------------------------------
@pytest.mark.slow
def test_acceptance_faults_and_refusals_still_give_exact_quotas(tgi):
    tgi.configure(
        faults={"429": 0.06, "503": 0.06, "500": 0.06, "garbage": 0.05, "slow": 0.03, "drop": 0.04},
        refusal_rate=0.1,
        slow_seconds=2.0,
    )
    ds, builder = build(tgi.url, samples_per_class=30, request_timeout=1.0, max_concurrency=16)
    assert per_class_counts(ds) == [30, 30, 30, 30]
    assert not any(t.lower().startswith(("i'm sorry", "i apologize", "as an ai")) for t in ds["text"])
    stats = builder.stats
    assert stats.kept == 120 and stats.dropped["refusal"] > 0
    assert {"http_429", "http_503", "http_500", "bad_body", "timeout", "connection"} <= set(stats.retries)
    # every reply that reached us was counted once; "slow" ones may be generated after we timed out
    assert stats.sent <= tgi.served <= stats.sent + tgi.faulted["slow"]


def test_speculative_draws_beyond_need_are_bounded_per_class(tgi):
    """One class is mostly refused, so the observed keep rate is low for all: draws run ahead of the
    quotas, but no class over-pays by more than the cap, even the classes that never drop a reply."""
    import hashlib

    from attrprompt_builder.generation.quotas import SPECULATIVE_DRAWS_PER_CLASS

    compose = tgi.compose

    def world_mostly_refused(request, behaviour):
        if " on world " in request.prompt.splitlines()[0] and hashlib.sha256(request.prompt.encode()).digest()[0] < 230:
            return "I'm sorry, but I can't help with that request.", "refusal"
        return compose(request, behaviour)

    tgi.compose = world_mostly_refused
    tgi.configure(latency=("lognormal", 0.02, 0.5))
    ds, builder = build(tgi.url, samples_per_class=40, max_concurrency=16, max_draws_per_class=1000)
    stats = builder.stats
    assert per_class_counts(ds) == [40, 40, 40, 40]
    assert stats.dropped["refusal"] > 200
    unused = stats.sent - stats.kept - sum(stats.dropped.values())
    assert 0 <= unused <= 4 * SPECULATIVE_DRAWS_PER_CLASS


@pytest.mark.parametrize(
    ("fault", "cause"),
    [
        ("429", "http_429"),
        ("503", "http_503"),
        ("502", "http_502"),
        ("504", "http_504"),
        ("424", "http_424"),
        ("garbage", "bad_body"),
        ("drop", "connection"),
    ],
)
def test_each_transient_fault_is_retried(tgi, fault, cause):
    tgi.configure(faults={fault: 0.5})
    ds, builder = build(tgi.url, preset="sst2", samples_per_class=4)
    assert ds.num_rows == 8
    assert builder.stats.retries[cause] > 0
    assert tgi.faulted[fault] > 0


def test_slow_replies_time_out_and_are_retried(tgi):
    tgi.configure(faults={"slow": 0.4}, slow_seconds=2.0)
    ds, builder = build(tgi.url, preset="sst2", samples_per_class=3, request_timeout=0.5)
    assert ds.num_rows == 6 and builder.stats.retries["timeout"] > 0


def test_request_timeout_zero_waits_for_a_slow_reply(tgi):
    """0 means no limit (the option's help says so): every reply takes 0.6 s and none is cut off and retried."""
    tgi.configure(faults={"slow": 1.0}, slow_seconds=0.6)
    ds, builder = build(tgi.url, preset="sst2", samples_per_class=2, request_timeout=0.0)
    assert ds.num_rows == 4 and builder.stats.retries["timeout"] == 0 and tgi.faulted["slow"] == 4


def test_overload_shrinks_concurrency(tgi):
    """A burst of 429s makes the builder keep fewer requests in flight than before it (AIMD halves the
    limit); without adaptive concurrency every freed slot is refilled at once and the count stays at 16."""
    tgi.configure(latency=0.1)  # long enough for 16 requests to pile up at the server
    compose = tgi.compose
    once = threading.Lock()

    def burst_after_60(request, behaviour):
        if tgi.served >= 60 and once.acquire(blocking=False):
            tgi.fail_next(16)
        return compose(request, behaviour)

    tgi.compose = burst_after_60
    ds, builder = build(tgi.url, preset="sst2", samples_per_class=60, max_concurrency=16)
    assert ds.num_rows == 120 and builder.stats.retries["http_429"] == tgi.faulted["429"] == 16
    chat = [r for r in tgi.requests if r["route"] == CHAT]
    statuses = [r["status"] for r in chat]
    first, last = statuses.index(429), len(statuses) - 1 - statuses[::-1].index(429)
    before = [r["in_flight"] for r in chat[first - 30 : first]]
    after = [r["in_flight"] for r in chat[last + 1 : last + 25]]
    assert max(before) == 16
    assert max(after) < max(before), (before, after)


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (401, "rejected the token (401)"),
        (403, "(403)"),
        (404, "404 Not Found"),
        (422, "(422)"),
        (400, "(400)"),
        (501, "does not implement chat completions (501)"),  # a plain web server, not an LLM endpoint
    ],
)
def test_permanent_errors_stop_at_once_with_one_request(tgi, status, words):
    tgi.configure(fixed_status=status)
    started = time.monotonic()
    with pytest.raises(EndpointPermanentError) as info:
        build(tgi.url, samples_per_class=25)
    assert words in str(info.value) and "\n" not in str(info.value)
    assert time.monotonic() - started < 10
    assert tgi.count(CHAT) == 1  # the first request probes alone; nothing else was sent


def test_unreachable_endpoint_is_a_clear_error():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(EndpointUnreachableError, match="cannot connect to the endpoint http://127.0.0.1"):
        build(f"http://127.0.0.1:{port}", samples_per_class=2)
    assert time.monotonic() - started < 15


def test_endpoint_that_never_succeeds_stops_instead_of_retrying_forever(tgi):
    tgi.configure(faults={"500": 1.0})
    with pytest.raises(EndpointUnreachableError, match=r"no successful reply after 3 attempts; last error: .*\(500\)"):
        build(tgi.url, samples_per_class=2, max_attempts=3)
    assert tgi.count(CHAT) == 3


def test_attempt_cap_names_the_class_and_the_reasons(tgi):
    tgi.configure(refusal_rate=1.0)
    with pytest.raises(QuotaNotMetError, match=r"class 'negative': only 0 of 2 rows kept after 5 draws \(refusal: 5\)"):
        build(tgi.url, preset="sst2", samples_per_class=2, max_draws_per_class=5)


def test_budget_stops_cleanly_and_the_rerun_pays_only_the_rest(tgi, tmp_path):
    journal_dir = str(tmp_path / "journal")
    with pytest.raises(
        BudgetExceededError, match=r"stopped before exceeding the budget: spent 10 of max_requests 10; 10 replies paid"
    ):
        build(tgi.url, samples_per_class=25, max_requests=10, journal_dir=journal_dir, max_concurrency=4)
    assert tgi.served == 10
    ds, builder = build(tgi.url, samples_per_class=25, journal_dir=journal_dir)
    assert ds.num_rows == 100 and tgi.served == 100
    assert builder.stats.reused == 10 and builder.stats.sent == 90


def test_an_exception_mid_build_keeps_the_journal(tgi, tmp_path):
    journal_dir = str(tmp_path / "journal")
    tgi.configure(faults={"500": 0.0})
    builder = make_builder(
        "agnews", endpoint=tgi.url, samples_per_class=10, journal_dir=journal_dir, max_concurrency=2, **NO_DEDUP
    )
    original = tgi.compose

    def fail_after_15(request, behaviour):  # the endpoint starts rejecting the token mid-build
        if tgi.served >= 15:
            tgi.configure(fixed_status=401)
        return original(request, behaviour)

    tgi.compose = fail_after_15
    with pytest.raises(EndpointPermanentError):
        build_dataset(builder)
    paid = tgi.served
    assert 15 <= paid < 40
    assert len(Journal(builder.journal_path)) == paid
    tgi.compose = original
    tgi.configure(fixed_status=None)
    ds, _ = build(tgi.url, samples_per_class=10, journal_dir=journal_dir)
    assert ds.num_rows == 40 and tgi.served == 40  # only the missing replies were paid


def test_hf_token_never_reaches_a_users_endpoint(tgi, tmp_path, monkeypatch):
    secret = "hf_SECRETdoNotLeak1234"
    monkeypatch.setenv("HF_TOKEN", secret)
    out = tmp_path / "out"
    from attrprompt_builder.pipeline import generate_folder

    generate_folder("sst2", out, endpoint=tgi.url, samples_per_class=2, journal_dir=str(tmp_path / "j"), card=False, **NO_DEDUP)
    assert tgi.count(CHAT) == 4
    assert all("authorization" not in r["headers"] for r in tgi.requests)
    assert_written_nowhere(secret, tmp_path, Path(datasets.config.HF_DATASETS_CACHE))


def test_an_explicit_token_is_sent_and_stored_nowhere(tgi, tmp_path):
    secret = "sk-user-endpoint-key-42"
    journal_dir = tmp_path / "j"
    builder = make_builder("sst2", endpoint=tgi.url, samples_per_class=2, journal_dir=str(journal_dir), token=secret, **NO_DEDUP)
    build_dataset(builder)
    assert {r["headers"].get("authorization") for r in tgi.requests} == {f"Bearer {secret}"}
    assert_written_nowhere(secret, journal_dir, Path(datasets.config.HF_DATASETS_CACHE))


def assert_written_nowhere(secret: str, *folders: Path) -> None:
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path


# -- crash and interrupt of a real CLI process -----------------------------------------------------
def _cli(url: str, tmp_path: Path, *extra: str, samples: int = 100) -> subprocess.Popen:
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "attrprompt_builder.cli", "generate", "agnews", "--endpoint", url,
         "--samples-per-class", str(samples), "--max-concurrency", "8", "--dedup-threshold", "off",
         "--journal-dir", str(tmp_path / "journal"), "--output", str(tmp_path / "out"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def _wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _rerun_pays_only_the_rest(tgi, tmp_path: Path, samples: int = 100) -> None:
    """The same command again finishes the 4 classes' rows, paying at most the 8 replies lost in flight."""
    rerun = _cli(tgi.url, tmp_path, samples=samples)
    _, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    rows = 4 * samples
    assert rows <= tgi.served <= rows + 8
    assert datasets.load_dataset(str(tmp_path / "out"), split="train").num_rows == rows


@pytest.mark.slow
def test_kill_9_then_rerun_pays_at_most_the_in_flight_requests(tgi, tmp_path):
    tgi.configure(latency=("lognormal", 0.05, 0.5))
    process = _cli(tgi.url, tmp_path)
    _wait_for(lambda: tgi.served >= 200 or process.poll() is not None)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    _rerun_pays_only_the_rest(tgi, tmp_path)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tgi, tmp_path):
    """Ctrl-C while every request in flight hangs (and the next one waits for a free slot): the process
    exits within seconds, with every reply that arrived journaled, so the rerun pays only the rest."""
    compose, release = tgi.compose, threading.Event()
    hanging = []

    def hang_after_40(request, behaviour):
        if tgi.served >= 40 and not release.is_set():
            hanging.append(request)
            release.wait(60)
        return compose(request, behaviour)

    tgi.compose = hang_after_40
    process = _cli(tgi.url, tmp_path, samples=25)
    _wait_for(lambda: len(hanging) >= 8 or process.poll() is not None)  # max_concurrency requests stuck
    interrupted = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - interrupted < 4
    assert process.returncode == 130
    assert "Traceback" not in stderr
    resume = [line for line in stderr.splitlines() if line.startswith("interrupted:")]
    assert len(resume) == 1 and "run the same command again to resume" in resume[0]
    tgi.compose = compose
    release.set()
    _rerun_pays_only_the_rest(tgi, tmp_path, samples=25)


@pytest.mark.slow
def test_endpoint_pool_spreads_requests_and_survives_a_replica_dying(tmp_path):
    import threading

    from tgi_server import TGIServer

    with TGIServer(latency=0.02) as first, TGIServer(latency=0.02) as second:
        builder = make_builder(
            "agnews", endpoint=[first.url, second.url], samples_per_class=30, max_concurrency=4,
            journal_dir=str(tmp_path / "j"), **NO_DEDUP,
        )  # fmt: skip
        compose = second.compose
        dying = threading.Event()

        def die_after_20(request, behaviour):  # the replica goes away mid-build
            if second.served >= 20 and not dying.is_set():
                dying.set()
                threading.Thread(target=second.stop, daemon=True).start()
            return compose(request, behaviour)

        second.compose = die_after_20
        ds = build_dataset(builder)
    assert ds.num_rows == 120 and per_class_counts(ds) == [30, 30, 30, 30]
    assert dying.is_set() and first.served > second.served >= 20
    stats = builder.stats
    assert stats.sent == 120  # each sample was answered once: failed-over requests were not re-paid
    assert first.served + second.served <= 120 + 4  # at most the in-flight requests of the dead replica


def test_hf_inference_providers_get_the_hf_token(tgi, monkeypatch):
    """The other half of the token rule: HF-hosted inference does receive HF_TOKEN."""
    from huggingface_hub.inference._providers import CONVERSATIONAL_AUTO_ROUTER

    monkeypatch.setattr(CONVERSATIONAL_AUTO_ROUTER, "base_url", tgi.url)  # the router, on loopback
    monkeypatch.setenv("HF_TOKEN", "hf_providersToken42")
    ds = datasets.load_dataset(
        "attrprompt", "sst2", provider="auto", model="org/chat-model", samples_per_class=1, split="train", **NO_DEDUP
    )
    assert ds.num_rows == 2
    requests = [r for r in tgi.requests if r["route"] == CHAT]
    assert {r["headers"].get("authorization") for r in requests} == {"Bearer hf_providersToken42"}
    assert {r["body"]["model"] for r in requests} == {"org/chat-model"}
