"""The native `cohere/` provider: OpenAI chat and embedding calls, and rerank, over Cohere's API v2.

- chat -> `POST {api_base}/v2/chat` (`stream: true` for streams: SSE events, one JSON object each);
- embeddings -> `POST {api_base}/v2/embed`;
- rerank -> `POST {api_base}/v2/rerank` (`cohere_rerank.py`).

`cohere_chat/` (the prefix LiteLLM's own docs use for Cohere's v2 chat) is the same provider, and
`cohere_chat/v1/<model>` (LiteLLM's way to ask for the v1 API) is served through v2 too. The key
goes as `Authorization: Bearer`, from the deployment's `api_key`, else `COHERE_API_KEY`, else
`CO_API_KEY` (the official SDK's variable). `api_base` defaults to `https://api.cohere.com`; a base
written with a trailing `/v1`, `/v2` or a whole endpoint path (`.../v1/chat`) means the same host.

Requests (docs/providers/cohere.md lists every field): messages keep their roles (`developer`
becomes `system`), text and image parts become Cohere content blocks, `tool_calls` and tool results
keep their ids; `top_p`/`top_k` become `p`/`k`, `stop` becomes `stop_sequences`, `tool_choice`
`required`/`none` become `REQUIRED`/`NONE` (a named function: only that tool, `REQUIRED`), a JSON
`response_format` becomes `{"type": "json_object", "json_schema": ...}`. `user` and `stream_options`
are not sent; parameters Cohere cannot honour (`logit_bias`, `parallel_tool_calls`, ...) are refused
unless `drop_params` is on (`SUPPORTED` lists what is taken).

Replies: text blocks become `content`, `thinking` blocks and the `tool_plan` become
`reasoning_content`, tool calls keep their ids. Usage is what Cohere bills (`billed_units`), falling
back to its raw `tokens`. Streams become `chat.completion.chunk`s as bytes arrive, ending with a
finish chunk and a usage chunk (`choices: []`); a stream that ends without `message-end`, or that
ends in `finish_reason: ERROR`, ends with an error chunk.
"""

from __future__ import annotations

import os
import time
from functools import lru_cache
from typing import Any

import orjson

from gateway.core.providers import cohere_rerank
from gateway.errors import BadRequestError, GatewayError
from gateway.provider import Provider, ProviderError, UpstreamRequest

PATHS = {"acompletion": "/v2/chat", "aembedding": "/v2/embed", "arerank": cohere_rerank.PATH}
PREFIX = "CohereException - "
#: What users append to the base URL, all meaning Cohere's root.
BASE_SUFFIXES = ("/v2/chat", "/v1/chat", "/v2/embed", "/v1/embed", "/v2/rerank", "/v1/rerank", "/v2", "/v1")
FINISH = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length", "TOOL_CALL": "tool_calls"}
#: Finish reasons that mean the generation failed: (status, type) of the error the client gets.
FAILED = {"ERROR": (502, "api_error"), "TIMEOUT": (504, "timeout")}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "insufficient_quota",
               403: "permission_error", 404: "not_found_error", 422: "invalid_request_error",
               429: "rate_limit_error", 498: "authentication_error", 504: "timeout"}
#: OpenAI request field -> Cohere's name, sent when not None.
SAMPLING = (("temperature", "temperature"), ("top_p", "p"), ("top_k", "k"), ("seed", "seed"),
            ("frequency_penalty", "frequency_penalty"), ("presence_penalty", "presence_penalty"),
            ("max_tokens", "max_tokens"), ("max_completion_tokens", "max_tokens"))
#: Cohere's own chat fields, taken as they are from the request (e.g. through `extra_body`).
NATIVE_CHAT = ("k", "p", "stop_sequences", "documents", "citation_options", "safety_mode", "strict_tools",
               "priority")
#: Cohere's own fields a deployment's `litellm_params` may set (the request's own win).
DEPLOYMENT_CHAT = ("safety_mode", "strict_tools", "priority", "citation_options")
DEPLOYMENT_EMBED = ("input_type", "truncate", "output_dimension", "max_tokens", "priority")
NATIVE_EMBED = ("input_type", "truncate", "output_dimension", "max_tokens", "priority")
DEFAULT_INPUT_TYPE = "search_document"  # what LiteLLM sends when the request names none
PLAIN_ROLES = frozenset({"system", "user", "assistant"})


