"""The LLM span's name and attributes, after OpenTelemetry's GenAI semantic conventions
(`gen_ai.*`), plus the gateway's own (`gateway.*`). Only counts, names and ids: prompts and replies
are `content.py`'s, and only when asked for. Nothing here reads a key: the deployment's `api_key`
and the caller's raw key are never touched, and `api_base` gives only its host and port.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

#: The gateway's call types as GenAI operation names (`gen_ai.operation.name`). Chat, text
#: completions and embeddings have names in the conventions; the others are named after their API.
OPERATIONS = {
    "acompletion": "chat",
    "atext_completion": "text_completion",
    "aembedding": "embeddings",
    "aimage_generation": "image_generation",
    "aspeech": "speech",
    "atranscription": "transcription",
    "amoderation": "moderation",
    "arerank": "rerank",
}

#: Provider prefixes as the conventions' well-known `gen_ai.provider.name` values; any other
#: prefix is used as it is (e.g. `ollama`, `hosted_vllm`).
PROVIDERS = {
    "openai": "openai", "text-completion-openai": "openai",
    "azure": "azure.ai.openai", "azure_text": "azure.ai.openai", "azure_ai": "azure.ai.inference",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini", "vertex_ai": "gcp.vertex_ai", "vertex_ai_beta": "gcp.vertex_ai",
    "bedrock": "aws.bedrock", "sagemaker": "aws.sagemaker", "sagemaker_chat": "aws.sagemaker",
    "cohere": "cohere", "cohere_chat": "cohere",
    "mistral": "mistral_ai", "mistralai": "mistral_ai",
    "groq": "groq", "deepseek": "deepseek", "perplexity": "perplexity", "xai": "x_ai",
    "watsonx": "ibm.watsonx.ai",
}

#: Request fields recorded as `gen_ai.request.*` (numbers only; `stop` separately).
REQUEST_NUMBERS = {
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
}


def operation(ctx: Any) -> str:
    return OPERATIONS.get(ctx.call_type, ctx.call_type)


def span_name(ctx: Any) -> str:
    """`{gen_ai.operation.name} {gen_ai.request.model}`, as the conventions name an inference span."""
    return f"{operation(ctx)} {ctx.model}" if ctx.model else operation(ctx)


def provider_name(provider: str | None) -> str | None:
    if not provider:
        return None
    return PROVIDERS.get(provider, provider)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def request_attributes(ctx: Any) -> dict[str, Any]:
    """What is known before the upstream answers: the operation, the model asked for, the
    request's sampling parameters and who called."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": operation(ctx),
        "gen_ai.request.model": ctx.model,
        "gateway.request_id": ctx.request_id,
        "gateway.api": ctx.api or ctx.call_type,
        "gateway.route": ctx.route,
        "gateway.stream": bool(ctx.stream),
    }
    body = ctx.body if isinstance(ctx.body, dict) else {}
    for key, name in REQUEST_NUMBERS.items():
        if _number(body.get(key)) and name not in attrs:
            attrs[name] = body[key]
    stop = body.get("stop")
    if isinstance(stop, str):
        attrs["gen_ai.request.stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop and all(isinstance(s, str) for s in stop):
        attrs["gen_ai.request.stop_sequences"] = stop
    if isinstance(body.get("n"), int) and not isinstance(body["n"], bool) and body["n"] != 1:
        attrs["gen_ai.request.choice.count"] = body["n"]
    principal = ctx.principal
    if principal is not None:
        attrs["gateway.key_name"] = principal.display_name
        for name, value in (("gateway.team_id", principal.team_id), ("gateway.user_id", principal.user_id)):
            if value:
                attrs[name] = value
    if isinstance(ctx.end_user, str) and ctx.end_user:
        attrs["gateway.end_user"] = ctx.end_user
    return attrs


def deployment_attributes(deployment: Any) -> dict[str, Any]:
    """The deployment called: its provider (as the conventions name it), host and port. Never its
    key, never the userinfo or query of its api_base."""
    if deployment is None:
        return {}
    attrs: dict[str, Any] = {"gateway.deployment.id": str(deployment.id),
                             "gateway.deployment.provider": deployment.provider}
    provider = provider_name(deployment.provider)
    if provider:
        attrs["gen_ai.provider.name"] = provider
        attrs["gen_ai.system"] = provider  # the name before the conventions' v1.37, still read by many backends
    base = getattr(deployment, "api_base", None)
    if isinstance(base, str) and base:
        try:
            parts = urlsplit(base)
            port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
        except ValueError:
            parts, port = None, None
        if parts is not None and parts.hostname:
            attrs["server.address"] = parts.hostname
            if port:
                attrs["server.port"] = port
    return attrs


def response_attributes(ctx: Any, outcome: Any) -> dict[str, Any]:
    """The reply: its id, model, finish reasons and token usage, and how the call ended."""
    attrs: dict[str, Any] = {
        "gateway.status": outcome.status,
        "http.response.status_code": outcome.http_status,
        "gateway.upstream.seconds": round(float(ctx.upstream_seconds or 0.0), 6),
        "gateway.upstream.attempts": len(ctx.attempts or ()),
    }
    if ctx.cache_hit:
        attrs["gateway.cache_hit"] = True
    if ctx.blocked_by:
        attrs["gateway.blocked_by"] = ctx.blocked_by
    response = outcome.response if isinstance(outcome.response, dict) else {}
    if isinstance(response.get("id"), str):
        attrs["gen_ai.response.id"] = response["id"]
    model = response.get("model")
    if not isinstance(model, str) and ctx.deployment is not None:
        model = getattr(ctx.deployment, "upstream_model", None)
    if isinstance(model, str) and model:
        attrs["gen_ai.response.model"] = model
    reasons = [c.get("finish_reason") for c in response.get("choices") or () if isinstance(c, dict)]
    reasons = [r for r in reasons if isinstance(r, str)]
    if reasons:
        attrs["gen_ai.response.finish_reasons"] = reasons
    attrs.update(usage_attributes(outcome.usage))
    if outcome.usage_estimated:
        attrs["gateway.usage_estimated"] = True
    return attrs


def usage_attributes(usage: Any) -> dict[str, Any]:
    """OpenAI's usage as `gen_ai.usage.*`: prompt tokens are input tokens, completion tokens output."""
    if not isinstance(usage, dict):
        return {}
    attrs: dict[str, Any] = {}
    for key, name in (("prompt_tokens", "gen_ai.usage.input_tokens"),
                      ("completion_tokens", "gen_ai.usage.output_tokens")):
        if isinstance(usage.get(key), int) and not isinstance(usage[key], bool):
            attrs[name] = usage[key]
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
        attrs["gen_ai.usage.cache_read.input_tokens"] = details["cached_tokens"]
    return attrs


def error_type(outcome: Any) -> str:
    """`error.type`: the error envelope's `type` (`api_error`, `timeout`, `bad_request_error`, ...),
    else the exception's class, else the HTTP status (499: the client went away). Never its message."""
    error = outcome.error
    kind = getattr(error, "type", None)
    if isinstance(kind, str) and kind:
        return kind
    if error is not None:
        return type(error).__qualname__
    return str(outcome.http_status)
