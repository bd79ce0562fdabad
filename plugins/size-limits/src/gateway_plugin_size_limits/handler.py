"""Refuse what is too big, with the LiteLLM proxy's messages, and raise an alert for each refusal.

Requests are measured by the core, first thing for every request (`gateway.limit_request_body`):
from `content-length`, or, without one, from the bytes read, never buffering more than the limit
plus one byte; this plugin says how a refusal reads and raises its alert. Responses are measured
as JSON bytes; streams are counted chunk by chunk and cut with an SSE error when over.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from gateway import AlertEvent, BadRequestError, Plugin, hookimpl
from gateway_plugin_size_limits.config import MB, SizeLimitsConfig

log = logging.getLogger("gateway.plugins.size_limits")


def too_large(what: str, size_bytes: int, limit_mb: float) -> BadRequestError:
    """The seed's message: sizes in MB as Python prints floats (`1e-09`)."""
    return BadRequestError(
        f"{what} size is too large. {what} size is {size_bytes / MB} MB. Max size is {limit_mb} MB",
        param="content-length",
    )


class SizeLimits(Plugin):
    name = "size_limits"
    priority = 990  # cheap limits band: before anything spends effort on a request
    Config = SizeLimitsConfig
    switched_on_by = ("max_request_size_mb", "max_response_size_mb")

    def __init__(self, config: SizeLimitsConfig, gateway: Any) -> None:
        super().__init__(config, gateway)
        if config.request_bytes is not None:
            gateway.limit_request_body(config.request_bytes, refuse=self._refuse_request)

    def _refuse_request(self, size: int, path: str, request_id: str) -> BadRequestError:
        return self._refuse(too_large("Request", size, self.config.max_request_size_mb), request_id, path)

    def _refuse(self, err: BadRequestError, request_id: str | None, path: str) -> BadRequestError:
        log.warning("refused on %s: %s", path, err.message)
        self.gateway.alert(AlertEvent(kind="size_limit", message=err.message, request_id=request_id,
                                      details={"route": path}))
        return err

    @hookimpl
    async def post_response(self, ctx: Any, response: dict[str, Any]) -> None:
        limit = self.config.response_bytes
        if limit is None or ctx.stream:
            return
        size = len(orjson.dumps(response))
        if size > limit:
            raise self._refuse(too_large("Response", size, self.config.max_response_size_mb), ctx.request_id, ctx.route)

    @hookimpl
    async def stream_chunk(self, ctx: Any, chunk: dict[str, Any]) -> None:
        limit = self.config.response_bytes
        if limit is None:
            return
        state = ctx.state_for(self.name)
        state["bytes"] = state.get("bytes", 0) + len(orjson.dumps(chunk))
        if state["bytes"] > limit:
            raise self._refuse(too_large("Response", state["bytes"], self.config.max_response_size_mb),
                               ctx.request_id, ctx.route)
