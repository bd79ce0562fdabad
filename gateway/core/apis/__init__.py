"""Inbound APIs served through the chat path: Anthropic's Messages, OpenAI's Responses.

DESIGN.md section 4: an inbound API is an adapter onto the one request path. The client's request
is translated into an OpenAI chat request before any hook runs, so every plugin sees the same
`ctx.body` (`messages`, ...), the same `chat.completion` in `post_response` and the same
`chat.completion.chunk`s in `stream_chunk`, whatever the route; a guard written for chat works on
every route unchanged. The adapter then renders the (hooked) reply in its own wire format:

    adapter.to_chat(body, principal)  -> the chat request          (before auth'd hooks run)
    adapter.from_chat(reply, ctx)     -> the API's JSON reply       (after post_response)
    adapter.encoder(ctx)              -> a StreamEncoder            (chunk by chunk, after stream_chunk)
    adapter.error_body(err)           -> the API's error envelope   (any refusal on the route)
    adapter.stored(ctx, api_reply)    -> awaited after a success    (optional: Responses keeps state;
                                         after a stream, with `encoder.result()`, the reply as streamed)

`adapter.api` is the call type the spend rows record (`anthropic_messages`, `aresponses`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from gateway.context import RequestContext
from gateway.errors import GatewayError


class StreamEncoder(Protocol):
    """Renders one stream in the API's SSE events, from the chat chunks the hooks let through."""

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        """One `chat.completion.chunk` (usage-only chunks included, `choices: []`): zero or more
        SSE events, as bytes (b"" for none)."""
        ...

    def done(self) -> bytes:
        """The upstream finished: the API's closing events."""
        ...

    def error(self, err: GatewayError) -> bytes:
        """The stream failed or was blocked after bytes left: the API's error event."""
        ...

    #: The reply's id as the client saw it (`msg_...`, `resp_...`), once known: the spend row
    #: carries it, so that `/spend/logs?request_id=` finds the call by that id.
    reply_id: str | None


async def stored(adapter: Any, ctx: RequestContext, api_reply: dict[str, Any]) -> None:
    """Await the adapter's optional `stored(ctx, api_reply)` hook (Responses keeps its replies)."""
    keep = getattr(adapter, "stored", None)
    if keep is not None:
        await keep(ctx, api_reply)


_pending: set[Any] = set()
log = logging.getLogger("gateway.apis")


def keep_after_stream(adapter: Any, ctx: RequestContext, encoder: Any) -> None:
    """A stream ended well: hand the adapter's `stored` hook the reply as it was streamed
    (`encoder.result()`), off the stream (its bytes have all left)."""
    result = getattr(encoder, "result", None)
    if result is None:
        return

    async def keep() -> None:
        try:
            await stored(adapter, ctx, result())
        except Exception:  # noqa: BLE001 - a reply already sent cannot fail; say so in the log
            log.exception("request %s: keeping the streamed reply failed", ctx.request_id)

    task = asyncio.get_running_loop().create_task(keep())
    _pending.add(task)
    task.add_done_callback(_pending.discard)
