"""What the loopback TGI server (``tgi_server``) decides for each request, apart from the wire format.

``Behaviour`` holds the validated knobs; ``Dice`` draws the per-request fault and latency from seeded
RNGs, ``Burst`` overrides them for a given number of requests; ``compose_reply`` picks the reply and
its kind (normal, refusal, empty, near-duplicate) as a pure function of (prompt, seed), with
``ReplyHistory`` remembering earlier replies to near-duplicate; ``InFlight`` counts the requests being
handled. Stdlib only, like the server.
"""

from __future__ import annotations

import json
import math
import random
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType

from tgi_protocol import GenerationRequest
from tgi_text import EMPTY_REPLIES, REFUSALS, digest, fraction, light_edit, reply_text

__all__ = [
    "FAULT_KINDS",
    "KNOBS",
    "Behaviour",
    "Burst",
    "Dice",
    "InFlight",
    "Latency",
    "ReplyHistory",
    "compose_reply",
    "schema_instance",
]

# Order matters: one uniform draw per request walks these cumulatively.
FAULT_KINDS = ("429", "424", "500", "502", "503", "504", "garbage", "slow", "drop")
_HISTORY_LINES = 512  # distinct first lines (classes) remembered for near-duplicates
_HISTORY_PER_LINE = 32

Latency = float | tuple[str, float, float] | None  # seconds, or ("lognormal", median, sigma)


# ---- Knobs ----
def _check_fraction(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value!r}: use a fraction between 0 and 1")
    return float(value)


def _check_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < math.inf:
        raise ValueError(f"{name}={value!r}: use a number of seconds >= 0")
    return float(value)


def _check_latency(value: object) -> Latency:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _check_seconds("latency", value)
    if isinstance(value, (tuple, list)) and len(value) == 3 and value[0] == "lognormal":
        median, sigma = _check_seconds("latency median", value[1]), _check_seconds("latency sigma", value[2])
        if median > 0:
            return ("lognormal", median, sigma)
    raise ValueError(f"latency={value!r}: use None, seconds (e.g. 0.1) or ('lognormal', median_seconds, sigma)")


@dataclass(frozen=True)
class Behaviour:
    """The knobs, validated. The server swaps whole instances, so a request sees one consistent set."""

    refusal_rate: float = 0.0
    empty_rate: float = 0.0
    duplicate_rate: float = 0.0
    faults: Mapping[str, float] = field(default_factory=dict)
    fixed_status: int | None = None
    latency: Latency = None
    slow_seconds: float = 3.0
    retry_after: float = 0.0

    def __post_init__(self) -> None:
        for name in ("refusal_rate", "empty_rate", "duplicate_rate"):
            object.__setattr__(self, name, _check_fraction(name, getattr(self, name)))
        if not isinstance(self.faults, Mapping):
            raise ValueError(f"faults={self.faults!r}: use a dict of kind -> rate, e.g. {{'429': 0.1}}")
        faults = {str(kind): _check_fraction(f"faults[{str(kind)!r}]", rate) for kind, rate in self.faults.items()}
        unknown = sorted(set(faults) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"faults: unknown kind {unknown[0]!r}; use one of {', '.join(FAULT_KINDS)}")
        if sum(faults.values()) > 1.0 + 1e-9:
            raise ValueError(f"faults: rates add up to {sum(faults.values()):.3g}; keep the total at most 1")
        object.__setattr__(self, "faults", MappingProxyType(faults))
        status = self.fixed_status
        is_error_status = isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599
        if status is not None and not is_error_status:
            raise ValueError(f"fixed_status={status!r}: use None or an HTTP error status between 400 and 599")
        object.__setattr__(self, "latency", _check_latency(self.latency))
        for name in ("slow_seconds", "retry_after"):
            object.__setattr__(self, name, _check_seconds(name, getattr(self, name)))


KNOBS = tuple(knob.name for knob in fields(Behaviour))


# ---- Per-request draws ----
class Dice:
    """Fault and latency draws. They come from their own seeded RNGs, not the prompt hash, so a retry
    of the same prompt can succeed; the lock keeps each RNG's sequence intact across handler threads."""

    def __init__(self, *, fault_seed: int = 0, latency_seed: int = 0) -> None:
        self._fault_rng = random.Random(fault_seed)
        self._latency_rng = random.Random(latency_seed)
        self._lock = threading.Lock()

    def fault(self, behaviour: Behaviour) -> str | None:
        """The fault kind for this request (one of ``FAULT_KINDS``), or None to answer normally."""
        if not behaviour.faults:
            return None
        with self._lock:
            draw = self._fault_rng.random()
        edge = 0.0
        for kind in FAULT_KINDS:
            edge += behaviour.faults.get(kind, 0.0)
            if draw < edge:
                return kind
        return None

    def latency(self, behaviour: Behaviour) -> float:
        """Seconds to wait before a successful reply."""
        latency = behaviour.latency
        if not isinstance(latency, tuple):
            return latency or 0.0
        _, median, sigma = latency
        with self._lock:
            return self._latency_rng.lognormvariate(math.log(median), sigma)


