"""Relaying an upstream SSE stream to the client, chunk by chunk, through the response hooks.

Chunks are passed through as the upstream sent them unless a `stream_chunk` plugin may change
them. `post_response` sees the assembled reply at the end; a plugin with `buffers_stream` makes the
gateway hold every byte until that verdict. A failure or block after bytes left ends the stream with
an SSE error event (the OpenAI SDKs raise it as an APIError).

Time limits: the deployment's `stream_timeout` bounds each wait for the upstream's next bytes (the
transport's read timeout); `stream_total_timeout` bounds the whole stream, checked whenever bytes
arrive, so a stream lasts at most `stream_total_timeout` + `stream_timeout`.

A stream that fails before the upstream's usage chunk (the client left, the upstream broke or was
too slow) is billed on an estimate of what was sent and received: every chunk is parsed and
assembled anyway, so counting costs nothing per chunk, only one estimate at the end.
"""

from __future__ import annotations

from time import monotonic
from typing import Any, AsyncIterator

import orjson

from gateway.core.spend.record import estimate_usage
from gateway.errors import GatewayError, UpstreamConnectionError, UpstreamTimeoutError

DONE = b"data: [DONE]\n\n"


def error_event(err: GatewayError) -> bytes:
    return b"data: " + orjson.dumps(err.to_dict()) + b"\n\n"


class PastDeadline(Exception):
    """Bytes arrived after the stream's total deadline."""


async def sse_batches(chunks: AsyncIterator[bytes], deadline: float = float("inf")) -> AsyncIterator[list[bytes]]:
    """Split a byte stream into SSE `data` payloads (multi-line data joined, comments skipped), a
    list for each piece that arrived: what arrived together is relayed in one write.
    Raises PastDeadline when bytes (comments too) arrive after `deadline` (`time.monotonic()`)."""
    buffer = b""
    async for chunk in chunks:
        if monotonic() > deadline:
            raise PastDeadline
        buffer = buffer + chunk if buffer else chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        batch, start = [], 0
        while (end := buffer.find(b"\n\n", start)) >= 0:
            event, start = buffer[start:end], end + 2
            if event.startswith(b"data:") and b"\n" not in event:  # the usual one-line event
                batch.append(event[5:].lstrip(b" "))
                continue
            data = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
            if data:
                batch.append(b"\n".join(data))
        buffer = buffer[start:]
        if batch:
            yield batch
    tail = buffer.strip()
    if tail.startswith(b"data:"):
        yield [tail[5:].strip()]


class Assembler:
    """Builds the whole reply (a `chat.completion` or `text_completion`) from its chunks."""

    def __init__(self, chat: bool) -> None:
        self.chat = chat
        self.first: dict[str, Any] | None = None
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None
        self.usage_estimated = False

    def add(self, chunk: dict[str, Any]) -> None:
        if self.first is None:
            self.first = chunk
        for choice in chunk.get("choices") or ():
            idx = choice.get("index", 0)
            slot = self.choices.setdefault(idx, {"index": idx, "content": [], "role": "assistant",
                                                 "tool_calls": {}, "finish_reason": None})
            if choice.get("finish_reason"):
                slot["finish_reason"] = choice["finish_reason"]
            if not self.chat:
                if choice.get("text"):
                    slot["content"].append(choice["text"])
                continue
            delta = choice.get("delta") or {}
            if delta.get("role"):
                slot["role"] = delta["role"]
            if delta.get("content"):
                slot["content"].append(delta["content"])
            for call in delta.get("tool_calls") or ():
                tc = slot["tool_calls"].setdefault(call.get("index", 0), {"id": None, "type": "function",
                                                                            "function": {"name": "", "arguments": ""}})
                if call.get("id"):
                    tc["id"] = call["id"]
                fn = call.get("function") or {}
                if fn.get("name"):
                    tc["function"]["name"] += fn["name"]
                if fn.get("arguments"):
                    tc["function"]["arguments"] += fn["arguments"]

    @property
    def finished(self) -> bool:
        return any(c["finish_reason"] for c in self.choices.values())

    def estimate_usage(self, body: dict[str, Any]) -> None:
        """No usage came: estimate it from the request's text and the text received so far."""
        self.usage = estimate_usage(body, self.result())
        self.usage_estimated = True

    def result(self) -> dict[str, Any]:
        first = self.first or {}
        choices = []
        for idx in sorted(self.choices):
            c = self.choices[idx]
            text = "".join(c["content"])
            if self.chat:
                message: dict[str, Any] = {"role": c["role"], "content": text}
                if c["tool_calls"]:
                    message["tool_calls"] = [c["tool_calls"][k] for k in sorted(c["tool_calls"])]
                choices.append({"index": idx, "message": message, "finish_reason": c["finish_reason"]})
            else:
                choices.append({"index": idx, "text": text, "finish_reason": c["finish_reason"]})
        out = {"id": first.get("id"), "object": "chat.completion" if self.chat else "text_completion",
               "created": first.get("created"), "model": first.get("model"), "choices": choices}
        if self.usage:
            out["usage"] = self.usage
        return out