def _ident(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def _bad(message: str, param: str | None = None) -> BadRequestError:
    return BadRequestError(PREFIX + message, param=param)


@lru_cache(maxsize=256)
def base_url(api_base: str) -> str:
    """The deployment's base as Cohere's root: `https://api.cohere.com/v2/chat` -> `https://api.cohere.com`."""
    base = api_base.rstrip("/")
    for suffix in BASE_SUFFIXES:
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


# -- requests ---------------------------------------------------------------------------------
def _image(part: dict[str, Any], where: str) -> dict[str, Any]:
    ref = part.get("image_url")
    image = dict(ref) if isinstance(ref, dict) else {"url": ref}
    url = image.get("url")
    if not isinstance(url, str) or not url:
        raise _bad(f"{where}.image_url must carry a url", f"{where}.image_url")
    if not url.startswith(("data:", "http://", "https://")):
        raise _bad(f"{where}: an image must be a data: URL (data:image/png;base64,...) or an http(s) link",
                   f"{where}.image_url")
    out: dict[str, Any] = {"url": url}
    if image.get("detail") in ("auto", "low", "high"):
        out["detail"] = image["detail"]
    return {"type": "image_url", "image_url": out}


def _content(content: Any, where: str, images: bool) -> str | list[dict[str, Any]]:
    """A message's content as Cohere's: a string, or text (and, for users, image) blocks."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if not isinstance(content, list):
        raise _bad(f"{where}.content must be a string or a list of parts", f"{where}.content")
    out: list[dict[str, Any]] = []
    for k, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            out.append({"type": "text", "text": str(part.get("text") or "")})
        elif isinstance(part, str):
            out.append({"type": "text", "text": part})
        elif kind == "image_url" and images:
            out.append(_image(part, f"{where}.content[{k}]"))
        elif kind == "image_url":
            raise _bad(f"{where}.content[{k}]: Cohere takes images in user messages only", f"{where}.content[{k}]")
        else:
            raise _bad(f"{where}.content[{k}]: Cohere takes text and image parts, not {kind!r}",
                       f"{where}.content[{k}]")
    return out


def _text_of(content: str | list[dict[str, Any]]) -> str:
    if isinstance(content, str):
        return content
    return "".join(block.get("text") or "" for block in content)


def _calls_out(calls: Any, where: str) -> list[dict[str, Any]]:
    """OpenAI tool calls as Cohere's (the same shape: id, type, function name and JSON-string arguments)."""
    if not isinstance(calls, list):
        raise _bad(f"{where}.tool_calls must be a list", f"{where}.tool_calls")
    out = []
    for j, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise _bad(f"{where}.tool_calls[{j}] must have a function with a name", f"{where}.tool_calls[{j}]")
        ident = call.get("id")
        if not isinstance(ident, str) or not ident:
            raise _bad(f"{where}.tool_calls[{j}] must have an id (Cohere matches tool results by it)",
                       f"{where}.tool_calls[{j}].id")
        args = fn.get("arguments")
        if args is None:
            args = "{}"
        elif not isinstance(args, str):
            args = orjson.dumps(args).decode()
        out.append({"id": ident, "type": "function", "function": {"name": fn["name"], "arguments": args}})
    return out


def translate_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        role = m.get("role")
        content = m.get("content")
        if role in PLAIN_ROLES and type(content) is str and not m.get("tool_calls"):
            out.append({"role": role, "content": content})  # Cohere's shape already (less `name`)
            continue
        where = f"messages[{i}]"
        if role in ("system", "developer"):
            out.append({"role": "system", "content": _content(content, where, False)})
        elif role == "user":
            out.append({"role": "user", "content": _content(content, where, True)})
        elif role == "assistant":
            msg: dict[str, Any] = {"role": "assistant"}
            text = _content(content, where, False)
            calls = m.get("tool_calls")
            if calls:
                msg["tool_calls"] = _calls_out(calls, where)
                # Cohere's plan before its tool calls: the reasoning it gave, else the text beside them.
                plan = m.get("reasoning_content")
                if isinstance(plan, str) and plan:
                    msg["tool_plan"] = plan
                    if text:
                        msg["content"] = text
                elif text:
                    msg["tool_plan"] = _text_of(text)
            else:
                msg["content"] = text
            out.append(msg)
        elif role == "tool":
            call_id = m.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise _bad(f"{where}: a tool message needs the tool_call_id of the call it answers",
                           f"{where}.tool_call_id")
            out.append({"role": "tool", "tool_call_id": call_id, "content": _content(content, where, False)})
        elif role == "function":
            raise _bad(f"{where}: Cohere takes tool results as role 'tool' with a tool_call_id, not legacy "
                       "'function' messages", f"{where}.role")
        else:
            raise _bad(f"{where}: Cohere has no role {role!r} (system, user, assistant, tool)", f"{where}.role")
    return out


def _tools(body: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, bool]:
    """OpenAI function tools as Cohere's, and whether any asked for strict schemas."""
    tools = body.get("tools")
    if not tools and body.get("functions"):  # OpenAI's legacy `functions`
        tools = [{"type": "function", "function": f} for f in body["functions"]]
    if not tools:
        return None, False
    if not isinstance(tools, list):
        raise _bad("tools must be a list", "tools")
    out = []
    strict = False
    for i, tool in enumerate(tools):
        kind = tool.get("type", "function") if isinstance(tool, dict) else None
        fn = tool.get("function") if isinstance(tool, dict) else None
        if kind != "function" or not isinstance(fn, dict):
            raise _bad(f"tools[{i}]: Cohere takes function tools only, not {kind!r}", f"tools[{i}]")
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise _bad(f"tools[{i}].function must have a name", f"tools[{i}].function.name")
        params = fn.get("parameters")
        if not isinstance(params, dict):  # Cohere requires a schema: a function without one takes no arguments
            params = {"type": "object", "properties": {}}
        spec: dict[str, Any] = {"name": name, "parameters": params}
        if fn.get("description"):
            spec["description"] = fn["description"]
        if fn.get("strict"):
            strict = True
        out.append({"type": "function", "function": spec})
    return out, strict


def _tool_choice(choice: Any, tools: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    if choice is None or choice == "auto":
        return None, tools
    if choice == "none":
        return "NONE", tools
    if choice == "required":
        return "REQUIRED", tools
    if isinstance(choice, dict):  # one named function: Cohere has no such choice, so offer only it
        name = (choice.get("function") or {}).get("name") if isinstance(choice.get("function"), dict) else None
        picked = [t for t in tools if t["function"]["name"] == name]
        if not picked:
            raise _bad(f"tool_choice names function {name!r}, which is not among the tools", "tool_choice")
        return "REQUIRED", picked
    if isinstance(choice, str) and choice.upper() in ("REQUIRED", "NONE"):  # Cohere's own spelling
        return choice.upper(), tools
    raise _bad(f"tool_choice {choice!r} is not one Cohere can follow (auto, none, required, or a function)",
               "tool_choice")


def _response_format(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    if kind == "json_object":
        schema = value.get("json_schema")  # Cohere's own shape passes as it is
        return {"type": "json_object", "json_schema": schema} if isinstance(schema, dict) else {"type": "json_object"}
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return {"type": "json_object", "json_schema": schema} if isinstance(schema, dict) else {"type": "json_object"}
    return None


def _thinking(body: dict[str, Any]) -> dict[str, Any] | None:
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "disabled"):
        out: dict[str, Any] = {"type": thinking["type"]}
        budget = thinking.get("token_budget", thinking.get("budget_tokens"))
        if thinking["type"] == "enabled" and isinstance(budget, int) and not isinstance(budget, bool):
            out["token_budget"] = budget
        return out
    effort = body.get("reasoning_effort")
    if isinstance(effort, str):
        return {"type": "disabled" if effort == "none" else "enabled"}
    return None


def translate_chat(dep: Any, body: dict[str, Any], stream: bool) -> dict[str, Any]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise _bad("messages must be a list", "messages")
    out: dict[str, Any] = {"model": body["model"], "messages": translate_messages(messages), "stream": bool(stream)}
    n = body.get("n")
    if n is not None and n != 1:
        raise _bad("Cohere returns one choice per call: n must be 1", "n")
    tools, strict = _tools(body)
    if tools:
        choice, tools = _tool_choice(body.get("tool_choice"), tools)
        out["tools"] = tools
        if choice:
            out["tool_choice"] = choice
        if strict:
            out["strict_tools"] = True
    for src, dst in SAMPLING:
        value = body.get(src)
        if value is not None:
            out[dst] = value
    stop = body.get("stop")
    if stop is not None:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else stop
    fmt = _response_format(body.get("response_format"))
    if fmt is not None:
        out["response_format"] = fmt
    thinking = _thinking(body)
    if thinking is not None:
        out["thinking"] = thinking
    params = dep.params
    for key in DEPLOYMENT_CHAT:
        if key in params and params[key] is not None:
            out[key] = params[key]
    for key in NATIVE_CHAT:
        if key in body and body[key] is not None:
            out[key] = body[key]
    return out


def translate_embed(dep: Any, body: dict[str, Any]) -> dict[str, Any]:
    value = body.get("input")
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        texts = value
    else:
        raise _bad("Cohere embeds text: input must be a string or a list of strings", "input")
    out: dict[str, Any] = {"model": body["model"], "texts": texts, "input_type": DEFAULT_INPUT_TYPE,
                           "embedding_types": ["float"]}
    params = dep.params
    for key in DEPLOYMENT_EMBED:
        if key in params and params[key] is not None:
            out[key] = params[key]
    if body.get("dimensions") is not None:
        out["output_dimension"] = body["dimensions"]
    for key in NATIVE_EMBED:
        if key in body and body[key] is not None:
            out[key] = body[key]
    return out


# -- replies ----------------------------------------------------------------------------------
def translate_usage(usage: Any) -> dict[str, Any]:
    """Cohere's usage as OpenAI's: what Cohere bills (`billed_units`), else its raw `tokens`."""
    if not isinstance(usage, dict):
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    billed = usage.get("billed_units") or {}
    tokens = usage.get("tokens") or {}
    prompt = billed.get("input_tokens")
    if prompt is None:
        prompt = tokens.get("input_tokens")
    completion = billed.get("output_tokens")
    if completion is None:
        completion = tokens.get("output_tokens")
    prompt, completion = int(prompt or 0), int(completion or 0)
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion}
    cached = usage.get("cached_tokens")
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": int(cached)}
    return out


def _calls_in(calls: list[Any]) -> list[dict[str, Any]]:
    out = []
    for call in calls:
        fn = call.get("function") or {}
        args = fn.get("arguments")
        out.append({"id": call.get("id") or _ident("call_"), "type": "function",
                    "function": {"name": fn.get("name") or "",
                                 "arguments": args if isinstance(args, str) else orjson.dumps(args or {}).decode()}})
    return out


def _failure(reason: str, detail: Any) -> GatewayError:
    status, kind = FAILED[reason]
    what = "timed out" if reason == "TIMEOUT" else "failed"
    message = f"the generation {what} (finish_reason {reason})"
    if isinstance(detail, str) and detail:
        message += f": {detail}"
    return GatewayError(PREFIX + message, status=status, type=kind)


def translate_reply(reply: dict[str, Any], model: str) -> dict[str, Any]:
    msg = reply["message"]
    reason = reply.get("finish_reason")
    if reason in FAILED:
        raise _failure(reason, reply.get("error"))
    texts: list[str] = []
    thinking: list[str] = []
    for block in msg.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "thinking":
            thinking.append(block.get("thinking") or "")
    calls = msg.get("tool_calls") or []
    out: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        out["tool_calls"] = _calls_in(calls)
    plan = msg.get("tool_plan")
    if plan:
        thinking.append(plan)
    if thinking:
        out["reasoning_content"] = "\n".join(thinking)
    if msg.get("citations"):
        out["citations"] = msg["citations"]
    finish = "tool_calls" if calls else FINISH.get(reason or "COMPLETE", "stop")
    return {"id": reply.get("id") or _ident("chatcmpl-"), "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": out, "finish_reason": finish, "logprobs": None}],
            "usage": translate_usage(reply.get("usage")), "system_fingerprint": None}


