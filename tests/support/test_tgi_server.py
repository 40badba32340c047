"""The loopback TGI server every other test talks to, driven by the real huggingface_hub client."""

from __future__ import annotations

import asyncio
import difflib
import itertools
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
from huggingface_hub import (
    AsyncInferenceClient,
    ChatCompletionOutput,
    InferenceClient,
    InferenceTimeoutError,
    constants,
)
from huggingface_hub.errors import HfHubHTTPError
from tgi_server import REFUSALS, TGIServer, light_edit, reply_text

SCRIPT = Path(__file__).with_name("tgi_server.py")
PROMPT = 'Class: sports\nWrite a news article about "tennis" in a "formal" style, between 30 words and 50 words.'


@pytest.fixture(autouse=True)
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    # huggingface_hub refuses even loopback calls in offline mode, and reads the variable once at import.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def server() -> Any:
    with TGIServer() as running:
        yield running


def ask(url: str, prompt: str = PROMPT, *, timeout: float | None = None, **options: Any) -> ChatCompletionOutput:
    client = InferenceClient(base_url=url, timeout=timeout)
    return client.chat_completion([{"role": "user", "content": prompt}], **options)


def text_of(output: ChatCompletionOutput) -> str:
    return output.choices[0].message.content


def bigram_overlap(first: str, second: str) -> float:
    def bigrams(text: str) -> set[tuple[str, str]]:
        words = text.lower().split()
        return set(itertools.pairwise(words))

    return len(bigrams(first) & bigrams(second)) / len(bigrams(first) | bigrams(second))


def test_chat_reply_parses_counts_usage_and_is_recorded(server: TGIServer) -> None:
    output = ask(server.url, seed=1, max_tokens=200)
    assert isinstance(output, ChatCompletionOutput)
    assert (output.object, output.model, output.id) == ("chat.completion", "tgi-test/tiny-chat", "")
    choice = output.choices[0]
    text = choice.message.content
    assert (choice.index, choice.message.role, choice.finish_reason) == (0, "assistant", "stop")
    assert text == reply_text(PROMPT, seed=1)
    assert 30 <= len(text.split()) <= 50
    assert "tennis" in text
    usage = output.usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (len(PROMPT.split()), len(text.split()))
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert (server.served, server.count(), server.count("/v1/chat/completions")) == (1, 1, 1)
    assert server.count("/generate") == 0
    [record] = server.requests
    assert (record["route"], record["method"]) == ("/v1/chat/completions", "POST")
    assert (record["status"], record["fault"]) == (200, None)
    assert record["headers"]["content-type"] == "application/json"
    assert record["body"]["messages"] == [{"role": "user", "content": PROMPT}]
    assert (record["body"]["seed"], record["body"]["max_tokens"]) == (1, 200)


def test_reply_is_a_function_of_prompt_seed_and_temperature(server: TGIServer) -> None:
    first, again, other_seed = (text_of(ask(server.url, seed=seed)) for seed in (7, 7, 8))
    cooler = text_of(ask(server.url, seed=7, temperature=0.5))
    other_prompt = text_of(ask(server.url, PROMPT.replace("tennis", "rowing"), seed=7))
    assert first == again
    assert len({first, other_seed, cooler, other_prompt}) == 4
    # Clearly different, not a light edit: a near-duplicate filter must not fire on normal traffic.
    assert bigram_overlap(first, other_seed) < 0.2
    assert reply_text(PROMPT, seed=7) == first  # no server state involved


@pytest.mark.parametrize(
    ("prompt", "low", "high"),
    [
        (PROMPT, 30, 50),
        ("Write a restaurant review between 100 and 120 words.", 100, 120),
        ("Write a review between 20 words and 10 words.", 10, 20),
        ("Write a haiku about the sea.", 40, 80),
    ],
)
def test_reply_length_follows_the_prompt(prompt: str, low: int, high: int) -> None:
    lengths = [len(reply_text(prompt, seed=seed).split()) for seed in range(60)]
    assert low <= min(lengths) and max(lengths) <= high
    assert len(set(lengths)) > 5


def test_replies_look_like_prose_and_mention_quoted_values() -> None:
    from attrprompt_builder.filters.screening import is_refusal

    for seed in range(200):
        text = reply_text(PROMPT, seed=seed)
        assert not is_refusal(text), text
        assert re.fullmatch(r"[A-Z][\w ,.'\n-]*\.", text), text
    assert all("tennis" in reply_text(PROMPT, seed=seed) for seed in range(20))
    long_reply = reply_text("Write between 200 and 220 words.", seed=3)
    assert "\n\n" in long_reply  # long texts come in paragraphs


