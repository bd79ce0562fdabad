"""The plugin: ask a deployed LLM Guard API whether a call's text is safe, before the upstream call.

`pre_request` POSTs the request's text to `<base>/analyze/prompt` and refuses the call (400
`Violated content safety policy`) when LLM Guard answers `is_valid: false`. The text is what
LiteLLM sends: every piece of the request's text (`gateway.iter_request_text`) concatenated.

A guard that cannot give a verdict (unreachable, too slow, an error status, a reply that is not
JSON or has no boolean `is_valid`) raises `LLMGuardUnavailable` (or `TimeoutError`), never a
`GatewayError`: the framework then applies `on_error` (fail_closed: 503 `guardrail_unavailable`;
fail_open: the call goes on).

The reply hooks exist only when `llm_guard_scan_output` is on: a plugin that implements
`post_response` makes the gateway parse and re-serialise every JSON reply, and one that implements
`stream_chunk` every streamed chunk, so with the option off the instance hides them from pluggy.

`concurrent = True`: the prompt check only reads the request, so it runs together with the other
remote guards next to it in priority order. With `llm_guard_use_sanitized_prompt` it also rewrites
the text, so the instance turns `concurrent` off and takes its own turn: the guards after it judge
the sanitized text, as the upstream receives it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any, Awaitable, Iterable, Mapping
from urllib.parse import unquote, urlsplit

import httpx

from gateway import BadRequestError, Plugin, RequestContext, hookimpl, iter_request_text, iter_request_text_slots, iter_response_text
from gateway_plugin_llmguard.config import LLMGuardConfig

# Under the `gateway` logger, so the server's log level and format apply to it.
log = logging.getLogger("gateway.plugins.llmguard_moderations")

BLOCKED = "Violated content safety policy"

#: Values of `enable_llm_guard_check` that turn the check on (LiteLLM compares with `== True`).
_ON_VALUES = (True, "true", "True")


class LLMGuardUnavailable(RuntimeError):
    """LLM Guard gave no verdict. Not a `GatewayError`, so the framework applies `on_error`; the
    503 message names this class."""


def prompt_text(body: dict[str, Any]) -> str:
    """The request's text as LiteLLM sends it to LLM Guard: every piece, concatenated as is."""
    return "".join(iter_request_text(body))


def reply_texts(response: dict[str, Any]) -> list[str]:
    """The non-empty pieces of a JSON reply's text, whatever the route (`gateway.iter_response_text`)."""
    return [text for text in iter_response_text(response) if text]


def display_url(url: str) -> str:
    """`url` without any user:password part, for logs and error messages."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


async def all_of(calls: Iterable[Awaitable[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Run the calls at once; the first failure cancels the others and is raised."""
    tasks = [asyncio.ensure_future(c) for c in calls]
    try:
        return await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