def translate_embeddings(reply: dict[str, Any], model: str) -> dict[str, Any]:
    vectors = reply["embeddings"]
    if isinstance(vectors, dict):  # `embeddings_by_type`: what `embedding_types` asks for
        vectors = vectors["float"]
    if not isinstance(vectors, list):
        raise TypeError("embeddings is not a list")
    meta = reply.get("meta") or {}
    billed = meta.get("billed_units") or {}
    prompt = billed.get("input_tokens")
    if prompt is None:
        prompt = (meta.get("tokens") or {}).get("input_tokens")
    prompt = int(prompt or 0)
    return {"object": "list", "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt}}


class CohereStream:
    """Cohere's v2 SSE events -> `chat.completion.chunk`s, as bytes arrive (any cut of the bytes)."""

    __slots__ = ("buffer", "id", "model", "created", "tools", "done")

    def __init__(self, model: str) -> None:
        self.buffer = b""
        self.id: str | None = None
        self.model = model
        self.created = int(time.time())
        self.tools: dict[Any, int] = {}  # Cohere's tool-call index -> OpenAI's tool_calls index
        self.done = False  # message-end (or an error) was seen: later bytes are ignored

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        if self.id is None:
            self.id = _ident("chatcmpl-")
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.done:
            return out
        buffer = self.buffer + data if self.buffer else data
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        find = buffer.find
        start = 0
        while not self.done and (end := find(b"\n\n", start)) >= 0:
            at = find(b"data:", start, end)
            # The usual event: `event: <type>` then one `data: <json>` line, the event's last.
            if at >= 0 and (at == start or buffer[at - 1] == 10) and find(b"\n", at, end) < 0:
                self._payload(buffer[at + 5:end], out)
            elif at >= 0:
                self._event(buffer[start:end], out)
            start = end + 2
        self.buffer = b"" if self.done else (buffer[start:] if start else buffer)
        return out

    def end(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.buffer.strip() and not self.done:
            self._event(self.buffer.strip(), out)
        self.buffer = b""
        if not self.done:  # Cohere always ends with `message-end`: without it the stream was cut
            out.append({"error": {"message": "Cohere closed the stream before it finished", "type": "api_error"}})
            self.done = True
        return out

    def _event(self, raw: bytes, out: list[dict[str, Any]]) -> None:
        """Any other event: its `data:` lines joined (comments and other fields skipped)."""
        lines = [line[5:] for line in raw.split(b"\n") if line.startswith(b"data:")]
        if lines:
            self._payload(b"\n".join(lines), out)

    def _fail(self, message: str, out: list[dict[str, Any]]) -> None:
        out.append({"error": {"message": message, "type": "api_error"}})
        self.done = True

    def _payload(self, payload: bytes, out: list[dict[str, Any]]) -> None:
        try:
            ev = orjson.loads(payload)
        except orjson.JSONDecodeError:
            if payload.strip() in (b"[DONE]", b""):
                return
            return self._fail("Cohere sent a stream event that is not JSON", out)
        if not isinstance(ev, dict):
            return self._fail("Cohere sent a stream event that is not a JSON object", out)
        try:
            self._translate(ev, out)
        except (KeyError, TypeError, AttributeError):
            self._fail(f"Cohere sent a {ev.get('type') or 'stream'} event that could not be read", out)

    def _translate(self, ev: dict[str, Any], out: list[dict[str, Any]]) -> None:
        kind = ev.get("type")
        if kind == "content-delta":
            content = ev["delta"]["message"]["content"]
            text = content.get("text")
            if text:
                out.append(self._chunk({"content": text}))
            elif content.get("thinking"):
                out.append(self._chunk({"reasoning_content": content["thinking"]}))
        elif kind == "tool-call-delta":
            call = ev["delta"]["message"]["tool_calls"]
            if isinstance(call, list):
                call = call[0]
            args = (call.get("function") or {}).get("arguments")
            if args:
                index = self.tools.get(ev.get("index"), len(self.tools) - 1)
                out.append(self._chunk({"tool_calls": [{"index": index, "function": {"arguments": args}}]}))
        elif kind == "tool-plan-delta":
            plan = ev["delta"]["message"].get("tool_plan")
            if plan:
                out.append(self._chunk({"reasoning_content": plan}))
        elif kind == "tool-call-start":
            call = ev["delta"]["message"]["tool_calls"]
            if isinstance(call, list):
                call = call[0]
            fn = call.get("function") or {}
            n = self.tools[ev.get("index", len(self.tools))] = len(self.tools)
            out.append(self._chunk({"tool_calls": [{"index": n, "id": call.get("id") or _ident("call_"),
                                                    "type": "function",
                                                    "function": {"name": fn.get("name") or "",
                                                                 "arguments": fn.get("arguments") or ""}}]}))
        elif kind == "content-start":
            content = (ev.get("delta") or {}).get("message", {}).get("content") or {}
            if content.get("text"):
                out.append(self._chunk({"content": content["text"]}))
            elif content.get("thinking"):
                out.append(self._chunk({"reasoning_content": content["thinking"]}))
        elif kind == "message-start":
            if ev.get("id"):
                self.id = ev["id"]
            out.append(self._chunk({"role": "assistant", "content": ""}))
        elif kind == "message-end":
            delta = ev.get("delta") or {}
            reason = delta.get("finish_reason")
            usage = delta.get("usage")
            if reason in FAILED or delta.get("error"):
                if isinstance(usage, dict):  # bill what Cohere counted before the error ends the stream
                    out.append(self._usage_chunk(usage))
                err = _failure(reason if reason in FAILED else "ERROR", delta.get("error"))
                out.append({"error": {"message": err.message[len(PREFIX):], "type": err.type}})
            else:
                finish = "tool_calls" if self.tools else FINISH.get(reason or "COMPLETE", "stop")
                out.append(self._chunk({}, finish))
                if isinstance(usage, dict):
                    out.append(self._usage_chunk(usage))
            self.done = True
        # content-end, tool-call-end, citation-start/-end and debug carry nothing a client needs

    def _usage_chunk(self, usage: dict[str, Any]) -> dict[str, Any]:
        chunk = self._chunk({})
        chunk["choices"] = []
        chunk["usage"] = translate_usage(usage)
        return chunk


def _error_text(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    message = body.get("message")
    if isinstance(message, str) and message:
        return message
    err = body.get("error")
    if isinstance(err, dict) and isinstance(err.get("message"), str) and err["message"]:
        return err["message"]
    if isinstance(err, str) and err:
        return err
    return None


def _model_of(dep: Any) -> str:
    model = dep.upstream_model
    return model[3:] if model.startswith("v1/") else model


# -- the provider -----------------------------------------------------------------------------
#: The request fields translated to v2 chat / embed (and Cohere's own, passed as they are).
SUPPORTED = {
    "acompletion": frozenset({s for s, _ in SAMPLING} | set(NATIVE_CHAT) | {
        "stop", "n", "tools", "functions", "tool_choice", "response_format", "reasoning_effort", "thinking"}),
    "aembedding": frozenset({"dimensions", *NATIVE_EMBED}),
    "arerank": cohere_rerank.SUPPORTED,
}


class Cohere(Provider):
    name = "cohere"
    aliases = ("cohere_chat",)
    display_name = "Cohere"
    default_api_base = "https://api.cohere.com"
    api_key_env = ("COHERE_API_KEY", "CO_API_KEY")
    api_base_env = ("COHERE_API_BASE",)  # as LiteLLM reads it
    call_types = frozenset(PATHS)
    supported_params = SUPPORTED
    passthrough = False

    def build_request(self, dep: Any, call_type: str, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        if call_type == "acompletion":
            if body["model"].startswith("v1/"):  # LiteLLM's `cohere_chat/v1/<model>`: the same model, via v2
                body = {**body, "model": body["model"][3:]}
            payload = translate_chat(dep, body, stream)
        elif call_type == "arerank":
            payload = cohere_rerank.translate_request(body)
        else:
            payload = translate_embed(dep, body)
        if dep.extra_body:  # LiteLLM sends a deployment's extra_body to the provider as it is
            payload.update(dep.extra_body)
        headers = {"content-type": "application/json",
                   "accept": "text/event-stream" if stream and call_type == "acompletion" else "application/json"}
        if dep.api_key:
            headers["authorization"] = f"Bearer {dep.api_key}"
        if dep.basic_auth:  # userinfo in api_base: a reverse proxy's credentials
            headers["authorization"] = dep.basic_auth
        if dep.extra_headers:
            headers.update(dep.extra_headers)
        return UpstreamRequest(base_url(dep.api_base) + PATHS[call_type], headers, orjson.dumps(payload))

    def parse_reply(self, dep: Any, call_type: str, data: bytes) -> dict[str, Any]:
        reply = orjson.loads(data)
        if not isinstance(reply, dict):
            raise ValueError("not a JSON object")
        model = _model_of(dep)
        if call_type == "arerank":
            return cohere_rerank.translate_reply(reply)
        if call_type == "aembedding":
            return translate_embeddings(reply, model)
        return translate_reply(reply, model)

    def parse_error(self, dep: Any, status: int, data: bytes) -> ProviderError:
        try:
            message = _error_text(orjson.loads(data))
        except orjson.JSONDecodeError:
            message = None
        if message is None:
            message = data.decode(errors="replace").strip()[:500] or f"upstream returned HTTP {status}"
        default = "api_error" if status >= 500 else "invalid_request_error"
        return ProviderError(message, ERROR_TYPES.get(status, default))

    def stream(self, dep: Any, call_type: str) -> CohereStream:
        return CohereStream(_model_of(dep))


def providers() -> list[Provider]:
    return [Cohere()]
