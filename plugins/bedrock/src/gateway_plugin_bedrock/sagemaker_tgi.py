"""OpenAI <-> the Hugging Face TGI format that `sagemaker/` endpoints speak, as LiteLLM sends it.

Chat (`InvokeEndpoint`): `{"inputs": <prompt>, "parameters": {...}}`, plus `"stream": true` for
`InvokeEndpointWithResponseStream`. The reply is `[{"generated_text": ...}]` (or one object, or
`generation` for some JumpStart containers); a stream is TGI's `data:{"token": {...}}` lines (or
LMI's JSON lines), one token per event, the last one with `generated_text` and `details`.

The prompt is rendered here, from the chat messages, with no download (LiteLLM fetches a model's
chat template from the Hugging Face Hub when it can):
- the deployment's own template, LiteLLM's keys: `roles` ({role: {pre_message, post_message}}),
  `initial_prompt_value`, `final_prompt_value`, `bos_token`, `eos_token`;
- else a built-in template when `hf_model_name` (else the endpoint name) names a family: Llama 2
  chat (`llama-2` with `chat`, as LiteLLM), Llama 3 (`llama-3` / `llama3`), Mistral / Mixtral
  instruct. No BOS token is written: the container's tokenizer adds it;
- else a lone user message goes as it is (what LiteLLM sends), and a conversation becomes a
  role-prefixed transcript (`System: ...`, `User: ...`, `Assistant: ...`) ending in `Assistant:`.

Parameters (LiteLLM's mapping): `max_tokens` / `max_completion_tokens` -> `max_new_tokens` (0 -> 1),
`temperature` (0 -> 0.01 unless `aws_sagemaker_allow_zero_temp`), `top_p`, `top_k`, `seed`, `stop`
(a list), `n` -> `best_of` with `do_sample`; TGI's own parameters (`repetition_penalty`, `do_sample`,
`details`, ...) pass from the request or the deployment.

Usage: TGI reports token counts only with `details`. Completion tokens are `generated_tokens` when
reported, else one per streamed token event, else estimated; prompt tokens are estimated from the
rendered prompt. Estimates are the gateway's own rule: one token per four characters, rounded up.
"""

from __future__ import annotations

import math
import time
import uuid
from contextvars import ContextVar
from typing import Any

from gateway import BadRequestError

PREFIX = "SagemakerException - "
#: TGI's own generation parameters, passed from the request (e.g. `extra_body`) or the deployment.
NATIVE_PARAMS = ("best_of", "decoder_input_details", "details", "do_sample", "frequency_penalty", "grammar",
                 "max_new_tokens", "repetition_penalty", "return_full_text", "top_n_tokens", "truncate",
                 "typical_p", "watermark", "adapter_id")
FINISH = {"length": "length", "eos_token": "stop", "stop_sequence": "stop"}
TRANSCRIPT = {"system": "System", "user": "User", "assistant": "Assistant"}
#: The rendered prompt's length, for the usage of this call's reply: the provider contract gives
#: `parse_reply` and `stream` no request. Set by `translate_request`, in the request's own context.
prompt_chars: ContextVar[tuple[str, int] | None] = ContextVar("sagemaker_prompt_chars", default=None)


def _bad(message: str, param: str | None = "messages") -> BadRequestError:
    return BadRequestError(PREFIX + message, param=param)


def estimate(chars: int) -> int:
    return math.ceil(chars / 4) if chars > 0 else 0


# -- the prompt --------------------------------------------------------------------------------------
def _text(message: dict[str, Any], where: str) -> str:
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind != "text":
                raise _bad(f"{where}.content.{j}: a sagemaker/ endpoint takes text only (part type {kind!r}); "
                           "use sagemaker_chat/ for an endpoint serving the Messages API")
            parts.append(str(part.get("text") or ""))
        return "".join(parts)
    raise _bad(f"{where}.content must be a string or a list of parts")


