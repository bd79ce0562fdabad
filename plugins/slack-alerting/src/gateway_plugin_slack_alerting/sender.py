"""Delivery to the webhook, off the request path: a queue and one background task.

`submit(event)` is synchronous and cheap (the `alert` hook calls it and returns): it folds an
alert identical to one sent within the dedupe window into a count, else queues it. The sender
task posts what is queued, at most `slack_max_messages_per_minute` posts in any 60 s; alerts that
queue up meanwhile go out grouped, several to a post. Each post is retried on network errors,
timeouts, 429 and 5xx with a doubling backoff (a longer Retry-After wins), then given up and logged.
`stop()` sends what is left (rate limit set aside) within `slack_shutdown_timeout_s`.

The webhook URL is never logged: messages name it as `slack webhook (…abcd)`, error texts from the
HTTP stack are scrubbed of it, and a filter on the `httpx` logger (whose INFO lines print each
request's URL) masks it there too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from gateway import AlertEvent

from gateway_plugin_slack_alerting.config import SlackAlertingConfig, describe_webhook
from gateway_plugin_slack_alerting.text import MAX_POST_CHARS, compose, format_alert

log = logging.getLogger("gateway.plugins.slack_alerting")

MAX_QUEUE = 1000  # alerts waiting to be sent; past this, new ones are dropped and counted
MAX_ALERTS_PER_POST = 20
MAX_RETRY_WAIT_S = 60.0
RATE_PERIOD_S = 60.0


@dataclass(slots=True)
class Item:
    event: AlertEvent
    repeats: int = 0
    seconds: float = 0.0


@dataclass(slots=True)
class Window:
    """Identical alerts since `started`: the first was sent, `repeats` more were only counted."""

    started: float
    until: float
    last: AlertEvent
    repeats: int = 0


class _MaskURL(logging.Filter):
    """Rewrites a record that would print the webhook URL (httpx logs every request's URL)."""

    def __init__(self, secret: str, shown: str) -> None:
        super().__init__()
        self.secret, self.shown = secret, shown

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        if self.secret in message:
            record.msg, record.args = message.replace(self.secret, self.shown), None
        return True


def _retry_after(value: str | None) -> float | None:
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


class SlackSender:
    """The queue, the dedupe windows, the rate limit and the background sender task."""

    def __init__(self, url: str, config: SlackAlertingConfig) -> None:
        self._url = url
        self._path = urlsplit(url).path  # the secret part of a Slack webhook URL
        self.name = describe_webhook(url)
        self._cfg = config
        self._queue: deque[Item] = deque()
        self._windows: dict[tuple[str, str, str], Window] = {}
        self._posts: deque[float] = deque()  # monotonic times of the posts in the last 60 s
        self._wake = asyncio.Event()
        self._client: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stopped = False
        self._in_flight = 0
        self._dropped_unreported = 0
        self._filter = _MaskURL(url, self.name)

    # -- the hook's side: synchronous, never waits ------------------------------------------
    def submit(self, event: AlertEvent) -> None:
        if self._stopped:
            log.warning("alert %s after shutdown, not sent to %s: %s", event.kind, self.name, event.message)
            return
        window_s = self._cfg.slack_dedupe_window_s
        if window_s > 0 and not self._stopping:
            now = time.monotonic()
            key = (event.kind, event.level, event.message)
            window = self._windows.get(key)
            if window is not None and now >= window.until:  # the sender has not closed it yet
                self._close_window(key, window, now)
                window = self._windows.get(key)
            if window is not None:
                window.repeats += 1
                window.last = event
                return
            self._windows[key] = Window(started=now, until=now + window_s, last=event)
        self._enqueue(Item(event))

    def _enqueue(self, item: Item) -> None:
        if len(self._queue) >= MAX_QUEUE:
            self._dropped_unreported += 1
            if self._dropped_unreported == 1:
                log.warning("Slack alert queue full (%d waiting for %s); dropping new alerts", MAX_QUEUE, self.name)
            return
        self._queue.append(item)
        self._wake.set()

    def _close_window(self, key: tuple[str, str, str], window: Window, now: float) -> None:
        """At the end of a window: send the count of what was folded, and keep folding for another
        window while repeats keep coming (a storm gives one follow-up per window)."""
        if window.repeats:
            self._enqueue(Item(window.last, window.repeats, now - window.started))
            window.started, window.until, window.repeats = now, now + self._cfg.slack_dedupe_window_s, 0
        else:
            del self._windows[key]

    def _close_windows(self, now: float, every: bool = False) -> None:
        """Close the windows that ended (`every`: all that counted something, at shutdown)."""
        for key, window in list(self._windows.items()):
            if (window.repeats > 0) if every else (now >= window.until):
                self._close_window(key, window, now)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, client: Any) -> None:
        self._client = client
        logging.getLogger("httpx").addFilter(self._filter)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="slack-alerting-sender")

    async def stop(self) -> None:
        """Deliver what is queued (and the counts of open windows) within the shutdown deadline."""
        try:
            if self._task is None:
                return
            self._close_windows(time.monotonic(), every=True)
            self._stopping = True
            self._wake.set()
            done, _ = await asyncio.wait({self._task}, timeout=self._cfg.slack_shutdown_timeout_s)
            if not done:
                lost = len(self._queue) + self._in_flight
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
                log.error("Slack alerting: shutdown deadline (%.0f s) reached; %d alert(s) not delivered to %s",
                          self._cfg.slack_shutdown_timeout_s, lost, self.name)
            elif self._task.exception() is not None:
                log.error("Slack alerting: the sender had stopped on an error: %r", self._task.exception())
            self._task = None
        finally:
            self._stopped = True
            logging.getLogger("httpx").removeFilter(self._filter)

    # -- the sender task -----------------------------------------------------------------------
    def _rate_wait(self, now: float) -> float:
        """Seconds until another post is allowed (0: now)."""
        while self._posts and self._posts[0] <= now - RATE_PERIOD_S:
            self._posts.popleft()
        if len(self._posts) < self._cfg.slack_max_messages_per_minute:
            return 0.0
        return self._posts[0] + RATE_PERIOD_S - now

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = time.monotonic()
            self._close_windows(now)
            timeout: float | None = None
            if self._queue:
                wait = 0.0 if self._stopping else self._rate_wait(now)
                if wait <= 0:
                    await self._deliver_next()
                    continue
                timeout = wait
            elif self._stopping:
                return
            if self._windows and not self._stopping:
                next_close = min(w.until for w in self._windows.values()) - now
                timeout = next_close if timeout is None else min(timeout, next_close)
            try:
                async with asyncio.timeout(None if timeout is None else max(timeout, 0.0)):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _take(self) -> list[str]:
        """The next post's alerts: as many queued as fit (at least one)."""
        texts: list[str] = []
        size = 0
        while self._queue and len(texts) < MAX_ALERTS_PER_POST:
            item = self._queue[0]
            text = format_alert(item.event, item.repeats, item.seconds)
            if texts and size + len(text) + 2 > MAX_POST_CHARS:
                break
            self._queue.popleft()
            texts.append(text)
            size += len(text) + 2
        return texts

    async def _deliver_next(self) -> None:
        texts = self._take()
        count = len(texts)
        dropped, self._dropped_unreported = self._dropped_unreported, 0
        why = "shutting down" if self._stopping else (
            f"at most {self._cfg.slack_max_messages_per_minute} messages per minute")
        text = compose(texts, dropped, why).replace(self._url, self.name)
        self._in_flight = count
        self._posts.append(time.monotonic())
        try:
            await self._post(text, count)
        except Exception:  # a bug here must not stop the sender
            log.exception("Slack alerting: unexpected error while sending %d alert(s) to %s", count, self.name)
        finally:
            self._in_flight = 0

    def _scrub(self, text: str) -> str:
        text = text.replace(self._url, self.name)
        return text.replace(self._path, "/…") if len(self._path) > 1 else text

    async def _post(self, text: str, count: int) -> bool:
        """POST `{"text": text}`, with the retry policy; True when Slack accepted it."""
        cfg = self._cfg
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                async with asyncio.timeout(cfg.slack_timeout_s):
                    response = await self._client.post(self._url, json={"text": text}, timeout=cfg.slack_timeout_s)
            except Exception as exc:  # network error or timeout; CancelledError (a stop) passes
                if isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__:
                    problem = f"no answer within {cfg.slack_timeout_s:g} s"
                else:
                    problem = f"{type(exc).__name__}: {self._scrub(str(exc))[:200]}"
                retryable = True
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return True
                body = self._scrub(response.text.strip())[:200]
                problem = f"HTTP {status} {body!r}"  # Slack's errors are plain strings: 'invalid_payload'
                retryable = status in (408, 429) or status >= 500
                retry_after = _retry_after(response.headers.get("retry-after"))
            if not retryable or attempt >= cfg.slack_retry_attempts:
                log.error("Slack alerting: gave up on %d alert(s) after %d attempt(s) to %s: %s",
                          count, attempt, self.name, problem)
                return False
            delay = cfg.slack_retry_backoff_s * 2 ** (attempt - 1)
            if retry_after is not None:
                delay = max(delay, retry_after)
            delay = min(delay, MAX_RETRY_WAIT_S)
            log.warning("Slack alerting: attempt %d to %s failed (%s); retrying in %.1f s",
                        attempt, self.name, problem, delay)
            await asyncio.sleep(delay)
