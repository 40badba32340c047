"""TransformersBackend against a real (tiny, random) GPT-2 chat model saved to a temp folder."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from tiny_model import build_tiny_chat_model

from attrprompt_builder.client.transformers_backend import TransformersBackend
from attrprompt_builder.client.types import (
    Backend,
    ChatReply,
    ChatRequest,
    SamplingParams,
)
from attrprompt_builder.errors import (
    ConfigError,
    EndpointPermanentError,
    MissingDependencyError,
)

pytestmark = pytest.mark.usefixtures("offline_models")  # conftest: HF_HUB_OFFLINE=1, also in hub constants

TOPICS = ("sport", "a film", "the bank", "a storm", "food", "music", "a phone", "rain", "voters", "the sea")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-chat"))


@pytest.fixture(scope="session")
def no_template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-base"), chat_template=False)


def chat(topic: str, *, seed: int = 0, temperature: float = 1.0, top_p: float = 1.0, max_new_tokens: int = 32) -> ChatRequest:
    return ChatRequest(
        messages=(
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": f"Write about {topic}."},
        ),
        params=SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens),
        seed=seed,
    )


async def answer_all(backend: TransformersBackend, requests: list[ChatRequest]) -> list[ChatReply]:
    try:
        return list(await asyncio.gather(*(backend.complete(request) for request in requests)))
    finally:
        await backend.aclose()


async def answer_one_by_one(backend: TransformersBackend, requests: list[ChatRequest]) -> list[ChatReply]:
    try:
        return [await backend.complete(request) for request in requests]
    finally:
        await backend.aclose()


def greedy_reference(folder: Path, requests: list[ChatRequest]) -> list[tuple[str, int, int, str]]:
    """(text, prompt_tokens, completion_tokens, finish_reason) per request, from plain transformers greedy decoding."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    return [_greedy_one(model, tokenizer, request) for request in requests]


def _greedy_one(model: Any, tokenizer: Any, request: ChatRequest) -> tuple[str, int, int, str]:
    import torch

    prompt = tokenizer.apply_chat_template(list(request.messages), add_generation_prompt=True, tokenize=False)
    encoded = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        output = model.generate(**encoded, do_sample=False, max_new_tokens=request.params.max_new_tokens)
    tokens = output[0, encoded["input_ids"].shape[1] :].tolist()
    if tokenizer.eos_token_id in tokens:
        tokens, finish_reason = tokens[: tokens.index(tokenizer.eos_token_id)], "stop"
    else:
        finish_reason = "length"
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    return text, encoded["input_ids"].shape[1], len(tokens), finish_reason


def test_protocol(tiny_model_dir: Path) -> None:
    backend = TransformersBackend(str(tiny_model_dir))
    assert isinstance(backend, Backend)
    assert backend.model_name == str(tiny_model_dir)  # the name its error messages show


def test_concurrent_requests_are_answered_in_batches(tiny_model_dir: Path) -> None:
    backend = TransformersBackend(str(tiny_model_dir), batch_size=4, max_batch_wait_s=0.5)
    requests = [chat(topic, seed=i) for i, topic in enumerate(TOPICS)]

    replies = asyncio.run(answer_all(backend, requests))

    assert len(replies) == len(TOPICS)
    assert all(reply.finish_reason in ("stop", "length") for reply in replies)
    assert len({reply.text for reply in replies}) > len(TOPICS) // 2
    # The model loads before the worker takes its first batch, so all 10 are queued by then: 4 + 4 + 2.
    assert backend.batches_run == 3


def test_a_reply_does_not_depend_on_its_batch(tiny_model_dir: Path) -> None:
    requests = [chat(topic, seed=100 + i, top_p=0.9) for i, topic in enumerate(TOPICS[:6])]

    alone = asyncio.run(answer_one_by_one(TransformersBackend(str(tiny_model_dir), batch_size=1), requests))
    batched_backend = TransformersBackend(str(tiny_model_dir), batch_size=8)
    batched = asyncio.run(answer_all(batched_backend, list(reversed(requests))))[::-1]

    assert batched_backend.batches_run == 1
    assert batched == alone


