"""Send one request to one of the backends, with retries, adaptive concurrency and failover.

Each backend (an endpoint replica, or the local model) has its own ``AdaptiveLimiter`` and
``CircuitBreaker``. A request goes to the backend with the most free slots; a retry may go to
another one, which is how a replica that dies mid-build is routed around.

Starting: until the first reply arrives only one request is in flight, so a wrong URL or token
costs one request, not a burst. Its retries go first to the backends not tried yet, so a pool starts
on any replica that answers, and stops (``EndpointUnreachableError``) only once every replica has
refused the connection or sent no reply. A backend that has not answered yet gets one request at a
time, and with ``first_timeout`` its attempts give up after that many seconds instead of the
generation timeout: a replica that accepts connections and never answers costs seconds, not the
request timeout of every attempt. ``on_event`` hears one line per failed attempt before the first
reply, so a user watching a bar at 0 knows what is going on.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable

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
    RequestTimeoutError,
    ResponseFormatRejectedError,
)

__all__ = ["Dispatcher", "Lane"]

# Before any reply, a backend refusing connections or sending nothing is retried this often in all.
_UNREACHABLE_ATTEMPTS = 3
# In a pool, a replica failing this many times in a row is skipped while healthy replicas remain.
_AVOID_AFTER = 3
_AVOID_SECONDS = 2.0
# Failures that say nothing is there: no connection, or no reply at all.
_SILENCE = (EndpointUnreachableError, RequestTimeoutError)


def where(backend: Backend) -> str:
    """How messages name a backend (an endpoint says which, without credentials)."""
    return getattr(backend, "where", type(backend).__name__)


class Lane:
    """One backend with its own concurrency limit and breaker; a reserved slot on it is what ``acquire`` returns."""

    def __init__(self, backend: Backend, max_concurrency: int, breaker_threshold: int) -> None:
        self.backend = backend
        self.limiter = AdaptiveLimiter(max_concurrency)
        self.breaker = CircuitBreaker(breaker_threshold)
        self.avoid_until = 0.0
        self.answered = False  # a reply came back once
        self.heard = False  # anything came back once, an error status included
        self.last_error: EndpointError | None = None
        self._cooldown = _AVOID_SECONDS

    @property
    def up(self) -> bool:
        return not self.breaker.open

    @property
    def avoided(self) -> bool:
        return time.monotonic() < self.avoid_until

    @property
    def silent(self) -> bool:
        """Tried, and nothing ever came back: the connection was refused or no reply arrived."""
        return self.last_error is not None and not self.heard

    def record(self, *, success: bool, error: EndpointError | None = None) -> None:
        self.breaker.record(success=success)
        if success:
            self.answered = self.heard = True
            self._cooldown = _AVOID_SECONDS
            return
        self.last_error = error
        self.heard = self.heard or not isinstance(error, _SILENCE)
        if not self.answered or self.breaker.consecutive_failures % _AVOID_AFTER == 0:
            # A failing replica gets no traffic for a while (doubling), then one request probes it.
            self.avoid_until = time.monotonic() + self._cooldown
            self._cooldown = min(self._cooldown * 2, 60.0)

    def spare(self) -> float:
        if not self.answered:  # one request at a time until the backend has shown it answers
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
        first_timeout: float | None = None,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.lanes = [Lane(b, max_concurrency, breaker_threshold) for b in backends]
        self.policy = policy
        self.max_errors = max_errors
        self.first_timeout = first_timeout
        self.on_event = on_event
        self.retries: Counter = Counter()
        self.failures: Counter = Counter()
        self.failed_attempts = 0
        self.successes = 0
        # For the progress bar: when an attempt last ended, and the last failure's (time, cause).
        self.last_heard = time.monotonic()
        self.last_failure: tuple[float, str] | None = None
        self._rng = random.Random(seed)
        # Callers waiting for a free slot. The counts they wait on change only on this loop's thread between awaits,
        # so they need no lock: an asyncio.Condition cost a lock round trip and a wake-up per change of every request.
        self._waiters: list[asyncio.Future[None]] = []
        self._active = 0  # requests between acquire() and the end of send()
        self._stopped: EndpointError | None = None  # an error that ends every request (permanent, nothing answers)

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
        # On a tie the lane that failed least lately wins, so a retry tries another replica.
        best = max(lanes, key=lambda lane: (lane.spare(), -lane.breaker.consecutive_failures))
        return best if best.spare() > 0 else None

    async def acquire(self) -> Lane:
        """Reserve a slot for a new request on the lane with the most room (waits while all are full).

        While probing, a new request also waits until the probe (retries included) has finished, and
        raises what ended it when that ends every request (so a request waiting behind a 401 never goes out).
        """
        return await self._acquire_lane(new_request=True)

    async def _acquire_lane(self, *, new_request: bool = False) -> Lane:
        while True:
            if self._stopped is not None:
                raise self._stopped
            if not (new_request and self.probing and self._active):
                lane = self._best_lane()
                if lane is not None:
                    lane.limiter.in_flight += 1
                    if new_request:
                        self._active += 1
                    return lane
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def _wake(self) -> None:
        """Let every waiting caller look again (a slot was freed, a probe ended, or everything stopped)."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():  # a cancelled caller's
                waiter.set_result(None)

    def _release(self, lane: Lane, *, overloaded: bool = False, succeeded: bool = False) -> None:
        lane.limiter.in_flight -= 1
        if overloaded:
            lane.limiter.on_overload()
        elif succeeded:
            lane.limiter.on_success()
        self._wake()

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
        except (EndpointPermanentError, EndpointUnreachableError) as err:
            self._stopped = err
            raise
        finally:
            self._active -= 1
            self._wake()

    async def _send(self, request: ChatRequest, lane: Lane | None) -> ChatReply | None:
        last: EndpointError | None = None
        # Before the first reply, the probe may try every replica even when there are more than max_attempts.
        attempts = self.policy.max_attempts if self.successes else max(self.policy.max_attempts, len(self.lanes))
        for attempt in range(1, attempts + 1):
            if lane is None:
                lane = await self._acquire_lane()
            try:
                reply = await self._attempt(lane, request)
            except (EndpointPermanentError, ResponseFormatRejectedError):
                # Not a failure of the endpoint: a refused response_format is the caller's to handle.
                self._release(lane)
                raise
            except EndpointError as err:
                self._release(lane, overloaded=isinstance(err, EndpointOverloadedError))
                self._record_failure(lane, err)
                last = err
                if self.successes == 0:
                    self._starting_failed(err, attempt)
                lane = None
                retry_after = err.retry_after if isinstance(err, EndpointTransientError) else None
                if attempt < attempts:
                    self.retries[err.cause] += 1
                    await asyncio.sleep(self.policy.delay(attempt, retry_after=retry_after, rng=self._rng))
                continue
            except BaseException:
                self._release(lane)
                raise
            self._release(lane, succeeded=True)
            lane.record(success=True)
            self.last_heard = time.monotonic()
            self.successes += 1
            return reply
        self.failures[last.cause if last else "error"] += 1
        if self.successes == 0 and last is not None:
            # Not one reply yet: more draws would only repeat the same failure, so stop here.
            raise EndpointUnreachableError(
                f"no successful reply after {attempts} attempts; last error: {last}", cause=last.cause
            ) from last
        return None

    async def _attempt(self, lane: Lane, request: ChatRequest) -> ChatReply:
        timeout = None if lane.answered else self.first_timeout
        if timeout is None:
            return await lane.backend.complete(request)
        try:
            return await asyncio.wait_for(lane.backend.complete(request), timeout)
        except EndpointError:
            raise
        except TimeoutError as err:
            raise RequestTimeoutError(
                f"{where(lane.backend)} sent no first reply within {timeout:g} s (first_request_timeout); if it is up "
                "but slow, raise first_request_timeout (CLI: --first-request-timeout)",
                cause="timeout",
            ) from err

    def _record_failure(self, lane: Lane, err: EndpointError) -> None:
        lane.record(success=False, error=err)
        self.last_heard = time.monotonic()
        self.last_failure = (self.last_heard, err.cause)
        self.failed_attempts += 1
        if self.failed_attempts > self.max_errors:
            causes = Counter(self.retries)
            causes[err.cause] += 1
            summary = ", ".join(f"{cause}: {n}" for cause, n in causes.most_common(4))
            raise GenerationStoppedError(
                f"stopped after {self.failed_attempts} failed requests (error budget max_errors={self.max_errors}; "
                f"{summary}; last: {err}); progress is saved in the journal, rerun to resume"
            ) from err

    def _starting_failed(self, err: EndpointError, attempt: int) -> None:
        """Before the first reply: say what failed, and stop once every backend was tried and none answered."""
        if self.on_event is not None:
            self.on_event(f"no successful reply yet (attempt {attempt}): {err}")
        if attempt < _UNREACHABLE_ATTEMPTS or not all(lane.silent for lane in self.lanes):
            return
        if len(self.lanes) == 1:
            if isinstance(err, EndpointUnreachableError):
                raise err
            raise EndpointUnreachableError(f"{err} ({attempt} attempts)", cause=err.cause) from err
        reasons = "; ".join(str(lane.last_error) for lane in self.lanes)
        raise EndpointUnreachableError(
            f"none of the {len(self.lanes)} endpoints answered in {attempt} attempts: {reasons}", cause=err.cause
        ) from err
