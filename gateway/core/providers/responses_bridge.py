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
logprobs) are refused with a 400 naming them, or dropped with `drop_params`.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import orjson

from gateway.errors import BadRequestError, GatewayError
from gateway.provider import Provider, ProviderError, UpstreamRequest

RESPONSES_PREFIX = "responses/"
#: Chat fields the bridge translates, and the Responses API's own that it passes on as they are.
TRANSLATED = frozenset({"messages", "tools", "tool_choice", "max_tokens", "max_completion_tokens", "reasoning_effort",
                        "response_format", "stream_options"})
NATIVE = frozenset({"temperature", "top_p", "parallel_tool_calls", "user", "metadata", "store", "service_tier",
                    "previous_response_id", "truncation", "include", "instructions", "text", "reasoning",
                    "prompt_cache_key", "safety_identifier", "max_tool_calls", "top_logprobs"})
SUPPORTED = TRANSLATED | NATIVE | {"model", "stream"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 408: "timeout", 422: "invalid_request_error", 429: "rate_limit_error"}
INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


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


# -- replies ------------------------------------------------------------------------------------
def chat_usage(usage: Any) -> dict[str, Any]:
    usage = usage if isinstance(usage, dict) else {}
    prompt, completion = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": int(usage.get("total_tokens") or prompt + completion)}
    cached = (usage.get("input_tokens_details") or {}).get("cached_tokens")
    if cached is not None:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    reasoning = (usage.get("output_tokens_details") or {}).get("reasoning_tokens")
    if reasoning is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return out


def _finish(resp: dict[str, Any], has_calls: bool) -> str:
    if resp.get("status") == "incomplete":
        reason = (resp.get("incomplete_details") or {}).get("reason")
        return INCOMPLETE.get(reason, "length")
    return "tool_calls" if has_calls else "stop"


def _annotations(part: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for a in part.get("annotations") or ():
        if isinstance(a, dict) and a.get("type") == "url_citation":
            out.append({"type": "url_citation", "url_citation": {k: a.get(k) for k in
                                                                 ("start_index", "end_index", "url", "title")}})
    return out


def chat_reply(resp: Any, display: str) -> dict[str, Any]:
    """A Responses API `response` as a `chat.completion`."""
    if not isinstance(resp, dict) or not isinstance(resp.get("output"), list):
        raise ValueError("not a Responses API reply")
    if resp.get("status") == "failed":
        err = resp.get("error") or {}
        raise GatewayError(f"{display}Exception - {err.get('message') or 'the response failed'}", status=500,
                           type=err.get("code") or "api_error")
    texts: list[str] = []
    refusals: list[str] = []
    annotations: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    reasoning: list[str] = []
    for item in resp["output"]:
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    texts.append(part["text"])
                    annotations.extend(_annotations(part))
                elif part.get("type") == "refusal":
                    refusals.append(part.get("refusal") or "")
        elif kind == "function_call":
            calls.append({"id": item["call_id"], "type": "function",
                          "function": {"name": item["name"], "arguments": item.get("arguments") or ""}})
        elif kind == "reasoning":
            reasoning.extend(s.get("text") or "" for s in item.get("summary") or ())
            reasoning.extend(c.get("text") or "" for c in item.get("content") or () if isinstance(c, dict))
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if refusals:
        message["refusal"] = "".join(refusals)
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = "\n\n".join(r for r in reasoning if r)
    if annotations:
        message["annotations"] = annotations
    return {"id": resp.get("id"), "object": "chat.completion", "created": int(resp.get("created_at") or time.time()),
            "model": resp.get("model"), "choices": [{"index": 0, "message": message,
                                                     "finish_reason": _finish(resp, bool(calls))}],
            "usage": chat_usage(resp.get("usage"))}


def error_of(status: int, data: bytes) -> ProviderError:
    """An OpenAI/Azure error body (`{"error": {"message", "type" or "code", "param"}}`) as a ProviderError."""
    default = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str) and err["message"]:
        kind = err.get("type") if isinstance(err.get("type"), str) and err.get("type") else default
        param = err.get("param") if isinstance(err.get("param"), str) else None
        return ProviderError(err["message"], kind, param)
    if isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]:
        return ProviderError(body["message"], default)
    text = data.decode(errors="replace").strip()[:500]
    return ProviderError(text or f"upstream returned HTTP {status}", default)