def test_max_tokens_truncates_with_finish_reason_length(server: TGIServer) -> None:
    output = ask(server.url, seed=2, max_tokens=5)
    text = text_of(output)
    assert text.split() == reply_text(PROMPT, seed=2).split()[:5]
    assert (output.choices[0].finish_reason, output.usage.completion_tokens) == ("length", 5)


def test_refusal_rate_one_gives_refusals_the_filters_catch(server: TGIServer) -> None:
    from attrprompt_builder.filters.screening import is_refusal

    server.refusal_rate = 1.0
    replies = [text_of(ask(server.url, seed=seed)) for seed in range(8)]
    assert all(reply in REFUSALS and is_refusal(reply) for reply in replies)
    assert len(set(replies)) > 1
    assert all(is_refusal(refusal) for refusal in REFUSALS)
    assert server.kinds == {"refusal": 8}


def test_empty_rate_one_gives_blank_replies(server: TGIServer) -> None:
    server.empty_rate = 1.0
    output = ask(server.url, seed=4)
    assert text_of(output).strip() == ""
    assert output.usage.completion_tokens == 0
    assert server.kinds == {"empty": 1} and server.served == 1


def test_rates_are_deterministic_fractions(server: TGIServer) -> None:
    server.configure(refusal_rate=0.3, empty_rate=0.2)
    first = [text_of(ask(server.url, seed=seed)) for seed in range(60)]
    kinds = dict(server.kinds)
    assert 8 <= kinds["refusal"] <= 28 and 2 <= kinds["empty"] <= 16 and kinds["normal"] > 20
    assert [text_of(ask(server.url, seed=seed)) for seed in range(60)] == first


def test_duplicates_are_light_edits_of_an_earlier_reply_of_the_same_class(server: TGIServer) -> None:
    original = text_of(ask(server.url, 'Class: sports\nWrite about "tennis".', seed=1))
    server.duplicate_rate = 1.0
    near = text_of(ask(server.url, 'Class: sports\nWrite about "golf".', seed=2))
    assert near != original
    assert difflib.SequenceMatcher(None, near.split(), original.split()).ratio() > 0.9
    # No earlier reply for this class: a normal reply instead.
    fresh = text_of(ask(server.url, 'Class: politics\nWrite about "elections".', seed=3))
    assert fresh == reply_text('Class: politics\nWrite about "elections".', seed=3)
    assert server.kinds == {"normal": 2, "duplicate": 1}


def test_light_edit_changes_a_little() -> None:
    import random

    for seed in range(50):
        text = reply_text(PROMPT, seed=seed)
        edited = light_edit(text, random.Random(seed))
        assert edited.split() != text.split()
        assert difflib.SequenceMatcher(None, edited.split(), text.split()).ratio() > 0.9


@pytest.mark.parametrize("kind", ["424", "500", "502", "503", "504"])
def test_status_faults_raise_hf_http_errors_with_a_tgi_body(server: TGIServer, kind: str) -> None:
    server.faults = {kind: 1.0}
    with pytest.raises(HfHubHTTPError) as caught:
        ask(server.url, seed=1)
    response = caught.value.response
    assert response.status_code == int(kind)
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "error_type"} and body["error"] and body["error_type"]
    assert (server.faulted, server.served, server.requests[0]["fault"]) == ({kind: 1}, 0, kind)


def test_429_carries_retry_after(server: TGIServer) -> None:
    server.faults = {"429": 1.0}
    with pytest.raises(HfHubHTTPError) as caught:
        ask(server.url)
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["retry-after"] == "0"
    assert caught.value.response.json() == {"error": "Model is overloaded", "error_type": "overloaded"}
    server.retry_after = 2
    with pytest.raises(HfHubHTTPError) as caught:
        ask(server.url)
    assert caught.value.response.headers["retry-after"] == "2"


def test_drop_closes_the_socket_and_the_client_recovers(server: TGIServer) -> None:
    client = InferenceClient(base_url=server.url)
    messages = [{"role": "user", "content": PROMPT}]
    server.faults = {"drop": 1.0}
    with pytest.raises(httpx2.TransportError):
        client.chat_completion(messages, seed=1)
    server.faults = {}
    assert text_of(client.chat_completion(messages, seed=1)) == reply_text(PROMPT, seed=1)
    assert server.faulted == {"drop": 1} and server.served == 1
    assert [record["status"] for record in server.requests] == [None, 200]


