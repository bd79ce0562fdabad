"""The plugin: `request_finished` turns each finished call into Langfuse events and queues them
(it never waits on the network); the sender POSTs batches to `/api/public/ingestion`, reads the
207 multi-status reply event by event, and sends again what failed for a transient reason.
`GET /<name>/stats` (admin) shows the sender's counters.

No Langfuse SDK: ingestion is one documented HTTP call, and the SDK would bring its own batching
thread, its own HTTP stack and (in v3) OpenTelemetry, for what this module does in a few lines.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

from gateway import Plugin, hookimpl

from gateway.batching import BatchSender, DeliveryError, RetryableError, is_retryable_status, post
from gateway_plugin_langfuse.config import LangfuseConfig
from gateway_plugin_langfuse.events import call_events
from gateway.standard_logging import build_payload, event_type, events_from_callbacks, wants_messages

log = logging.getLogger("gateway.plugins.langfuse")

INGESTION_PATH = "/api/public/ingestion"
#: Langfuse refuses ingestion requests over 3.5 MB: a batch is cut into requests under this.
MAX_REQUEST_BYTES = 3_000_000
SDK = {"sdk_name": "gateway-plugin-langfuse", "sdk_version": "0.1.0", "sdk_integration": "gateway"}


def encode_requests(records: list[list[dict[str, Any]]]) -> list[tuple[list[list[dict[str, Any]]], bytes]]:
    """The ingestion requests for `records` (each a call's events): (their records, the body),
    each body under MAX_REQUEST_BYTES unless one call alone is larger."""
    tail = (b'], "metadata": ' + json.dumps(SDK).encode() + b"}")
    out: list[tuple[list[list[dict[str, Any]]], bytes]] = []
    group: list[list[dict[str, Any]]] = []
    parts: list[bytes] = []
    size = 0
    for record in records:
        encoded = [json.dumps(event, default=str).encode() for event in record]
        grows = sum(len(e) + 1 for e in encoded)
        if group and size + grows > MAX_REQUEST_BYTES:
            out.append((group, b'{"batch": [' + b",".join(parts) + tail))
            group, parts, size = [], [], 0
        group.append(record)
        parts.extend(encoded)
        size += grows
    if group:
        out.append((group, b'{"batch": [' + b",".join(parts) + tail))
    return out


def multi_status(response: Any, records: list[list[dict[str, Any]]]) -> tuple[list[Any], int, str | None]:
    """From a 207 (or 2xx) reply: the calls to send again (an event failed with 429/5xx), the
    number refused for good, and the first error's text."""
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return [], 0, None
    by_event = {event["id"]: i for i, record in enumerate(records) for event in record}
    again: set[int] = set()
    refused: set[int] = set()
    first = None
    for error in errors if isinstance(errors, list) else ():
        index = by_event.get(error.get("id")) if isinstance(error, dict) else None
        if index is None:
            continue
        status = error.get("status") if isinstance(error.get("status"), int) else 500
        first = first or f"event {error.get('id')}: {status} {' '.join(str(error.get('message') or '').split())[:200]}"
        (again if is_retryable_status(status) else refused).add(index)
    refused -= again  # a call sent again is not refused yet
    return [records[i] for i in sorted(again)], len(refused), first


class LangfuseLogger(Plugin):
    """Sends every finished LLM call to Langfuse (a trace and a generation) through its public
    ingestion API, in batches, off the request path, retried, with a bounded queue."""

    name = "langfuse"  # the entry-point name, LiteLLM's callback name
    priority = 20  # observers band (0-99)
    Config = LangfuseConfig

    config: LangfuseConfig

    def __init__(self, config: LangfuseConfig, gateway: Any) -> None:
        super().__init__(config, gateway)
        assert config.langfuse_public_key is not None and config.langfuse_secret_key is not None
        self._url = config.langfuse_host + INGESTION_PATH
        basic = f"{config.langfuse_public_key}:{config.langfuse_secret_key.get_secret_value()}"
        self._headers = {"Authorization": "Basic " + base64.b64encode(basic.encode()).decode(),
                         "Content-Type": "application/json"}
        self.where = f"Langfuse at {config.langfuse_host}"
        self.events: frozenset[str] = frozenset()  # settled in `startup`
        self._client: Any = None
        self._own_client: Any = None
        self.sender = BatchSender(
            name=self.name, deliver=self._deliver, batch_size=config.langfuse_batch_size,
            flush_interval_s=config.langfuse_flush_interval_s, max_queue=config.langfuse_max_queue,
            retry_attempts=config.langfuse_retry_attempts, retry_backoff_s=config.langfuse_retry_backoff_s,
            shutdown_timeout_s=config.langfuse_shutdown_timeout_s, log=log)

    @hookimpl
    async def startup(self, gateway: Any) -> None:
        # Here, not in __init__: an instance named in LiteLLM's `callback_settings` gets its name
        # after it is built, and its name may be what `success_callback` lists.
        litellm_settings = getattr(getattr(gateway.settings, "file", None), "litellm_settings", None) or {}
        self.events = frozenset(events_from_callbacks(litellm_settings, (self.name,)))
        self.sender.name = self.name
        pooled = getattr(gateway, "http_client", None)
        if callable(pooled):
            self._client = pooled(self._url)  # the gateway's pooled client for the host; it closes it
        else:
            import httpx

            self._client = self._own_client = httpx.AsyncClient(timeout=None)
        self.sender.start()
        log.info("Langfuse logging on: %s to %s (public key %s), batches of up to %d calls every %g s",
                 " and ".join(sorted(self.events)), self.config.langfuse_host, self.config.langfuse_public_key,
                 self.sender.batch_size, self.sender.flush_interval_s)

    @hookimpl
    async def shutdown(self, gateway: Any) -> None:
        try:
            await self.sender.stop()
        finally:
            if self._own_client is not None:
                await self._own_client.aclose()
                self._own_client = None

    @hookimpl
    async def request_finished(self, ctx: Any, outcome: Any) -> None:
        """Build the call's events and queue them; never waits."""
        if event_type(outcome) not in self.events:
            return
        messages = wants_messages(self.config.langfuse_log_messages, self.config.turn_off_message_logging, ctx)
        payload = build_payload(ctx, outcome, self.gateway, log_messages=messages,
                                redact_key_info=self.config.redact_user_api_key_info)
        self.sender.submit(call_events(payload, release=self.config.langfuse_release,
                                       environment=self.config.langfuse_environment))

    @hookimpl
    def routes(self, gateway: Any) -> list[Any]:
        from quart import Blueprint

        bp = Blueprint(f"{self.name}_stats", __name__)

        @bp.get(f"/{self.name}/stats")
        async def stats() -> Any:
            """Admin: this worker's Langfuse sender counters (calls queued, sent, dropped, failed...)."""
            return {"host": self.config.langfuse_host, "events": sorted(self.events), **self.sender.stats()}

        return [bp]

    async def _deliver(self, batch: list[list[dict[str, Any]]]) -> int:
        requests = await asyncio.to_thread(encode_requests, batch)  # JSON of a big batch: off the event loop
        again: list[Any] = []
        rejected = 0
        transient: RetryableError | None = None
        for i, (records, content) in enumerate(requests):
            try:
                response = await post(self._client, self._url, content=content, headers=self._headers,
                                      timeout=self.config.langfuse_timeout_s, where=self.where)
            except RetryableError as exc:
                transient = exc
                again.extend(r for group, _ in requests[i:] for r in group)
                break
            except DeliveryError as exc:
                rejected += len(records)
                hint = " (check LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY)" if " 401 " in f" {exc} " else ""
                log.error("%s: gave up on %d call(s): %s%s", self.name, len(records), exc, hint)
                continue
            retry, refused, first = multi_status(response, records)
            rejected += refused
            if refused:
                log.error("%s: Langfuse refused %d call(s) of %d: %s", self.name, refused, len(records), first)
            if retry:
                again.extend(retry)
                transient = transient or RetryableError(f"Langfuse failed {len(retry)} call(s): {first}")
        if again:
            assert transient is not None
            raise RetryableError(transient.problem, retry_after=transient.retry_after, records=again,
                                 rejected=rejected)
        return rejected
