"""The OpenAI-compatible LLM routes: chat completions, completions, embeddings (also under
`/engines/{model}` and Azure's `/openai/deployments/{model}`), and the model list. Each call runs
the request path (`gateway/core/request_path.py`).
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, current_app, g, request
from quart_schema import document_request, document_response, tag_blueprint

from gateway.core.model_access import visible_access_groups, visible_models
from gateway.core.openapi import document_stream
from gateway.core.request_path import read_json_body, serve
from gateway.core.route_groups import OPENAI, declare
from gateway.core.routes import openai_schema as oa
from gateway.errors import GatewayError

bp = declare(Blueprint("llm", __name__), OPENAI)
tag_blueprint(bp, ["OpenAI"])


async def handle(call_type: str, path_model: str | None = None) -> Response:
    body = await read_json_body()
    if path_model:
        body["model"] = path_model
    return await serve(call_type, body)


@document_request(oa.ChatCompletionRequest)
@document_response(oa.ChatCompletion)
@document_stream(oa.ChatCompletionChunk)
async def chat_completions(model: str | None = None) -> Response:
    """Create a chat completion (OpenAI's API; `stream: true` for server-sent events)."""
    return await handle("acompletion", model)


@document_request(oa.CompletionRequest)
@document_response(oa.Completion)
@document_stream(oa.Completion)
async def completions(model: str | None = None) -> Response:
    """Create a text completion (OpenAI's legacy completions API)."""
    return await handle("atext_completion", model)


@document_request(oa.EmbeddingRequest)
@document_response(oa.CreateEmbeddingResponse)
async def embeddings(model: str | None = None) -> Response:
    """Create embeddings (OpenAI's API)."""
    return await handle("aembedding", model)


for prefix in ("", "/v1"):
    bp.add_url_rule(f"{prefix}/chat/completions", f"chat{prefix}", chat_completions, methods=["POST"])
    bp.add_url_rule(f"{prefix}/completions", f"completions{prefix}", completions, methods=["POST"])
    bp.add_url_rule(f"{prefix}/embeddings", f"embeddings{prefix}", embeddings, methods=["POST"])
for form in ("/engines/<path:model>", "/openai/deployments/<path:model>"):
    name = form.split("/")[1]
    bp.add_url_rule(f"{form}/chat/completions", f"chat_{name}", chat_completions, methods=["POST"])
    bp.add_url_rule(f"{form}/completions", f"completions_{name}", completions, methods=["POST"])
    bp.add_url_rule(f"{form}/embeddings", f"embeddings_{name}", embeddings, methods=["POST"])


def _model_card(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "gateway"}


@bp.get("/models")
@bp.get("/v1/models")
@document_response(oa.ModelList)
async def list_models() -> Any:
    """The model groups this key may call (OpenAI's list models)."""
    gw = current_app.gateway
    created = int(gw.started_at)
    if gw.router.pending:
        await gw.router.settle()
    flag = (request.args.get("only_model_access_groups") or "").strip().lower()
    if flag in ("true", "1", "yes"):  # LiteLLM's: the access groups instead of the models
        return {"object": "list", "data": [_model_card(n, created) for n in visible_access_groups(gw, g.principal)]}
    return {"object": "list", "data": [_model_card(n, created) for n in visible_models(gw, g.principal)]}


@bp.get("/models/<path:model>")
@bp.get("/v1/models/<path:model>")
@document_response(oa.Model)
async def get_model(model: str) -> Any:
    """One model group, if this key may call it (OpenAI's retrieve model)."""
    gw = current_app.gateway
    if model not in visible_models(gw, g.principal):
        raise GatewayError(f"The model '{model}' does not exist", status=404, type="not_found_error", param="model")
    return _model_card(model, int(gw.started_at))
