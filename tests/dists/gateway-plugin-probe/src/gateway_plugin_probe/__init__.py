"""Plugins that exist only to test the gateway's hook contract through a real entry point."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import BaseModel, Field

from gateway import BadRequestError, GuardrailUnavailableError, Plugin, PluginConfig, hookimpl, iter_response_text


class BlockWord(Plugin):
    """Blocks a request whose text contains `word` (a cheap policy, like banned keywords)."""

    name = "probe_block"
    priority = 950

    class Config(PluginConfig):
        word: str = Field("forbidden", description="The word that blocks a request.")
        probe_block_message: str = Field("Blocked by probe", description="The block's message.")

    @hookimpl
    async def pre_request(self, ctx):
        if self.config.word in ctx.user_message_text.lower():
            raise BadRequestError(f"{self.config.probe_block_message}. Keyword={self.config.word}")


class Slow(Plugin):
    """Sleeps before each request: for timeouts."""

    name = "probe_slow"
    priority = 700

    class Config(PluginConfig):
        seconds: float = Field(1.0, description="How long each pre_request sleeps.")

    @hookimpl
    async def pre_request(self, ctx):
        await asyncio.sleep(self.config.seconds)


class Broken(Plugin):
    """Raises an unexpected error in pre_request: for fail_open / fail_closed."""

    name = "probe_broken"
    priority = 750

    @hookimpl
    async def pre_request(self, ctx):
        raise RuntimeError("probe_broken always fails")


class Rewrite(Plugin):
    """Rewrites the request body: the upstream must see the change."""

    name = "probe_rewrite"
    priority = 850

    class Config(PluginConfig):
        suffix: str = Field(" [rewritten]", description="Appended to the last message.")

    @hookimpl
    async def pre_request(self, ctx):
        messages = ctx.body.get("messages")
        if messages and isinstance(messages[-1].get("content"), str):
            messages[-1]["content"] += self.config.suffix


class StreamUpper(Plugin):
    """Upper-cases streamed content and drops chunks that carry only whitespace."""

    name = "probe_stream_upper"
    priority = 800

    @hookimpl
    async def stream_chunk(self, ctx, chunk):
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                delta["content"] = delta["content"].upper()

    @hookimpl
    async def post_response(self, ctx, response):
        for choice in response.get("choices") or ():
            message = choice.get("message")
            if message and isinstance(message.get("content"), str):
                message["content"] = message["content"].upper()


class JudgeReply(Plugin):
    """Blocks a reply containing `word`; may hold streams until it has judged them."""

    name = "probe_judge"
    priority = 720

    class Config(PluginConfig):
        word: str = Field("secret", description="A reply containing it is blocked.")

    @hookimpl
    async def post_response(self, ctx, response):
        for text in iter_response_text(response):  # every route's reply text
            if self.config.word in text.lower():
                raise BadRequestError(f"Reply blocked. Keyword={self.config.word}")


class JudgeReplyBuffered(JudgeReply):
    name = "probe_judge_buffered"
    buffers_stream = True


class Recorder(Plugin):
    """Records what the observer hooks saw, for the tests to read through a route."""

    name = "probe_recorder"
    priority = 10

    class Config(PluginConfig):
        events_file: str | None = Field(
            None, description="Also append each lifecycle event to this file (seen after the process ends)."
        )

    def __init__(self, config, gateway):
        super().__init__(config, gateway)
        self.finished: list[dict[str, Any]] = []
        self.events: list[str] = []
        self.alerts: list[str] = []

    def _event(self, name: str) -> None:
        self.events.append(name)
        if self.config.events_file:
            with open(self.config.events_file, "a") as f:
                f.write(name + "\n")

    @hookimpl
    async def startup(self, gateway):
        self._event("startup")

    @hookimpl
    async def shutdown(self, gateway):
        self._event("shutdown")

    @hookimpl
    async def request_finished(self, ctx, outcome):
        self.finished.append({
            "request_id": ctx.request_id, "status": outcome.status, "http_status": outcome.http_status,
            "usage": outcome.usage, "blocked_by": ctx.blocked_by, "monitored": ctx.monitored,
            "model": ctx.model, "deployment": ctx.deployment.id if ctx.deployment else None,
        })

    @hookimpl
    async def alert(self, event):
        self.alerts.append(event.kind)

    @hookimpl
    def routes(self, gateway):
        from quart import Blueprint

        bp = Blueprint("probe_recorder", __name__)

        @bp.get("/probe/recorded")
        async def recorded():
            return {"finished": self.finished, "events": self.events, "alerts": self.alerts}

        from quart_schema import document_response, validate_request

        class EchoBody(BaseModel):
            text: str
            times: int = Field(1, ge=1, le=10)

        class Echo(BaseModel):
            echo: str

        @bp.post("/probe/echo")
        @validate_request(EchoBody)
        @document_response(Echo)
        async def echo(data: EchoBody):
            """A plugin route described and validated with quart-schema (tests/test_openapi.py)."""
            return {"echo": data.text * data.times}

        return [bp]


class SwitchedOn(Plugin):
    """Enabled by a seed-style setting instead of by name; tags replies with a header-free marker."""

    name = "probe_switch"
    priority = 900
    switched_on_by = ("probe_switch_limit",)

    class Config(PluginConfig):
        probe_switch_limit: int = Field(..., gt=0, description="Largest allowed message count.")

    @hookimpl
    async def pre_request(self, ctx):
        if len(ctx.body.get("messages") or ()) > self.config.probe_switch_limit:
            raise BadRequestError(f"Too many messages. Max={self.config.probe_switch_limit}")


class BadHook(Plugin):
    """Implements a hook that does not exist: start-up must refuse it."""

    name = "probe_badhook"

    @hookimpl
    async def pre_reqest(self, ctx):  # misspelled on purpose
        return None


class StartupFails(Plugin):
    """Its startup hook raises: start-up must stop with one line, not hang."""

    name = "probe_startup_fails"

    @hookimpl
    async def startup(self, gateway):
        raise RuntimeError("cannot reach the moderation service (on purpose)")


class RemoteGuard(Plugin):
    """A remote guard: waits `seconds` (its round trip), then blocks a request containing `word`.
    `concurrent`, so several of them overlap their waits."""

    name = "probe_guard_a"
    priority = 760
    concurrent = True

    class Config(PluginConfig):
        seconds: float = Field(0.3, description="How long each check takes.")
        word: str = Field("unsafe-a", description="A request containing it is blocked.")

    def __init__(self, config, gateway):
        super().__init__(config, gateway)
        self.spans: list[tuple[float, float]] = []  # (start, end) of each finished check
        self.cancelled = 0

    @hookimpl
    async def pre_request(self, ctx):
        start = time.monotonic()
        try:
            await asyncio.sleep(self.config.seconds)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.spans.append((start, time.monotonic()))
        if self.config.word in ctx.user_message_text.lower():
            raise BadRequestError(f"Violated content safety policy. Guard={self.name}")


class RemoteGuardB(RemoteGuard):
    name = "probe_guard_b"
    priority = 740


class SequentialGuard(RemoteGuard):
    """The same guard without `concurrent`: it runs alone, in its turn."""

    name = "probe_guard_seq"
    priority = 720
    concurrent = False


class GuardDown(Plugin):
    """A guard whose service is down and says so with `GuardrailUnavailableError`."""

    name = "probe_guard_down"
    priority = 710

    @hookimpl
    async def pre_request(self, ctx):
        raise GuardrailUnavailableError("probe guard service is down")
