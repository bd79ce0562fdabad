"""OpenAI chat messages as the Messages API's `system` blocks and `messages` (the `anthropic/`
provider's request side, first half): content parts as text, image and document blocks, tool
calls and results as `tool_use` / `tool_result` blocks, consecutive turns of one role merged.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import BadRequestError

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
PREFIX = "AnthropicException - "


def _bad(message: str, param: str | None = None) -> BadRequestError:
    return BadRequestError(PREFIX + message, param=param)


def _media(url: str, fmt: str | None, where: str) -> dict[str, Any]:
    """An OpenAI image/file URL as an Anthropic block: data URLs inline (PDFs as documents)."""
    if url.startswith("data:"):
        head, sep, data = url[5:].partition(",")
        if not sep or not head.endswith(";base64"):
            raise _bad(f"{where}: a data URL must be base64 (data:<media type>;base64,<data>)", "messages")
        media_type = fmt or head[:-7]
        if media_type == "image/jpg":  # a common misspelling Anthropic refuses
            media_type = "image/jpeg"
        kind = "document" if media_type == "application/pdf" else "image"
        if kind == "image" and media_type not in IMAGE_TYPES:
            raise _bad(f"{where}: image type {media_type!r} is not supported; use one of "
                       f"{', '.join(sorted(IMAGE_TYPES))}", "messages")
        return {"type": kind, "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("http://", "https://")):
        kind = "document" if fmt == "application/pdf" else "image"
        return {"type": kind, "source": {"type": "url", "url": url}}
    raise _bad(f"{where}: an image URL must be a data: or http(s) URL", "messages")


def _part(part: Any, where: str, betas: set[str]) -> dict[str, Any] | None:
    """One OpenAI content part of a user (or tool) message as an Anthropic block (None: nothing)."""
    if not isinstance(part, dict):
        raise _bad(f"{where}: content parts must be objects", "messages")
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise _bad(f"{where}.text must be a string", "messages")
        if not text:
            return None  # Anthropic refuses empty text blocks
        block: dict[str, Any] = {"type": "text", "text": text}
    elif kind == "image_url":
        image = part.get("image_url")
        url, fmt = (image, None) if isinstance(image, str) else (
            (image.get("url"), image.get("format")) if isinstance(image, dict) else (None, None))
        if not isinstance(url, str):
            raise _bad(f"{where}.image_url.url must be a string", "messages")
        block = _media(url, fmt, where)
    elif kind == "file":
        file = part.get("file") if isinstance(part.get("file"), dict) else {}
        if isinstance(file.get("file_data"), str):
            block = _media(file["file_data"], file.get("format"), where)
        elif isinstance(file.get("file_id"), str):
            betas.add("files-api-2025-04-14")
            block = {"type": "document", "source": {"type": "file", "file_id": file["file_id"]}}
        else:
            raise _bad(f"{where}.file needs file_data or file_id", "messages")
    elif kind in ("document", "image", "search_result"):  # already Anthropic-shaped (LiteLLM passes these)
        return part
    else:
        raise _bad(f"{where}: content type {kind!r} is not supported by Anthropic", "messages")
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _tool_result(msg: dict[str, Any], where: str, betas: set[str]) -> dict[str, Any]:
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _bad(f"{where}.tool_call_id is required for a tool message", "messages")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    if msg.get("is_error") is True:  # an Anthropic client's failed tool run (/v1/messages), kept for Claude
        block["is_error"] = True
    content = msg.get("content")
    if isinstance(content, list):
        parts = [b for i, p in enumerate(content) if (b := _part(p, f"{where}.content.{i}", betas))]
        if parts:
            block["content"] = parts
    elif isinstance(content, str):
        if content:
            block["content"] = content
    elif content is not None:
        block["content"] = orjson.dumps(content).decode()
    if "cache_control" in msg:
        block["cache_control"] = msg["cache_control"]
    return block


def _assistant(msg: dict[str, Any], where: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    thinking = msg.get("thinking_blocks")
    if isinstance(thinking, list):  # first, or Anthropic refuses the turn
        blocks.extend(b for b in thinking if isinstance(b, dict) and b.get("type") in ("thinking", "redacted_thinking"))
    content = msg.get("content")
    if isinstance(content, str):
        if content:
            block: dict[str, Any] = {"type": "text", "text": content}
            if "cache_control" in msg:
                block["cache_control"] = msg["cache_control"]
            blocks.append(block)
    elif isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str) and part["text"]:
                block = {"type": "text", "text": part["text"]}
                if "cache_control" in part:
                    block["cache_control"] = part["cache_control"]
                blocks.append(block)
            elif kind in ("thinking", "redacted_thinking"):
                blocks.append(part)
    for i, call in enumerate(msg.get("tool_calls") or ()):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise _bad(f"{where}.tool_calls.{i}.function.name is required", "messages")
        args = fn.get("arguments")
        try:
            arguments = orjson.loads(args) if isinstance(args, str) and args.strip() else (args or {})
        except orjson.JSONDecodeError:
            raise _bad(f"{where}.tool_calls.{i}.function.arguments is not valid JSON", "messages") from None
        if not isinstance(arguments, dict):
            raise _bad(f"{where}.tool_calls.{i}.function.arguments must be a JSON object", "messages")
        blocks.append({"type": "tool_use", "id": call.get("id"), "name": fn["name"], "input": arguments})
    return blocks


def _system_blocks(msg: dict[str, Any]) -> list[dict[str, Any]]:
    content = msg.get("content")
    if isinstance(content, str):
        if not content:
            return []
        block: dict[str, Any] = {"type": "text", "text": content}
        if "cache_control" in msg:
            block["cache_control"] = msg["cache_control"]
        return [block]
    out = []
    for part in content or ():
        if isinstance(part, dict) and part.get("type") == "text" and part.get("text"):
            block = {"type": "text", "text": part["text"]}
            if "cache_control" in part:
                block["cache_control"] = part["cache_control"]
            out.append(block)
    return out


def translate_messages(messages: Any, betas: set[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI messages -> (Anthropic `system` blocks, `messages`), consecutive turns of one role merged."""
    if not isinstance(messages, list):
        raise _bad("messages must be a list", "messages")
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise _bad(f"messages.{i} must be an object", "messages")
        role = msg.get("role")
        where = f"messages.{i}"
        if role == "user":
            content = msg.get("content")
            if isinstance(content, str):
                block: dict[str, Any] = {"type": "text", "text": content}
                if "cache_control" in msg:
                    block["cache_control"] = msg["cache_control"]
                blocks = [block] if content else []
            elif isinstance(content, list):
                blocks = [b for j, p in enumerate(content) if (b := _part(p, f"{where}.content.{j}", betas))]
            else:
                raise _bad(f"{where}.content must be a string or a list of parts", "messages")
            turn = "user"
        elif role == "tool":
            blocks, turn = [_tool_result(msg, where, betas)], "user"
        elif role == "assistant":
            blocks, turn = _assistant(msg, where), "assistant"
        elif role in ("system", "developer"):
            system.extend(_system_blocks(msg))
            continue
        else:
            raise _bad(f"{where}.role {role!r} is not supported (use system, user, assistant or tool)", "messages")
        if not blocks:
            continue
        if out and out[-1]["role"] == turn:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": turn, "content": blocks})
    if out and out[-1]["role"] == "assistant":  # a prefill may not end in whitespace
        for block in out[-1]["content"]:
            if block.get("type") == "text":
                block["text"] = block["text"].rstrip()
    return system, out
