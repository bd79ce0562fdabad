"""The plugin conformance check: one call runs a plugin over every LLM route, streamed and not, and
fails naming each route a hook skipped (`gateway.testing` binds it to its fixtures as
`plugin_conformance`; docs/testing-a-plugin.md is the guide).

A guard that silently skips a route is the bug LiteLLM's users reported most: the check calls each
route a client can call (OpenAI's chat, completions, embeddings, images, speech, moderations,
rerank; Anthropic's Messages; OpenAI's Responses), so a plugin that reads text through the
documented helpers (`gateway.iter_request_text_slots`, `iter_response_text_slots`,
`StreamText`) passes everywhere, and one that reads `body["messages"]` by hand is told where not.

The routes and request shapes are conformance_shapes.py's; one call and the reading of its reply,
conformance_calls.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from gateway.conformance_calls import call, split_reply
from gateway.conformance_shapes import (CONFORMANCE_MODEL, CONFORMANCE_RERANK_MODEL, DEFAULT_TRIGGER, MESSAGES_PATHS,
                                        REPLY_SHAPES, REQUEST_SHAPES, RESPONSES_PATHS, ROUTE_PREFIXES, TEXT_HOOKS,
                                        TRANSCRIPTION_PATHS, Shape)
from gateway.context import iter_request_text
from gateway.fake_upstream import FakeUpstream

#: The check, and the route tables (conformance_shapes.py's) that plugins' own tests walk.
__all__ = ["CONFORMANCE_MODEL", "CONFORMANCE_RERANK_MODEL", "MESSAGES_PATHS", "REPLY_SHAPES", "REQUEST_SHAPES",
           "RESPONSES_PATHS", "ROUTE_PREFIXES", "ConformanceCase", "ConformanceError", "ConformanceReport", "Shape",
           "check_plugin_conformance"]


@dataclass
class ConformanceCase:
    """One call of the check: which hook it was for, where, and what the plugin did.

    `outcome`: "blocked" (refused, or the stream ended with an error event), "changed" (the text
    that went on differs from what came in), "answered" (a reply without calling the upstream),
    "skipped" (the text went through untouched) or "control failed" (the same call with harmless
    text did not succeed either, so the check could not tell). `detail` says what was seen.
    """

    hook: str
    route: str
    shape: str
    stream: bool
    outcome: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in ("blocked", "changed", "answered")

    def describe(self) -> str:
        where = f"POST {self.route} ({self.shape}{', streamed' if self.stream else ''})"
        return f"{self.hook:<14} {where}: {self.outcome}{' - ' + self.detail if self.detail else ''}"


@dataclass
class ConformanceReport:
    """What `check_plugin_conformance` did: the plugin's hooks, and every case it ran."""

    plugin: str
    hooks: list[str]
    cases: list[ConformanceCase] = field(default_factory=list)

    @property
    def failures(self) -> list[ConformanceCase]:
        return [c for c in self.cases if not c.ok]

    def routes_for(self, hook: str) -> set[str]:
        return {c.route for c in self.cases if c.hook.split(" ")[0] == hook}

    def __str__(self) -> str:
        return "\n".join([f"plugin {self.plugin!r} (hooks: {', '.join(self.hooks)}):",
                          *("  " + c.describe() for c in self.cases)])


class ConformanceError(AssertionError):
    """The plugin skipped routes (or could not be checked); the message names each route and hook.
    `.report` holds every case."""

    def __init__(self, message: str, report: ConformanceReport | None = None) -> None:
        super().__init__(message)
        self.report = report


