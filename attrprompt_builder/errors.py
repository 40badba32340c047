"""Every error the package raises on purpose.

Each class mixes in the builtin a caller would naturally catch (``ValueError`` for bad input,
``ConnectionError`` for an endpoint that cannot be reached, ...), so ``except ValueError`` keeps
working for users who do not know our hierarchy. Messages are one line that names the field, the
value and the fix: the CLI prints ``str(err)`` and nothing else for these.
"""

from __future__ import annotations

__all__ = [
    "AttrPromptError",
    "BudgetExceededError",
    "ConfigError",
    "DiscoveryError",
    "EndpointError",
    "EndpointOverloadedError",
    "EndpointPermanentError",
    "EndpointTransientError",
    "EndpointUnreachableError",
    "GenerationStoppedError",
    "HubError",
    "HubUnavailableError",
    "HubUnreachableError",
    "MissingDependencyError",
    "QuotaNotMetError",
    "RecipeError",
    "ReplyFormatError",
    "RequestTimeoutError",
    "ResponseFormatRejectedError",
    "one_line",
]


class AttrPromptError(Exception):
    """Base class: a failure we expected and can explain in one line."""


class ConfigError(AttrPromptError, ValueError):
    """A keyword argument or CLI flag has a value we cannot use."""


class RecipeError(AttrPromptError, ValueError):
    """A recipe file (or preset) is malformed; the message names the file and the field."""


class MissingDependencyError(AttrPromptError, ImportError):
    """An optional dependency (torch, a model folder, matplotlib...) is not available."""


class EndpointError(AttrPromptError):
    """Base class for failures talking to an LLM endpoint.

    ``status`` is the HTTP status when there was one; ``cause`` is a short stable label used in
    stats (``"http_429"``, ``"timeout"``, ``"connection"``, ``"bad_body"``...).
    """

    def __init__(self, message: str, *, status: int | None = None, cause: str = "error") -> None:
        super().__init__(message)
        self.status = status
        self.cause = cause


class EndpointTransientError(EndpointError):
    """Worth retrying: overload, server hiccup, timeout, dropped connection, garbled body."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        cause: str = "error",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, cause=cause)
        self.retry_after = retry_after


class EndpointOverloadedError(EndpointTransientError):
    """429 or 503: the endpoint asks us to slow down (drives adaptive concurrency)."""


class RequestTimeoutError(EndpointTransientError, TimeoutError):
    """The endpoint did not answer within the request timeout."""


class ReplyFormatError(EndpointTransientError):
    """A 200 whose body is not the JSON a chat-completion endpoint returns."""


class EndpointPermanentError(EndpointError, RuntimeError):
    """Retrying cannot help (400, 401, 403, 404, 422): stop the build at once."""


class ResponseFormatRejectedError(EndpointError):
    """The endpoint refused a request's ``response_format`` (400/422, or a backend without structured output).

    Neither retried nor fatal: the caller asks again without it (``verify.judge``).
    """


class EndpointUnreachableError(EndpointError, ConnectionError):
    """Nothing listens at the endpoint URL, or the circuit breaker opened."""


class HubError(AttrPromptError, RuntimeError):
    """The Hugging Face Hub refused or failed a request while publishing (not the LLM endpoint).

    ``status`` is the HTTP status when there was one. A refused token is a ``ConfigError``
    instead: the fix is the ``--token`` the user gave.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class HubUnavailableError(HubError):
    """429 or 5xx: the Hub is busy or down; publishing the same folder again later can succeed."""


class HubUnreachableError(HubError, ConnectionError):
    """No connection to the Hub (network down, wrong ``HF_ENDPOINT``)."""


class DiscoveryError(AttrPromptError, RuntimeError):
    """A step every recipe needs (the dimensions) got nothing usable from the model."""


class GenerationStoppedError(AttrPromptError, RuntimeError):
    """The build stopped on purpose (error budget, circuit breaker); the journal keeps progress."""


class BudgetExceededError(GenerationStoppedError):
    """``max_requests``, ``max_tokens`` or ``max_cost`` was reached; the journal keeps progress."""


class QuotaNotMetError(GenerationStoppedError):
    """A class hit its attempt cap before collecting ``samples_per_class`` kept rows."""


def one_line(err: BaseException, *, limit: int = 200) -> str:
    """A library's (often multi-line) message squeezed into the one line our errors promise."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
