"""The native `ollama/` and `ollama_chat/` providers: Ollama's own API, where users point LiteLLM.

LiteLLM users write `api_base: http://host:11434` (no `/v1`) for both prefixes: Ollama serves its
OpenAI-compatible routes only under `/v1`, so the OpenAI wire format cannot be used there. This
provider speaks Ollama's native API instead:

- chat (both prefixes) -> `POST /api/chat`. LiteLLM's `ollama/` once flattened the messages into a
  prompt for `/api/generate`, losing roles, tools and images; its own docs recommend `ollama_chat/`.
  Both prefixes here use `/api/chat`, so both get the model's chat template, tools and images.
- text completions -> `POST /api/generate` (one prompt per call).
- embeddings -> `POST /api/embed` (a string or a list of strings).

`stream` is always sent explicitly (Ollama streams unless told not to). Streams are NDJSON, one
JSON object per line, the last with `done: true` and the token counts; they become
`chat.completion.chunk` (or `text_completion`) chunks, a finish chunk and a usage chunk.

A base ending in `/v1` (configs written for the OpenAI-compatible route) is accepted: the `/v1` is
dropped. `api_key`, when set, goes as `Authorization: Bearer` (Ollama behind an authenticating
proxy); Ollama itself needs none, and no environment variable is read for it.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from gateway.errors import BadRequestError, GatewayError
from gateway.provider import Provider, ProviderError, UpstreamRequest

PATHS = {"acompletion": "/api/chat", "atext_completion": "/api/generate", "aembedding": "/api/embed"}
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
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 429: "rate_limit_error"}


def _ident(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def _bad(message: str, param: str | None = None) -> BadRequestError:
    return BadRequestError(PREFIX + message, param=param)


# -- requests ---------------------------------------------------------------------------------
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


def base_url(api_base: str) -> str:
    """The deployment's base as Ollama's root: without a trailing `/` or `/v1`."""
    base = api_base.rstrip("/")
    if base.endswith("/v1"):
        base = base[:-3]
    return base


# -- replies ----------------------------------------------------------------------------------
def _usage(data: dict[str, Any]) -> dict[str, int]:
    prompt = data.get("prompt_eval_count") or 0
    completion = data.get("eval_count") or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _finish(data: dict[str, Any], tools: bool) -> str:
    if tools:
        return "tool_calls"
    return "length" if data.get("done_reason") == "length" else "stop"


def _calls_in(calls: list[Any], start: int = 0, indexed: bool = False) -> list[dict[str, Any]]:
    """Ollama's tool calls (arguments an object) as OpenAI's (arguments a JSON string)."""
    out = []
    for k, call in enumerate(calls):
        fn = call.get("function") or {}
        args = fn.get("arguments")
        item: dict[str, Any] = {
            "id": call.get("id") or _ident("call_"), "type": "function",
            "function": {"name": fn.get("name") or "",
                         "arguments": args if isinstance(args, str) else orjson.dumps(args or {}).decode()},
        }
        if indexed:
            item["index"] = start + k
        out.append(item)
    return out


def _error_text(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("message") or value.get("error") or value
    return value if isinstance(value, str) else orjson.dumps(value).decode()


class OllamaStream:
    """Ollama's NDJSON stream as OpenAI chunks (see `gateway.provider.StreamTranslator`)."""

    __slots__ = ("buffer", "ident", "created", "model", "chat", "started", "tool_index", "done")

    def __init__(self, model: str, chat: bool) -> None:
        self.buffer = b""
        self.chat = chat
        self.ident = _ident("chatcmpl-" if chat else "cmpl-")
        self.created = int(time.time())
        self.model = model
        self.started = False  # the role was sent
        self.tool_index = 0
        self.done = False  # the last line (or an error) was seen: later bytes are ignored

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.done:
            return out
        buffer = self.buffer + data if self.buffer else data
        start = 0
        while not self.done:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            if end > start:
                self._line(buffer[start:end], out)
            start = end + 1
        self.buffer = buffer[start:] if start < len(buffer) and not self.done else b""
        return out

    def end(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.buffer.strip() and not self.done:
            self._line(self.buffer, out)
        self.buffer = b""
        if not self.done:  # Ollama always ends with a `done` line: without it the stream was cut
            out.append({"error": {"message": "Ollama closed the stream before it finished", "type": "api_error"}})
            self.done = True
        return out

    def _chunk(self, choice: dict[str, Any]) -> dict[str, Any]:
        return {"id": self.ident, "object": "chat.completion.chunk" if self.chat else "text_completion",
                "created": self.created, "model": self.model, "choices": [choice]}

    def _line(self, line: bytes, out: list[dict[str, Any]]) -> None:
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            if not line.strip():
                return
            data = None
        if not isinstance(data, dict):
            out.append({"error": {"message": "Ollama sent a stream line that is not a JSON object", "type": "api_error"}})
            self.done = True
            return
        if "error" in data:
            out.append({"error": {"message": _error_text(data["error"]), "type": "api_error"}})
            self.done = True
            return
        if self.chat:
            message = data.get("message") or {}
            delta: dict[str, Any] = {}
            if message.get("content"):
                delta["content"] = message["content"]
            if message.get("thinking"):
                delta["reasoning_content"] = message["thinking"]
            calls = message.get("tool_calls")
            if calls:
                delta["tool_calls"] = _calls_in(calls, self.tool_index, indexed=True)
                self.tool_index += len(calls)
            if delta:
                if not self.started:
                    delta["role"] = "assistant"
                    self.started = True
                out.append(self._chunk({"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}))
            if data.get("done"):
                last: dict[str, Any] = {} if self.started else {"role": "assistant", "content": ""}
                out.append(self._chunk({"index": 0, "delta": last, "finish_reason": _finish(data, self.tool_index > 0),
                                        "logprobs": None}))
        else:
            text = data.get("response")
            if text:
                out.append(self._chunk({"index": 0, "text": text, "finish_reason": None, "logprobs": None}))
            if data.get("done"):
                out.append(self._chunk({"index": 0, "text": "", "finish_reason": _finish(data, False),
                                        "logprobs": None}))
        if data.get("done"):
            usage = self._chunk({})
            usage["choices"] = []
            usage["usage"] = _usage(data)
            out.append(usage)
            self.done = True


# -- the provider -----------------------------------------------------------------------------
_TRANSLATED = {"format", "options", "response_format", "reasoning_effort", "thinking", *OPTION_OF}
#: The request fields translated to /api/chat, /api/generate and /api/embed (and Ollama's own).
SUPPORTED = {
    "acompletion": frozenset({*_TRANSLATED, "tools", "functions", "tool_choice", *PASS["acompletion"]}),
    "atext_completion": frozenset({*_TRANSLATED, *PASS["atext_completion"]}),
    "aembedding": frozenset({"options", *PASS["aembedding"]}),
}


class Ollama(Provider):
    """Ollama's native API, for `ollama/` and `ollama_chat/` (one instance per prefix)."""

    display_name = "Ollama"
    default_api_base = "http://localhost:11434"
    api_key_env = ()
    call_types = frozenset(PATHS)
    supported_params = SUPPORTED
    passthrough = False

    def __init__(self, name: str) -> None:
        self.name = name  # type: ignore[misc]  # per instance: one class serves both prefixes

    def build_request(self, dep: Any, call_type: str, body: dict[str, Any], stream: bool) -> UpstreamRequest:
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
        headers = {"content-type": "application/json", "accept": "application/json"}
        if dep.api_key:
            headers["authorization"] = f"Bearer {dep.api_key}"
        if dep.basic_auth:  # userinfo in api_base wins, as LiteLLM's HTTP client does
            headers["authorization"] = dep.basic_auth
        if dep.extra_headers:
            headers.update(dep.extra_headers)
        return UpstreamRequest(base_url(dep.api_base) + PATHS[call_type], headers, orjson.dumps(out))

    def parse_reply(self, dep: Any, call_type: str, data: bytes) -> dict[str, Any]:
        reply = orjson.loads(data)
        if not isinstance(reply, dict):
            raise ValueError("not a JSON object")
        if "error" in reply:
            raise GatewayError(PREFIX + dep.redact(_error_text(reply["error"])), status=502, type="api_error")
        model = dep.upstream_model
        if call_type == "aembedding":
            vectors = reply["embeddings"]
            prompt = reply.get("prompt_eval_count") or 0
            return {"object": "list", "model": model,
                    "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
                    "usage": {"prompt_tokens": prompt, "total_tokens": prompt}}
        created = int(time.time())
        if call_type == "atext_completion":
            choice = {"index": 0, "text": reply["response"], "finish_reason": _finish(reply, False), "logprobs": None}
            return {"id": _ident("cmpl-"), "object": "text_completion", "created": created, "model": model,
                    "choices": [choice], "usage": _usage(reply)}
        message = reply["message"]
        out: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
        calls = message.get("tool_calls")
        if calls:
            out["tool_calls"] = _calls_in(calls)
        if message.get("thinking"):
            out["reasoning_content"] = message["thinking"]
        choice = {"index": 0, "message": out, "finish_reason": _finish(reply, bool(calls)), "logprobs": None}
        return {"id": _ident("chatcmpl-"), "object": "chat.completion", "created": created, "model": model,
                "choices": [choice], "usage": _usage(reply), "system_fingerprint": None}

    def parse_error(self, dep: Any, status: int, data: bytes) -> ProviderError:
        message: str | None = None
        try:
            reply = orjson.loads(data)
        except orjson.JSONDecodeError:
            message = data.decode(errors="replace").strip()[:500] or None
        else:
            if isinstance(reply, dict) and reply.get("error"):
                message = _error_text(reply["error"])
        return ProviderError(message or f"upstream returned HTTP {status}", ERROR_TYPES.get(status, "api_error"))

    def stream(self, dep: Any, call_type: str) -> OllamaStream:
        return OllamaStream(dep.upstream_model, call_type == "acompletion")


def providers() -> list[Provider]:
    return [Ollama("ollama"), Ollama("ollama_chat")]
