"""Probe plugins for the `guardrails:` tests (tests/test_guardrails*.py): each implements the request
and the reply hooks, so a guardrail's `mode` decides which of them run."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gateway import BadRequestError, Plugin, PluginConfig, hookimpl


def _reply_texts(response: dict[str, Any]) -> list[str]:
    out = []
    for choice in response.get("choices") or ():
        text = (choice.get("message") or {}).get("content") or choice.get("text") or ""
        if isinstance(text, str):
            out.append(text)
    return out


class Mark(Plugin):
    """Rewrites both ways: appends `request_mark` to the last message of the request, and
    `reply_mark` to each reply's text (a JSON reply in `post_response`, a stream's first text chunk
    in `stream_chunk`). Where a mark shows up tells which of its hooks ran on what."""

    name = "probe_mark"
    priority = 840

    class Config(PluginConfig):
        request_mark: str = Field(" [req-mark]", description="Appended to the request's last message.")
        reply_mark: str = Field(" [reply-mark]", description="Appended to each reply's text.")

    @hookimpl
    async def pre_request(self, ctx):
        messages = ctx.body.get("messages")
        if messages and isinstance(messages[-1].get("content"), str):
            messages[-1]["content"] += self.config.request_mark

    @hookimpl
    async def post_response(self, ctx, response):
        if ctx.stream:
            return  # a stream was marked chunk by chunk; this is only its assembled copy
        for choice in response.get("choices") or ():
            message = choice.get("message")
            if message and isinstance(message.get("content"), str):
                message["content"] += self.config.reply_mark

    @hookimpl
    async def stream_chunk(self, ctx, chunk):
        state = ctx.state_for("probe_mark:" + str(id(self)))
        if state.get("marked"):
            return
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str) and delta["content"]:
                delta["content"] += self.config.reply_mark
                state["marked"] = True


class TwoWayBlock(Plugin):
    """Blocks a request whose text contains `word` (`pre_request`) and a reply that contains it:
    a JSON reply in `post_response`, a stream chunk by chunk in `stream_chunk`."""

    name = "probe_two_way"
    priority = 930

    class Config(PluginConfig):
        word: str = Field("badword", description="The word that blocks a request or a reply.")

    @hookimpl
    async def pre_request(self, ctx):
        if self.config.word in ctx.user_message_text.lower():
            raise BadRequestError(f"Request blocked by probe_two_way. Keyword={self.config.word}")

    @hookimpl
    async def post_response(self, ctx, response):
        if ctx.stream:
            return  # judged chunk by chunk
        if any(self.config.word in t.lower() for t in _reply_texts(response)):
            raise BadRequestError(f"Reply blocked by probe_two_way. Keyword={self.config.word}")

    @hookimpl
    async def stream_chunk(self, ctx, chunk):
        for choice in chunk.get("choices") or ():
            text = (choice.get("delta") or {}).get("content") or choice.get("text") or ""
            if isinstance(text, str) and self.config.word in text.lower():
                raise BadRequestError(f"Reply blocked by probe_two_way. Keyword={self.config.word}")