async def relay(
    ctx: Any,
    reply: Any,
    dispatcher: Any,
    *,
    chat: bool,
    client_wants_usage: bool,
    hold: bool,
    finish: Any,
    encoder: Any = None,
) -> AsyncIterator[bytes]:
    """The client's byte stream. `finish(status, error, assembler)` records the outcome once.
    An `encoder` (gateway/core/apis) renders the chunks in another API's events; without one,
    OpenAI's SSE goes out (the upstream's own bytes where no hook changed a chunk)."""
    chunk_hooks = dispatcher.runs("stream_chunk", ctx)
    judge = dispatcher.runs("post_response", ctx)
    assembler = Assembler(chat)
    held: list[bytes] = []  # with `hold`, everything until post_response's verdict
    ready: list[bytes] = []  # what goes out at the end of the piece being relayed
    outbox = held if hold else ready
    status, error = "failure", None
    first = True  # no chunk has gone out yet
    limit = ctx.deployment.stream_total_timeout
    try:
        async for batch in sse_batches(reply.iter_bytes(), monotonic() + limit):
            for data in batch:
                if data == b"[DONE]":
                    if judge:
                        if ready:
                            yield b"".join(ready)  # what came before [DONE] goes out before the verdict
                            ready.clear()
                        await dispatcher.run_chain("post_response", ctx, response=assembler.result())
                    outbox.append(DONE if encoder is None else encoder.done())
                    yield b"".join(outbox)
                    outbox.clear()
                    status = "success"
                    return
                chunk = _parsed(ctx, data, assembler, client_wants_usage)
                if chunk is None:
                    continue
                if chunk_hooks:
                    if not await dispatcher.run_stream_chunk(ctx, chunk):
                        continue
                    out = b"data: " + orjson.dumps(chunk) + b"\n\n" if encoder is None else encoder.chunk(chunk)
                elif encoder is None:
                    out = b"data: " + data + b"\n\n"  # the upstream's own bytes
                else:
                    out = encoder.chunk(chunk)
                assembler.add(chunk)
                if out:  # b"": an encoder with nothing to say for this chunk
                    outbox.append(out)
                    if first and not hold:
                        # The first chunk leaves at once, not after the rest of its piece: an upstream
                        # that sends many events together would otherwise delay the first token.
                        first = False
                        yield b"".join(ready)
                        ready.clear()
            if ready:
                yield b"".join(ready)
                ready.clear()
        if not assembler.finished:
            raise UpstreamConnectionError(
                f"{ctx.deployment.provider_display}Exception - upstream closed the stream before it finished"
            )
        # An upstream that finished without [DONE]: end the stream properly for the client.
        if judge:
            await dispatcher.run_chain("post_response", ctx, response=assembler.result())
        outbox.append(DONE if encoder is None else encoder.done())
        yield b"".join(outbox)
        status = "success"
    except (GatewayError, PastDeadline) as exc:
        error = exc if isinstance(exc, GatewayError) else past_deadline(ctx.deployment, limit)
        status = "blocked" if ctx.blocked_by else "failure"
        ready.append(error_event(error) if encoder is None else encoder.error(error))
        yield b"".join(ready)  # chunks relayed before the failure, then its event (held ones never leave)
    finally:
        await reply.close()
        if status == "failure" and assembler.usage is None:
            assembler.estimate_usage(ctx.body)  # bill what was sent and received
        finish(status, error, assembler)


def _parsed(ctx: Any, data: bytes, assembler: Assembler, client_wants_usage: bool) -> dict[str, Any] | None:
    """One upstream event as a chunk, or None when it is not relayed (not a JSON object, or a
    usage-only chunk the client did not ask for: its usage is kept). An error event raises."""
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(chunk, dict):
        return None
    if "error" in chunk:
        err = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
        raise GatewayError(
            f"{ctx.deployment.provider_display}Exception - "
            f"{ctx.deployment.redact(str(err.get('message', 'stream failed')))}",
            status=502, type=err.get("type") or "api_error",
        )
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        assembler.usage = usage
        if not chunk.get("choices") and not client_wants_usage:
            return None
    return chunk


def past_deadline(dep: Any, limit: float) -> UpstreamTimeoutError:
    return UpstreamTimeoutError(
        f"{dep.provider_display}Exception - Stream exceeded stream_total_timeout ({limit:g} s) calling "
        f"deployment {dep.model_name} ({dep.provider} at {dep.display_base})"
    )