def _error_message(response: Any) -> str:
    """The `message` of an LLM Guard error body (`{"message", "details"}`), else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"][:200]
    return response.text[:200].strip() or "(empty body)"


class LLMGuard(Plugin):
    """Refuses an LLM call whose text LLM Guard finds unsafe (400 `Violated content safety policy`);
    optionally sends LLM Guard's sanitized text upstream, and checks the reply too."""

    name = "llmguard_moderations"  # the entry-point name, and the seed's callback name
    priority = 750  # remote guards band (700-799): after identity, limits and transforms
    concurrent = True  # a remote guard: runs together with its neighbours in the band
    Config = LLMGuardConfig

    config: LLMGuardConfig

    def __init__(self, config: LLMGuardConfig, gateway: Any) -> None:
        super().__init__(config, gateway)
        assert config.llm_guard_api_base is not None  # the config refuses a missing base
        self.base = display_url(config.llm_guard_api_base)
        self._urls = {"prompt": f"{self.base}/analyze/prompt", "output": f"{self.base}/analyze/output"}
        self._headers: dict[str, str] = {}
        parts = urlsplit(config.llm_guard_api_base)
        if parts.username is not None or parts.password is not None:
            # `http://user:password@host` is HTTP basic auth (LLM Guard API's `http_basic`), sent as a
            # header: the URL itself never carries it (nor shows it in a log).
            userinfo = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
            self._headers["authorization"] = "Basic " + base64.b64encode(userinfo.encode()).decode()
        if config.llm_guard_api_key is not None:  # an explicit token wins
            self._headers["authorization"] = f"Bearer {config.llm_guard_api_key.get_secret_value()}"
        self._client: Any = None
        self._own_client: Any = None
        if config.llm_guard_use_sanitized_prompt:
            self.concurrent = False  # it rewrites the request: the guards after it must see the result
        if not config.llm_guard_scan_output:
            # Hidden from pluggy (it reads the instance's own attributes first): see the module doc.
            self.post_response = None  # type: ignore[assignment,method-assign]
            self.stream_chunk = None  # type: ignore[assignment,method-assign]

    # -- serving -----------------------------------------------------------------------------
    @hookimpl
    async def startup(self, gateway: Any) -> None:
        pooled = getattr(gateway, "http_client", None)
        if callable(pooled):
            self._client = pooled(self.base)  # the gateway's pooled client for this host; it closes it
        else:
            self._client = self._own_client = httpx.AsyncClient(timeout=None, trust_env=False)
        extras = [f"llm_guard_mode={self.config.llm_guard_mode}"]
        if self.config.llm_guard_use_sanitized_prompt:
            extras.append("sanitized prompts sent upstream")
        if self.config.llm_guard_scan_output:
            extras.append("replies checked")
        log.info("LLM Guard moderation on: %s (%s)", self.base, ", ".join(extras))

    @hookimpl
    async def shutdown(self, gateway: Any) -> None:
        if self._own_client is not None:
            await self._own_client.aclose()
            self._own_client = None

    # -- which calls ---------------------------------------------------------------------------
    def applies(self, ctx: RequestContext) -> bool:
        """`llm_guard_mode`: every call, the calls of keys that ask for it, or the calls that ask."""
        mode = self.config.llm_guard_mode
        if mode == "all":
            return True
        if mode == "key-specific":
            permissions = ctx.principal.permissions if ctx.principal is not None else {}
        else:
            permissions = ctx.metadata.get("permissions") if isinstance(ctx.metadata, dict) else None
        on = isinstance(permissions, Mapping) and permissions.get("enable_llm_guard_check") in _ON_VALUES
        if not on:
            log.debug("LLM Guard check skipped (llm_guard_mode=%s, request %s)", mode, ctx.request_id)
        return on

    # -- the request ---------------------------------------------------------------------------
    @hookimpl
    async def pre_request(self, ctx: RequestContext) -> None:
        """Refuse the call when LLM Guard finds its text unsafe."""
        if not self.applies(ctx):
            return
        if self.config.llm_guard_use_sanitized_prompt:
            await self._check_and_sanitize(ctx)
            return
        text = prompt_text(ctx.body)
        if not text:
            return  # nothing to judge (an image-only message, a token array)
        reply = await self.analyze("prompt", {"prompt": text})
        if not reply["is_valid"]:
            raise BadRequestError(BLOCKED)

    async def _check_and_sanitize(self, ctx: RequestContext) -> None:
        """Each piece of text on its own, all at once; then each replaced by its sanitized version."""
        slots = [(c, k) for c, k in iter_request_text_slots(ctx.body) if c[k]]
        if not slots:
            return
        replies = await all_of(self.analyze("prompt", {"prompt": c[k]}) for c, k in slots)
        if not all(r["is_valid"] for r in replies):
            raise BadRequestError(BLOCKED)
        sanitized = []
        for reply in replies:
            if not isinstance(reply.get("sanitized_prompt"), str):
                raise LLMGuardUnavailable("LLM Guard's reply has no sanitized_prompt")
            sanitized.append(reply["sanitized_prompt"])
        changed = [(c, k, new) for (c, k), new in zip(slots, sanitized, strict=True) if new != c[k]]
        if not changed:
            return
        if self.mode == "monitor":  # monitor mode reports; it never changes a call
            log.info("LLM Guard would have sanitized %d piece(s) of text (monitor mode, request %s)",
                     len(changed), ctx.request_id)
            return
        for container, key, new in changed:
            container[key] = new
        log.info("LLM Guard sanitized %d piece(s) of text (request %s)", len(changed), ctx.request_id)

    # -- the reply (only with llm_guard_scan_output) ----------------------------------------------
    @hookimpl
    async def post_response(self, ctx: RequestContext, response: dict[str, Any]) -> None:
        """A JSON reply: refuse it when LLM Guard finds a choice's text unsafe. A stream was already
        judged in `stream_chunk`."""
        if ctx.stream or not self.applies(ctx):
            return
        await self._check_output(ctx, reply_texts(response))

    @hookimpl
    async def stream_chunk(self, ctx: RequestContext, chunk: dict[str, Any]) -> None:
        """Hold back each choice's text until its `finish_reason`, then put all of it in that last
        chunk and ask LLM Guard: the text leaves whole or not at all. Chunks keep flowing with
        empty text meanwhile (and without `logprobs`, which would spell it out); tool-call deltas
        pass as they come."""
        if not self.applies(ctx):
            return
        held: dict[Any, list[str]] = ctx.state_for(self.name).setdefault("held", {})
        chat = ctx.call_type == "acompletion"
        key = "content" if chat else "text"
        finished = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            container = choice.get("delta") if chat else choice
            if not isinstance(container, dict):  # a chat choice without a delta
                if not (choice.get("finish_reason") and held.get(index)):
                    continue
                container = choice["delta"] = {}
            piece = container.get(key)
            if isinstance(piece, str) and piece:
                held.setdefault(index, []).append(piece)
                container[key] = ""
                if choice.get("logprobs") is not None:
                    choice["logprobs"] = None
            if choice.get("finish_reason"):
                text = "".join(held.pop(index, ()))
                if text:
                    container[key] = text  # before the verdict: monitor mode and fail_open send it
                    finished.append(text)
        await self._check_output(ctx, finished)

    async def _check_output(self, ctx: RequestContext, texts: list[str]) -> None:
        if not texts:
            return
        prompt = prompt_text(ctx.body)
        replies = await all_of(self.analyze("output", {"prompt": prompt, "output": t}) for t in texts)
        if not all(r["is_valid"] for r in replies):
            raise BadRequestError(BLOCKED)

    # -- the LLM Guard API -----------------------------------------------------------------------
    async def analyze(self, what: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST to `/analyze/<what>`; the reply, once it is a JSON object with a boolean `is_valid`."""
        limit = self.config.llm_guard_timeout_s
        try:
            async with asyncio.timeout(limit):
                response = await self._client.post(self._urls[what], json=payload, headers=self._headers)
        except TimeoutError:
            raise TimeoutError(f"LLM Guard did not answer within {limit:g} s") from None
        except httpx.HTTPError as exc:
            raise LLMGuardUnavailable(
                f"LLM Guard at {self.base} is unreachable or dropped the call ({type(exc).__name__})"
            ) from None
        if response.status_code != 200:
            raise LLMGuardUnavailable(f"LLM Guard answered HTTP {response.status_code}: {_error_message(response)}")
        try:
            reply = response.json()
        except ValueError:
            raise LLMGuardUnavailable("LLM Guard's reply is not JSON") from None
        if not isinstance(reply, dict):
            raise LLMGuardUnavailable("LLM Guard's reply is not a JSON object")
        if log.isEnabledFor(logging.INFO):  # the seed's line; the reply may be long: serialised only if shown
            log.info("LLM Guard: Received response - %s", json.dumps(reply, ensure_ascii=False))
        if not isinstance(reply.get("is_valid"), bool):
            raise LLMGuardUnavailable("LLM Guard's reply has no boolean is_valid")
        return reply
