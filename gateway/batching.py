"""Deliver records in batches, off the request path: a bounded queue and one background task.

`submit(record)` is synchronous and cheap (a `request_finished` hook calls it and returns). The
task sends a batch when `batch_size` records wait, or `flush_interval_s` after the oldest arrived,
through the plugin's `deliver(batch)` coroutine. A transient failure (`RetryableError`: a
connection error, a timeout, 408, 429, 5xx) is retried with a doubling backoff (a longer
Retry-After wins); anything else gives the batch up. When the queue is full the OLDEST record is
dropped (fresh records matter more to an operator than stale ones), counted, and one WARNING a
minute says so. `stop()` sends what is queued within `shutdown_timeout_s`.

Public for plugins that ship records somewhere (the generic HTTP logger, Langfuse): one tested
queue instead of one per plugin.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from email.utils import parsedate_to_datetime
from typing import Any, Awaitable, Callable

MAX_RETRY_WAIT_S = 60.0
DROP_WARNING_EVERY_S = 60.0
RETRYABLE_STATUS = frozenset({408, 429})


class RetryableError(Exception):
    """A transient failure: send again later. `records` narrows what to send again (the rest
    arrived); `rejected` counts records the receiver refused for good in the same answer."""

    def __init__(self, problem: str, *, retry_after: float | None = None, records: list[Any] | None = None,
                 rejected: int = 0) -> None:
        super().__init__(problem)
        self.problem = problem
        self.retry_after = retry_after
        self.records = records
        self.rejected = rejected


class DeliveryError(Exception):
    """A failure that sending again will not fix (HTTP 400, 401, 403, 404...): the batch is given up."""


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUS or status >= 500


async def post(client: Any, url: str, *, content: bytes, headers: dict[str, str], timeout: float,
               where: str) -> Any:
    """POST and return the 2xx response; raise RetryableError or DeliveryError otherwise.

    `where` names the receiver in error texts: never the URL (it may carry a token) nor headers."""
    try:
        async with asyncio.timeout(timeout):
            response = await client.post(url, content=content, headers=headers, timeout=timeout)
    except Exception as exc:  # network error or timeout; CancelledError (a stop) passes
        if isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__:
            raise RetryableError(f"no answer from {where} within {timeout:g} s") from None
        raise RetryableError(f"{type(exc).__name__} calling {where}") from None
    status = response.status_code
    if 200 <= status < 300:
        return response
    body = " ".join(response.text.split())[:200]
    problem = f"HTTP {status} from {where}: {body!r}"
    if is_retryable_status(status):
        raise RetryableError(problem, retry_after=retry_after_seconds(response.headers.get("retry-after")))
    raise DeliveryError(problem)


class BatchSender:
    """The queue, its counters and the sender task of one plugin instance."""

    def __init__(self, *, name: str, deliver: Callable[[list[Any]], Awaitable[int | None]], batch_size: int,
                 flush_interval_s: float, max_queue: int, retry_attempts: int, retry_backoff_s: float,
                 shutdown_timeout_s: float, log: logging.Logger) -> None:
        self.name = name
        self._deliver = deliver
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_queue = max_queue
        self.retry_attempts = retry_attempts
        self.retry_backoff_s = retry_backoff_s
        self.shutdown_timeout_s = shutdown_timeout_s
        self._log = log
        self._queue: deque[tuple[float, Any]] = deque()  # (monotonic time queued, record)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stopped = False
        self._in_flight = 0
        self._last_drop_warning = float("-inf")
        #: Records given to `deliver` and accepted, dropped from a full queue (or after the stop),
        #: given up (refused or out of attempts), batches sent, and attempts that were retried.
        self.sent = self.dropped = self.failed = self.batches = self.retries = 0

    def stats(self) -> dict[str, int]:
        return {"queued": len(self._queue), "in_flight": self._in_flight, "sent": self.sent,
                "dropped": self.dropped, "failed": self.failed, "batches": self.batches, "retries": self.retries}

    # -- the hook's side: synchronous, never waits ------------------------------------------------
    def submit(self, record: Any) -> None:
        if self._stopped:
            self._drop(1, "after shutdown")
            return
        if len(self._queue) >= self.max_queue:
            self._queue.popleft()
            self._drop(1, f"queue full ({self.max_queue} records waiting); the oldest was dropped")
        self._queue.append((time.monotonic(), record))
        if len(self._queue) >= self.batch_size or len(self._queue) == 1:
            self._wake.set()

    def _drop(self, count: int, why: str) -> None:
        self.dropped += count
        now = time.monotonic()
        if now - self._last_drop_warning >= DROP_WARNING_EVERY_S:
            self._last_drop_warning = now
            self._log.warning("%s: %s; %d record(s) dropped so far (at most one such warning a minute)",
                              self.name, why, self.dropped)

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self.name}-sender")

    async def stop(self) -> None:
        """Send what is queued within the shutdown deadline, then refuse new records."""
        try:
            if self._task is None:
                return
            self._stopping = True
            self._wake.set()
            done, _ = await asyncio.wait({self._task}, timeout=self.shutdown_timeout_s)
            if not done:
                lost = len(self._queue) + self._in_flight
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
                self.failed += lost
                self._log.error("%s: shutdown deadline (%.0f s) reached; %d record(s) not delivered",
                                self.name, self.shutdown_timeout_s, lost)
            elif self._task.exception() is not None:
                self._log.error("%s: the sender had stopped on an error: %r", self.name, self._task.exception())
            self._task = None
        finally:
            self._stopped = True
            self._in_flight = 0

    # -- the sender task ----------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            self._wake.clear()
            if not self._queue:
                if self._stopping:
                    return
                await self._wake.wait()
                continue
            if len(self._queue) < self.batch_size and not self._stopping:
                wait = self._queue[0][0] + self.flush_interval_s - time.monotonic()
                if wait > 0:
                    try:
                        async with asyncio.timeout(wait):
                            await self._wake.wait()
                    except TimeoutError:
                        pass
                    continue
            batch = [self._queue.popleft()[1] for _ in range(min(self.batch_size, len(self._queue)))]
            try:
                await self._send(batch)
            except Exception:  # a bug in `deliver` must not stop the sender
                self.failed += len(batch)
                self._log.exception("%s: unexpected error while sending %d record(s)", self.name, len(batch))
            finally:
                self._in_flight = 0

    async def _send(self, batch: list[Any]) -> None:
        """One batch, with the retry policy."""
        attempt = 0
        while batch:
            attempt += 1
            self._in_flight = len(batch)
            try:
                rejected = await self._deliver(batch) or 0
            except RetryableError as exc:
                self.failed += exc.rejected
                again = batch if exc.records is None else exc.records
                self.sent += len(batch) - len(again) - exc.rejected
                if attempt >= self.retry_attempts:
                    self.failed += len(again)
                    self._log.error("%s: gave up on %d record(s) after %d attempt(s): %s",
                                    self.name, len(again), attempt, exc.problem)
                    return
                delay = min(self.retry_backoff_s * 2 ** (attempt - 1), MAX_RETRY_WAIT_S)
                if exc.retry_after is not None:
                    delay = min(max(delay, exc.retry_after), MAX_RETRY_WAIT_S)
                self.retries += 1
                self._log.warning("%s: attempt %d failed (%s); retrying %d record(s) in %.1f s",
                                  self.name, attempt, exc.problem, len(again), delay)
                batch = again
                await asyncio.sleep(delay)
                continue
            except DeliveryError as exc:
                self.failed += len(batch)
                self._log.error("%s: gave up on %d record(s): %s", self.name, len(batch), exc)
                return
            self.batches += 1
            self.failed += rejected
            self.sent += len(batch) - rejected
            return
