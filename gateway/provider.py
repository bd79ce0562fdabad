"""The provider contract: how one vendor's API is called for an OpenAI-shaped request.

A provider turns an OpenAI-shaped call (chat, text completion, embedding; streamed or not) into one
HTTP request in its vendor's wire format, and the vendor's reply back into OpenAI's: a JSON reply
into a `chat.completion` / `text_completion` / embedding list, a stream into
`chat.completion.chunk` objects, an error into a message and type. The gateway does the rest
(pooled connections, timeouts, retries, hooks, spend): a provider does no I/O of its own.

Providers are found by model prefix (`anthropic/claude-3-5-sonnet` -> `anthropic`). The core ships
its own through the same `providers` hook a plugin distribution uses to add one:

    from gateway import Provider, hookimpl

    class MyProvider(Provider):
        name = "myvendor"
        ...

    class MyVendorPlugin(Plugin):
        name = "myvendor"

        @hookimpl
        def providers(self, gateway):
            return [MyProvider()]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol


@dataclass(slots=True)
class UpstreamRequest:
    """One HTTP request to send upstream. `headers` carry the credentials: never log them."""

    url: str
    headers: dict[str, str]
    body: bytes
    method: str = "POST"


class StreamTranslator(Protocol):
    """Turns the vendor's stream, as bytes arrive, into OpenAI stream chunks (dicts shaped like
    `chat.completion.chunk`, or `text_completion` for completions). The last chunks a stream
    yields must carry each choice's `finish_reason` and a `usage` chunk when the vendor reports
    usage. A vendor error inside the stream is a chunk `{"error": {"message", "type"}}`."""

    def feed(self, data: bytes) -> list[dict[str, Any]]: ...

    def end(self) -> list[dict[str, Any]]: ...


@dataclass(slots=True)
class ProviderError:
    """A vendor's error reply, as the client will see it (the gateway prefixes the message with
    the provider's display name and masks the deployment's key)."""

    message: str
    type: str = "api_error"
    param: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Provider:
    """Subclass this. One instance serves every deployment of its prefix; keep per-deployment
    settings on the deployment (`dep.params` holds its whole `litellm_params`)."""

    #: The model prefix users write (`anthropic` in `anthropic/claude-3-5-sonnet`).
    name: ClassVar[str] = ""
    #: Other prefixes that mean the same provider (`mistralai` for `mistral`).
    aliases: ClassVar[tuple[str, ...]] = ()
    #: Prefixed to upstream error messages: `AnthropicException - ...`.
    display_name: ClassVar[str] = ""
    #: Where calls go when the deployment names no `api_base` (None: an api_base is required).
    default_api_base: ClassVar[str | None] = None
    #: Environment variables tried, in order, for the key when the deployment names none.
    api_key_env: ClassVar[tuple[str, ...]] = ()
    #: Environment variables tried for the base URL before `default_api_base`.
    api_base_env: ClassVar[tuple[str, ...]] = ()
    #: The call types it serves: "acompletion", "atext_completion", "aembedding".
    call_types: ClassVar[frozenset[str]] = frozenset({"acompletion"})
    #: It speaks OpenAI's wire format: replies, streams and errors are relayed as they come.
    passthrough: ClassVar[bool] = False

    #: The request fields it honours, per call type: OpenAI's that it translates and its own native
    #: ones. A call type absent here relays every field (the OpenAI family). A request field outside
    #: the set is refused with a 400 naming it, or dropped when `drop_params` is on (LiteLLM's
    #: UnsupportedParamsError and `drop_params`), so nothing a client asks for is silently ignored.
    supported_params: ClassVar[dict[str, frozenset[str]]] = {}

    #: Optional: `async def prepare(self, dep, call_type) -> None`, awaited before `build_request`
    #: on every call, for work that needs I/O (a credential refresh, e.g. Vertex's OAuth token),
    #: done off the event loop. None: nothing to prepare (no await on the hot path).
    prepare: Any = None

    def check(self, dep: Any) -> None:
        """At start-up, for each deployment: raise ValueError naming what is missing or wrong
        (the gateway refuses to start with it). `dep.api_base` and `dep.api_key` are resolved."""

    def params_for(self, dep: Any, call_type: str) -> frozenset[str] | None:
        """The fields this deployment honours for `call_type` (None: all). Override when they
        depend on the deployment (Vertex serves Gemini and Anthropic models)."""
        return self.supported_params.get(call_type)

    def build_request(self, dep: Any, call_type: str, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        """The HTTP request for one call. `body` is the OpenAI-shaped request as the hooks left
        it (the gateway's own fields removed); `body["model"]` is already `dep.upstream_model`."""
        raise NotImplementedError

    def parse_reply(self, dep: Any, call_type: str, data: bytes) -> dict[str, Any]:
        """A successful (2xx) JSON reply as OpenAI's (with `usage`). Not called when `passthrough`."""
        raise NotImplementedError

    def parse_error(self, dep: Any, status: int, data: bytes) -> ProviderError:
        """An error reply (4xx/5xx) as a message and type; the status stays the vendor's."""
        raise NotImplementedError

    def stream(self, dep: Any, call_type: str) -> StreamTranslator:
        """A translator for one streamed reply. Not called when `passthrough`."""
        raise NotImplementedError
