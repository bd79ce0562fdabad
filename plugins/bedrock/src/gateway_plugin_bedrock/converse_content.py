"""OpenAI chat messages as Converse's `system` blocks and `messages` (the request side, first half):
text, images (`data:` and `s3://` URLs) and documents, tool calls and results as `toolUse` /
`toolResult` blocks, thinking blocks, `cache_control` as `cachePoint` blocks, consecutive turns of
one role merged. converse.py's docstring lists the whole translation.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway import BadRequestError

PREFIX = "BedrockException - "
IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                 "image/webp": "webp"}
DOCUMENT_FORMATS = {
    "application/pdf": "pdf", "text/csv": "csv", "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html", "text/plain": "txt", "text/markdown": "md",
}
_DOC_NAME = re.compile(r"[^A-Za-z0-9()\[\] -]+")
CACHE_POINT = {"cachePoint": {"type": "default"}}


def _bad(message: str, param: str | None = "messages") -> BadRequestError:
    return BadRequestError(PREFIX + message, param=param)


def _data_url(url: str, where: str) -> tuple[str, str]:
    """`data:<media type>;base64,<data>` -> (media type, base64 data)."""
    head, sep, data = url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        raise _bad(f"{where}: a data URL must be base64 (data:<media type>;base64,<data>)")
    if not data:
        raise _bad(f"{where}: the data URL carries no data")
    return head[:-7].lower(), data


def _image(part: dict[str, Any], where: str) -> dict[str, Any]:
    ref = part.get("image_url")
    url, fmt = (ref, None) if isinstance(ref, str) else (
        (ref.get("url"), ref.get("format")) if isinstance(ref, dict) else (None, None))
    if not isinstance(url, str) or not url:
        raise _bad(f"{where}.image_url.url must be a string")
    if url.startswith("data:"):
        media, data = _data_url(url, where)
        image_format = IMAGE_FORMATS.get(fmt or media)
        if image_format is None:
            raise _bad(f"{where}: image type {fmt or media!r} is not supported by Bedrock; use png, jpeg, gif or webp")
        return {"image": {"format": image_format, "source": {"bytes": data}}}
    if url.startswith("s3://"):
        ext = (fmt or url.rsplit(".", 1)[-1]).lower().rpartition("/")[2]
        image_format = IMAGE_FORMATS.get(ext) or ("jpeg" if ext == "jpg" else ext)
        if image_format not in ("png", "jpeg", "gif", "webp"):
            raise _bad(f"{where}: cannot tell the image format of {url!r}; set image_url.format (e.g. image/png)")
        return {"image": {"format": image_format, "source": {"s3Location": {"uri": url}}}}
    if url.startswith(("http://", "https://")):
        raise _bad(f"{where}: Bedrock takes images inline or from S3, and the gateway fetches no URLs; send the "
                   "image as a data: URL (data:image/png;base64,...) or an s3:// URL")
    raise _bad(f"{where}: an image URL must be a data: or s3:// URL")


def _document(part: dict[str, Any], where: str, names: set[str]) -> dict[str, Any]:
    file = part.get("file") if isinstance(part.get("file"), dict) else {}
    data_url = file.get("file_data")
    if not isinstance(data_url, str) or not data_url.startswith("data:"):
        raise _bad(f"{where}.file needs file_data as a data: URL (Bedrock cannot read file_id)")
    media, data = _data_url(data_url, where)
    media = (file.get("format") or media).lower()
    if media in IMAGE_FORMATS:
        return {"image": {"format": IMAGE_FORMATS[media], "source": {"bytes": data}}}
    doc_format = DOCUMENT_FORMATS.get(media)
    if doc_format is None:
        raise _bad(f"{where}: file type {media!r} is not supported by Bedrock; use one of "
                   f"{', '.join(sorted(set(DOCUMENT_FORMATS.values())))}")
    # Bedrock: names of letters, digits, single spaces, hyphens, parentheses and brackets; unique.
    base = " ".join(_DOC_NAME.sub(" ", str(file.get("filename") or "").rsplit(".", 1)[0]).split())[:180]
    name, n = base or f"document {len(names) + 1}", 1
    while name in names:
        n += 1
        name = f"{base or 'document'} {n}"
    names.add(name)
    return {"document": {"format": doc_format, "name": name, "source": {"bytes": data}}}


def _user_blocks(content: Any, where: str, names: set[str]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content.strip() else []
    if content is None:
        return []
    if not isinstance(content, list):
        raise _bad(f"{where}.content must be a string or a list of parts")
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        at = f"{where}.content.{j}"
        if isinstance(part, str):
            part = {"type": "text", "text": part}
        if not isinstance(part, dict):
            raise _bad(f"{at}: content parts must be objects")
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise _bad(f"{at}.text must be a string")
            if not text.strip():
                continue  # Bedrock refuses blank text blocks
            blocks.append({"text": text})
        elif kind == "image_url":
            blocks.append(_image(part, at))
        elif kind == "file":
            blocks.append(_document(part, at, names))
        else:
            raise _bad(f"{at}: content type {kind!r} is not supported by Bedrock (text, image_url and file are)")
        if part.get("cache_control"):
            blocks.append(CACHE_POINT)
    return blocks


def _arguments(value: Any, where: str) -> Any:
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise _bad(f"{where}.function.arguments is not valid JSON") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(f"{where}.function.arguments must be a JSON object")
    return value


def _assistant_blocks(msg: dict[str, Any], where: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for block in msg.get("thinking_blocks") or ():  # first, or Anthropic refuses the turn
        if not isinstance(block, dict):
            continue
        if block.get("type") == "thinking" and isinstance(block.get("thinking"), str):
            text: dict[str, Any] = {"text": block["thinking"]}
            if block.get("signature"):
                text["signature"] = block["signature"]
            blocks.append({"reasoningContent": {"reasoningText": text}})
        elif block.get("type") == "redacted_thinking" and block.get("data"):
            blocks.append({"reasoningContent": {"redactedContent": block["data"]}})
    content = msg.get("content")
    if isinstance(content, str):
        if content.strip():
            blocks.append({"text": content})
            if msg.get("cache_control"):
                blocks.append(CACHE_POINT)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                if part["text"].strip():
                    blocks.append({"text": part["text"]})
                    if part.get("cache_control"):
                        blocks.append(CACHE_POINT)
    for k, call in enumerate(msg.get("tool_calls") or ()):
        at = f"{where}.tool_calls.{k}"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise _bad(f"{at}.function.name is required")
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise _bad(f"{at}.id is required")
        blocks.append({"toolUse": {"toolUseId": call_id, "name": fn["name"],
                                   "input": _arguments(fn.get("arguments"), at)}})
    return blocks


def _tool_result(msg: dict[str, Any], where: str, names: set[str]) -> dict[str, Any]:
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _bad(f"{where}.tool_call_id is required for a tool message")
    content = msg.get("content")
    if isinstance(content, list):
        parts = [b for b in _user_blocks(content, where, names) if "cachePoint" not in b]
    elif isinstance(content, str):
        parts = [{"text": content}] if content.strip() else []
    elif content is None:
        parts = []
    else:
        parts = [{"json": content}]
    # Bedrock requires content and refuses blank text: an empty result is said in words.
    return {"toolResult": {"toolUseId": call_id, "content": parts or [{"text": "(empty result)"}]}}


def _system_blocks(msg: dict[str, Any], where: str) -> list[dict[str, Any]]:
    content = msg.get("content")
    if isinstance(content, str):
        if not content.strip():
            return []
        return [{"text": content}, CACHE_POINT] if msg.get("cache_control") else [{"text": content}]
    if not isinstance(content, list):
        raise _bad(f"{where}.content must be a string or a list of text parts")
    out: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            if part["text"].strip():
                out.append({"text": part["text"]})
                if part.get("cache_control"):
                    out.append(CACHE_POINT)
    return out


def translate_messages(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], set[str]]:
    """OpenAI messages -> (Converse `system`, `messages`, tool names used in the history)."""
    if not isinstance(messages, list) or not messages:
        raise _bad("messages must be a non-empty list")
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    used_tools: set[str] = set()
    names: set[str] = set()  # document names, unique per request
    for i, msg in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(msg, dict):
            raise _bad(f"{where} must be an object")
        role = msg.get("role")
        if role == "user":
            blocks = _user_blocks(msg.get("content"), where, names)
            if msg.get("cache_control") and blocks and isinstance(msg.get("content"), str):
                blocks.append(CACHE_POINT)
            turn = "user"
        elif role == "assistant":
            blocks = _assistant_blocks(msg, where)
            used_tools.update(b["toolUse"]["name"] for b in blocks if "toolUse" in b)
            turn = "assistant"
        elif role in ("tool", "function"):
            if role == "function":
                raise _bad(f"{where}: role 'function' is not supported; use 'tool' with tool_call_id")
            blocks, turn = [_tool_result(msg, where, names)], "user"
        elif role in ("system", "developer"):
            system.extend(_system_blocks(msg, where))
            continue
        else:
            raise _bad(f"{where}.role {role!r} is not supported (use system, user, assistant or tool)")
        if not blocks:
            continue
        if out and out[-1]["role"] == turn:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": turn, "content": blocks})
    if out and out[-1]["role"] == "assistant":  # a prefill may not end in whitespace
        for block in out[-1]["content"]:
            if "text" in block:
                block["text"] = block["text"].rstrip()
    if not out:
        raise _bad("messages hold no user or assistant content (Bedrock needs at least one user message)")
    return system, out, used_tools
