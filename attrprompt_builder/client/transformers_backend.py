"""Run a chat model in this process with transformers, batching the engine's concurrent requests.

``complete()`` only queues a request and awaits a future: one worker thread owns the model, groups
queued requests with identical ``SamplingParams`` into batches of up to ``batch_size`` (waiting at
most ``max_batch_wait_s`` for more), runs ``model.generate`` once per batch and resolves the futures
on their event loop. The model loads in that thread (``transformers_loading.load_chat_model``) on
``load()`` or the first request, so the event loop never blocks.

Determinism. ``generate`` in transformers 5.23 samples with ``torch.multinomial`` on the global torch
RNG, so within a batch a row's tokens would depend on its neighbours and on any other torch user in
the process. Instead, ``generate`` runs greedy and ``_SeededSampler`` picks each token itself: it
applies temperature and top-p, draws one uniform number per step from the request's own CPU
``torch.Generator`` seeded with ``request.seed``, and leaves only the drawn token for greedy to take.
Hence, on the same hardware, dtype and library versions:

* ``batch_size=1``: reply = f(messages, params, seed), exactly (seed unused when temperature is 0).
* ``batch_size>1``: the same function; no RNG state is shared between rows, and batch order and
  partners do not matter. The only coupling left is floating point: a padded batch runs different
  kernels, so logits can differ in their last bits and, rarely, flip a token whose draw lands on a
  probability boundary (or a greedy near-tie). Bit-exact replay therefore needs ``batch_size=1``.

Sampling uses only temperature and top-p, like an OpenAI-style endpoint; the model's own sampling
defaults (top_k, min_p...) are not applied, while its non-sampling processors (repetition penalty...)
are. The global RNGs of torch, numpy and ``random`` are never touched.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from attrprompt_builder.client.transformers_loading import (
    DTYPES,
    INSTALL_TORCH,
    LoadedModel,
    load_chat_model,
    local_folder,
)
from attrprompt_builder.client.types import ChatReply, ChatRequest, SamplingParams
from attrprompt_builder.errors import (
    AttrPromptError,
    ConfigError,
    EndpointPermanentError,
    MissingDependencyError,
    ResponseFormatRejectedError,
    one_line,
)

__all__ = ["TransformersBackend"]

_STOP = object()  # queued by aclose(): serve what is already queued, then exit


@dataclass
class _Pending:
    request: ChatRequest
    future: asyncio.Future[ChatReply]
    loop: asyncio.AbstractEventLoop


class _SeededSampler:
    """A logits processor that samples each row with its own generator and one-hot encodes the pick."""

    def __init__(self, torch: Any, seeds: list[int], *, temperature: float, top_p: float) -> None:
        self._torch = torch
        # Wrapped to 64 bits: the range torch.Generator.manual_seed accepts.
        self._generators = [torch.Generator(device="cpu").manual_seed(seed % 2**64) for seed in seeds]
        self._temperature = temperature
        self._top_p = top_p

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        torch = self._torch
        probs = torch.softmax(scores.float() / self._temperature, dim=-1)
        order = None
        if self._top_p < 1.0:
            probs, order = probs.sort(dim=-1, descending=True)
            mass_before = probs.cumsum(dim=-1) - probs
            probs = probs.masked_fill(mass_before >= self._top_p, 0.0)  # the top token always survives
        cumulative = probs.cumsum(dim=-1)
        # One CPU draw per row per step whatever the device, so a seed means the same on GPU and CPU.
        draws = torch.stack([torch.rand((), generator=gen) for gen in self._generators]).to(scores.device)
        targets = (draws * cumulative[:, -1]).unsqueeze(-1)
        picked = torch.searchsorted(cumulative, targets, right=True)
        overflow = picked >= probs.shape[-1]  # rounding put the target past the last bucket
        picked = torch.where(overflow, probs.argmax(dim=-1, keepdim=True), picked)
        tokens = picked if order is None else order.gather(-1, picked)
        return torch.full_like(scores, float("-inf")).scatter_(-1, tokens, 0.0)


class TransformersBackend:
    """A local ``Backend``: a transformers chat model answering batched requests in a worker thread."""

    def __init__(
        self,
        model: str,
        *,
        batch_size: int = 8,
        device_map: str | None = None,
        dtype: str | None = None,
        max_batch_wait_s: float = 0.05,
        trust_remote_code: bool = False,
    ) -> None:
        if importlib.util.find_spec("torch") is None:
            raise MissingDependencyError(INSTALL_TORCH)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r} is not usable; pass a whole number >= 1")
        if not max_batch_wait_s >= 0:
            raise ConfigError(f"max_batch_wait_s={max_batch_wait_s!r} is not usable; pass a number of seconds >= 0")
        if dtype is not None and dtype not in DTYPES:
            raise ConfigError(f"dtype={dtype!r} is not supported; pass one of {', '.join(DTYPES)}")
        folder = local_folder(model)
        self.model_name = model
        self.batch_size = batch_size
        #: ``model.generate`` calls so far (one per batch).
        self.batches_run = 0
        self._source = str(folder) if folder is not None else model
        self._is_local = folder is not None
        self._device_map = device_map
        self._dtype = dtype or "auto"
        self._max_batch_wait_s = float(max_batch_wait_s)
        self._trust_remote_code = trust_remote_code
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._load_error: AttrPromptError | None = None
        self._loaded_or_failed = threading.Event()
        self._loaded: LoadedModel | None = None
        self._closed = False

    async def load(self) -> None:
        """Load the model now rather than on the first request (fail fast; keep load time out of timeouts)."""
        if self._closed:
            raise self._closed_error()
        self._ensure_worker()
        await asyncio.to_thread(self._loaded_or_failed.wait)
        if self._load_error is not None:
            raise self._load_error

    async def complete(self, request: ChatRequest) -> ChatReply:
        if self._closed:
            raise self._closed_error()
        if self._load_error is not None:
            raise self._load_error
        if request.response_format is not None:  # no constrained decoding here: the caller asks without it
            raise ResponseFormatRejectedError(
                "the transformers backend does not constrain replies to a JSON schema", cause="response_format_rejected"
            )
        self._ensure_worker()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ChatReply] = loop.create_future()
        self._inbox.put(_Pending(request, future, loop))
        return await future

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._worker is not None:
            self._inbox.put(_STOP)
            await asyncio.to_thread(self._worker.join)
        # Nothing reads the inbox any more: whatever is left would otherwise wait forever.
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Pending):
                _settle(item, None, self._closed_error())

    def _closed_error(self) -> EndpointPermanentError:
        return EndpointPermanentError(f"the transformers backend for {self.model_name} is closed", cause="closed")

    # -- worker thread -------------------------------------------------------------------------

    def _ensure_worker(self) -> None:
        with self._start_lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="attrprompt-transformers", daemon=True)
                self._worker.start()

    def _run(self) -> None:
        try:
            self._loaded = load_chat_model(
                self._source,
                model_name=self.model_name,
                is_local=self._is_local,
                device_map=self._device_map,
                dtype=self._dtype,
                trust_remote_code=self._trust_remote_code,
            )
        except AttrPromptError as err:
            self._load_error = err
        except Exception as err:  # an unexpected loader failure must still reach the awaiting requests
            self._load_error = EndpointPermanentError(
                f"cannot load model {self.model_name!r}: {one_line(err)}", cause="load_failed"
            )
            self._load_error.__cause__ = err
        finally:
            self._loaded_or_failed.set()
        held: deque[_Pending] = deque()  # requests whose params did not match the batch being formed
        stopping = False
        try:
            while not (stopping and not held):
                batch, saw_stop = self._next_batch(held, block=not stopping)
                stopping = stopping or saw_stop
                live = [item for item in batch if not item.future.done()]  # skip cancelled requests
                if live:
                    self._serve(live)
        finally:
            self._release()

    def _next_batch(self, held: deque[_Pending], *, block: bool) -> tuple[list[_Pending], bool]:
        if held:
            first = held.popleft()
        else:
            item: Any = self._inbox.get() if block else _STOP  # a _Pending or _STOP, like everything in _inbox
            if item is _STOP:
                return [], True
            first = item
        batch = [first]
        params = first.request.params
        for item in list(held):
            if len(batch) < self.batch_size and item.request.params == params:
                held.remove(item)
                batch.append(item)
        deadline = time.monotonic() + self._max_batch_wait_s
        while len(batch) < self.batch_size:
            remaining = deadline - time.monotonic()
            try:
                item = self._inbox.get(timeout=remaining) if remaining > 0 else self._inbox.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            (batch if item.request.params == params else held).append(item)
        return batch, False

    def _serve(self, batch: list[_Pending]) -> None:
        try:
            if self._load_error is not None:
                raise self._load_error
            replies = self._generate([item.request for item in batch], batch[0].request.params)
        except AttrPromptError as err:
            failure: AttrPromptError = err
        except Exception as err:  # a bug or a model quirk: stop the build with a readable line
            failure = EndpointPermanentError(
                f"generation failed in {self.model_name}: {type(err).__name__}: {one_line(err)}", cause="local_error"
            )
            failure.__cause__ = err
        else:
            for item, reply in zip(batch, replies):
                _settle(item, reply, None)
            return
        for item in batch:
            _settle(item, None, failure)

    def _generate(self, requests: list[ChatRequest], params: SamplingParams) -> list[ChatReply]:
        assert self._loaded is not None
        loaded = self._loaded
        torch, model, tokenizer = loaded.torch, loaded.model, loaded.tokenizer
        from transformers import (
            LogitsProcessorList,  # already imported by load_chat_model: no cost
        )

        prompts = [self._render(request) for request in requests]
        encoded = tokenizer(prompts, add_special_tokens=False, padding=True, return_tensors="pt").to(model.device)
        processors = None
        if params.temperature > 0:
            sampler = _SeededSampler(
                torch, [request.seed for request in requests], temperature=params.temperature, top_p=params.top_p
            )
            processors = LogitsProcessorList([sampler])
        try:
            with torch.inference_mode():
                output = model.generate(
                    **encoded,
                    max_new_tokens=params.max_new_tokens,
                    do_sample=False,  # sampling happens in _SeededSampler, per request
                    logits_processor=processors,
                    pad_token_id=loaded.pad_id,
                    eos_token_id=sorted(loaded.eos_ids),
                )
        except torch.OutOfMemoryError as err:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            raise EndpointPermanentError(
                f"out of memory generating {len(requests)} replies of up to {params.max_new_tokens} tokens with "
                f"{self.model_name}; lower batch_size (now {self.batch_size}) or max_new_tokens, "
                "or pass dtype='bfloat16'",
                cause="out_of_memory",
            ) from err
        self.batches_run += 1
        prompt_lengths = encoded["attention_mask"].sum(dim=1).tolist()
        generated = output[:, encoded["input_ids"].shape[1] :].tolist()
        return [
            self._reply(tokens, prompt_tokens=length, max_new_tokens=params.max_new_tokens)
            for tokens, length in zip(generated, prompt_lengths)
        ]

    def _render(self, request: ChatRequest) -> str:
        assert self._loaded is not None
        try:
            return self._loaded.tokenizer.apply_chat_template(list(request.messages), add_generation_prompt=True, tokenize=False)
        except Exception as err:  # jinja raise_exception(), e.g. "System role not supported"
            raise ConfigError(
                f"the chat template of {self.model_name} rejected the messages: {one_line(err)}; "
                "change the recipe's messages (e.g. drop the system prompt) or pass another chat model"
            ) from err

    def _reply(self, tokens: list[int], *, prompt_tokens: int, max_new_tokens: int) -> ChatReply:
        assert self._loaded is not None
        eos_at = next((i for i, token in enumerate(tokens) if token in self._loaded.eos_ids), None)
        completion = tokens if eos_at is None else tokens[:eos_at]
        # Without an EOS the batch can only have ended at the token limit (no stop strings are set).
        finish_reason = "length" if eos_at is None and len(tokens) >= max_new_tokens else "stop"
        return ChatReply(
            text=self._loaded.tokenizer.decode(completion, skip_special_tokens=True),
            prompt_tokens=int(prompt_tokens),
            completion_tokens=len(completion),
            finish_reason=finish_reason,
        )

    def _release(self) -> None:
        if self._loaded is None:
            return
        torch = self._loaded.torch
        self._loaded = None
        gc.collect()  # the weights are only freed once nothing refers to the model any more
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _settle(item: _Pending, reply: ChatReply | None, error: BaseException | None) -> None:
    """Resolve a request's future on its own loop (futures are not thread-safe)."""

    def resolve() -> None:
        if item.future.done():  # cancelled by the engine meanwhile
            return
        if error is not None:
            item.future.set_exception(error)
        else:
            item.future.set_result(reply)  # type: ignore[arg-type]

    try:
        item.loop.call_soon_threadsafe(resolve)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        pass
