"""Anthropic's Messages API on the gateway: `/v1/messages` and `/v1/messages/count_tokens` (also
under `/anthropic`), for the `anthropic` SDKs and Claude Code, against any configured model.

A message is a chat call on the one request path (gateway/core/apis/anthropic_messages.py
translates it both ways): keys (`x-api-key` too), budgets, model access, every plugin hook, routing,
retries and spend rows (call type `anthropic_messages`) are the chat route's.

`count_tokens` asks the upstream when the model is served by the `anthropic/` provider, and
otherwise (or when that upstream fails) estimates, saying so in `x-gateway-token-count-estimated`.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, Response, current_app, g, request
from quart_schema import document_request, document_response, tag_blueprint

from gateway.core import request_path
from gateway.core.apis.anthropic_messages import AnthropicMessages, estimate_tokens, error_body, is_claude, to_chat
from gateway.core.model_access import check_model_access
from gateway.core.openapi import document_stream
from gateway.core.providers.anthropic import API_VERSION, messages_url
from gateway.core.providers.openai_compatible import tls_of
from gateway.core.route_groups import OPENAI, declare
from gateway.errors import BadRequestError, GatewayError

bp = declare(Blueprint("messages", __name__), OPENAI)
tag_blueprint(bp, ["Anthropic"])
log = logging.getLogger("gateway.messages")

#: For models whose deployments are all Claude, Anthropic's own fields are kept (see the adapter).
NATIVE = AnthropicMessages(native=True)
TRANSLATED = AnthropicMessages(native=False)
#: What Anthropic's count_tokens takes (besides `model`).
COUNTED = ("messages", "system", "tools", "tool_choice", "thinking", "mcp_servers", "context_management")
ESTIMATED_HEADER = "x-gateway-token-count-estimated"


# -- the shapes, for the OpenAPI document (never used to validate) -----------------------------
class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class AnthropicMessageRequest(_Open):
    """Anthropic's `MessageCreateParams`; gateway fields (`tags`, `guardrails`, `metadata` keys other
    than `user_id`) are read as on the chat route."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"model": "claude-sonnet", "max_tokens": 1024, "messages": [{"role": "user", "content": "Hello!"}]}]})

    model: str
    max_tokens: int = Field(ge=1, description="Required, as in Anthropic's API")
    messages: list[dict[str, Any]] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    stream: bool | None = Field(None, description="true: the reply is Anthropic's SSE event stream")
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    tools: list[dict[str, Any]] | None = Field(None, description="Custom tools (name, input_schema)")
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = Field(None, description="`user_id` is the end user")


class AnthropicMessage(_Open):
    id: str
    type: str = Field(examples=["message"])
    role: str = Field(examples=["assistant"])
    model: str
    content: list[dict[str, Any]]
    stop_reason: str | None = Field(None, examples=["end_turn"])
    stop_sequence: str | None = None
    usage: dict[str, Any]


class AnthropicStreamEvent(_Open):
    """One event: message_start, content_block_start/delta/stop, message_delta, message_stop, ping, error."""

    type: str


class AnthropicCountTokensRequest(_Open):
    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None


class AnthropicTokenCount(_Open):
    input_tokens: int


# -- the routes -------------------------------------------------------------------------------
def _error(exc: GatewayError) -> Response:
    headers = {**exc.headers, "x-request-id": g.request_id}
    return Response(orjson.dumps(error_body(exc)), status=exc.status, headers=headers,
                    content_type="application/json")


async def _group(model: Any) -> list[Any]:
    """The deployments `model` names for this key ([] when it names none: the chat path says why)."""
    gw = current_app.gateway
    if not isinstance(model, str) or not model:
        return []
    if gw.router.pending:
        await gw.router.settle()
    try:
        return gw.router.group(model, g.principal)
    except GatewayError:
        return []


