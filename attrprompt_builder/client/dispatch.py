"""Send one request to one of the backends, with retries, adaptive concurrency and failover.

Each backend (an endpoint replica, or the local model) has its own ``AdaptiveLimiter`` and
``CircuitBreaker``. A request goes to the backend with the most free slots; a retry may go to
another one, which is how a replica that dies mid-build is routed around. Until the first reply
arrives only one request is in flight, so a wrong URL or token costs one request, not a burst.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

from attrprompt_builder.client.resilience import (
    AdaptiveLimiter,
    CircuitBreaker,
    RetryPolicy,
)
from attrprompt_builder.client.types import Backend, ChatReply, ChatRequest
from attrprompt_builder.errors import (
    EndpointError,
    EndpointOverloadedError,
    EndpointPermanentError,
    EndpointTransientError,
    EndpointUnreachableError,
    GenerationStoppedError,
)

__all__ = ["Dispatcher", "Lane"]

# Connection refused before any reply: a wrong URL or a server that is not up. Retry briefly only.
_UNREACHABLE_ATTEMPTS = 3
# In a pool, a replica failing this many times in a row is skipped while healthy replicas remain.
_AVOID_AFTER = 3
_AVOID_SECONDS = 2.0


class Lane:
    """One backend with its own concurrency limit and breaker; a reserved slot on it is what ``acquire`` returns."""

    def __init__(self, backend: Backend, max_concurrency: int, breaker_threshold: int) -> None:
        self.backend = backend
        self.limiter = AdaptiveLimiter(max_concurrency)
        self.breaker = CircuitBreaker(breaker_threshold)
        self.avoid_until = 0.0
        self._cooldown = _AVOID_SECONDS

    @property
    def up(self) -> bool:
        return not self.breaker.open

    @property
    def avoided(self) -> bool:
        return time.monotonic() < self.avoid_until

    def record(self, *, success: bool) -> None:
        self.breaker.record(success=success)
        if success:
            self._cooldown = _AVOID_SECONDS
        elif self.breaker.consecutive_failures % _AVOID_AFTER == 0:
            # A failing replica gets no traffic for a while (doubling), then one request probes it.
            self.avoid_until = time.monotonic() + self._cooldown
            self._cooldown = min(self._cooldown * 2, 60.0)

    def spare(self, probing: bool) -> float:
        if probing:
            return 1.0 - self.limiter.in_flight
        return max(1, int(self.limiter.limit)) - self.limiter.in_flight


class Dispatcher:
    def __init__(
        self,
        backends: list[Backend],
        *,
        max_concurrency: int,
        policy: RetryPolicy,
        max_errors: int,
        breaker_threshold: int = 30,
        seed: int = 0,
    ) -> None:
        self.lanes = [Lane(b, max_concurrency, breaker_threshold) for b in backends]
        self.policy = policy
        self.max_errors = max_errors
        self.retries: Counter = Counter()
        self.failures: Counter = Counter()
        self.failed_attempts = 0
        self.successes = 0
        self._rng = random.Random(seed)
        self._capacity = asyncio.Condition()
        self._active = 0  # requests between acquire() and the end of send()

    @property
    def probing(self) -> bool:
        return self.successes == 0

    @property
    def in_flight(self) -> int:
        return sum(lane.limiter.in_flight for lane in self.lanes)

    def _best_lane(self) -> Lane | None:
        up = [lane for lane in self.lanes if lane.up]
        lanes = [lane for lane in up if not lane.avoided] or up
        if not lanes:
            raise EndpointUnreachableError(
                "every endpoint failed continuously (circuit breaker open); progress is saved in the journal, "
                "rerun the same command to resume once the endpoint is healthy",
                cause="circuit_open",
            )
        # On a tie the lane that failed least lately wins, so a retry tries another replica (a dead one
        # listed first would otherwise take every attempt of the probe and stop the run).
        best = max(lanes, key=lambda lane: (lane.spare(self.probing), -lane.breaker.consecutive_failures))
        return best if best.spare(self.probing) > 0 else None

    async def acquire(self) -> Lane:
        """Reserve a slot for a new request on the lane with the most room (waits while all are full).

        While probing, a new request also waits until the probe (retries included) has finished.
        """
        return await self._acquire_lane(new_request=True)

    async def _acquire_lane(self, *, new_request: bool = False) -> Lane:
        def ready() -> bool:
            if new_request and self.probing and self._active:
                return False
            return self._best_lane() is not None

        async with self._capacity:
            await self._capacity.wait_for(ready)
            lane = self._best_lane()
            assert lane is not None
            lane.limiter.in_flight += 1
            if new_request:
                self._active += 1
            return lane

    async def _release(self, lane: Lane, *, overloaded: bool = False, succeeded: bool = False) -> None:
        async with self._capacity:
            lane.limiter.in_flight -= 1
            if overloaded:
                lane.limiter.on_overload()
            elif succeeded:
                lane.limiter.on_success()
            self._capacity.notify_all()

    async def send(self, request: ChatRequest, lane: Lane | None = None) -> ChatReply | None:
        """The reply, or None once ``policy.max_attempts`` attempts failed (the quota draws another sample).

        ``lane`` is a slot already reserved with ``acquire()`` for the first attempt.

        Raises ``EndpointPermanentError`` at once, ``EndpointUnreachableError`` when nothing answers,
        and ``GenerationStoppedError`` when the build's error budget is spent.
        """
        if lane is None:
            lane = await self.acquire()
        try:
            return await self._send(request, lane)
        finally:
            async with self._capacity:
                self._active -= 1
                self._capacity.notify_all()

    async def _send(self, request: ChatRequest, lane: Lane | None) -> ChatReply | None:
        last: EndpointError | None = None
        for attempt in range(1, self.policy.max_attempts + 1):
            if lane is None:
                lane = await self._acquire_lane()
            try:
                reply = await lane.backend.complete(request)
            except EndpointPermanentError:
                await self._release(lane)
                raise
            except EndpointError as err:
                overloaded = isinstance(err, EndpointOverloadedError)
                await self._release(lane, overloaded=overloaded)
                lane.record(success=False)
                last = err
                self._count_failure(err)
                if isinstance(err, EndpointUnreachableError) and self.successes == 0 and attempt >= _UNREACHABLE_ATTEMPTS:
                    raise
                lane = None
                retry_after = err.retry_after if isinstance(err, EndpointTransientError) else None
                if attempt < self.policy.max_attempts:
                    self.retries[err.cause] += 1
                    await asyncio.sleep(self.policy.delay(attempt, retry_after=retry_after, rng=self._rng))
                continue
            except BaseException:
                await self._release(lane)
                raise
            await self._release(lane, succeeded=True)
            lane.record(success=True)
            self.successes += 1
            return reply
        self.failures[last.cause if last else "error"] += 1
        if self.successes == 0 and last is not None:
            # Not one reply yet: more draws would only repeat the same failure, so stop here.
            raise EndpointUnreachableError(
                f"no successful reply after {self.policy.max_attempts} attempts; last error: {last}", cause=last.cause
            ) from last
        return None

    def _count_failure(self, err: EndpointError) -> None:
        self.failed_attempts += 1
        if self.failed_attempts > self.max_errors:
            causes = Counter(self.retries)
            causes[err.cause] += 1
            summary = ", ".join(f"{cause}: {n}" for cause, n in causes.most_common(4))
            raise GenerationStoppedError(
                f"stopped after {self.failed_attempts} failed requests (error budget max_errors={self.max_errors}; "
                f"{summary}; last: {err}); progress is saved in the journal, rerun to resume"
            ) from err
