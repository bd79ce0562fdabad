"""Never buffer more of a request body than a plugin's limit allows (limit + 1 byte).

An ASGI wrapper around `receive`: once a body passes the limit, the rest of it is read from the
socket and thrown away, and the app sees a body of exactly `limit + 1` bytes, so the size-limit
check can refuse it without the gateway ever holding the whole thing. Installed only when a plugin
asks for a limit (`Gateway.limit_request_body`).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Message = dict[str, Any]


class BodyLimit:
    def __init__(self, app: Callable[..., Awaitable[None]], limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        keep = self.limit + 1
        seen = 0
        cut = False

        async def limited() -> Message:
            nonlocal seen, cut
            while True:
                message = await receive()
                if message.get("type") != "http.request":
                    return message
                if cut:
                    continue  # drain and discard what follows the cut
                body = message.get("body", b"")
                if seen + len(body) <= keep:
                    seen += len(body)
                    return message
                cut = True
                body = body[: keep - seen]
                seen = keep
                scope["gateway.body_truncated"] = True
                return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, limited, send)
