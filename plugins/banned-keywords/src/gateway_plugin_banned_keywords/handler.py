"""The plugin: refuse a request, a reply or a stream that contains a banned keyword.

Requests are checked in `pre_request`, replies in `post_response`, streams chunk by chunk in
`stream_chunk`. A keyword can be split across any number of chunks, so each choice's stream keeps
back the end of its text that could start a keyword (never more than the longest keyword less one
character) and sends it with the next chunk of that choice, or with its `finish_reason` chunk: the
client never receives a banned keyword whole, and clean text arrives unchanged. The hold-back is
`gateway.StreamText`, the helper any plugin can use for the same job.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from gateway import BadRequestError, Plugin, RequestContext, StreamText, hookimpl, iter_request_text, iter_response_text
from gateway_plugin_banned_keywords.config import BannedKeywordsConfig
from gateway_plugin_banned_keywords.keywords import Matcher, read_keyword_file

# Under the `gateway` logger, so the server's log level and format apply to it.
log = logging.getLogger("gateway.plugins.banned_keywords")

#: permissions.banned_keywords values that switch the plugin off for a key (as hide_secrets reads its own).
_OFF_VALUES = (False, "false", "False", "off", "no", "0", 0)


def keyword_file_path(value: str, gateway: Any) -> Path:
    """`value` as a path; a relative one is taken from the config file's folder (else the cwd)."""
    path = Path(value).expanduser()
    config_path = getattr(getattr(gateway, "settings", None), "config_path", None)
    if not path.is_absolute() and config_path:
        path = Path(config_path).resolve().parent / path
    return path


class BannedKeywords(Plugin):
    """Refuses (400 `Keyword banned. Keyword=<word>`) any request or reply whose text contains one
    of the configured keywords, case-insensitively; streams are cut with an SSE error event."""

    name = "banned_keywords"  # the entry-point name, and the seed's callback name
    priority = 950  # cheap limits band (900-999): in-memory work, before transforms and remote guards
    Config = BannedKeywordsConfig

    config: BannedKeywordsConfig

    def __init__(self, config: BannedKeywordsConfig, gateway: Any) -> None:
        super().__init__(config, gateway)
        # Read and compiled here, not in startup: a bad file then stops the config check with
        # one line, before anything serves.
        keywords = config.banned_keywords_list
        if isinstance(keywords, str):
            keywords = read_keyword_file(keyword_file_path(keywords, gateway))
        self.matcher = Matcher(keywords)
        log.debug("banned_keywords: %d keywords", self.matcher.count)

    def _off_for(self, ctx: RequestContext) -> bool:
        principal = ctx.principal
        # The plugin's name, not the instance's: a guardrail instance answers to its guardrail's name.
        return principal is not None and principal.permissions.get(type(self).name, True) in _OFF_VALUES

    def _banned(self, ctx: RequestContext, word: str, where: str) -> BadRequestError:
        who = ctx.principal.display_name if ctx.principal is not None else "-"
        log.info("banned keyword in the %s (request %s, key %s): Keyword=%s", where, ctx.request_id, who, word)
        return BadRequestError(f"Keyword banned. Keyword={word}")

    @hookimpl
    async def pre_request(self, ctx: RequestContext) -> None:
        """Every text the request carries: messages (strings and text parts), prompt, input."""
        if self._off_for(ctx):
            return
        for text in iter_request_text(ctx.body):
            word = self.matcher.find(text)
            if word is not None:
                raise self._banned(ctx, word, "request")

    @hookimpl
    async def post_response(self, ctx: RequestContext, response: dict[str, Any]) -> None:
        """A JSON reply; a stream was already judged chunk by chunk (this is only its copy)."""
        if ctx.stream or self._off_for(ctx):
            return
        for text in iter_response_text(response):
            word = self.matcher.find(text)
            if word is not None:
                raise self._banned(ctx, word, "reply")

    @hookimpl
    async def stream_chunk(self, ctx: RequestContext, chunk: dict[str, Any]) -> None:
        """Scan each choice's new text together with what was held back from its last chunk."""
        if self._off_for(ctx):
            return
        banned = None
        matcher = self.matcher
        for window in StreamText.of(ctx, self.name, max_hold=matcher.max_held).feed(chunk):
            text = window.text
            word = matcher.find(text)
            if word is None:
                keep = matcher.held_back(text)
                if keep:
                    window.hold(keep)
            elif banned is None:
                # With a keyword found the window goes out whole (nothing held): enforce mode
                # discards this chunk, and monitor mode must deliver the reply unchanged.
                banned = word
        if banned is not None:
            state = ctx.state_for(self.name)
            if not state.get("reported"):
                state["reported"] = True  # once per stream: monitor mode records one entry, not one per chunk
                raise self._banned(ctx, banned, "streamed reply")
