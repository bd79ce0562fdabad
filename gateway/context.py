"""Per-request state handed to every request hook, and what the hooks are told afterwards."""

from __future__ import annotations

import logging
import re
import time
from contextvars import ContextVar
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

log = logging.getLogger("gateway.plugins")

#: The plugin whose hook is running (set by the dispatcher around each call), so that
#: `ctx.annotate` and `ctx.set_header` know whose they are.
current_plugin: ContextVar[str | None] = ContextVar("gateway_current_plugin", default=None)

#: Response headers the core owns; a plugin's `set_header` may not touch them.
RESERVED_HEADER = re.compile(r"^(x-gateway-|x-request-id$|x-ratelimit-|content-|transfer-encoding$|connection$)")
HEADER_NAME = re.compile(r"^x-[a-z0-9][a-z0-9-]*$")


#: The empty read-only mapping: the default of every mapping field of a `Principal`.
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return _EMPTY  # a default_factory: dataclasses refuse an unhashable default


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if type(value) is MappingProxyType:
        return value
    return MappingProxyType(dict(value)) if value else _EMPTY


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: filled in by the `auth` hook that recognised the key.

    `api_key` is the sha256 hex of the raw key, never the raw key itself.

    Immutable: one Principal is shared by every request of its key (the virtual-key builtin
    caches it, the master key has one for all its calls), so a change made for one request
    would leak into the others and into their spend rows. Assigning a field raises
    `dataclasses.FrozenInstanceError`; `models` and `tags` are tuples and the mappings are
    read-only (`types.MappingProxyType`), whatever was passed in (lists and dicts are copied
    once, when the Principal is built). Make a changed copy with `dataclasses.replace`. Values
    nested inside the mappings (a list in `metadata`, a record in `extra`) are the caller's own:
    treat them as read-only too.
    """

    api_key: str | None = None
    key_alias: str | None = None
    key_name: str | None = None
    user_id: str | None = None
    user_role: str | None = None
    team_id: str | None = None
    team_alias: str | None = None
    is_admin: bool = False
    models: Sequence[str] = ()
    permissions: Mapping[str, Any] = field(default_factory=_empty)
    metadata: Mapping[str, Any] = field(default_factory=_empty)
    team_metadata: Mapping[str, Any] = field(default_factory=_empty)
    tags: Sequence[str] = ()
    extra: Mapping[str, Any] = field(default_factory=_empty)

    def __post_init__(self) -> None:
        # Built once per key (and cached), never per request: the copies cost nothing on the hot path.
        if type(self.models) is not tuple:
            object.__setattr__(self, "models", tuple(self.models or ()))
        if type(self.tags) is not tuple:
            object.__setattr__(self, "tags", tuple(self.tags or ()))
        for name in ("permissions", "metadata", "team_metadata", "extra"):
            object.__setattr__(self, name, _frozen_mapping(getattr(self, name)))

    @property
    def display_name(self) -> str:
        """A name safe to log: the alias, else the masked key name."""
        return self.key_alias or self.key_name or ("master-key" if self.is_admin else "-")


@dataclass(slots=True)
class RequestContext:
    """One LLM call as it moves through the gateway.

    Hooks read and mutate `body` (what will be sent upstream). `headers` are the client's request
    headers with lower-case names. `state` is a private dict per plugin: use `ctx.state_for(self.name)`.
    `guardrails` names the guardrails switched on for this request (None: none are configured);
    `verdicts` holds each guard's verdict per phase, `{(name, phase): {"name", "phase", "verdict",
    "latency_ms"}}`, as the spend row records them under `metadata.guardrails`.
    """

    request_id: str
    #: "acompletion" | "atext_completion" | "aembedding" | "aimage_generation" | "aspeech" |
    #: "atranscription" | "amoderation" | "arerank" (what the upstream is asked: see `api`)
    call_type: str
    route: str
    body: dict[str, Any]
    principal: Principal
    headers: dict[str, str] = field(default_factory=dict)
    model: str = ""
    stream: bool = False
    end_user: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    deployment: Any = None
    start_time: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    upstream_seconds: float = 0.0
    blocked_by: str | None = None
    monitored: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, dict[str, Any]] = field(default_factory=dict)
    guardrails: frozenset[str] | None = None
    verdicts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    annotations: dict[str, dict[str, Any]] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)
    headers_sent: bool = False
    #: Every upstream attempt, in order: `{"model_group", "model_id", "status", "error"?}`.
    attempts: list[dict[str, Any]] = field(default_factory=list)
    #: Headers a hook adds to every upstream attempt of this call (a tracer's `traceparent`); the
    #: deployment's own headers (its key, `extra_headers`) win over these on a clash.
    upstream_headers: dict[str, str] = field(default_factory=dict)
    #: Answered from the response cache (no upstream call, no cost).
    cache_hit: bool = False
    #: The API the client called, as spend rows record it: `call_type` for OpenAI's routes;
    #: `anthropic_messages` / `aresponses` for the APIs served through chat (their `body`, replies
    #: and chunks are chat-shaped all the same, so hooks need not know which it was).
    api: str = ""

    def annotate(self, key: str, value: Any, plugin: str | None = None) -> None:
        """Record `key = value` for this call under the calling plugin's name: it lands on the
        spend row (`metadata.annotations.<plugin>.<key>`), in the `request_finished` outcome
        (`outcome.annotations`) and in the debug log. Values should be JSON (numbers, strings,
        lists, objects); never put a secret here. Called from a hook, the plugin is known;
        elsewhere pass `plugin=`."""
        owner = plugin or current_plugin.get()
        if owner is None:
            raise ValueError("ctx.annotate() outside a hook needs plugin=<your plugin's name>")
        self.annotations.setdefault(owner, {})[key] = value
        log.debug("request %s: %s annotated %s=%r", self.request_id, owner, key, value)

    def set_header(self, name: str, value: str) -> bool:
        """Add a response header for this call (replies and errors alike). Names start with `x-`
        (use your plugin's name after it: `x-email-mask-count`); the core's own headers
        (`x-gateway-*`, `x-request-id`, `x-ratelimit-*`) are refused with ValueError. A stream's
        headers leave with its first byte: a header set later (in `stream_chunk`, or in
        `post_response` of a stream) is not sent, a warning says so, and False is returned."""
        lowered = name.lower()
        if not HEADER_NAME.match(lowered) or RESERVED_HEADER.match(lowered):
            raise ValueError(f"response header {name!r}: use a name starting with x- that is not the gateway's own")
        text = str(value)
        if "\r" in text or "\n" in text:
            raise ValueError(f"response header {name!r}: the value must be one line")
        if self.headers_sent:
            log.warning("request %s: header %s set by %s after the stream's headers were sent; not sent",
                        self.request_id, lowered, current_plugin.get() or "a plugin")
            return False
        self.response_headers[lowered] = text
        return True

    def state_for(self, plugin_name: str) -> dict[str, Any]:
        """The private scratch dict of one plugin for this request."""
        s = self.state.get(plugin_name)
        if s is None:
            s = self.state[plugin_name] = {}
        return s

    @property
    def user_message_text(self) -> str:
        """All text a user sent in this request (messages, prompt or input), joined by newlines."""
        return "\n".join(iter_request_text(self.body))


def iter_request_text_slots(body: dict[str, Any]) -> Iterator[tuple[Any, str | int]]:
    """Where the client's text is, as assignable `(container, key)` slots, whatever the route:

    - chat (and the APIs served through chat: Anthropic's Messages, OpenAI's Responses, whose
      requests reach the hooks translated into chat): each message's `content`, a string or its
      `text` parts;
    - `prompt` (text completions, images, a transcription's prompt) and `input` (embeddings,
      moderations, speech): a string, or a list of strings or `{"type": "text", "text"}` parts;
    - rerank: `query` and each of `documents` (a string or `{"text": ...}`).

    A plugin that rewrites text assigns `container[key] = new`; one that only reads uses
    `iter_request_text`. Written for chat, a guard written on these helpers covers every route."""
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            yield message, "content"
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                    yield part, "text"
    for key in ("prompt", "input"):
        value = body.get(key)
        if isinstance(value, str):
            yield body, key
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, str):
                    yield value, i
                elif isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str):
                    yield item, "text"
    if "query" in body and "messages" not in body:  # rerank
        if isinstance(body["query"], str):
            yield body, "query"
        documents = body.get("documents")
        for i, doc in enumerate(documents if isinstance(documents, list) else ()):
            if isinstance(doc, str):
                yield documents, i
            elif isinstance(doc, dict) and isinstance(doc.get("text"), str):
                yield doc, "text"


def iter_request_text(body: dict[str, Any]) -> Iterator[str]:
    """Yield every piece of client-supplied text, in the places `iter_request_text_slots` names."""
    for container, key in iter_request_text_slots(body):
        yield container[key]


def iter_response_text_slots(response: Any) -> Iterator[tuple[Any, str | int]]:
    """Where a JSON reply's text is, as assignable `(container, key)` slots, whatever the route:
    each choice's `message.content` (a string or its `text` parts) or `text` (chat, and the
    APIs served through chat; text completions), a transcription's `text` and its segments',
    and an image's `revised_prompt`. `post_response` guards use it so that no route's reply
    escapes them (streams: see `gateway.StreamText`)."""
    if not isinstance(response, dict):
        return
    for choice in response.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if isinstance(message, dict):
            content = message.get("content")
            if isinstance(content, str):
                yield message, "content"
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                        yield part, "text"
        if isinstance(choice.get("text"), str):
            yield choice, "text"
    if "choices" in response:
        return
    if isinstance(response.get("text"), str):  # a transcription
        yield response, "text"
        for segment in response.get("segments") or ():
            if isinstance(segment, dict) and isinstance(segment.get("text"), str):
                yield segment, "text"
    images = response.get("data")
    for image in images if isinstance(images, list) else ():
        if isinstance(image, dict) and isinstance(image.get("revised_prompt"), str):
            yield image, "revised_prompt"


def iter_response_text(response: Any) -> Iterator[str]:
    """Yield every piece of a JSON reply's text, in the places `iter_response_text_slots` names."""
    for container, key in iter_response_text_slots(response):
        yield container[key]


@dataclass(slots=True)
class Outcome:
    """How an LLM call ended, for `request_finished` observers (spend, metrics, alerts)."""

    status: str  # "success" | "failure" | "blocked"
    http_status: int
    response: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    usage_estimated: bool = False
    error: Exception | None = None
    end_time: float = field(default_factory=time.time)
    #: What plugins recorded with `ctx.annotate`, by plugin name.
    annotations: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: A fixed cost in USD for the call (a pass-through endpoint's `cost_per_request`); None: the
    #: cost is priced from `usage` and the deployment's price.
    cost: float | None = None


@dataclass(slots=True)
class AuditEvent:
    """One administrative change (create, update, delete, block, unblock, regenerate)."""

    action: str
    table_name: str
    object_id: str
    changed_by: str | None
    changed_by_api_key: str | None
    before_value: dict[str, Any] | None
    updated_values: dict[str, Any] | None
    updated_at: float = field(default_factory=time.time)


@dataclass(slots=True)
class AlertEvent:
    """Something an operator should hear about (size-limit rejection, upstream failure, budget)."""

    kind: str
    message: str
    level: str = "warning"
    request_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)