def test_requests_with_different_params_are_batched_apart(tiny_model_dir: Path) -> None:
    short = [chat(topic, seed=i, max_new_tokens=2) for i, topic in enumerate(TOPICS[:4])]
    long = [chat(topic, seed=i, max_new_tokens=256) for i, topic in enumerate(TOPICS[4:8])]
    interleaved = [request for pair in zip(short, long) for request in pair]
    backend = TransformersBackend(str(tiny_model_dir), batch_size=8, max_batch_wait_s=0.5)

    replies = asyncio.run(answer_all(backend, interleaved))

    assert backend.batches_run == 2
    assert all(reply.completion_tokens <= 2 for reply in replies[0::2])
    assert any(reply.completion_tokens > 2 for reply in replies[1::2])


def test_same_seed_same_reply_other_seed_other_reply(tiny_model_dir: Path) -> None:
    requests = [chat("sport", seed=seed) for seed in (7, 7, 8, 9, 10)]

    replies = asyncio.run(answer_one_by_one(TransformersBackend(str(tiny_model_dir), batch_size=1), requests))

    assert replies[0] == replies[1]
    assert len({reply.text for reply in replies[1:]}) >= 3


def test_greedy_matches_plain_transformers_and_ignores_the_seed(tiny_model_dir: Path) -> None:
    requests = [chat(topic, seed=seed, temperature=0.0, max_new_tokens=24) for topic in TOPICS[:3] for seed in (1, 2)]

    replies = asyncio.run(answer_all(TransformersBackend(str(tiny_model_dir), batch_size=1), requests))

    expected = greedy_reference(tiny_model_dir, requests[0::2])
    got = [(reply.text, reply.prompt_tokens, reply.completion_tokens, reply.finish_reason) for reply in replies]
    assert got[0::2] == expected
    assert replies[1::2] == replies[0::2]


def test_a_tiny_top_p_keeps_only_the_greedy_token(tiny_model_dir: Path) -> None:
    greedy = chat("the bank", temperature=0.0)
    nucleus = [chat("the bank", seed=seed, temperature=1.5, top_p=1e-6) for seed in (3, 4)]

    replies = asyncio.run(answer_all(TransformersBackend(str(tiny_model_dir), batch_size=2), [greedy, *nucleus]))

    assert replies[1] == replies[0] and replies[2] == replies[0]


