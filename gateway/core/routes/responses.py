"""OpenAI's Responses API: create (through the chat path, any provider), retrieve, delete, input items.

Creating is one LLM call on the request path (gateway/core/apis/responses.py translates it); the
other routes answer from the stored replies (gateway/core/apis/response_store.py), each key seeing
only its own (an admin sees all): anything else is a 404, as for an id that never existed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, Response, current_app, g, request
from quart_schema import document_querystring, document_request, document_response, tag_blueprint

from gateway.core import request_path
from gateway.core.apis.response_store import Stored, store_of
from gateway.core.apis.responses import ADAPTER
from gateway.core.openapi import document_stream
from gateway.core.route_groups import OPENAI, declare
from gateway.errors import BadRequestError, NotFoundError

bp = declare(Blueprint("responses", __name__), OPENAI)
tag_blueprint(bp, ["OpenAI"])

MAX_LIMIT = 100


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class CreateResponseRequest(_Open):
    """OpenAI's `CreateResponse`, served through the chat path of any configured model. Function tools
    only (built-in tools are refused with 400); other fields pass to the chat request as they are
    (the gateway's `tags`, `guardrails`, `cache`, ...)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"model": "gpt-4o", "input": "Tell me a joke", "instructions": "Be brief."}]})

    model: str = Field(examples=["gpt-4o"])
    input: str | list[dict[str, Any]] | None = Field(
        None, description="Text, or input items: messages, function_call, function_call_output")
    instructions: str | None = Field(None, description="A system message for this turn only")
    previous_response_id: str | None = Field(None, description="Continue from a stored response (yours)")
    store: bool | None = Field(None, description="Keep the response (default true) for previous_response_id")
    stream: bool | None = Field(None, description="true: the reply is an SSE stream of response events")
    tools: list[dict[str, Any]] | None = Field(None, description="Function tools: {type: function, name, parameters}")
    tool_choice: str | dict[str, Any] | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = Field(None, description="format: text, json_object or json_schema")
    reasoning: dict[str, Any] | None = Field(None, description="effort -> the chat request's reasoning_effort")
    metadata: dict[str, Any] | None = Field(None, description="Echoed on the response; the gateway's `tags` and "
                                                              "`spend_logs_metadata` land on the spend log")
    user: str | None = None


class ResponseObject(_Open):
    id: str = Field(examples=["resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b"])
    object: Literal["response"] = "response"
    created_at: int
    status: str = Field(description="completed, incomplete (see incomplete_details) or failed")
    model: str
    output: list[dict[str, Any]] = Field(description="message, function_call and reasoning items")
    usage: dict[str, Any] | None = None
    previous_response_id: str | None = None


class ResponseStreamEvent(_Open):
    type: str = Field(examples=["response.output_text.delta"])
    sequence_number: int


class ResponseDeleted(_Open):
    id: str
    object: Literal["response.deleted"] = "response.deleted"
    deleted: bool = True


class InputItemsQuery(BaseModel):
    limit: int | None = Field(None, ge=1, le=MAX_LIMIT, description="1 to 100, default 20")
    order: Literal["asc", "desc"] | None = Field(None, description="desc (newest first, the default) or asc")
    after: str | None = Field(None, description="An item id: list the items after it")


class InputItemList(_Open):
    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
    first_id: str | None
    last_id: str | None
    has_more: bool


@document_request(CreateResponseRequest)
@document_response(ResponseObject)
@document_stream(ResponseStreamEvent)
async def create_response() -> Response:
    """Create a model response (OpenAI's Responses API), for any configured model: the request runs
    through the chat path, so every hook and limit applies; `stream: true` for server-sent events."""
    return await request_path.serve("acompletion", await request_path.read_json_body(), adapter=ADAPTER)


async def _owned(response_id: str) -> Stored:
    stored = await store_of(current_app.gateway).get(response_id, g.principal)
    if stored is None:
        raise NotFoundError(f"Response with id '{response_id}' not found.", param="response_id")
    return stored


@document_response(ResponseObject)
async def get_response(response_id: str) -> Any:
    """A stored response of this key (an admin: of any key), as it was returned."""
    if (request.args.get("stream") or "").lower() in ("true", "1"):
        raise BadRequestError("stream: replaying a stored response as events is not served; leave `stream` out",
                              param="stream")
    return (await _owned(response_id)).response


@document_response(ResponseDeleted)
async def delete_response(response_id: str) -> Any:
    """Delete a stored response of this key (an admin: of any key)."""
    if not await store_of(current_app.gateway).delete(response_id, g.principal):
        raise NotFoundError(f"Response with id '{response_id}' not found.", param="response_id")
    return {"id": response_id, "object": "response.deleted", "deleted": True}


def _page(items: list[dict[str, Any]]) -> dict[str, Any]:
    order = request.args.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise BadRequestError("order: must be asc or desc", param="order")
    raw = request.args.get("limit") or "20"
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequestError(f"limit: must be an integer from 1 to {MAX_LIMIT}", param="limit")
    ordered = items if order == "asc" else items[::-1]
    after = request.args.get("after")
    if after:
        ids = [item.get("id") for item in ordered]
        if after not in ids:
            raise BadRequestError(f"after: no input item with id '{after}' in this response", param="after")
        ordered = ordered[ids.index(after) + 1:]
    page = ordered[:limit]
    return {"object": "list", "data": page, "first_id": page[0].get("id") if page else None,
            "last_id": page[-1].get("id") if page else None, "has_more": len(ordered) > limit}


@document_querystring(InputItemsQuery)
@document_response(InputItemList)
async def list_input_items(response_id: str) -> Any:
    """The input items of a stored response: what the model was given (earlier turns included),
    newest first unless `order=asc`."""
    return _page((await _owned(response_id)).input_items)


for prefix in ("", "/v1"):
    bp.add_url_rule(f"{prefix}/responses", f"create{prefix}", create_response, methods=["POST"])
    bp.add_url_rule(f"{prefix}/responses/<response_id>", f"get{prefix}", get_response, methods=["GET"])
    bp.add_url_rule(f"{prefix}/responses/<response_id>", f"delete{prefix}", delete_response, methods=["DELETE"])
    bp.add_url_rule(f"{prefix}/responses/<response_id>/input_items", f"input_items{prefix}", list_input_items,
                    methods=["GET"])