@document_request(AnthropicMessageRequest)
@document_response(AnthropicMessage)
@document_stream(AnthropicStreamEvent)
async def create_message() -> Response:
    """Create a message (Anthropic's Messages API; `stream: true` for its server-sent events).

    Any configured model answers, Claude or not: the call runs through the chat path, with its
    keys (`x-api-key` too), budgets, hooks, routing and spend rows (`anthropic_messages`)."""
    try:
        body = await request_path.read_json_body()
    except GatewayError as exc:
        return _error(exc)
    group = await _group(body.get("model"))
    adapter = NATIVE if group and all(is_claude(d) for d in group) else TRANSLATED
    betas = request.headers.get("anthropic-beta")
    if betas and "anthropic_beta" not in body:  # Claude Code's betas, for a Claude deployment to send on
        body["anthropic_beta"] = betas
    return await request_path.serve("acompletion", body, adapter=adapter)


async def _upstream_count(dep: Any, body: dict[str, Any]) -> int | None:
    """Anthropic's own count for `dep` (an `anthropic/` deployment); None when it cannot be had."""
    url = messages_url(dep.api_base) + "/count_tokens"
    headers = {"content-type": "application/json", "accept": "application/json", "anthropic-version": API_VERSION}
    if dep.api_key:
        headers["x-api-key"] = dep.api_key
    if dep.basic_auth:
        headers["authorization"] = dep.basic_auth
    headers.update(dep.extra_headers)
    payload = {k: body[k] for k in COUNTED if body.get(k) is not None}
    payload["model"] = dep.upstream_model
    verify = tls_of(dep)
    client = current_app.gateway.router.pool.get(url, True if verify is True else verify)
    import httpx  # loaded with the pool above

    timeout = min(dep.timeout, 30.0)
    try:
        reply = await client.post(url, content=orjson.dumps(payload), headers=headers,
                                  timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))
        count = reply.json().get("input_tokens") if reply.status_code == 200 else None
    except Exception as exc:  # noqa: BLE001 - any failure: estimate instead, and say why in the log
        log.warning("count_tokens: deployment %s (%s) failed: %s; estimating", dep.model_name, dep.display_base,
                    dep.redact(f"{type(exc).__name__}: {exc}"))
        return None
    if isinstance(count, int) and not isinstance(count, bool):
        return count
    log.warning("count_tokens: deployment %s (%s) answered HTTP %s; estimating", dep.model_name, dep.display_base,
                reply.status_code)
    return None


@document_request(AnthropicCountTokensRequest)
@document_response(AnthropicTokenCount)
async def count_tokens() -> Response:
    """Count a message's input tokens (Anthropic's count_tokens API).

    Anthropic's own count for models served by the `anthropic/` provider; otherwise (or when that
    upstream fails) an estimate, about four characters a token, marked by the
    `x-gateway-token-count-estimated: true` header. The key must be allowed the model."""
    gw = current_app.gateway
    try:
        body = await request_path.read_json_body()
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequestError("model: a model name is required", param="model")
        g.call.model = model
        if gw.router.pending:
            await gw.router.settle()
        check_model_access(gw, g.principal, model)
        group = gw.router.group(model, g.principal)
        native = all(is_claude(d) for d in group)
        chat = to_chat(body, native, need_max_tokens=False)  # the same checks as a message's
        dep = next((d for d in group if d.provider == "anthropic"), None)
        count = await _upstream_count(dep, body) if dep is not None else None
    except GatewayError as exc:
        return _error(exc)
    resp = Response(orjson.dumps({"input_tokens": estimate_tokens(chat) if count is None else count}),
                    status=200, content_type="application/json")
    if count is None:
        resp.headers[ESTIMATED_HEADER] = "true"
    return resp


for prefix in ("", "/anthropic"):
    name = prefix.strip("/") or "v1"
    bp.add_url_rule(f"{prefix}/v1/messages", f"create_message_{name}", create_message, methods=["POST"])
    bp.add_url_rule(f"{prefix}/v1/messages/count_tokens", f"count_tokens_{name}", count_tokens, methods=["POST"])
