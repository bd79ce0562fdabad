"""Prompts and replies, for the operators who ask for them (`otel_log_messages`): they may hold
secrets and personal data, so they are off by default.

They are recorded as the GenAI conventions' `gen_ai.input.messages` and `gen_ai.output.messages`,
JSON strings of `[{"role", "parts": [{"type": "text", "content"}, ...]}]` (output messages add
`finish_reason`). What is recorded is what went upstream (after every `pre_request` rewrite, e.g.
a redaction) and what the client received.
"""

from __future__ import annotations

import json
from typing import Any

from gateway import iter_request_text, iter_response_text


def wants_messages(log_messages: bool | None, turn_off_message_logging: bool | None, capture_env: bool,
                   ctx: Any) -> bool:
    """Prompts and replies are recorded only when asked for (`otel_log_messages: true`, LiteLLM's
    `turn_off_message_logging: false`, or OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT);
    `turn_off_message_logging: true`, in the config or in the request's metadata, always wins."""
    if turn_off_message_logging is True or (ctx.metadata or {}).get("turn_off_message_logging") is True:
        return False
    return log_messages is True or turn_off_message_logging is False or capture_env


def capture_from_env(value: str | None) -> bool:
    """OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: `true` (older instrumentations) or a
    mode that records on spans (`SPAN_ONLY`, `SPAN_AND_EVENT`)."""
    return (value or "").strip().lower() in ("true", "1", "span_only", "span_and_event")


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else ():
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            parts.append({"type": "text", "content": part["text"]})
        elif isinstance(part, dict) and isinstance(part.get("type"), str):
            parts.append({"type": part["type"]})  # an image or audio part: its kind, not its bytes
    return parts


def _tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    calls = []
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            calls.append({"type": "tool_call", "id": call.get("id"), "name": function.get("name"),
                          "arguments": function.get("arguments")})
    return calls


def input_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's messages (chat, and the APIs served through chat), else its text (`prompt`,
    `input`, rerank's query and documents) as one user message."""
    messages = body.get("messages")
    if isinstance(messages, list):
        out = []
        for message in messages:
            if not isinstance(message, dict):
                continue
            role = message.get("role") if isinstance(message.get("role"), str) else "user"
            if role == "tool":
                parts = [{"type": "tool_call_response", "id": message.get("tool_call_id"),
                          "response": message.get("content")}]
            else:
                parts = _parts(message.get("content")) + _tool_calls(message)
            out.append({"role": role, "parts": parts})
        return out
    texts = list(iter_request_text(body))
    return [{"role": "user", "parts": [{"type": "text", "content": t} for t in texts]}] if texts else []


def output_messages(response: Any) -> list[dict[str, Any]]:
    """The reply's choices (a stream's assembled reply too), else its text (a transcription)."""
    if not isinstance(response, dict):
        return []
    choices = response.get("choices")
    if isinstance(choices, list) and choices:
        out = []
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
            parts = _parts(message.get("content")) + _tool_calls(message)
            if isinstance(choice.get("text"), str):  # text completions
                parts.append({"type": "text", "content": choice["text"]})
            out.append({"role": message.get("role") or "assistant", "parts": parts,
                        "finish_reason": choice.get("finish_reason") or ""})
        return out
    texts = list(iter_response_text(response))
    return [{"role": "assistant", "parts": [{"type": "text", "content": t} for t in texts],
             "finish_reason": "stop"}] if texts else []


def content_attributes(ctx: Any, outcome: Any) -> dict[str, str]:
    attrs = {}
    body = ctx.body if isinstance(ctx.body, dict) else {}
    sent = input_messages(body)
    if sent:
        attrs["gen_ai.input.messages"] = json.dumps(sent, ensure_ascii=False, default=str)
    received = output_messages(outcome.response)
    if received:
        attrs["gen_ai.output.messages"] = json.dumps(received, ensure_ascii=False, default=str)
    return attrs