def test_garbage_is_an_html_200_that_fails_to_parse(server: TGIServer) -> None:
    server.faults = {"garbage": 1.0}
    with pytest.raises(ValueError):
        ask(server.url)
    assert server.faulted == {"garbage": 1} and server.served == 0
    response = httpx2.post(f"{server.url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 200 and response.headers["content-type"] == "text/html"


def test_slow_answers_late_but_answers(server: TGIServer) -> None:
    server.configure(faults={"slow": 1.0}, slow_seconds=5.0)
    with pytest.raises(InferenceTimeoutError):
        ask(server.url, timeout=0.3)
    server.slow_seconds = 0.01
    assert text_of(ask(server.url, seed=3)) == reply_text(PROMPT, seed=3)
    assert server.faulted == {"slow": 2}


def test_latency_delays_successful_replies(server: TGIServer) -> None:
    server.latency = 5.0
    with pytest.raises(InferenceTimeoutError):
        ask(server.url, timeout=0.3)
    server.latency = ("lognormal", 5.0, 0.0)
    with pytest.raises(InferenceTimeoutError):
        ask(server.url, timeout=0.3)
    server.latency = ("lognormal", 0.001, 0.5)
    assert text_of(ask(server.url, seed=1)) == reply_text(PROMPT, seed=1)


def test_faults_are_drawn_per_request_so_a_retry_can_succeed(server: TGIServer) -> None:
    server.faults = {"503": 0.5}
    texts, failures = [], 0
    for _ in range(30):
        try:
            texts.append(text_of(ask(server.url, seed=5)))
        except HfHubHTTPError as err:
            assert err.response.status_code == 503
            failures += 1
    assert 0 < failures < 30 and set(texts) == {reply_text(PROMPT, seed=5)}
    assert (server.faulted, server.served) == ({"503": failures}, 30 - failures)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, {"error": "Authorization header is correct, but the token seems invalid", "error_type": "unauthorized"}),
        (404, {"error": "Model not found", "error_type": "not_found"}),
        (
            422,
            {
                "error": "Input validation error: `inputs` must have less than 4096 tokens. Given: 4100",
                "error_type": "validation",
            },
        ),
    ],
)
def test_fixed_status_answers_every_generation_request(server: TGIServer, status: int, body: dict[str, str]) -> None:
    server.fixed_status = status
    with pytest.raises(HfHubHTTPError) as caught:
        ask(server.url)
    assert caught.value.response.status_code == status
    assert caught.value.response.headers["content-type"] == "application/json"
    assert caught.value.response.json() == body
    assert httpx2.post(f"{server.url}/generate", json={"inputs": "hi"}).status_code == status
    assert httpx2.get(f"{server.url}/health").status_code == 200
    server.fixed_status = None
    assert text_of(ask(server.url, seed=1)) == reply_text(PROMPT, seed=1)


def test_generate_info_and_health_routes(server: TGIServer) -> None:
    tgi = InferenceClient(model=server.url, provider="hf-inference")
    output = tgi.text_generation(PROMPT, details=True, max_new_tokens=5, seed=3)  # TGI's compat route "/"
    assert output.generated_text.split() == reply_text(PROMPT, seed=3).split()[:5]
    assert (output.details.finish_reason, output.details.generated_tokens, output.details.seed) == ("length", 5, 3)
    native = httpx2.post(f"{server.url}/generate", json={"inputs": PROMPT, "parameters": {"seed": 3}}).json()
    assert native["generated_text"] == reply_text(PROMPT, seed=3)
    assert native["details"]["finish_reason"] == "eos_token"
    info = tgi.get_endpoint_info()
    assert info["model_id"] == "tgi-test/tiny-chat" and info["max_total_tokens"] == 8192 and info["version"]
    assert httpx2.get(server.url).json() == info
    assert tgi.health_check()
    health = httpx2.get(f"{server.url}/health")
    assert (health.status_code, health.content) == (200, b"")
    assert [record["route"] for record in server.requests] == ["/", "/generate", "/info", "/", "/health", "/health"]
    assert server.served == 2