def test_token_usage_and_finish_reason(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    cut = [chat(topic, seed=i, max_new_tokens=3) for i, topic in enumerate(TOPICS)]
    free = [chat(topic, seed=i, max_new_tokens=256) for i, topic in enumerate(TOPICS)]

    replies = asyncio.run(answer_all(TransformersBackend(str(tiny_model_dir), batch_size=4), cut + free))

    for request, reply in zip(cut + free, replies):
        prompt = tokenizer.apply_chat_template(list(request.messages), add_generation_prompt=True, tokenize=False)
        assert reply.prompt_tokens == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        if reply.finish_reason == "length":
            assert reply.completion_tokens == request.params.max_new_tokens
        else:
            assert reply.finish_reason == "stop"
            assert reply.completion_tokens < request.params.max_new_tokens
    assert sum(reply.finish_reason == "length" for reply in replies[: len(cut)]) >= len(cut) // 2
    assert sum(reply.finish_reason == "stop" for reply in replies[len(cut) :]) >= len(free) // 2
    assert "</s>" not in "".join(reply.text for reply in replies)


def test_a_model_without_chat_template_is_refused_in_one_line(no_template_dir: Path) -> None:
    async def ask_twice(backend: TransformersBackend) -> list[BaseException]:
        errors = []
        try:
            for _ in range(2):
                with pytest.raises(ConfigError) as caught:
                    await backend.complete(chat("sport"))
                errors.append(caught.value)
        finally:
            await backend.aclose()
        return errors

    errors = asyncio.run(ask_twice(TransformersBackend(str(no_template_dir))))

    for error in errors:
        assert "no chat template" in str(error) and "chat/instruct model" in str(error)
        assert "\n" not in str(error)


def test_a_missing_folder_is_refused_at_construction(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such-model"
    with pytest.raises(ConfigError, match="does not exist") as caught:
        TransformersBackend(str(missing))
    assert str(missing) in str(caught.value) and "\n" not in str(caught.value)


def test_a_folder_without_config_is_refused_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no config.json or tokenizer_config.json"):
        TransformersBackend(str(tmp_path))


def test_a_folder_that_does_not_load_is_refused_in_one_line(tmp_path: Path, tiny_model_dir: Path) -> None:
    for name in ("config.json", "tokenizer_config.json", "tokenizer.json", "chat_template.jinja"):  # no weights
        (tmp_path / name).write_bytes((tiny_model_dir / name).read_bytes())

    async def ask(backend: TransformersBackend) -> None:
        try:
            await backend.complete(chat("sport"))
        finally:
            await backend.aclose()

    with pytest.raises(ConfigError, match="cannot load a chat model from this folder") as caught:
        asyncio.run(ask(TransformersBackend(str(tmp_path))))
    assert "\n" not in str(caught.value)


def test_a_hub_id_not_in_the_cache_is_refused_in_one_line() -> None:
    async def load_then_ask(backend: TransformersBackend) -> list[BaseException]:
        errors = []
        try:
            for attempt in (backend.load, lambda: backend.complete(chat("sport"))):
                with pytest.raises(MissingDependencyError, match="attrprompt-tests/no-such-model") as caught:
                    await attempt()
                errors.append(caught.value)
        finally:
            await backend.aclose()
        return errors

    errors = asyncio.run(load_then_ask(TransformersBackend("attrprompt-tests/no-such-model")))

    assert all("local model folder" in str(error) and "\n" not in str(error) for error in errors)


def test_a_cancelled_request_does_not_disturb_the_others(tiny_model_dir: Path) -> None:
    async def cancel_one(backend: TransformersBackend) -> list[ChatReply]:
        try:
            await backend.load()
            tasks = [asyncio.create_task(backend.complete(chat(topic, seed=i))) for i, topic in enumerate(TOPICS[:3])]
            await asyncio.sleep(0)  # let every request reach the queue
            tasks[1].cancel()
            done = await asyncio.gather(*tasks, return_exceptions=True)
            assert isinstance(done[1], asyncio.CancelledError)
            return [reply for reply in done if isinstance(reply, ChatReply)] + [await backend.complete(chat("rain"))]
        finally:
            await backend.aclose()

    replies = asyncio.run(cancel_one(TransformersBackend(str(tiny_model_dir), batch_size=4)))

    assert len(replies) == 3


def test_missing_torch_is_reported_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # how the import system marks a package as absent
    with pytest.raises(MissingDependencyError, match=r"pip install torch==2\.13\.0") as caught:
        TransformersBackend("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("option", "value"), [("batch_size", 0), ("batch_size", 2.5), ("dtype", "float8"), ("max_batch_wait_s", -1.0)]
)
def test_bad_options_are_refused(tiny_model_dir: Path, option: str, value: object) -> None:
    with pytest.raises(ConfigError, match=option):
        TransformersBackend(str(tiny_model_dir), **{option: value})


def test_aclose_stops_the_worker_and_refuses_new_requests(tiny_model_dir: Path) -> None:
    def workers() -> list[threading.Thread]:
        return [thread for thread in threading.enumerate() if thread.name == "attrprompt-transformers"]

    async def use_then_close(backend: TransformersBackend) -> None:
        await backend.complete(chat("sport", max_new_tokens=4))
        assert len(workers()) == 1
        await backend.aclose()
        await backend.aclose()  # idempotent
        with pytest.raises(EndpointPermanentError, match="closed"):
            await backend.complete(chat("sport"))

    asyncio.run(use_then_close(TransformersBackend(str(tiny_model_dir))))
    assert workers() == []
    asyncio.run(TransformersBackend(str(tiny_model_dir)).aclose())  # never used: nothing to stop


def test_a_response_format_is_refused_at_once_so_the_judge_asks_plainly(tiny_model_dir):
    """No constrained decoding here: refused before the model is even loaded, the way an endpoint refuses it."""
    from dataclasses import replace

    from attrprompt_builder.errors import ResponseFormatRejectedError

    backend = TransformersBackend(str(tiny_model_dir))
    request = replace(chat("tea"), response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": {}}})
    with pytest.raises(ResponseFormatRejectedError, match="does not constrain replies"):
        asyncio.run(answer_all(backend, [request]))