def _turns(messages: Any) -> list[tuple[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise _bad("messages must be a non-empty list")
    turns = []
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        role = message.get("role") if isinstance(message, dict) else None
        role = "system" if role == "developer" else role
        if role not in TRANSCRIPT:
            raise _bad(f"{where}.role {role!r} is not supported by a sagemaker/ endpoint (system, user, assistant); "
                       "tool calls need sagemaker_chat/")
        if message.get("tool_calls"):
            raise _bad(f"{where}: tool calls are not supported by a sagemaker/ endpoint; use sagemaker_chat/")
        turns.append((role, _text(message, where)))
    return turns


def _custom(turns: list[tuple[str, str]], params: dict[str, Any]) -> str:
    """LiteLLM's custom prompt: bos, initial value, each turn wrapped in its role's pre/post
    message (eos after an assistant turn, bos again before the next system/user turn), final value."""
    roles = params.get("roles") or {}
    if not isinstance(roles, dict):
        raise ValueError("roles must map a role to {pre_message, post_message}")
    bos, eos = str(params.get("bos_token") or ""), str(params.get("eos_token") or "")
    out = [bos, str(params.get("initial_prompt_value") or "")]
    open_ = True
    for role, text in turns:
        if role != "assistant" and not open_:
            out.append(bos)
            open_ = True
        wrap = roles.get(role) or {}
        out += [str(wrap.get("pre_message") or ""), text, str(wrap.get("post_message") or "")]
        if role == "assistant":
            out.append(eos)
            open_ = False
    out.append(str(params.get("final_prompt_value") or ""))
    return "".join(out)


def _system_first(turns: list[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
    system = "\n\n".join(t for r, t in turns if r == "system")
    return system, [(r, t) for r, t in turns if r != "system"]


def _llama2(turns: list[tuple[str, str]]) -> str:
    system, rest = _system_first(turns)
    out, pending_sys = [], f"<<SYS>>\n{system}\n<</SYS>>\n\n" if system else ""
    for role, text in rest:
        if role == "user":
            out.append(("<s>" if out else "") + f"[INST] {pending_sys}{text} [/INST]")
            pending_sys = ""
        else:
            out.append(f" {text} </s>")
    return "".join(out)


def _llama3(turns: list[tuple[str, str]]) -> str:
    body = "".join(f"<|start_header_id|>{role}<|end_header_id|>\n\n{text}<|eot_id|>" for role, text in turns)
    return body + "<|start_header_id|>assistant<|end_header_id|>\n\n"


def _mistral(turns: list[tuple[str, str]]) -> str:
    system, rest = _system_first(turns)
    out = []
    for role, text in rest:
        if role == "user":
            out.append(f"[INST] {system + chr(10) * 2 if system else ''}{text} [/INST]")
            system = ""
        else:
            out.append(f"{text}</s>")
    return "".join(out)


def _transcript(turns: list[tuple[str, str]]) -> str:
    if len(turns) == 1 and turns[0][0] == "user":
        return turns[0][1]
    return "\n".join(f"{TRANSCRIPT[role]}: {text}" for role, text in turns) + "\nAssistant:"


def template_of(name: str) -> str:
    """The built-in template a model or endpoint name selects ("" for none)."""
    name = name.lower()
    if "llama-2" in name and "chat" in name:
        return "llama-2"
    if "llama-3" in name or "llama3" in name:
        return "llama-3"
    if ("mistral" in name or "mixtral" in name) and "instruct" in name:
        return "mistral"
    return ""


def render_prompt(messages: Any, params: dict[str, Any], endpoint: str) -> str:
    turns = _turns(messages)
    if any(k in params for k in ("roles", "initial_prompt_value", "final_prompt_value")):
        return _custom(turns, params)
    kind = template_of(str(params.get("hf_model_name") or endpoint))
    if kind == "llama-2":
        return _llama2(turns)
    if kind == "llama-3":
        return _llama3(turns)
    if kind == "mistral":
        return _mistral(turns)
    return _transcript(turns)


# -- request and reply ---------------------------------------------------------------------------------
def _param(body: dict[str, Any], params: dict[str, Any], name: str) -> Any:
    value = body.get(name)
    return params.get(name) if value is None else value


def translate_request(body: dict[str, Any], params: dict[str, Any], endpoint: str, stream: bool) -> dict[str, Any]:
    if body.get("tools") or body.get("functions"):
        raise _bad("tools are not supported by a sagemaker/ endpoint (TGI's text format); use sagemaker_chat/ "
                   "for an endpoint serving the Messages API", "tools")
    prompt = render_prompt(body.get("messages"), params, endpoint)
    out: dict[str, Any] = {}
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        out["max_new_tokens"] = max(int(limit), 1)
    temperature = body.get("temperature")
    if temperature is not None:
        allow_zero = _param(body, params, "aws_sagemaker_allow_zero_temp")
        out["temperature"] = 0.01 if temperature == 0 and not allow_zero else temperature
    for name in ("top_p", "top_k", "seed"):
        if body.get(name) is not None:
            out[name] = body[name]
    stop = body.get("stop")
    if stop:
        out["stop"] = [stop] if isinstance(stop, str) else list(stop)
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        out["best_of"] = n
        out["do_sample"] = True
    for name in NATIVE_PARAMS:
        value = _param(body, params, name)
        if value is not None:
            out[name] = value
    prompt_chars.set((endpoint, len(prompt)))
    data: dict[str, Any] = {"inputs": prompt, "parameters": out}
    if stream:
        data["stream"] = True
    return data


def _prompt_tokens(endpoint: str, details: Any) -> int | None:
    prefill = details.get("prefill") if isinstance(details, dict) else None
    if isinstance(prefill, list) and prefill:
        return len(prefill)
    known = prompt_chars.get()
    return estimate(known[1]) if known is not None and known[0] == endpoint else None


def usage_of(prompt: int | None, completion: int) -> dict[str, int] | None:
    if prompt is None:
        return None  # no request seen in this context: the gateway estimates, and says so
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def translate_reply(reply: Any, endpoint: str, model: str) -> dict[str, Any]:
    first = reply[0] if isinstance(reply, list) and reply else reply
    if not isinstance(first, dict):
        raise ValueError("not a TGI reply")
    text = first.get("generated_text")
    if text is None:
        text = first.get("generation")
    if isinstance(text, dict):  # JumpStart chat containers: {"generation": {"role", "content"}}
        text = text.get("content")
    if not isinstance(text, str):
        raise ValueError("no generated_text in the reply")
    details = first.get("details") if isinstance(first.get("details"), dict) else {}
    finish = FINISH.get(str(details.get("finish_reason")), "stop")
    completion = details.get("generated_tokens")
    completion = int(completion) if isinstance(completion, int) else estimate(len(text))
    out: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}]}
    usage = usage_of(_prompt_tokens(endpoint, details), completion)
    if usage is not None:
        out["usage"] = usage
    return out


class TgiTokens:
    """TGI's (or LMI's) stream objects -> `chat.completion.chunk`s: one per token, then a finish chunk
    and a usage chunk when the last event (with `generated_text` / `details`) arrives, or the
    stream ends cleanly."""

    __slots__ = ("endpoint", "id", "created", "model", "tokens", "started", "finished")

    def __init__(self, endpoint: str, model: str) -> None:
        self.endpoint = endpoint
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self.tokens = 0
        self.started = False
        self.finished = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def event(self, ev: dict[str, Any], out: list[dict[str, Any]]) -> None:
        if self.finished:
            return
        token = ev.get("token")
        if isinstance(token, dict):
            self.tokens += 1
            text = token.get("text")
            if text and not token.get("special"):
                delta: dict[str, Any] = {"content": text}
                if not self.started:
                    delta["role"] = "assistant"
                    self.started = True
                out.append(self._chunk(delta))
        details = ev.get("details")
        if ev.get("generated_text") is not None or isinstance(details, dict):
            self.finish(out, details if isinstance(details, dict) else {})

    def finish(self, out: list[dict[str, Any]], details: dict[str, Any]) -> None:
        if self.finished:
            return
        self.finished = True
        if not self.started:
            out.append(self._chunk({"role": "assistant", "content": ""}))
            self.started = True
        out.append(self._chunk({}, FINISH.get(str(details.get("finish_reason")), "stop")))
        generated = details.get("generated_tokens")
        usage = usage_of(_prompt_tokens(self.endpoint, details), generated if isinstance(generated, int) else self.tokens)
        if usage is not None:
            chunk = self._chunk({})
            chunk["choices"] = []
            chunk["usage"] = usage
            out.append(chunk)


# -- embeddings ------------------------------------------------------------------------------------------
def translate_embedding_request(body: dict[str, Any]) -> dict[str, Any]:
    """LiteLLM's: `{"inputs": [texts]}` (a Hugging Face / TEI embedding container)."""
    found = body.get("input")
    texts = [found] if isinstance(found, str) else found
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise _bad("input must be a string or a list of strings (token arrays are not supported)", "input")
    prompt_chars.set(("embedding", sum(len(t) for t in texts)))
    return {"inputs": texts}


def translate_embedding_reply(reply: Any, model: str) -> dict[str, Any]:
    vectors = reply.get("embedding") if isinstance(reply, dict) else reply
    if not isinstance(vectors, list):
        raise ValueError("no embeddings in the reply")
    if vectors and isinstance(vectors[0], (int, float)):
        vectors = [vectors]  # one input, one flat vector
    out: dict[str, Any] = {"object": "list", "model": model,
                           "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]}
    known = prompt_chars.get()
    if known is not None and known[0] == "embedding":
        tokens = estimate(known[1])
        out["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return out
