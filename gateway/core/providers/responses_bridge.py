"""Chat completions served through the Responses API: LiteLLM's `azure/responses/<deployment>` and
`openai/responses/<model>` bridge.

A client calls /chat/completions as usual; the deployment's upstream is `POST .../responses`
(Azure: `{base}/openai/responses?api-version=...`, or `{base}/openai/v1/responses` for the v1 API;
OpenAI: `{api_base}/responses`) with `model` the name after `responses/`. Both ways are translated:

    request   messages        -> `input` items: system text -> `instructions`; user/developer/assistant
                                 -> `message` items (input_text, input_image, input_file / output_text);
                                 assistant tool_calls -> `function_call`; tool -> `function_call_output`
              tools           -> flat function tools (`strict` false unless asked: the Responses API's
                                 default is true, which chat tools' schemas rarely satisfy)
              max_tokens, max_completion_tokens -> max_output_tokens; reasoning_effort -> reasoning.effort;
              response_format -> text.format; tool_choice {"function": {name}} -> {"name"}
    reply     `message` text -> content; `function_call` -> tool_calls; reasoning summaries ->
              reasoning_content; status incomplete -> finish_reason length / content_filter;
              usage input/output tokens (cached, reasoning) -> prompt/completion tokens (with details)
    stream    response.output_text.delta, response.output_item.added (a function call),
              response.function_call_arguments.delta, reasoning deltas -> chunks; response.completed /
              response.incomplete -> the finish_reason chunk and a usage chunk; response.failed and
              `error` events -> an in-stream error

Request fields the Responses API has no counterpart for (stop, n > 1, seed, penalties, logit_bias,
logprobs) are refused with a 400 naming them, or dropped with `drop_params`. The request side is
here; the reply and stream side is responses_bridge_reply.py.
"""

from __future__ import annotations

from typing import Any, Callable

import orjson

from gateway.core.providers.responses_bridge_reply import ResponsesStream, chat_reply, error_of
from gateway.errors import BadRequestError
from gateway.provider import Provider, ProviderError, UpstreamRequest

#: Names responses_bridge_reply.py defines, used from here by the tests.
__all__ = ["RESPONSES_PREFIX", "SUPPORTED", "ResponsesBridge", "ResponsesStream", "model_of", "responses_request"]

RESPONSES_PREFIX = "responses/"
#: Chat fields the bridge translates, and the Responses API's own that it passes on as they are.
TRANSLATED = frozenset({"messages", "tools", "tool_choice", "max_tokens", "max_completion_tokens", "reasoning_effort",
                        "response_format", "stream_options"})
NATIVE = frozenset({"temperature", "top_p", "parallel_tool_calls", "user", "metadata", "store", "service_tier",
                    "previous_response_id", "truncation", "include", "instructions", "text", "reasoning",
                    "prompt_cache_key", "safety_identifier", "max_tool_calls", "top_logprobs"})
SUPPORTED = TRANSLATED | NATIVE | {"model", "stream"}


def model_of(dep: Any) -> str:
    """The model (Azure: the deployment name) after `responses/`."""
    return dep.upstream_model[len(RESPONSES_PREFIX):]


# -- request ------------------------------------------------------------------------------------
def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text") or "" for p in content or () if isinstance(p, dict) and p.get("type") == "text")


def _part(part: Any, role: str, where: str) -> dict[str, Any]:
    if isinstance(part, str):
        part = {"type": "text", "text": part}
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        return {"type": "output_text" if role == "assistant" else "input_text", "text": part.get("text") or ""}
    if kind == "image_url" and role != "assistant":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str):
            raise BadRequestError(f"{where}.image_url: must be a URL or data URL", param="messages")
        detail = image.get("detail") if isinstance(image, dict) else None
        return {"type": "input_image", "image_url": url, "detail": detail or "auto"}
    if kind == "file" and role != "assistant":
        file = part.get("file") if isinstance(part.get("file"), dict) else {}
        return {"type": "input_file", **{k: v for k, v in file.items() if k in ("file_data", "file_id", "filename")}}
    if kind == "refusal" and role == "assistant":
        return {"type": "refusal", "refusal": part.get("refusal") or ""}
    if kind in ("input_text", "input_image", "input_file", "output_text"):
        return part  # already the Responses API's
    raise BadRequestError(f"{where}: content parts of type {kind!r} are not supported by the Responses API "
                          "bridge", param="messages")


def _content(content: Any, role: str, where: str) -> list[dict[str, Any]]:
    parts = [content] if isinstance(content, str) else content
    if not isinstance(parts, list):
        raise BadRequestError(f"{where}.content: must be a string or a list of parts", param="messages")
    return [_part(p, role, f"{where}.content.{i}") for i, p in enumerate(parts)]


