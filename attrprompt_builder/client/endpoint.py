"""LLM endpoints over HTTP through ``huggingface_hub.AsyncInferenceClient``.

One ``EndpointBackend`` per URL (TGI, vLLM, any OpenAI-compatible server), or one for HF Inference
Providers when no URL is given. It sends a single chat-completion and turns every failure into an
``errors.EndpointError`` subclass that says whether retrying can help; retries and concurrency
belong to ``dispatch``, budgets to the engine.

Tokens: huggingface_hub attaches the local HF token to every request, whatever the URL. A user's
own endpoint gets a token only when the user passes ``token=``; the HF token goes only to
HF-hosted inference.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from email.utils import parsedate_to_datetime
from time import time
from urllib.parse import urlsplit

import httpx2
from huggingface_hub import AsyncInferenceClient
from huggingface_hub.errors import (
    HfHubHTTPError,
    InferenceTimeoutError,
    OfflineModeIsEnabled,
)

from attrprompt_builder.client.types import ChatReply, ChatRequest
from attrprompt_builder.errors import (
    ConfigError,
    EndpointOverloadedError,
    EndpointPermanentError,
    EndpointTransientError,
    EndpointUnreachableError,
    ReplyFormatError,
    RequestTimeoutError,
    ResponseFormatRejectedError,
)
from attrprompt_builder.redaction import endpoint_identity

# One deadline per request (asyncio.timeout, Python 3.11+) in place of httpx's timeout, which arms and
# cancels a timer around every socket operation: three timers per request, about 2% of a bare client loop's
# CPU per request when it sets one. On 3.10 httpx keeps the timeout.
_ONE_DEADLINE = sys.version_info >= (3, 11)

__all__ = ["EndpointBackend", "classify_http_error"]

_OVERLOAD = {429, 503}
_TRANSIENT = {408, 424, 425, 500, 502, 504}
# 5xx answers that say the server cannot do this at all (501 Not Implemented, 505), however often asked.
_PERMANENT_5XX = {501, 505}
# How servers refuse a response_format they cannot honour: TGI without grammar support answers 422
# ("Input validation error: grammar is not supported"); vLLM and OpenAI-compatible servers 400.
_FORMAT_REJECTED = {400, 422}


def _retry_after(response: httpx2.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError):
        return None


def _server_message(response: httpx2.Response) -> str:
    """The server's own explanation (TGI's ``{"error", "error_type"}`` or OpenAI's), one line, short."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError, httpx2.ResponseNotRead):
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):  # OpenAI / vLLM shape
        error = error.get("message")
    if not isinstance(error, str):
        error = body.get("message") if isinstance(body, dict) else None
    return " ".join(str(error).split())[:300] if error else ""


def classify_http_error(status: int, response: httpx2.Response, *, where: str, own_endpoint: bool):
    """Map an HTTP failure to the error the engine acts on (retry, slow down, or stop)."""
    detail = _server_message(response)
    suffix = f": {detail}" if detail else ""
    if status in _OVERLOAD:
        return EndpointOverloadedError(
            f"{where} is overloaded ({status}){suffix}", status=status, cause=f"http_{status}", retry_after=_retry_after(response)
        )
    if status in _TRANSIENT or (status >= 500 and status not in _PERMANENT_5XX):
        return EndpointTransientError(
            f"{where} failed ({status}){suffix}", status=status, cause=f"http_{status}", retry_after=_retry_after(response)
        )
    token_fix = "pass `token=` (CLI: --token)" if own_endpoint else "pass `token=` or set HF_TOKEN"
    fixes = {
        401: f"the endpoint rejected the token (401){suffix}; {token_fix}",
        403: f"the endpoint refused access (403){suffix}; check the token's permissions ({token_fix})",
        404: f"{where} answered 404 Not Found{suffix}; check the endpoint base URL (e.g. http://host:8080) and `model`",
        422: f"{where} rejected the request (422){suffix}; check `model`, `max_new_tokens` and the sampling parameters",
        400: f"{where} rejected the request (400){suffix}; check `model`, `max_new_tokens` and the sampling parameters",
        501: f"{where} does not implement chat completions (501){suffix}; check that the URL is the base URL of a "
        "TGI, vLLM or OpenAI-compatible server (e.g. http://host:8080)",
    }
    message = fixes.get(status, f"{where} answered {status}{suffix}; this is not retried, check the endpoint")
    return EndpointPermanentError(message, status=status, cause=f"http_{status}")