def check_plugin_conformance(plugin: str, *, gateway_server: Callable[..., Any], fake_upstream: FakeUpstream,
                             config: dict[str, Any] | None = None, trigger: str = DEFAULT_TRIGGER,
                             harmless: str = "hello there", headers: dict[str, str] | None = None,
                             trigger_headers: dict[str, str] | None = None,
                             gateway_config: dict[str, Any] | None = None) -> ConformanceReport:
    """Run `plugin` over every LLM route and fail, naming route and hook, where a hook skipped one.

    The check starts a gateway with the plugin enabled (`config` is its config) and one model
    served by `fake_upstream`, asks `GET /plugins` which of `pre_request`, `post_response` and
    `stream_chunk` the plugin implements, then for each such hook calls every route it applies to:

    - `pre_request`: every route of REQUEST_SHAPES: chat/completions, completions and embeddings
      (with and without /v1 and in the Azure/engines forms), Anthropic's /v1/messages, OpenAI's
      /v1/responses, images, speech, moderations and rerank, each text shape (string, text parts
      or list), streamed and not where the route streams. The call carries `trigger`; the hook
      passes when the call was refused or the text the upstream received differs from what was
      sent.
    - `post_response` / `stream_chunk`: chat/completions and completions in the same forms,
      /v1/messages and /v1/responses; the upstream replies with `trigger` inside (streams cut it
      across two chunks); the hook passes when the client got an error (or the API's stream
      error event) or a text that differs from the reply.

    Every case is run first with `harmless` text, which must succeed, so a route that fails for
    any text is reported as such instead of passing as "blocked". `headers` go with every call;
    `trigger_headers`, when given, replace them on the trigger calls (for a plugin that acts on
    headers: send the header on the harmless call only). `gateway_config` adds config sections.
    Returns the `ConformanceReport`; raises `ConformanceError` (an AssertionError) listing every
    case a hook skipped, or when the plugin implements none of the hooks checked.
    """
    import httpx

    cfg: dict[str, Any] = {
        "model_list": [{"model_name": CONFORMANCE_MODEL,
                        "litellm_params": {"model": "openai/upstream-model", "api_base": fake_upstream.url,
                                           "api_key": "sk-upstream"}},
                       # OpenAI has no rerank: an OpenAI-compatible rerank server (vLLM's) serves it
                       {"model_name": CONFORMANCE_RERANK_MODEL,
                        "litellm_params": {"model": "hosted_vllm/upstream-reranker", "api_base": fake_upstream.url,
                                           "api_key": "sk-upstream"}}],
    }
    for key, value in (gateway_config or {}).items():
        cfg[key] = value
    cfg["plugins"] = [*(cfg.get("plugins") or []), {"name": plugin, "config": dict(config or {})}]
    gw = gateway_server(cfg)
    admin = {"Authorization": f"Bearer {gw.master_key}"} if gw.master_key else {}
    with httpx.Client(timeout=30) as http:
        listing = http.get(gw.url + "/plugins", headers=admin)
        listing.raise_for_status()
        order = listing.json().get("order") or {}
        hooks = [h for h in TEXT_HOOKS if plugin in (order.get(h) or ())]
        report = ConformanceReport(plugin, hooks)
        if not hooks:
            implemented = sorted(h for h, names in order.items() if plugin in (names or ()))
            raise ConformanceError(
                f"plugin {plugin!r} implements none of the hooks the conformance check covers "
                f"({', '.join(TEXT_HOOKS)}; it implements: {', '.join(implemented) or 'nothing'}): "
                "there is nothing to check, so the check does not pass", report)
        auth = dict(admin)
        control_headers = {**auth, **(headers or {})}
        act_headers = {**auth, **((headers or {}) if trigger_headers is None else trigger_headers)}
        saved = (fake_upstream.reply, fake_upstream.reply_chunks)
        try:
            if "pre_request" in hooks:
                _request_cases(report, http, gw.url, fake_upstream, trigger, harmless, control_headers, act_headers)
            reply_hooks = [h for h in ("post_response", "stream_chunk") if h in hooks]
            if reply_hooks:
                _reply_cases(report, http, gw.url, fake_upstream, reply_hooks, trigger, harmless,
                             control_headers, act_headers)
        finally:
            fake_upstream.reply, fake_upstream.reply_chunks = saved
    failures = report.failures
    if not failures:
        return report
    acted = [c for c in report.cases if c.ok]
    lines = [f"plugin {plugin!r} skipped {len(failures)} of {len(report.cases)} case(s) of the conformance check "
             f"(trigger {trigger!r}):"]
    groups: dict[tuple[str, str, str], list[ConformanceCase]] = {}
    for c in failures:
        groups.setdefault((c.hook, c.route, c.outcome), []).append(c)
    for (hook, route, outcome), cases in groups.items():
        shapes = "; ".join(c.shape + (", streamed" if c.stream else "") for c in cases)
        lines.append(f"  {hook} on POST {route}: {outcome} ({shapes}) - {cases[0].detail}")
    if not acted:
        lines.append("It acted on the trigger nowhere: is `trigger` a text it blocks or rewrites "
                     "(or `trigger_headers` headers it refuses)?")
    raise ConformanceError("\n".join(lines), report)


