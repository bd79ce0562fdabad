"""Response caching, as LiteLLM's `litellm_settings.cache` configures it.

    litellm_settings:
      cache: true
      cache_params:
        type: local            # or redis: REDIS_URL, or host/port/password (or url) here
        ttl: 600               # seconds an answer is kept (default 600)
        namespace: my-app      # keys are <namespace>:<hash>
        supported_call_types: ["acompletion", "atext_completion", "aembedding"]
        mode: default_on       # default_off: only requests that ask (cache: {use-cache: true})

A request may say, in its body's `cache` object: `no-cache: true` (do not answer from the cache),
`no-store: true` (do not keep this answer), `ttl: <s>` (keep it that long), `s-maxage: <s>` (only
an answer at most that old will do), `namespace: <name>`, `use-cache: true` (mode default_off).

The key is a hash of the call type, the model name asked for and the body as it would go upstream
(after the `pre_request` hooks, so a redacted prompt is cached redacted), leaving out what does not
change the answer (`stream`, `user`, `metadata`, ...). A hit is answered without an upstream call,
as JSON or, for a stream, replayed as SSE chunks; it is marked `x-gateway-cache-hit: True`, costs 0
and its spend row says `cache_hit: true`. Answers are stored after the reply has gone out, never
on the request path; a Redis that fails is a miss (see `redis_guard`), never an error.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from typing import Any, AsyncIterator

import orjson

from gateway.core.settings import ConfigError
from gateway.errors import BadRequestError

log = logging.getLogger("gateway.cache")

CALL_TYPES = {"acompletion": "acompletion", "completion": "acompletion", "atext_completion": "atext_completion",
              "text_completion": "atext_completion", "aembedding": "aembedding", "embedding": "aembedding"}
#: Request fields that do not change the answer: left out of the key.
NOT_IN_KEY = frozenset({"stream", "stream_options", "user", "metadata", "tags", "guardrails", "fallbacks", "cache",
                        "drop_params", "additional_drop_params", "fake_upstream"})
DEFAULT_TTL_S = 600.0
LOCAL_MAX_ENTRIES = 10_000
TYPES = ("local", "redis")


class LocalStore:
    """In this process: at most `max_entries` answers, the least recently used forgotten first."""

    def __init__(self, max_entries: int = LOCAL_MAX_ENTRIES) -> None:
        self.entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.max_entries = max_entries

    async def get(self, key: str) -> bytes | None:
        item = self.entries.get(key)
        if item is None:
            return None
        if item[0] <= time.time():
            del self.entries[key]
            return None
        self.entries.move_to_end(key)
        return item[1]

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        self.entries[key] = (time.time() + ttl, value)
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)


class RedisStore:
    """In Redis, shared by every worker and instance, each answer expiring by itself."""

    def __init__(self, guard: Any) -> None:
        self.guard = guard

    async def get(self, key: str) -> bytes | None:
        from gateway.core.redis_guard import RedisUnavailable

        try:
            return await self.guard.call("cache lookups", lambda: self.guard.client.get(key))
        except RedisUnavailable:
            return None

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        from gateway.core.redis_guard import RedisUnavailable

        try:
            await self.guard.call("cache writes", lambda: self.guard.client.set(key, value, px=max(1, int(ttl * 1000))))
        except RedisUnavailable:
            pass


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{where}: must be a number of seconds greater than 0, got {value!r}")
    return float(value)


class ResponseCache:
    """The configured cache (None when `cache` is off: see `from_settings`)."""

    def __init__(self, store: Any, ttl: float, namespace: str | None, call_types: set[str], default_on: bool,
                 kind: str) -> None:
        self.store = store
        self.ttl = ttl
        self.namespace = namespace
        self.call_types = call_types
        self.default_on = default_on
        self.kind = kind
        self._tasks: set[asyncio.Task[None]] = set()
        self._own_guard = False

    @classmethod
    def from_settings(cls, litellm_settings: dict[str, Any], redis: Any, make_guard: Any) -> "ResponseCache | None":
        if not litellm_settings.get("cache"):
            return None
        params = litellm_settings.get("cache_params") or {}
        if not isinstance(params, dict):
            raise ConfigError("litellm_settings.cache_params: must be a mapping")
        kind = params.get("type", "local")
        kind = "local" if kind in ("local", "in-memory", "memory") else kind
        if kind not in TYPES:
            raise ConfigError(f"litellm_settings.cache_params.type: {kind!r} is not supported; use one of: "
                              f"{', '.join(TYPES)}")
        ttl = _number("litellm_settings.cache_params.ttl", params["ttl"]) if params.get("ttl") is not None \
            else DEFAULT_TTL_S
        types = params.get("supported_call_types") or list(CALL_TYPES)
        if not isinstance(types, list) or any(t not in CALL_TYPES and not isinstance(t, str) for t in types):
            raise ConfigError("litellm_settings.cache_params.supported_call_types: must be a list of call types")
        call_types = {CALL_TYPES[t] for t in types if t in CALL_TYPES}
        mode = params.get("mode", "default_on")
        if mode not in ("default_on", "default_off"):
            raise ConfigError(f"litellm_settings.cache_params.mode: {mode!r} is not default_on or default_off")
        if kind == "local":
            store: Any = LocalStore(int(params.get("max_entries") or LOCAL_MAX_ENTRIES))
        else:
            url = params.get("url") or params.get("redis_url")
            if url is None and params.get("host"):
                auth = f":{params['password']}@" if params.get("password") else ""
                url = f"redis://{auth}{params['host']}:{params.get('port', 6379)}"
            guard = make_guard(url) if url else redis
            if guard is None:
                raise ConfigError("litellm_settings.cache_params: type redis needs REDIS_URL, or host/port "
                                  "(and password) or url in cache_params")
            store = RedisStore(guard)
        namespace = params.get("namespace")
        made = cls(store, ttl, str(namespace) if namespace else None, call_types, mode == "default_on", kind)
        made._own_guard = kind == "redis" and guard is not redis
        return made

    async def close(self) -> None:
        """Wait for answers being stored; close a Redis client of the cache's own."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        guard = getattr(self.store, "guard", None)
        if guard is not None and self._own_guard:
            await guard.close()

    # -- the request path ----------------------------------------------------------------------------
    def plan(self, call_type: str, model: str, body: dict[str, Any], control: Any) -> "Plan | None":
        """What this request does with the cache (None: nothing): `body` as it would go upstream,
        `control` the request's `cache` object."""
        if call_type not in self.call_types:
            return None
        if control is None:
            control = {}
        if not isinstance(control, dict):
            raise BadRequestError("cache must be an object, e.g. {\"no-cache\": true}", param="cache")
        if not self.default_on and not control.get("use-cache"):
            return None
        ttl = control.get("ttl", self.ttl)
        max_age = control.get("s-maxage")
        for name, value in (("ttl", ttl), ("s-maxage", max_age)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise BadRequestError(f"cache.{name} must be a number of seconds greater than 0", param="cache")
        namespace = control.get("namespace", self.namespace)
        digest = hashlib.sha256(orjson.dumps(
            [call_type, model, {k: v for k, v in body.items() if k not in NOT_IN_KEY}],
            option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)).hexdigest()
        key = f"{namespace}:{digest}" if namespace else f"gateway:cache:{digest}"
        return Plan(key, read=not control.get("no-cache"), write=not control.get("no-store"),
                    ttl=float(ttl), max_age=float(max_age) if max_age is not None else None)

    async def lookup(self, plan: "Plan") -> bytes | None:
        """The cached reply's JSON bytes, or None."""
        if not plan.read:
            return None
        raw = await self.store.get(plan.key)
        if raw is not None:
            try:
                stored, reply = orjson.loads(raw)
            except (orjson.JSONDecodeError, ValueError, TypeError):
                reply = None
            if reply is not None and (plan.max_age is None or time.time() - stored <= plan.max_age):
                return reply.encode() if isinstance(reply, str) else orjson.dumps(reply)
        return None

    def keep(self, plan: "Plan", reply: Any) -> None:
        """Store a reply (bytes or a dict) in the background, off the request path."""
        if not plan.write:
            return
        value = orjson.dumps([time.time(), reply.decode() if isinstance(reply, bytes) else reply])
        task = asyncio.get_running_loop().create_task(self._keep(plan, value))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _keep(self, plan: "Plan", value: bytes) -> None:
        try:
            await self.store.set(plan.key, value, plan.ttl)
        except Exception:  # a cache that cannot keep an answer is a miss next time, never an error
            log.warning("could not keep a reply in the %s cache", self.kind, exc_info=True)


class Plan:
    __slots__ = ("key", "read", "write", "ttl", "max_age")

    def __init__(self, key: str, *, read: bool, write: bool, ttl: float, max_age: float | None) -> None:
        self.key, self.read, self.write, self.ttl, self.max_age = key, read, write, ttl, max_age


class CachedReply:
    """A cached answer in the shape of an upstream reply: read whole, or replayed as an SSE stream."""

    status = 200
    headers: dict[str, str] = {}

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def read(self) -> bytes:
        return self.data

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        for event in replay(orjson.loads(self.data)):
            yield event

    async def close(self) -> None:
        return None


def replay(reply: dict[str, Any]) -> list[bytes]:
    """A chat.completion or text_completion as the SSE events of its stream: the content in one
    chunk per choice, then each choice's finish, then usage and `[DONE]`."""
    chat = reply.get("object") == "chat.completion"
    base = {"id": reply.get("id"), "created": reply.get("created"), "model": reply.get("model"),
            "object": "chat.completion.chunk" if chat else "text_completion"}
    events: list[bytes] = []

    def event(choices: list[dict[str, Any]], **extra: Any) -> None:
        events.append(b"data: " + orjson.dumps({**base, "choices": choices, **extra}) + b"\n\n")

    for choice in reply.get("choices") or ():
        idx = choice.get("index", 0)
        if chat:
            message = choice.get("message") or {}
            delta: dict[str, Any] = {"role": message.get("role", "assistant"), "content": message.get("content")}
            if message.get("tool_calls"):
                delta["tool_calls"] = [{**call, "index": i} for i, call in enumerate(message["tool_calls"])]
            event([{"index": idx, "delta": delta, "finish_reason": None}])
            event([{"index": idx, "delta": {}, "finish_reason": choice.get("finish_reason") or "stop"}])
        else:
            event([{"index": idx, "text": choice.get("text", ""), "finish_reason": None}])
            event([{"index": idx, "text": "", "finish_reason": choice.get("finish_reason") or "stop"}])
    if reply.get("usage"):
        event([], usage=reply["usage"])
    events.append(b"data: [DONE]\n\n")
    return events
