"""OpenAI chat, text completion and embedding requests as Ollama's native API bodies (the
`ollama/` provider's request side): messages with images and tool calls, options from the request
and the deployment, the response format and the thinking switch.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import BadRequestError

PREFIX = "OllamaException - "

#: Ollama's runtime options (Modelfile parameters), under their own names: taken from the request
#: (top-level fields, e.g. through `extra_body`) and from the deployment's `litellm_params`.
OPTION_NAMES = frozenset({
    "num_keep", "seed", "num_predict", "top_k", "top_p", "min_p", "typical_p", "repeat_last_n",
    "temperature", "repeat_penalty", "presence_penalty", "frequency_penalty", "mirostat", "mirostat_tau",
    "mirostat_eta", "penalize_newline", "stop", "numa", "num_ctx", "num_batch", "num_gpu", "main_gpu",
    "low_vram", "use_mmap", "use_mlock", "num_thread", "tfs_z",
})
#: Request field -> Ollama option. OpenAI's names first; Ollama's own pass under their names.
OPTION_OF = {name: name for name in OPTION_NAMES} | {
    "max_tokens": "num_predict",
    "max_completion_tokens": "num_predict",
}
#: Ollama's top-level request fields that pass through as they are, per endpoint.
PASS = {
    "acompletion": ("keep_alive", "think"),
    "atext_completion": ("keep_alive", "think", "suffix", "system", "template", "raw", "images", "context"),
    "aembedding": ("keep_alive", "truncate", "dimensions"),
}
#: Ollama options a deployment's `litellm_params` may set (`num_ctx: 8192`), applied by this provider
#: (as are its `keep_alive` and `think`): the core already merges OpenAI's request defaults
#: (temperature, max_tokens, ...) into the body, and the request's own values win over both.
DEPLOYMENT_OPTIONS = OPTION_NAMES - {"temperature", "top_p", "top_k", "seed", "stop", "presence_penalty",
                                     "frequency_penalty"}
#: Roles whose string messages go to Ollama unchanged.
PLAIN_ROLES = frozenset({"system", "user", "assistant"})


def _bad(message: str, param: str | None = None) -> BadRequestError:
    return BadRequestError(PREFIX + message, param=param)


def _image(part: dict[str, Any], where: str) -> str:
    """An `image_url` part as Ollama's base64 image (Ollama cannot fetch URLs, and neither do we)."""
    ref = part.get("image_url")
    url = ref.get("url") if isinstance(ref, dict) else ref
    if not isinstance(url, str) or not url:
        raise _bad(f"{where}.image_url must carry a url", f"{where}.image_url")
    if url.startswith("data:"):
        head, sep, data = url.partition(",")
        if not sep or not head.endswith(";base64"):
            raise _bad(f"{where}: an image data: URL must be base64 (data:image/png;base64,...)", f"{where}.image_url")
        return data
    if url.startswith(("http://", "https://")):
        raise _bad(f"{where}: Ollama takes images inline only; send it as a data: URL (data:image/png;base64,...) "
                   "instead of a link", f"{where}.image_url")
    return url  # bare base64, as Ollama's own clients send it


def _content(content: Any, where: str) -> tuple[str, list[str] | None]:
    """A message's content as Ollama's text and images."""
    if isinstance(content, str):
        return content, None
    if content is None:
        return "", None
    if not isinstance(content, list):
        raise _bad(f"{where}.content must be a string or a list of parts", f"{where}.content")
    texts: list[str] = []
    images: list[str] | None = None
    for k, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text") or ""))
        elif kind == "image_url":
            if images is None:
                images = []
            images.append(_image(part, f"{where}.content[{k}]"))
        elif isinstance(part, str):
            texts.append(part)
        else:
            raise _bad(f"{where}.content[{k}]: Ollama takes text and image parts, not {kind!r}",
                       f"{where}.content[{k}]")
    return "\n".join(texts), images