class ResponsesStream:
    """Responses API SSE events -> `chat.completion.chunk`s, as bytes arrive (any cut of the bytes)."""

    def __init__(self, model: str) -> None:
        self.buffer = b""
        self.id: str | None = None
        self.model = model
        self.created = int(time.time())
        self.tools: dict[Any, int] = {}  # output_index -> tool_calls index
        self.usage: dict[str, Any] | None = None
        self.finished = False
        self.billed = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def _usage_chunk(self) -> dict[str, Any]:
        self.billed = True
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": chat_usage(self.usage)}

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        buffer = (self.buffer + data).replace(b"\r\n", b"\n")
        out: list[dict[str, Any]] = []
        *events, self.buffer = buffer.split(b"\n\n")
        for raw in events:
            self._event(raw, out)
        return out

    def end(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.buffer.strip():
            self._event(self.buffer, out)
        self.buffer = b""
        if self.finished and not self.billed and self.usage is not None:
            out.append(self._usage_chunk())
        return out

    def _event(self, raw: bytes, out: list[dict[str, Any]]) -> None:
        lines = [line[5:].strip() for line in raw.split(b"\n") if line.startswith(b"data:")]
        if not lines or lines == [b"[DONE]"]:
            return
        try:
            ev = orjson.loads(b"\n".join(lines))
        except orjson.JSONDecodeError:
            return  # not an event we can read: skipped, as a client SDK would
        if isinstance(ev, dict):
            try:
                self._translate(ev, out)
            except (KeyError, TypeError, AttributeError):
                return

    def _translate(self, ev: dict[str, Any], out: list[dict[str, Any]]) -> None:
        kind = ev.get("type")
        if kind == "response.output_text.delta":
            if ev.get("delta"):
                out.append(self._chunk({"content": ev["delta"]}))
        elif kind == "response.function_call_arguments.delta":
            index = self.tools.get(ev.get("output_index"))
            if index is not None and ev.get("delta"):
                out.append(self._chunk({"tool_calls": [{"index": index, "function": {"arguments": ev["delta"]}}]}))
        elif kind == "response.output_item.added":
            item = ev.get("item") or {}
            if item.get("type") == "function_call":
                index = self.tools[ev.get("output_index")] = len(self.tools)
                out.append(self._chunk({"tool_calls": [{"index": index, "id": item.get("call_id"), "type": "function",
                                                        "function": {"name": item.get("name"),
                                                                     "arguments": item.get("arguments") or ""}}]}))
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            if ev.get("delta"):
                out.append(self._chunk({"reasoning_content": ev["delta"]}))
        elif kind == "response.refusal.delta":
            if ev.get("delta"):
                out.append(self._chunk({"refusal": ev["delta"]}))
        elif kind == "response.created":
            resp = ev.get("response") or {}
            self.id = resp.get("id")
            self.model = resp.get("model") or self.model
            out.append(self._chunk({"role": "assistant", "content": ""}))
        elif kind in ("response.completed", "response.incomplete"):
            resp = ev.get("response") or {}
            self.usage = resp.get("usage") if isinstance(resp.get("usage"), dict) else None
            self.finished = True
            out.append(self._chunk({}, _finish(resp, bool(self.tools))))
            if self.usage is not None:
                out.append(self._usage_chunk())
        elif kind == "response.failed":
            err = (ev.get("response") or {}).get("error") or {}
            out.append({"error": {"message": err.get("message") or "the response failed",
                                  "type": err.get("code") or "api_error"}})
        elif kind == "error":
            out.append({"error": {"message": ev.get("message") or "stream failed",
                                  "type": ev.get("code") or ev.get("type") or "api_error"}})
        # created/in_progress, content parts, *.done and the rest carry nothing a chat client needs


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
