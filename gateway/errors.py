"""Errors a plugin or the core raises to answer a client with the OpenAI error envelope.

Every error the gateway returns has the shape
``{"error": {"message", "type", "param", "code"}}`` with ``code`` the HTTP status as a string,
which is what the OpenAI SDKs expect. Raising one of these from a hook blocks the request.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """An error that becomes the client's response: status, type, message, param."""

    status: int = 500
    type: str = "internal_server_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        status: int | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI error envelope for this error."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": str(self.status),
            }
        }


class BadRequestError(GatewayError):
    status = 400
    type = "bad_request_error"


class AuthenticationError(GatewayError):
    status = 401
    type = "auth_error"


class PermissionDeniedError(GatewayError):
    status = 403
    type = "auth_error"


class NotFoundError(GatewayError):
    status = 404
    type = "not_found_error"


class BudgetExceededError(GatewayError):
    status = 429
    type = "budget_exceeded"


class RateLimitError(GatewayError):
    status = 429
    type = "rate_limit_error"


class GuardrailUnavailableError(GatewayError):
    """A plugin failed (raised or timed out) and is configured to fail closed."""

    status = 503
    type = "guardrail_unavailable"


class ServiceUnavailableError(GatewayError):
    """Something the gateway itself depends on (its database) did not answer in time; the call
    can be retried. Says what was unavailable, never where it lives (no URL, no password)."""

    status = 503
    type = "service_unavailable"


class UpstreamError(GatewayError):
    """The model provider answered with an error; status and type are the provider's."""

    status = 500
    type = "api_error"


class UpstreamConnectionError(GatewayError):
    status = 502
    type = "api_connection_error"


class UpstreamTimeoutError(GatewayError):
    status = 504
    type = "timeout"