@pytest.mark.parametrize(
    ("method", "route", "payload", "status", "error_type"),
    [
        ("GET", "/nowhere", None, 404, "not_found"),
        ("GET", "/generate", None, 405, "method_not_allowed"),
        ("POST", "/v1/chat/completions", b"{not json", 422, "validation"),
        ("POST", "/v1/chat/completions", b'{"model": "x"}', 422, "validation"),
        ("POST", "/generate", b'{"inputs": "   "}', 422, "validation"),
        ("POST", "/generate", b'{"inputs": "hi", "parameters": {"max_new_tokens": 0}}', 422, "validation"),
        ("POST", "/generate", b'{"inputs": "hi", "parameters": {"max_new_tokens": 9000}}', 422, "validation"),
    ],
)
def test_bad_requests_get_tgi_error_bodies(
    server: TGIServer, method: str, route: str, payload: bytes | None, status: int, error_type: str
) -> None:
    response = httpx2.request(method, server.url + route, content=payload)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error_type"] == error_type and response.json()["error"]
    assert server.served == 0


SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["world", "sports"]},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["label", "tags"],
}


def test_a_response_format_gets_json_matching_its_schema(server: TGIServer) -> None:
    # huggingface_hub sends OpenAI's json_schema form to an endpoint URL as TGI's {"type": "json_object", "value": ...}
    openai_form = {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True}}
    answer = json.loads(text_of(ask(server.url, response_format=openai_form)))
    assert answer["label"] in ("world", "sports") and isinstance(answer["tags"], list) and answer["tags"]
    assert server.requests[-1]["body"]["response_format"] == {"type": "json_object", "value": SCHEMA}
    raw = httpx2.post(
        f"{server.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json", "value": SCHEMA}},
    )
    assert set(json.loads(raw.json()["choices"][0]["message"]["content"])) == {"label", "tags"}
    assert server.kinds["json"] == 2


def test_without_grammar_support_a_response_format_is_refused_as_tgi_does(server: TGIServer) -> None:
    server.grammar_support = False
    response = httpx2.post(
        f"{server.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object", "value": SCHEMA}},
    )
    assert response.status_code == 422
    assert response.json() == {"error": "Input validation error: grammar is not supported", "error_type": "validation"}
    assert text_of(ask(server.url))  # without one it answers
    unknown = httpx2.post(
        f"{server.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}},
    )
    assert unknown.status_code == 422 and "unknown variant `xml`" in unknown.json()["error"]


def test_async_client_with_32_concurrent_requests(server: TGIServer) -> None:
    async def run() -> list[str]:
        client = AsyncInferenceClient(base_url=server.url)
        try:
            outputs = await asyncio.gather(
                *(client.chat_completion([{"role": "user", "content": PROMPT}], seed=seed) for seed in range(32))
            )
        finally:
            await client.close()
        return [text_of(output) for output in outputs]

    assert asyncio.run(run()) == [reply_text(PROMPT, seed=seed) for seed in range(32)]
    assert server.served == 32


def test_each_request_records_how_many_were_in_flight_when_it_arrived(server: TGIServer) -> None:
    server.latency = 0.5  # long enough for all eight to arrive before the first is answered

    async def together(count: int) -> None:
        client = AsyncInferenceClient(base_url=server.url)
        try:
            await asyncio.gather(*(client.chat_completion([{"role": "user", "content": PROMPT}], seed=s) for s in range(count)))
        finally:
            await client.close()

    asyncio.run(together(8))
    assert sorted(r["in_flight"] for r in server.requests) == list(range(1, 9))
    server.latency = None
    server.fail_next(1, status=503)
    with pytest.raises(HfHubHTTPError):
        ask(server.url)
    server.faults = {"drop": 1.0}
    with pytest.raises(httpx2.TransportError):
        ask(server.url)
    server.faults = {}
    for seed in range(3):
        ask(server.url, seed=seed)
    # One after another: answered, refused or dropped, a request stops counting once it is over.
    assert [r["in_flight"] for r in server.requests[8:]] == [1] * 5
    arrivals = [r["arrived"] for r in server.requests]
    assert min(arrivals[8:]) - min(arrivals[:8]) >= 0.5  # the next one came once the eight were answered
    server.requests.clear()
    assert httpx2.get(f"{server.url}/health").status_code == 200
    assert server.requests[0]["in_flight"] is None  # only generation requests are counted


