"""gateway: a plugin-driven, OpenAI-compatible LLM gateway.

This module is the plugin author's whole API; everything under `gateway.core` is internal.
"""

from gateway.context import (
    AlertEvent,
    AuditEvent,
    Outcome,
    Principal,
    RequestContext,
    iter_request_text,
    iter_request_text_slots,
    iter_response_text,
    iter_response_text_slots,
)
from gateway.errors import (
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    GatewayError,
    GuardrailUnavailableError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeoutError,
)
from gateway.plugin import Plugin, PluginConfig, hookimpl
from gateway.protocol import Gateway
from gateway.provider import Provider, ProviderError, StreamTranslator, UpstreamRequest
from gateway.stream_text import StreamText, StreamWindow

__version__ = "0.1.0"

__all__ = [
    "AlertEvent",
    "AuditEvent",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "Gateway",
    "GatewayError",
    "GuardrailUnavailableError",
    "NotFoundError",
    "Outcome",
    "PermissionDeniedError",
    "Plugin",
    "PluginConfig",
    "Provider",
    "ProviderError",
    "Principal",
    "RateLimitError",
    "RequestContext",
    "StreamText",
    "StreamTranslator",
    "StreamWindow",
    "UpstreamConnectionError",
    "UpstreamError",
    "UpstreamTimeoutError",
    "UpstreamRequest",
    "hookimpl",
    "iter_request_text",
    "iter_request_text_slots",
    "iter_response_text",
    "iter_response_text_slots",
]
