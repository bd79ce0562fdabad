"""OpenAI embeddings <-> Bedrock InvokeModel, for Amazon Titan and Cohere embedding models.

- `amazon.titan-embed-text-v2:0` (and v1, and `amazon.titan-embed-image-v1` for text):
  `{"inputText", "dimensions"?, "normalize"?}` -> `{"embedding", "inputTextTokenCount"}`. Titan embeds
  one text per call, and a provider sends one request per call: a list of several inputs is refused
  (LiteLLM sends one request per input).
- `cohere.embed-english-v3`, `cohere.embed-multilingual-v3`, `cohere.embed-v4:0`:
  `{"texts", "input_type", "truncate"?, "embedding_types"?, "output_dimension"?}` -> `{"embeddings"}`.
  Cohere on Bedrock reports its token count only in a response header
  (`x-amzn-bedrock-input-token-count`), which a provider's `parse_reply` is not given: the reply
  carries no `usage`, and the gateway estimates the tokens from the text for the spend row and
  marks the row as estimated (`metadata.usage_estimated`).

Vectors are returned as lists of floats (a provider's `parse_reply` is not given the request, so
`encoding_format` cannot be honoured; the `openai` SDKs accept floats either way).
"""

from __future__ import annotations

from typing import Any

from gateway import BadRequestError

PREFIX = "BedrockException - "
COHERE_INPUT_TYPES = frozenset({"search_document", "search_query", "classification", "clustering", "image"})


def _bad(message: str, param: str | None = "input") -> BadRequestError:
    return BadRequestError(PREFIX + message, param=param)


def _texts(body: dict[str, Any]) -> list[str]:
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise _bad("Bedrock embeds text: input must be a string or a non-empty list of strings")


def kind_of(model_id: str, family: str) -> str:
    if family == "cohere":
        return "cohere"
    if family == "amazon" and "titan-embed" in model_id:
        return "titan"
    return ""


def translate_request(body: dict[str, Any], family: str, model_id: str) -> dict[str, Any]:
    kind = kind_of(model_id, family)
    texts = _texts(body)
    if kind == "titan":
        if len(texts) > 1:
            raise _bad(f"Titan embeds one text per call; this request has {len(texts)} inputs: send them one by one")
        out: dict[str, Any] = {"inputText": texts[0]}
        if body.get("dimensions") is not None:
            out["dimensions"] = body["dimensions"]
        if body.get("normalize") is not None:
            out["normalize"] = body["normalize"]
        return out
    if kind == "cohere":
        input_type = body.get("input_type") or "search_document"
        if input_type not in COHERE_INPUT_TYPES:
            raise _bad(f"input_type {input_type!r} is not one of {', '.join(sorted(COHERE_INPUT_TYPES))}", "input_type")
        out = {"texts": texts, "input_type": input_type}
        for name in ("truncate", "embedding_types"):
            if body.get(name) is not None:
                out[name] = body[name]
        if body.get("dimensions") is not None:
            out["output_dimension"] = body["dimensions"]
        return out
    raise _bad(f"{model_id!r} is not an embedding model the gateway can call on Bedrock (amazon.titan-embed-* "
               "and cohere.embed-* are)", "model")


def translate_reply(reply: Any, model: str) -> dict[str, Any]:
    if not isinstance(reply, dict):
        raise ValueError("not a JSON object")
    tokens: int | None = None
    if "embedding" in reply:  # Titan
        vectors = [reply["embedding"]]
        if reply.get("inputTextTokenCount") is not None:
            tokens = int(reply["inputTextTokenCount"])
    else:  # Cohere: a list of vectors, or {"float": [...]} when embedding_types was given
        found = reply["embeddings"]
        vectors = found.get("float") if isinstance(found, dict) else found
        if not isinstance(vectors, list):
            raise ValueError("no float embeddings in the reply")
    out: dict[str, Any] = {"object": "list", "model": model,
                           "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]}
    if tokens is not None:
        out["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return out
