"""Masks e-mail addresses in requests, replies and streams; counts them on the spend row."""

from __future__ import annotations

import re
from typing import Any

from gateway import Plugin, RequestContext, StreamText, hookimpl, iter_request_text_slots, iter_response_text_slots

from gateway_plugin_email_mask.config import EmailMaskConfig

EMAIL = re.compile(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)")
LAST_WORD = re.compile(r"\S*\Z")  # an address has no whitespace: only the last word can still grow


class EmailMask(Plugin):
    """Replaces e-mail addresses outside `email_mask_allow_domains` with `email_mask_replacement`."""

    name = "email_mask"
    priority = 850  # transforms band: before remote guards see the text
    Config = EmailMaskConfig
    config: EmailMaskConfig

    def __init__(self, config: EmailMaskConfig, gateway: Any) -> None:
        super().__init__(config, gateway)
        self.allowed = tuple(d.lower().lstrip("@.") for d in config.email_mask_allow_domains)
        if not config.email_mask_replies:  # no reply hooks at all: streams pass untouched
            self.post_response = self.stream_chunk = None  # type: ignore[assignment,method-assign]

    def _mask(self, text: str, ctx: RequestContext, where: str) -> str:
        def replace(match: re.Match[str]) -> str:
            domain = match.group(1).lower()
            if any(domain == d or domain.endswith("." + d) for d in self.allowed):
                return match.group()
            state = ctx.state_for(self.name)
            state[where] = state.get(where, 0) + 1
            ctx.annotate(f"{where}_masked", state[where])
            return self.config.email_mask_replacement

        return EMAIL.sub(replace, text)

    @hookimpl
    async def pre_request(self, ctx: RequestContext) -> None:
        for container, key in iter_request_text_slots(ctx.body):
            container[key] = self._mask(container[key], ctx, "request")
        ctx.set_header("x-email-mask-request", str(ctx.state_for(self.name).get("request", 0)))

    @hookimpl
    async def post_response(self, ctx: RequestContext, response: dict[str, Any]) -> None:
        if ctx.stream:
            return  # a stream was masked chunk by chunk; this is only its assembled copy
        for container, key in iter_response_text_slots(response):
            container[key] = self._mask(container[key], ctx, "reply")
        ctx.set_header("x-email-mask-reply", str(ctx.state_for(self.name).get("reply", 0)))

    @hookimpl
    async def stream_chunk(self, ctx: RequestContext, chunk: dict[str, Any]) -> None:
        for window in StreamText.of(ctx, self.name, max_hold=320).feed(chunk):
            window.hold(len(LAST_WORD.search(window.text).group()))
            window.released = self._mask(window.released, ctx, "reply")