class EndpointBackend:
    """Chat completions against one endpoint URL, or HF Inference Providers when ``url`` is None."""

    def __init__(
        self,
        url: str | None,
        *,
        model: str | None = None,
        token: str | None = None,
        provider: str | None = None,
        timeout: float = 300.0,
    ) -> None:
        if url is None and not model:
            raise ConfigError("model: HF Inference Providers need a Hub model id; pass `model=` (or an `endpoint=` URL)")
        if url is not None and token and (urlsplit(url).username or urlsplit(url).password):
            # httpx would send the URL's user:password as basic auth in place of the token's bearer header.
            raise ConfigError(
                f"token + endpoint: got a token and credentials inside the endpoint URL {endpoint_identity(url)}; "
                "a request carries one Authorization header: keep user:password in the URL (sent as basic auth) "
                "or pass the token, not both"
            )
        self.url = url
        self.own_endpoint = url is not None
        self.where = f"the endpoint {endpoint_identity(url)}" if url else f"HF Inference Providers ({provider or 'auto'})"
        self._payload_model = model
        self._token = token
        self._provider = provider
        self._timeout = timeout
        # 0 (or less) waits for as long as the reply takes.
        self._deadline = timeout if timeout > 0 else None
        self._client: AsyncInferenceClient | None = None

    def _make_client(self) -> AsyncInferenceClient:
        timeout = None if _ONE_DEADLINE else self._deadline
        if self.url is not None:
            # An explicit None header makes huggingface_hub drop the Authorization it would add from HF_TOKEN
            # (its signature says dict[str, str], hence the ignore).
            headers = None if self._token else {"authorization": None}
            return AsyncInferenceClient(base_url=self.url, token=self._token, headers=headers, timeout=timeout)  # type: ignore[arg-type]
        # provider is the user's string; huggingface_hub checks it against its Literal of provider names at run time.
        return AsyncInferenceClient(provider=self._provider or "auto", token=self._token, timeout=timeout)  # type: ignore[arg-type]

    async def complete(self, request: ChatRequest) -> ChatReply:
        if self._client is None:
            self._client = self._make_client()
        deadline: contextlib.AbstractAsyncContextManager[object]
        if sys.version_info >= (3, 11):  # _ONE_DEADLINE, spelled out so that mypy checks each version's branch
            deadline = asyncio.timeout(self._deadline)
        else:
            deadline = contextlib.nullcontext()
        try:
            async with deadline:
                output = await self._client.chat_completion(
                    list(request.messages),
                    model=self._payload_model,
                    seed=request.seed,
                    temperature=request.params.temperature,
                    top_p=request.params.top_p,
                    max_tokens=request.params.max_new_tokens,
                    # A plain dict: huggingface_hub sends it as given (TGI, vLLM and OpenAI-compatible servers read it).
                    response_format=request.response_format,  # type: ignore[arg-type]
                )
        except (InferenceTimeoutError, TimeoutError) as err:
            raise RequestTimeoutError(f"{self.where} timed out after {self._timeout:g} s", cause="timeout") from err
        except HfHubHTTPError as err:
            status = err.response.status_code
            if request.response_format is not None and status in _FORMAT_REJECTED:
                detail = _server_message(err.response)
                raise ResponseFormatRejectedError(
                    f"{self.where} rejected response_format ({status}){': ' + detail if detail else ''}",
                    status=status,
                    cause="response_format_rejected",
                ) from err
            raise classify_http_error(
                err.response.status_code, err.response, where=self.where, own_endpoint=self.own_endpoint
            ) from err
        except OfflineModeIsEnabled as err:
            raise ConfigError(
                "HF_HUB_OFFLINE=1 makes huggingface_hub refuse every request, even to your own endpoint; "
                "unset HF_HUB_OFFLINE while generating"
            ) from err
        except httpx2.ConnectError as err:
            raise EndpointUnreachableError(
                f"cannot connect to {self.where}; is the server running and is the URL right?", cause="connect"
            ) from err
        except httpx2.TimeoutException as err:
            raise RequestTimeoutError(f"{self.where} timed out after {self._timeout:g} s", cause="timeout") from err
        except (httpx2.TransportError, httpx2.StreamError) as err:
            raise EndpointTransientError(
                f"the connection to {self.where} dropped ({type(err).__name__})", cause="connection"
            ) from err
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ReplyFormatError(f"{self.where} answered 200 with a body that is not JSON", cause="bad_body") from err
        if not output.choices or output.choices[0].message is None:
            raise ReplyFormatError(f"{self.where} answered 200 without a choice", cause="bad_body")
        choice = output.choices[0]
        usage = output.usage
        return ChatReply(
            text=choice.message.content or "",
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            finish_reason=choice.finish_reason,
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
