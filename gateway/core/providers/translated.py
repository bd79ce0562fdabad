"""A vendor's reply seen through its provider: OpenAI JSON, OpenAI SSE, OpenAI error bodies.

The rest of the request path (hooks, streaming relay, spend) only ever reads OpenAI's wire format;
a provider that is not `passthrough` gets its reply wrapped here, so nothing downstream changes.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

import orjson

from gateway.errors import GatewayError

def _sse(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


class TranslatedReply:
    """Wraps the transport's reply (status, headers, read, iter_bytes, close)."""

    __slots__ = ("inner", "status", "headers", "deployment", "call_type", "stream")

    def __init__(self, inner: Any, deployment: Any, call_type: str, stream: bool) -> None:
        self.inner = inner
        self.status = inner.status
        self.headers = inner.headers
        self.deployment = deployment
        self.call_type = call_type
        self.stream = stream

    async def read(self) -> bytes:
        data = await self.inner.read()
        handler = self.deployment.handler
        if self.status >= 400:
            err = handler.parse_error(self.deployment, self.status, data)
            body: dict[str, Any] = {"message": err.message, "type": err.type, "param": err.param}
            return orjson.dumps({"error": body})
        try:
            return orjson.dumps(handler.parse_reply(self.deployment, self.call_type, data))
        except (ValueError, KeyError, TypeError) as exc:
            raise GatewayError(f"{self.deployment.provider_display}Exception - upstream returned a reply that "
                               f"could not be read ({type(exc).__name__})", status=502, type="api_error") from None

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        translator = self.deployment.handler.stream(self.deployment, self.call_type)
        async for data in self.inner.iter_bytes():
            for chunk in translator.feed(data):
                yield _sse(chunk)
        for chunk in translator.end():
            yield _sse(chunk)
        # No `[DONE]` of ours: the relay ends a stream whose choices all finished, and reports one
        # the vendor cut short (no finish_reason) as the failure it is.

    async def close(self) -> None:
        await self.inner.close()
