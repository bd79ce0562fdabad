"""The plugin: `request_finished` turns each finished call into a StandardLoggingPayload and
queues it (it never waits on the network); `startup` starts the sender, `shutdown` sends what is
queued. `GET /<name>/stats` (admin) shows the sender's counters.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from gateway import Plugin, hookimpl

from gateway.batching import BatchSender, RetryableError, post
from gateway_plugin_generic_api.config import GenericAPIConfig, describe_endpoint
from gateway.standard_logging import build_payload, event_type, events_from_callbacks, wants_messages

log = logging.getLogger("gateway.plugins.generic_api")

#: The names LiteLLM configs use for this logger: `generic_api` (callbacks) and the older
#: `generic` (success_callback / failure_callback).
CALLBACK_NAMES = ("generic_api", "generic")
CONTENT_TYPES = {"json_array": "application/json", "single": "application/json", "ndjson": "application/x-ndjson"}


def encode(records: list[dict[str, Any]], log_format: str) -> bytes:
    if log_format == "ndjson":
        return "\n".join(json.dumps(r, default=str) for r in records).encode()
    return json.dumps(records if log_format == "json_array" else records[0], default=str).encode()


class GenericAPILogger(Plugin):
    """Sends every finished LLM call, as LiteLLM's StandardLoggingPayload, to an HTTP endpoint in
    batches, off the request path, retried, with a bounded queue."""

    name = "generic_api"  # the entry-point name, LiteLLM's callback name
    priority = 20  # observers band (0-99)
    Config = GenericAPIConfig

    config: GenericAPIConfig

    def __init__(self, config: GenericAPIConfig, gateway: Any) -> None:
        super().__init__(config, gateway)
        assert config.generic_logger_endpoint is not None  # the config refuses a missing endpoint
        self._url = config.generic_logger_endpoint
        self.where = describe_endpoint(self._url)
        headers = dict(config.generic_logger_headers or {})
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = CONTENT_TYPES[config.generic_api_log_format]
        self._headers = headers
        self.events = frozenset(config.generic_api_event_types or ())  # settled in `startup`
        self._client: Any = None
        self._own_client: Any = None
        self.sender = BatchSender(
            name=self.name, deliver=self._deliver, batch_size=config.generic_api_batch_size,
            flush_interval_s=config.generic_api_flush_interval_s, max_queue=config.generic_api_max_queue,
            retry_attempts=config.generic_api_retry_attempts, retry_backoff_s=config.generic_api_retry_backoff_s,
            shutdown_timeout_s=config.generic_api_shutdown_timeout_s, log=log)

    @hookimpl
    async def startup(self, gateway: Any) -> None:
        # Here, not in __init__: an instance named in LiteLLM's `callback_settings` gets its name
        # after it is built, and its name may be what `success_callback` lists.
        litellm_settings = getattr(getattr(gateway.settings, "file", None), "litellm_settings", None) or {}
        names = CALLBACK_NAMES if self.name == type(self).name else (self.name,)
        self.events = frozenset(self.config.generic_api_event_types or events_from_callbacks(litellm_settings, names))
        self.sender.name = f"{self.name} ({self.where})"
        pooled = getattr(gateway, "http_client", None)
        if callable(pooled):
            self._client = pooled(self._url)  # the gateway's pooled client for the host; it closes it
        else:
            import httpx

            self._client = self._own_client = httpx.AsyncClient(timeout=None)
        self.sender.start()
        log.info("%s logging on: %s to %s, %s, batches of up to %d every %g s", self.name,
                 " and ".join(sorted(self.events)), self.where, self.config.generic_api_log_format,
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
        """Build the record and queue it; never waits."""
        if event_type(outcome) not in self.events:
            return
        messages = wants_messages(self.config.generic_api_log_messages, self.config.turn_off_message_logging, ctx)
        self.sender.submit(build_payload(ctx, outcome, self.gateway, log_messages=messages,
                                         redact_key_info=self.config.redact_user_api_key_info))

    @hookimpl
    def routes(self, gateway: Any) -> list[Any]:
        from quart import Blueprint

        bp = Blueprint(f"{self.name}_stats", __name__)

        @bp.get(f"/{self.name}/stats")
        async def stats() -> Any:
            """Admin: this worker's generic_api sender counters (queued, sent, dropped, failed...)."""
            return {"endpoint": self.where, "events": sorted(self.events), **self.sender.stats()}

        return [bp]

    async def _deliver(self, batch: list[dict[str, Any]]) -> int:
        fmt = self.config.generic_api_log_format
        if fmt != "single":
            content = await asyncio.to_thread(encode, batch, fmt)  # JSON of a big batch: off the event loop
            await self._post(content)
            return 0
        results = await asyncio.gather(*(self._post(encode([r], fmt)) for r in batch), return_exceptions=True)
        again = [r for r, res in zip(batch, results) if isinstance(res, RetryableError)]
        failed = [res for res in results if isinstance(res, BaseException) and not isinstance(res, RetryableError)]
        for res in failed:
            if not isinstance(res, Exception):
                raise res  # a cancellation
        if again:
            first = next(res for res in results if isinstance(res, RetryableError))
            raise RetryableError(f"{len(again)} of {len(batch)} POSTs failed, e.g. {first.problem}",
                                 retry_after=first.retry_after, records=again, rejected=len(failed))
        if failed:
            log.error("%s: %d of %d record(s) refused: %s", self.name, len(failed), len(batch), failed[0])
        return len(failed)

    async def _post(self, content: bytes) -> None:
        await post(self._client, self._url, content=content, headers=self._headers,
                   timeout=self.config.generic_api_timeout_s, where=self.where)