def input_items(messages: list[Any]) -> tuple[list[dict[str, Any]], str | None]:
    """Chat messages as Responses input items, and the system text as `instructions`."""
    items: list[dict[str, Any]] = []
    system: list[str] = []
    for i, msg in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(msg, dict):
            raise BadRequestError(f"{where}: must be an object", param="messages")
        role, content = msg.get("role"), msg.get("content")
        if role == "system":
            system.append(_text(content))
        elif role == "tool":
            output: Any = content if isinstance(content, str) else None
            if output is None:
                parts = _content(content or [], "user", where)
                output = "".join(p["text"] for p in parts) if all(p["type"] == "input_text" for p in parts) else parts
            items.append({"type": "function_call_output", "call_id": msg.get("tool_call_id"), "output": output})
        elif role in ("user", "developer", "assistant"):
            if content:
                items.append({"type": "message", "role": role, "content": _content(content, role, where)})
            for call in (msg.get("tool_calls") or []) if role == "assistant" else ():
                fn = call.get("function") or {}
                items.append({"type": "function_call", "call_id": call.get("id"), "name": fn.get("name"),
                              "arguments": fn.get("arguments") or "{}"})
        else:
            raise BadRequestError(f"{where}.role: {role!r} messages are not supported by the Responses API bridge "
                                  "(use system, developer, user, assistant or tool)", param="messages")
    return items, "\n\n".join(s for s in system if s) or None


def _tool(tool: Any) -> Any:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        return tool  # the Responses API's own tools (web_search, file_search, ...) go as they are
    fn = tool.get("function") or {}
    if "name" not in fn:
        return tool  # already flat
    return {"type": "function", "name": fn["name"], "description": fn.get("description"),
            "parameters": fn.get("parameters") or {"type": "object", "properties": {}},
            "strict": bool(fn.get("strict", False))}


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("function"), dict):
        return {"type": "function", "name": choice["function"].get("name")}
    return choice


def _text_format(fmt: Any) -> dict[str, Any] | None:
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_schema":
        schema = fmt.get("json_schema") or {}
        out = {"type": "json_schema", "name": schema.get("name") or "response_schema",
               "schema": schema.get("schema") or {}, "strict": bool(schema.get("strict", False))}
        if schema.get("description"):
            out["description"] = schema["description"]
        return out
    if fmt.get("type") in ("json_object", "text"):
        return {"type": fmt["type"]}
    return None


def responses_request(body: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    """A chat completion request as a Responses API request."""
    items, system = input_items(body.get("messages") or [])
    out: dict[str, Any] = {"model": model, "input": items}
    instructions = "\n\n".join(s for s in (body.get("instructions"), system) if s)
    if instructions:
        out["instructions"] = instructions
    for name in NATIVE - {"instructions"}:
        if body.get(name) is not None:
            out[name] = body[name]
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit is not None:
        out["max_output_tokens"] = limit
    if body.get("tools"):
        out["tools"] = [_tool(t) for t in body["tools"]]
    if body.get("tool_choice") is not None:
        out["tool_choice"] = _tool_choice(body["tool_choice"])
    effort = body.get("reasoning_effort")
    if effort is not None:
        out["reasoning"] = effort if isinstance(effort, dict) else {**(out.get("reasoning") or {}), "effort": effort}
    fmt = _text_format(body.get("response_format"))
    if fmt is not None:
        out["text"] = {**(out.get("text") or {}), "format": fmt}
    if stream:
        out["stream"] = True
    return out


# -- the provider -------------------------------------------------------------------------------
class ResponsesBridge(Provider):
    """The handler of a `<prefix>/responses/<model>` deployment: its parent provider (Azure, OpenAI)
    gives the credentials and `prepare`; the URL comes from `url_of(dep)`. The parent's `check`
    puts it in `dep.handler`, since whether a deployment is bridged depends on its model name."""

    passthrough = False
    call_types = frozenset({"acompletion"})
    supported_params = {"acompletion": SUPPORTED}

    def __init__(self, parent: Any, url_of: Callable[[Any], str]) -> None:
        self.parent = parent
        self.name = parent.name  # type: ignore[misc]
        self.display_name = parent.display_name  # type: ignore[misc]
        self.default_api_base = parent.default_api_base  # type: ignore[misc]
        self.url_of = url_of

    @property  # type: ignore[override]
    def prepare(self) -> Any:
        return self.parent.prepare

    def build_request(self, dep: Any, call_type: str, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        payload = responses_request(body, model_of(dep), stream)
        return UpstreamRequest(self.url_of(dep), self.parent.request_headers(dep), orjson.dumps(payload))

    def parse_reply(self, dep: Any, call_type: str, data: bytes) -> dict[str, Any]:
        reply = chat_reply(orjson.loads(data), dep.provider_display)
        reply["model"] = reply.get("model") or model_of(dep)
        return reply

    def parse_error(self, dep: Any, status: int, data: bytes) -> ProviderError:
        err = error_of(status, data)
        for secret in getattr(self.parent, "secrets", lambda d: [])(dep):  # a bearer token echoed back
            err.message = err.message.replace(secret, "***")
        return err

    def stream(self, dep: Any, call_type: str) -> ResponsesStream:
        return ResponsesStream(model_of(dep))