class Burst:
    """The next ``count`` paid requests get ``status``, whatever the knobs (``TGIServer.fail_next``)."""

    def __init__(self) -> None:
        self._status, self._left = 429, 0
        self._lock = threading.Lock()

    def arm(self, count: int, status: int) -> None:
        Behaviour(fixed_status=status)  # the same check as the knob: an HTTP error status
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"fail_next(count={count!r}): use a whole number >= 0")
        with self._lock:
            self._status, self._left = status, count

    def take(self) -> str | None:
        """This request's fault while the burst lasts (its status, named like ``Dice.fault`` names one)."""
        with self._lock:
            if not self._left:
                return None
            self._left -= 1
            return str(self._status)


class InFlight:
    """How many paid requests are being handled, counted when each arrives."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    def enter(self) -> tuple[int, Callable[[], None]]:
        """Count one request: (how many there are now, itself included; the function that un-counts it).

        The function may be called more than once (just before the answer leaves, and when the handler
        ends, which is all a dropped connection gets); only the first call counts.
        """
        with self._lock:
            self._count += 1
            now = self._count
        left = False

        def leave() -> None:
            nonlocal left
            if not left:
                left = True
                with self._lock:
                    self._count -= 1

        return now, leave


# ---- Replies ----
class ReplyHistory:
    """Recent normal replies grouped by class (the prompt's first line), the pool near-duplicates copy.

    Bounded both ways so a long bench run keeps constant memory; the least recently used class goes first.
    """

    def __init__(self) -> None:
        self._replies: OrderedDict[str, deque[str]] = OrderedDict()
        self._lock = threading.Lock()

    def earlier(self, first_line: str) -> list[str]:
        with self._lock:
            return list(self._replies.get(first_line, ()))

    def remember(self, first_line: str, text: str) -> None:
        with self._lock:
            replies = self._replies.pop(first_line, None) or deque(maxlen=_HISTORY_PER_LINE)
            replies.append(text)
            self._replies[first_line] = replies
            while len(self._replies) > _HISTORY_LINES:
                self._replies.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._replies.clear()


def compose_reply(request: GenerationRequest, behaviour: Behaviour, *, history: ReplyHistory) -> tuple[str, str]:
    """The reply text and its kind; refusal/empty/duplicate are decided by hash(prompt, seed), so the
    same request always gets the same kind whatever the order requests arrive in."""
    prompt, seed = request.prompt, request.seed
    if request.schema is not None:  # constrained decoding: whatever the model writes matches the schema
        return json.dumps(schema_instance(request.schema, random.Random(digest("json", prompt, seed)))), "json"
    if fraction("refusal", prompt, seed) < behaviour.refusal_rate:
        return REFUSALS[digest("refusal-text", prompt, seed) % len(REFUSALS)], "refusal"
    if fraction("empty", prompt, seed) < behaviour.empty_rate:
        return EMPTY_REPLIES[digest("empty-text", prompt, seed) % len(EMPTY_REPLIES)], "empty"
    if fraction("duplicate", prompt, seed) < behaviour.duplicate_rate:
        earlier = history.earlier(request.first_line)
        if earlier:
            rng = random.Random(digest("duplicate", prompt, seed))
            return light_edit(rng.choice(earlier), rng), "duplicate"
    text = reply_text(prompt, seed=seed, temperature=request.temperature)
    history.remember(request.first_line, text)
    return text, "normal"


def schema_instance(schema: dict, rng: random.Random) -> object:
    """A small value matching ``schema`` (the JSON-schema subset constrained decoding servers take)."""
    if "enum" in schema:
        return rng.choice(list(schema["enum"]))
    kind = schema.get("type", "object")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: schema_instance(sub, rng) for name, sub in properties.items()}
    if kind == "array":
        return [schema_instance(schema.get("items", {}), rng) for _ in range(max(1, schema.get("minItems", 1)))]
    if kind == "boolean":
        return rng.random() < 0.5
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    return reply_text("a short phrase between 2 and 4 words", seed=rng.randrange(2**31))