def test_fail_next_answers_a_burst_then_the_knobs_again(server: TGIServer) -> None:
    server.configure(retry_after=1.5)
    server.fail_next(3)
    statuses = []
    for _ in range(4):
        try:
            ask(server.url, seed=1)
            statuses.append(200)
        except HfHubHTTPError as err:
            statuses.append(err.response.status_code)
            assert err.response.headers["retry-after"] == "1.5"
    assert statuses == [429, 429, 429, 200]
    assert server.faulted == {"429": 3} and server.served == 1
    server.fail_next(1, status=503)
    with pytest.raises(HfHubHTTPError, match="503"):
        ask(server.url)
    with pytest.raises(ValueError, match="fixed_status=200"):
        server.fail_next(1, status=200)
    with pytest.raises(ValueError, match="count=-1"):
        server.fail_next(-1)


def test_bench_mode_keeps_counters_only_and_reset_clears_them() -> None:
    with TGIServer(record_bodies=False) as running:
        ask(running.url, seed=1)
        ask(running.url, seed=2)
        assert running.requests == [] and (running.count(), running.served) == (2, 2)
        running.reset()
        assert (running.count(), running.served, running.requests) == (0, 0, [])
        assert running.stats() == {"served": 0, "requests": 0, "faulted": {}, "kinds": {}}


def test_stop_closes_keep_alive_connections() -> None:
    running = TGIServer().start()
    client = InferenceClient(base_url=running.url)
    client.chat_completion([{"role": "user", "content": PROMPT}], seed=1)  # leaves a pooled connection open
    running.stop()
    with pytest.raises(httpx2.TransportError):
        client.chat_completion([{"role": "user", "content": PROMPT}], seed=1)
    with pytest.raises(RuntimeError, match="start"):
        _ = running.url


@pytest.mark.parametrize(
    ("knobs", "fragment"),
    [
        ({"refusal_rate": 1.5}, "refusal_rate=1.5"),
        ({"faults": {"418": 0.1}}, "unknown kind '418'"),
        ({"faults": {"429": 0.7, "503": 0.6}}, "add up to 1.3"),
        ({"latency": ("normal", 1.0, 0.1)}, "latency="),
        ({"fixed_status": 200}, "fixed_status=200"),
        ({"slow_seconds": -1}, "slow_seconds=-1"),
    ],
)
def test_bad_knobs_are_refused_with_one_line(knobs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)) as caught:
        TGIServer(**knobs)
    assert "\n" not in str(caught.value)
    running = TGIServer()
    with pytest.raises(ValueError, match=re.escape(fragment)):
        running.configure(**knobs)
    with pytest.raises(TypeError, match="unknown knob 'bogus'"):
        running.configure(bogus=1)


def read_stats(path: Path, *, requests: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10  # the server writes after the reply leaves, so the last write may lag
    while True:
        stats = json.loads(path.read_text())
        if stats["requests"] >= requests or time.monotonic() > deadline:
            return stats
        time.sleep(0.02)


def test_script_mode_prints_its_url_and_counts_paid_replies(tmp_path: Path) -> None:
    stats_file = tmp_path / "stats.json"
    command = [sys.executable, str(SCRIPT), "--port", "0", "--faults", "429=0.5", "--stats-file", str(stats_file)]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert re.fullmatch(r"URL http://127\.0\.0\.1:\d+\n", line), line
        url = line.split()[1]
        served = 0
        for seed in range(12):
            try:
                assert text_of(ask(url, seed=seed)) == reply_text(PROMPT, seed=seed)
                served += 1
            except HfHubHTTPError as err:
                assert err.response.status_code == 429
        assert 0 < served < 12
        stats = read_stats(stats_file, requests=12)
        assert (stats["served"], stats["requests"], stats["faulted"]) == (served, 12, {"429": 12 - served})
        assert stats["kinds"] == {"normal": served}
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0 and out == "" and err == ""


def test_script_mode_fixed_status_and_bad_flags(tmp_path: Path) -> None:
    command = [sys.executable, str(SCRIPT), "--port", "0", "--fixed-status", "401"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().split()[1]
        with pytest.raises(HfHubHTTPError) as caught:
            ask(url)
        assert caught.value.response.json()["error_type"] == "unauthorized"
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
    assert process.returncode == 0
    bad_flag = [sys.executable, str(SCRIPT), "--faults", "429=lots"]
    bad = subprocess.run(bad_flag, capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert bad.returncode == 2 and "--faults: '429=lots' is not KIND=RATE" in bad.stderr
    assert "Traceback" not in bad.stderr and bad.stdout == ""
