"""The reply side of /v1/responses: a chat reply, whole or streamed, as a Responses `response`.

A whole reply: `output_items` (content -> a `message` item with output_text, tool_calls ->
`function_call` items, reasoning_content -> a `reasoning` item) inside `Turn.response` (status,
usage, and the request fields a response repeats). A streamed one: `ResponsesEncoder`, from the
chat chunks the hooks let through. Each event leaves as `event: <type>\ndata: <json>\n\n` with a
`sequence_number`, in OpenAI's order:

    response.created, response.in_progress
    per output item, one after the other:
      reasoning      output_item.added, reasoning_summary_part.added, reasoning_summary_text.delta...,
                     reasoning_summary_text.done, reasoning_summary_part.done, output_item.done
      message        output_item.added, content_part.added, output_text.delta..., output_text.done,
                     content_part.done, output_item.done
      function_call  output_item.added, function_call_arguments.delta..., function_call_arguments.done,
                     output_item.done
    response.completed (or response.incomplete), the whole response with its usage

An item is closed when the next one starts, or at the end. A failure after the first byte is an
`error` event (code, message, param) that also carries OpenAI's error envelope under `error`, so
that the official SDKs raise it as an APIError, as they do for a failed chat stream.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.core.apis.response_store import ResponseStore
from gateway.errors import GatewayError

INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24 if prefix == 'resp' else 16)}"


# -- the reply ----------------------------------------------------------------------------------
def response_usage(usage: Any) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    given = usage.get("prompt_tokens_details") or {}
    done = usage.get("completion_tokens_details") or {}
    return {"input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": int(given.get("cached_tokens") or 0),
                                     "cache_write_tokens": int(given.get("cache_write_tokens") or 0)},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": int(done.get("reasoning_tokens") or 0)},
            "total_tokens": int(usage.get("total_tokens") or prompt + completion)}


def text_part(text: str, annotations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": annotations or [], "logprobs": []}


def _annotations(message: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for a in message.get("annotations") or ():
        cite = a.get("url_citation") if isinstance(a, dict) else None
        if isinstance(cite, dict):
            out.append({"type": "url_citation", **{k: cite.get(k) for k in ("start_index", "end_index", "url",
                                                                             "title")}})
    return out


def _chat_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text") or "" for p in content or () if isinstance(p, dict) and p.get("type") == "text")


def output_items(message: dict[str, Any], finish: str | None) -> list[dict[str, Any]]:
    """A chat reply's message as Responses output items."""
    items: list[dict[str, Any]] = []
    if message.get("reasoning_content"):
        items.append({"type": "reasoning", "id": new_id("rs"), "status": "completed",
                      "summary": [{"type": "summary_text", "text": message["reasoning_content"]}]})
    text, calls, refusal = _chat_text(message.get("content")), message.get("tool_calls") or [], message.get("refusal")
    if text or refusal or not calls:
        parts = [text_part(text, _annotations(message))] if text or not refusal else []
        if refusal:
            parts.append({"type": "refusal", "refusal": refusal})
        items.append({"type": "message", "id": new_id("msg"), "role": "assistant", "content": parts,
                      "status": "incomplete" if finish in INCOMPLETE else "completed"})
    for call in calls:
        fn = call.get("function") or {}
        items.append({"type": "function_call", "id": new_id("fc"), "call_id": call.get("id") or new_id("call"),
                      "name": fn.get("name") or "", "arguments": fn.get("arguments") or "", "status": "completed"})
    return items


