"""Rerank through Cohere's API v2 (`POST {api_base}/v2/rerank`), for the `cohere/` provider.

The gateway's rerank route takes LiteLLM's (Cohere-shaped) request: `{model, query, documents,
top_n, return_documents, max_tokens_per_doc}`, documents as strings or `{"text": ...}` objects.
Cohere's v2 API takes documents as strings only and has no `return_documents`: objects are sent as
their `text` (an object without one as its JSON, which Cohere recommends for structured data), and
the route puts each result's document back when asked (`routes/media.py`). The reply is Cohere's
own, which is what the route answers: `{id, results: [{index, relevance_score}], meta: {api_version,
billed_units: {search_units}}}`.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

PATH = "/v2/rerank"
#: The request fields Cohere's v2 rerank honours, besides `model`, `query` and `documents`.
NATIVE = ("top_n", "max_tokens_per_doc", "priority")
#: What the `cohere/` provider accepts for `arerank` (anything else: 400, or dropped with drop_params).
SUPPORTED = frozenset({"query", "documents", "return_documents", *NATIVE})


def document_text(document: Any) -> str:
    """One document as Cohere v2 takes it: a string."""
    if isinstance(document, str):
        return document
    if isinstance(document, dict) and isinstance(document.get("text"), str):
        return document["text"]
    return orjson.dumps(document).decode()


def translate_request(body: dict[str, Any]) -> dict[str, Any]:
    """The gateway's rerank request as Cohere's v2 body."""
    documents = body.get("documents")
    payload: dict[str, Any] = {
        "model": body["model"],
        "query": body.get("query"),
        "documents": [document_text(d) for d in documents] if isinstance(documents, list) else documents,
    }
    for name in NATIVE:
        if body.get(name) is not None:
            payload[name] = body[name]
    return payload


def translate_reply(reply: dict[str, Any]) -> dict[str, Any]:
    """Cohere's reply, checked: results with an index and a score each; an id and `meta` always."""
    results = reply.get("results")
    if not isinstance(results, list):
        raise ValueError("no results")
    for result in results:
        if not isinstance(result, dict) or not isinstance(result.get("index"), int) \
                or not isinstance(result.get("relevance_score"), (int, float)):
            raise ValueError("a result without an index and a relevance_score")
    meta = reply.get("meta") if isinstance(reply.get("meta"), dict) else {}
    return {"id": reply.get("id") or str(uuid.uuid4()), "results": results, "meta": meta}
