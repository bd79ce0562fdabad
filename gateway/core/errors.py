"""Every error, from any route or plugin, as the OpenAI error envelope with `x-request-id`."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from pydantic import BaseModel, Field, ValidationError
from quart import Response, g, has_request_context, request
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from gateway.errors import GatewayError

log = logging.getLogger("gateway.errors")

HTTP_TYPES = {
    400: "bad_request_error",
    401: "auth_error",
    403: "auth_error",
    404: "not_found_error",
    405: "method_not_allowed",
    413: "bad_request_error",
    415: "bad_request_error",
}


class ErrorBody(BaseModel):
    message: str
    type: str = Field(examples=["bad_request_error"])
    param: str | None = None
    code: str = Field(description="The HTTP status, as a string", examples=["400"])


class ErrorEnvelope(BaseModel):
    """Every error, from any route or plugin; the HTTP status is `error.code`."""

    error: ErrorBody


#: Anthropic's routes: their errors also carry Anthropic's top-level `"type": "error"`, whatever
#: refused them (a key, a route rule, a plugin's early check), as the route's own errors do.
ANTHROPIC_PREFIXES = ("/v1/messages", "/anthropic/")


def error_response(err: GatewayError, request_id: str | None = None) -> Response:
    headers = dict(err.headers)
    if request_id:
        headers["x-request-id"] = request_id
    body = err.to_dict()
    if has_request_context() and request.path.startswith(ANTHROPIC_PREFIXES):
        body = {"type": "error", **body}
    return Response(orjson.dumps(body), status=err.status, headers=headers, content_type="application/json")


def install(app: Any) -> None:
    """Register the envelope for GatewayError, HTTP errors (404, 405, ...) and anything else."""

    @app.errorhandler(GatewayError)
    async def on_gateway_error(err: GatewayError) -> Response:
        return error_response(err, getattr(g, "request_id", None))

    @app.errorhandler(RequestSchemaValidationError)
    async def on_schema_error(err: RequestSchemaValidationError) -> Response:
        """A body, query string or headers refused by a quart-schema `validate_*` decorator (plugin
        routes may use them): the envelope naming the first field at fault, never quart's HTML."""
        cause = err.validation_error
        field = None
        if isinstance(cause, ValidationError) and cause.errors():
            first = cause.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or None
            message = f"Invalid value for {field}: {first['msg']}" if field else first["msg"]
        else:
            message = f"Invalid request: {cause}"
        gerr = GatewayError(message, status=400, type="bad_request_error", param=field)
        return error_response(gerr, getattr(g, "request_id", None))

    @app.errorhandler(HTTPException)
    async def on_http_error(err: HTTPException) -> Response:
        status = err.code or 500
        if status == 404:
            message = f"Route not found: {request.method} {request.path}"
        elif status == 405:
            message = f"Method {request.method} not allowed on {request.path}"
        else:
            message = err.description or err.name
        gerr = GatewayError(message, status=status, type=HTTP_TYPES.get(status, "api_error"))
        resp = error_response(gerr, getattr(g, "request_id", None))
        if status == 405 and getattr(err, "valid_methods", None):
            resp.headers["allow"] = ", ".join(err.valid_methods)
        return resp

    @app.errorhandler(Exception)
    async def on_unexpected(err: Exception) -> Response:
        return unexpected_error_response(getattr(app, "gateway", None), err, getattr(g, "request_id", None))


def unexpected_error_response(gw: Any, err: Exception, rid: str | None) -> Response:
    """Anything else that went wrong: 503 when the database did not answer, else a 500 naming the
    request id (the traceback goes to the log, never to the client)."""
    db = getattr(gw, "db", None)
    outage = db.unavailable(err) if db is not None else None
    if outage is not None:
        return error_response(outage, rid)
    log.error("request %s: unexpected error", rid, exc_info=err)
    gerr = GatewayError(f"Internal server error (request id {rid})", status=500, type="internal_server_error")
    return error_response(gerr, rid)
