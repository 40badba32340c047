"""Retry timing, adaptive concurrency and the circuit breaker, kept free of I/O so they are testable.

- ``RetryPolicy``: exponential backoff with full jitter, never shorter than the server's
  Retry-After, a fixed number of attempts per request (no unbounded ``while not success`` loops).
- ``AdaptiveLimiter``: AIMD between 1 and ``max_concurrency``: +1/limit per success, halved on an
  overload signal (429/503) at most once per ``cooldown`` so one burst of rejections counts once.
- ``CircuitBreaker``: opens after ``threshold`` consecutive failed attempts with no success between
  them, so a dead endpoint stops the build instead of retrying forever.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

__all__ = ["AdaptiveLimiter", "CircuitBreaker", "RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0

    def delay(self, attempt: int, *, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        jitter = (rng or random).uniform(0.0, ceiling)
        if retry_after is not None:
            return max(jitter, min(retry_after, self.max_retry_after))
        return jitter


class AdaptiveLimiter:
    """How many requests an endpoint should have in flight (additive increase, multiplicative decrease).

    Plain state: the dispatcher counts ``in_flight`` under its own condition and reports outcomes.
    """

    def __init__(self, max_concurrency: int, *, cooldown: float = 1.0) -> None:
        self.max_concurrency = max_concurrency
        self.limit = float(max_concurrency)
        self.in_flight = 0
        self.cooldown = cooldown
        self._last_decrease = -float("inf")

    def on_success(self) -> None:
        self.limit = min(float(self.max_concurrency), self.limit + 1.0 / self.limit)

    def on_overload(self) -> None:
        now = time.monotonic()
        if now - self._last_decrease >= self.cooldown:
            self.limit = max(1.0, self.limit / 2)
            self._last_decrease = now


class CircuitBreaker:
    def __init__(self, threshold: int = 30) -> None:
        self.threshold = threshold
        self.consecutive_failures = 0

    def record(self, *, success: bool) -> None:
        if success:
            self.consecutive_failures = 0
        else:
            self.consecutive_failures += 1

    @property
    def open(self) -> bool:
        return self.consecutive_failures >= self.threshold