def _paths(paths: tuple[str, ...]) -> list[str]:
    return [path.format(model=CONFORMANCE_MODEL) for path in paths]


def _body(make: Callable[[str], dict[str, Any]], text: str, stream: bool,
          model: str = CONFORMANCE_MODEL) -> dict[str, Any]:
    return {"model": model, **make(text), **({"stream": True} if stream else {})}


def _request_cases(report: ConformanceReport, http: Any, base: str, upstream: FakeUpstream, trigger: str,
                   harmless: str, control_headers: dict[str, str], act_headers: dict[str, str]) -> None:
    upstream.reply, upstream.reply_chunks = "ok", None
    for shape in REQUEST_SHAPES:
        make = shape.make
        for path in _paths(shape.paths):
            for stream in ((False, True) if shape.streams else (False,)):
                case = ConformanceCase("pre_request", path, shape.label, stream, "skipped")
                report.cases.append(case)
                before = len(upstream.requests)
                control = call(http, base + path, _body(make, harmless, stream, shape.model), control_headers,
                                stream)
                if control.failed or len(upstream.requests) == before:
                    case.outcome = "control failed"
                    why = str(control) if control.failed else "it never reached the upstream"
                    case.detail = (f"the same call with harmless text {harmless!r} failed too "
                                   f"({why}); pass "
                                   "`harmless=` text (and `headers=`) that the plugin lets through")
                    continue
                before = len(upstream.requests)
                sent = _body(make, trigger, stream, shape.model)
                result = call(http, base + path, sent, act_headers, stream)
                reached = upstream.requests[before:]
                if not reached:
                    case.outcome = "blocked" if result.failed else "answered"
                    case.detail = str(result) if result.failed else "a reply without calling the upstream"
                    continue
                got = reached[-1].text
                if got != (trigger if shape.translated else "\n".join(iter_request_text(sent))):
                    case.outcome, case.detail = "changed", f"the upstream received {got[:80]!r}"
                else:
                    case.detail = f"the upstream received the text unchanged: {got[:80]!r}"


def _reply_cases(report: ConformanceReport, http: Any, base: str, upstream: FakeUpstream, reply_hooks: list[str],
                 trigger: str, harmless: str, control_headers: dict[str, str],
                 act_headers: dict[str, str]) -> None:
    trigger_reply, trigger_pieces = split_reply(trigger)
    harmless_reply, harmless_pieces = split_reply(harmless)
    for paths, make in REPLY_SHAPES:
        for path in _paths(paths):
            for stream in ((False,) if paths == TRANSCRIPTION_PATHS else (False, True)):
                if stream:  # a stream's text is rewritten chunk by chunk; post_response can only block it
                    hook = "stream_chunk" if "stream_chunk" in reply_hooks else "post_response"
                    if len(reply_hooks) == 2:
                        hook = "stream_chunk (and post_response)"
                elif "post_response" in reply_hooks:
                    hook = "post_response"
                else:
                    continue  # stream_chunk never sees a reply that is not streamed
                body = _body(make, harmless, stream)
                case = ConformanceCase(hook, path, "reply text", stream, "skipped")
                report.cases.append(case)
                upstream.reply, upstream.reply_chunks = None, harmless_pieces
                control = call(http, base + path, body, control_headers, stream)
                if control.failed:
                    case.outcome = "control failed"
                    case.detail = (f"the same call with the harmless reply {harmless_reply!r} failed too "
                                   f"({control}); pass `harmless=` text (and "
                                   "`headers=`) that the plugin lets through")
                    continue
                upstream.reply, upstream.reply_chunks = None, trigger_pieces
                result = call(http, base + path, body, control_headers, stream)
                if result.failed:
                    case.outcome, case.detail = "blocked", str(result)
                elif result.text != trigger_reply:
                    case.outcome, case.detail = "changed", f"the client got {result.text[:80]!r}"
                else:
                    case.detail = (f"the client got the upstream's reply unchanged: {result.text[:80]!r}"
                                   + (" (the trigger was cut across two chunks)" if stream else ""))