def _calls_out(calls: Any, where: str, names: dict[str, str]) -> list[dict[str, Any]]:
    """OpenAI tool calls (arguments a JSON string) as Ollama's (arguments an object)."""
    out = []
    for j, call in enumerate(calls if isinstance(calls, list) else ()):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            raise _bad(f"{where}.tool_calls[{j}] must have a function", f"{where}.tool_calls[{j}]")
        args = fn.get("arguments")
        if isinstance(args, str):
            try:
                args = orjson.loads(args) if args.strip() else {}
            except orjson.JSONDecodeError:
                args = None
        if args is None and fn.get("arguments") is None:
            args = {}
        if not isinstance(args, dict):
            raise _bad(f"{where}.tool_calls[{j}].function.arguments must be a JSON object",
                       f"{where}.tool_calls[{j}].function.arguments")
        item: dict[str, Any] = {"function": {"name": fn.get("name") or "", "arguments": args}}
        ident = call.get("id")
        if ident:
            item["id"] = ident
            names[ident] = item["function"]["name"]
        out.append(item)
    return out


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, for the tool results that follow
    for i, m in enumerate(messages):
        role = m.get("role")
        content = m.get("content")
        if role in PLAIN_ROLES and type(content) is str and not m.get("tool_calls"):
            out.append(m)  # already Ollama's shape (unknown fields such as `name` are ignored)
            continue
        where = f"messages[{i}]"
        text, images = _content(content, where)
        msg: dict[str, Any] = {"role": role, "content": text}
        if images:
            msg["images"] = images
        if role == "developer":
            msg["role"] = "system"
        elif role == "assistant":
            if m.get("tool_calls"):
                msg["tool_calls"] = _calls_out(m["tool_calls"], where, names)
            if m.get("reasoning_content"):
                msg["thinking"] = m["reasoning_content"]
        elif role in ("tool", "function"):
            msg["role"] = "tool"
            call_id = m.get("tool_call_id")
            name = m.get("name") or names.get(call_id or "")
            if name:
                msg["tool_name"] = name
            if call_id:
                msg["tool_call_id"] = call_id
        out.append(msg)
    return out


def _options(dep: Any, body: dict[str, Any]) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    params = dep.params
    for key in DEPLOYMENT_OPTIONS & params.keys():
        opts[key] = params[key]
    for key, value in body.items():
        option = OPTION_OF.get(key)
        if option is not None and value is not None:
            opts[option] = value
    if body.get("max_completion_tokens") is not None:  # OpenAI's newer name wins over max_tokens
        opts["num_predict"] = body["max_completion_tokens"]
    stop = opts.get("stop")
    if isinstance(stop, str):
        opts["stop"] = [stop]
    extra = body.get("options")
    if isinstance(extra, dict):
        opts.update(extra)
    return opts


def _format(response_format: Any) -> Any:
    """OpenAI's `response_format` as Ollama's `format`: "json", a JSON schema, or None."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return schema if isinstance(schema, dict) else "json"
    return None


def _tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    tools = body.get("tools")
    if not tools and body.get("functions"):  # OpenAI's legacy `functions`
        tools = [{"type": "function", "function": f} for f in body["functions"]]
    if not tools:
        return None
    choice = body.get("tool_choice")
    if choice == "none":  # Ollama has no tool_choice: offer no tools
        return None
    if isinstance(choice, dict):  # a named function: offer only that one
        name = (choice.get("function") or {}).get("name")
        picked = [t for t in tools if isinstance(t, dict) and (t.get("function") or {}).get("name") == name]
        return picked or tools
    return tools


def _prompt(body: dict[str, Any]) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise _bad("Ollama's /api/generate takes one text prompt per call", "prompt")
    return prompt


def _inputs(body: dict[str, Any]) -> str | list[str]:
    value = body.get("input")
    if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return value
    raise _bad("Ollama embeds text: input must be a string or a list of strings", "input")


def translate_request(dep: Any, call_type: str, body: dict[str, Any], stream: bool) -> dict[str, Any]:
    """The body for /api/chat, /api/generate or /api/embed: the call's own fields, the response
    format and thinking switch, Ollama's pass-through fields and the options."""
    out: dict[str, Any] = {"model": body["model"]}
    if call_type == "acompletion":
        out["messages"] = _messages(body.get("messages") or [])
        tools = _tools(body)
        if tools:
            out["tools"] = tools
    elif call_type == "atext_completion":
        out["prompt"] = _prompt(body)
    else:
        out["input"] = _inputs(body)
    if call_type != "aembedding":
        out["stream"] = bool(stream)  # always explicit: Ollama streams by default
        fmt = _format(body.get("response_format"))
        native = body.get("format")  # Ollama's own field, e.g. through extra_body
        if fmt is None and (native == "json" or isinstance(native, dict)):
            fmt = native
        if fmt is not None:
            out["format"] = fmt
        effort = body.get("reasoning_effort")
        if effort is not None:
            out["think"] = effort != "none"
        thinking = body.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "disabled"):
            out["think"] = thinking["type"] == "enabled"
    params = dep.params
    for key in PASS[call_type]:
        if body.get(key) is not None:
            out[key] = body[key]
        elif key in ("keep_alive", "think") and params.get(key) is not None:
            out.setdefault(key, params[key])
    options = _options(dep, body)
    if options:
        out["options"] = options
    return out
