"""OpenAI chat and embedding requests as Cohere's API v2 bodies (the `cohere/` provider's request side).

Requests (docs/providers/cohere.md lists every field): messages keep their roles (`developer`
becomes `system`), text and image parts become Cohere content blocks, `tool_calls` and tool results
keep their ids; `top_p`/`top_k` become `p`/`k`, `stop` becomes `stop_sequences`, `tool_choice`
`required`/`none` become `REQUIRED`/`NONE` (a named function: only that tool, `REQUIRED`), a JSON
`response_format` becomes `{"type": "json_object", "json_schema": ...}`. `user` and `stream_options`
are not sent; parameters Cohere cannot honour (`logit_bias`, `parallel_tool_calls`, ...) are refused
unless `drop_params` is on (cohere.py's `SUPPORTED` lists what is taken).
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import BadRequestError

PREFIX = "CohereException - "
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


def _bad(message: str, param: str | None = None) -> BadRequestError:
    return BadRequestError(PREFIX + message, param=param)


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
