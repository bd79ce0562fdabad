"""Anthropic's Messages content as OpenAI chat messages (the first half of anthropic_request.py's
translation): `system` as a system message, text, image and document blocks as parts,
`tool_use` blocks as `tool_calls`, `tool_result` blocks as tool messages, thinking blocks kept for
Claude. `cache_control` is kept where the model is Claude (`native`), dropped elsewhere.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import BadRequestError


def _bad(message: str, param: str) -> BadRequestError:
    return BadRequestError(f"{param}: {message}", param=param)


def cached(block: dict[str, Any], out: dict[str, Any], native: bool) -> dict[str, Any]:
    """`out` with the block's `cache_control`, for Claude (`native`) only."""
    if native and block.get("cache_control") is not None:
        out["cache_control"] = block["cache_control"]
    return out


def _text(block: dict[str, Any], at: str, native: bool) -> dict[str, Any]:
    if not isinstance(block.get("text"), str):
        raise _bad("a text block needs a string `text`", f"{at}.text")
    return cached(block, {"type": "text", "text": block["text"]}, native)


def _image(block: dict[str, Any], at: str, native: bool) -> dict[str, Any]:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and isinstance(source.get("data"), str) and isinstance(source.get("media_type"), str):
        url = f"data:{source['media_type']};base64,{source['data']}"
    elif kind == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    elif kind == "file" and native:
        return block  # an Anthropic Files API id: the anthropic provider sends the block as it is
    else:
        raise _bad("an image source must be base64 (media_type, data) or url", f"{at}.source")
    return cached(block, {"type": "image_url", "image_url": {"url": url}}, native)


def _document(block: dict[str, Any], at: str, native: bool) -> dict[str, Any]:
    source = block.get("source") if isinstance(block.get("source"), dict) else {}
    if source.get("type") == "base64" and isinstance(source.get("data"), str):
        media = source.get("media_type") or "application/pdf"
        part = {"type": "file", "file": {"file_data": f"data:{media};base64,{source['data']}"}}
        if isinstance(block.get("title"), str):
            part["file"]["filename"] = block["title"]
        return cached(block, part, native)
    if native:
        return block  # text, url, file and content sources: Anthropic-shaped, sent as they are
    if source.get("type") == "text" and isinstance(source.get("data"), str):
        return {"type": "text", "text": source["data"]}
    raise _bad(f"a document with a {source.get('type')!r} source can only be sent to a Claude model; "
               "send it base64-encoded", f"{at}.source")


def _part(block: Any, at: str, native: bool) -> dict[str, Any]:
    """One block of user (or tool result) content as a chat content part."""
    if not isinstance(block, dict):
        raise _bad("a content block must be an object", at)
    kind = block.get("type")
    if kind == "text":
        return _text(block, at, native)
    if kind == "image":
        return _image(block, at, native)
    if kind == "document":
        return _document(block, at, native)
    if kind == "search_result" and native:
        return block
    raise _bad(f"content block type {kind!r} is not supported here", f"{at}.type")


def _tool_result(block: dict[str, Any], at: str, native: bool) -> dict[str, Any]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise _bad("a tool_result needs the `tool_use_id` it answers", f"{at}.tool_use_id")
    content = block.get("content")
    if content is None:
        content = ""
    elif isinstance(content, list):
        content = [_part(b, f"{at}.content[{k}]", native) for k, b in enumerate(content)]
    elif not isinstance(content, str):
        raise _bad("must be a string or a list of content blocks", f"{at}.content")
    message = cached(block, {"role": "tool", "tool_call_id": call_id, "content": content}, native)
    if native and block.get("is_error") is True:  # for the anthropic provider to send back
        message["is_error"] = True
    return message


def _user(blocks: list[Any], at: str, native: bool) -> list[dict[str, Any]]:
    """A user turn: its tool results as tool messages and its other blocks as a user message, in order."""
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        where = f"{at}.content[{j}]"
        if isinstance(block, dict) and block.get("type") == "tool_result":
            if parts:
                out.append({"role": "user", "content": parts})
                parts = []
            out.append(_tool_result(block, where, native))
        else:
            parts.append(_part(block, where, native))
    if parts:
        out.append({"role": "user", "content": parts})
    return out


def _assistant(blocks: list[Any], at: str, native: bool) -> dict[str, Any]:
    texts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        where = f"{at}.content[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(_text(block, where, native))
        elif kind == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise _bad("a tool_use block needs a string `id` and `name`", where)
            if not isinstance(block.get("input", {}), dict):
                raise _bad("must be an object", f"{where}.input")
            calls.append({"id": block["id"], "type": "function", "function": {
                "name": block["name"], "arguments": orjson.dumps(block.get("input", {})).decode()}})
        elif kind in ("thinking", "redacted_thinking"):
            thinking.append(block)
        else:
            raise _bad(f"content block type {kind!r} cannot be carried in an assistant turn", f"{where}.type")
    message: dict[str, Any] = {"role": "assistant"}
    if any("cache_control" in t for t in texts):
        message["content"] = texts
    else:
        message["content"] = "".join(t["text"] for t in texts) if texts or not calls else None
    if calls:
        message["tool_calls"] = calls
    if thinking and native:  # sent back first, as Claude requires; other models have no use for them
        message["thinking_blocks"] = thinking
    return message


def chat_messages(messages: Any, native: bool) -> list[dict[str, Any]]:
    """The Messages API's `messages` as chat messages (a user turn's tool results as tool messages, in order)."""
    if not isinstance(messages, list) or not messages:
        raise _bad("a non-empty list of messages is required", "messages")
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        at = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise _bad("a message must be an object", at)
        role, content = msg.get("role"), msg.get("content")
        if role not in ("user", "assistant"):
            raise _bad("must be 'user' or 'assistant' (the system prompt is the top-level `system`)", f"{at}.role")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
        elif not isinstance(content, list):
            raise _bad("must be a string or a list of content blocks", f"{at}.content")
        elif role == "user":
            out.extend(_user(content, at, native))
        else:
            out.append(_assistant(content, at, native))
    return out


def system_messages(system: Any, native: bool) -> list[dict[str, Any]]:
    """The top-level `system` (a string or text blocks) as a system message, or none."""
    if system is None or system == "":
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if not isinstance(system, list):
        raise _bad("must be a string or a list of text blocks", "system")
    parts = []
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _bad("must be a text block", f"system[{i}]")
        parts.append(_text(block, f"system[{i}]", native))
    return [{"role": "system", "content": parts}] if parts else []
