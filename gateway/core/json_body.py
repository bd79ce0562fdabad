"""A request's JSON body as an object, or the 400 that says what is wrong with it: one parser for
the LLM routes, the management API and `/spend/calculate`, so they word their errors alike."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import BadRequestError


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """`raw` as a JSON object. An empty body, malformed JSON and a value other than an object are
    each a 400 naming the problem (a route that takes an empty body as `{}` checks that first)."""
    if not raw:
        raise BadRequestError("Request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"Malformed JSON in request body: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequestError("Request body must be a JSON object")
    return body