def assistant_message(output: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Response output items as the chat assistant message a next turn continues from."""
    texts = [p.get("text") or "" for item in output if item.get("type") == "message"
             for p in item.get("content") or () if p.get("type") == "output_text"]
    calls = [{"id": i["call_id"], "type": "function", "function": {"name": i["name"], "arguments": i["arguments"]}}
             for i in output if i.get("type") == "function_call"]
    if not texts and not calls:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return message


@dataclass
class Turn:
    """One Responses call between `to_chat` and `stored`: what its reply echoes, and its state."""

    id: str
    created_at: int
    model: str
    echo: dict[str, Any]
    store: bool
    owner: str | None
    history: list[dict[str, Any]]  # the chat messages before the reply (no instructions)
    items: list[dict[str, Any]]  # the input items, earlier turns included, oldest first
    keeper: ResponseStore | None = field(default=None, repr=False)

    def response(self, output: list[dict[str, Any]], finish: str | None = None, usage: Any = None,
                 model: Any = None, status: str | None = None) -> dict[str, Any]:
        reason = INCOMPLETE.get(finish or "")
        status = status or ("incomplete" if reason else "completed")
        return {"id": self.id, "object": "response", "created_at": self.created_at, "status": status,
                "background": False, "error": None,
                "incomplete_details": {"reason": reason} if status == "incomplete" else None,
                "model": model if isinstance(model, str) and model else self.model, "output": output,
                "usage": response_usage(usage), **self.echo}


# -- streams ----------------------------------------------------------------------------------
class ResponsesEncoder:
    """One stream's events, and the response it adds up to (`result()`)."""

    def __init__(self, turn: Turn) -> None:
        self.turn = turn
        self.sequence = 0
        self.started = False
        self.items: list[dict[str, Any]] = []  # the output, as streamed so far
        self.open: list[int] = []  # output indexes of items not closed yet
        self.message: int | None = None  # the open message item
        self.reasoning: int | None = None  # the open reasoning item
        self.calls: dict[int, int] = {}  # chat tool_calls index -> output index
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self.final: dict[str, Any] | None = None

    @property
    def reply_id(self) -> str:
        """The response id the client saw (its spend row carries it)."""
        return self.turn.id

    # -- events -----------------------------------------------------------------------------------
    def _event(self, kind: str, **data: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **data}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def _start(self, out: list[bytes]) -> None:
        if not self.started:
            self.started = True
            snapshot = self.turn.response([], status="in_progress")
            out.append(self._event("response.created", response=snapshot))
            out.append(self._event("response.in_progress", response=snapshot))

    def _add(self, item: dict[str, Any], out: list[bytes]) -> int:
        self._close_all(out)
        index = len(self.items)
        self.items.append(item)
        self.open.append(index)
        out.append(self._event("response.output_item.added", output_index=index, item=item))
        return index

    # -- chunks -----------------------------------------------------------------------------------
    def chunk(self, chunk: dict[str, Any]) -> bytes:
        out: list[bytes] = []
        self._start(out)
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self.model = chunk["model"]
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:  # Responses has one output
                continue
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                self._reasoning(delta["reasoning_content"], out)
            if delta.get("content"):
                self._text(delta["content"], out)
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    self._call(call, out)
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
        return b"".join(out)

    def _reasoning(self, text: str, out: list[bytes]) -> None:
        if self.reasoning is None:
            item = {"type": "reasoning", "id": new_id("rs"), "status": "in_progress", "summary": []}
            self.reasoning = self._add(item, out)
            item["summary"].append({"type": "summary_text", "text": ""})
            out.append(self._event("response.reasoning_summary_part.added", item_id=item["id"],
                                   output_index=self.reasoning, summary_index=0,
                                   part={"type": "summary_text", "text": ""}))
        item = self.items[self.reasoning]
        item["summary"][0]["text"] += text
        out.append(self._event("response.reasoning_summary_text.delta", item_id=item["id"],
                               output_index=self.reasoning, summary_index=0, delta=text))

    def _text(self, text: str, out: list[bytes]) -> None:
        if self.message is None:
            item = {"type": "message", "id": new_id("msg"), "status": "in_progress", "role": "assistant", "content": []}
            self.message = self._add(item, out)
            item["content"].append(text_part(""))
            out.append(self._event("response.content_part.added", item_id=item["id"], output_index=self.message,
                                   content_index=0, part=text_part("")))
        item = self.items[self.message]
        item["content"][0]["text"] += text
        if text:
            out.append(self._event("response.output_text.delta", item_id=item["id"], output_index=self.message,
                                   content_index=0, delta=text, logprobs=[]))

    def _call(self, call: dict[str, Any], out: list[bytes]) -> None:
        fn = call.get("function") or {}
        index = self.calls.get(call.get("index", 0))
        if index is None:
            item = {"type": "function_call", "id": new_id("fc"), "call_id": call.get("id") or new_id("call"),
                    "name": fn.get("name") or "", "arguments": "", "status": "in_progress"}
            index = self.calls[call.get("index", 0)] = self._add(item, out)
        elif fn.get("name"):  # a name sent in pieces
            self.items[index]["name"] += fn["name"]
        item = self.items[index]
        if fn.get("arguments"):
            item["arguments"] += fn["arguments"]
            out.append(self._event("response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                                   delta=fn["arguments"]))

    # -- closing ----------------------------------------------------------------------------------
    def _close(self, index: int, out: list[bytes]) -> None:
        item = self.items[index]
        ident = item["id"]
        if item["type"] == "message":
            part = item["content"][0]
            out.append(self._event("response.output_text.done", item_id=ident, output_index=index, content_index=0,
                                   text=part["text"], logprobs=[]))
            out.append(self._event("response.content_part.done", item_id=ident, output_index=index, content_index=0,
                                   part=part))
            self.message = None
        elif item["type"] == "reasoning":
            text = item["summary"][0]["text"]
            out.append(self._event("response.reasoning_summary_text.done", item_id=ident, output_index=index,
                                   summary_index=0, text=text))
            out.append(self._event("response.reasoning_summary_part.done", item_id=ident, output_index=index,
                                   summary_index=0, part=item["summary"][0]))
            self.reasoning = None
        else:
            out.append(self._event("response.function_call_arguments.done", item_id=ident, output_index=index,
                                   name=item["name"], arguments=item["arguments"]))
        cut_short = item["type"] == "message" and self.finish in ("length", "content_filter")
        item["status"] = "incomplete" if cut_short else "completed"
        out.append(self._event("response.output_item.done", output_index=index, item=item))
        self.open.remove(index)

    def _close_all(self, out: list[bytes]) -> None:
        for index in list(self.open):
            self._close(index, out)

    def done(self) -> bytes:
        out: list[bytes] = []
        self._start(out)
        if not self.items:  # no text and no call: an empty message, as a whole reply would have
            self._text("", out)
        self._close_all(out)
        self.final = self.turn.response(self.items, self.finish, self.usage, self.model)
        if self.turn.store and self.turn.keeper is not None:
            self.turn.keeper.expect(self.turn.id)  # a continuation in this process waits for the write
        kind = "response.incomplete" if self.final["status"] == "incomplete" else "response.completed"
        out.append(self._event(kind, response=self.final))
        return b"".join(out)

    def error(self, err: GatewayError) -> bytes:
        envelope = err.to_dict()["error"]
        return self._event("error", code=err.type, message=err.message, param=err.param, error=envelope)

    def result(self) -> dict[str, Any]:
        """The response as streamed (what `stored` keeps)."""
        if self.final is None:
            return self.turn.response(self.items, self.finish, self.usage, self.model, status="in_progress")
        return self.final
