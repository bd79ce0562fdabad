"""OpenAI's Responses API (`POST /v1/responses`) served through the chat path, for any provider.

The request becomes a chat request before any hook runs (gateway/core/apis), so guards written for
chat see `messages`, chat replies and chat chunks; the reply is rendered back as a `response`:

    request   instructions               -> a system message, first (never carried to the next turn)
              previous_response_id       -> the stored conversation of that reply (its input and output)
              input (text, or items)     -> messages: user/system/developer/assistant messages
                                            (input_text, input_image, input_file, output_text parts);
                                            function_call -> assistant tool_calls; function_call_output
                                            -> tool messages; reasoning items are skipped
              tools (function), tool_choice, max_output_tokens -> max_tokens, text.format ->
              response_format, text.verbosity -> verbosity, reasoning.effort -> reasoning_effort,
              metadata, user, temperature, top_p, parallel_tool_calls, stream: as chat has them
    reply     content -> a `message` item (output_text); tool_calls -> `function_call` items;
              reasoning_content -> a `reasoning` item; finish_reason length / content_filter ->
              status incomplete; usage prompt/completion tokens -> input/output tokens
              (responses_stream.py renders the reply, whole or streamed)

Built-in tools (web search, file search, computer use, code interpreter, MCP, image generation, ...)
and the fields that need OpenAI's servers (`background`, `conversation`, `prompt`) are refused with a
400 naming them. Any other field is passed to the chat request as it is (the gateway's own `tags`,
`guardrails`, `cache`, `fallbacks`, ...). State (`store`, default true) is kept by response_store.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from quart import current_app, g

from gateway.context import Principal, RequestContext
from gateway.core.apis.response_store import Stored, owner_of, store_of
from gateway.core.apis.responses_stream import ResponsesEncoder, Turn, assistant_message, new_id, output_items, text_part
from gateway.errors import BadRequestError, GatewayError, NotFoundError

#: Fields this adapter reads; every other field goes to the chat request untouched.
CONSUMED = frozenset({"model", "input", "instructions", "previous_response_id", "tools", "tool_choice",
                      "max_output_tokens", "text", "reasoning", "store", "stream", "metadata", "truncation",
                      "include", "stream_options", "background", "conversation", "prompt", "max_tool_calls",
                      "top_logprobs", "messages"})
#: Fields with the same name and meaning in chat.
SAME_IN_CHAT = ("temperature", "top_p", "parallel_tool_calls", "user", "service_tier", "safety_identifier",
                "prompt_cache_key")
#: Fields that need OpenAI's own servers: refused rather than silently ignored.
REFUSED = {"background": "background responses are not served by the gateway",
           "conversation": "the Conversations API is not served by the gateway; use previous_response_id",
           "prompt": "stored prompt templates live on OpenAI's servers; send the text as input",
           "max_tool_calls": "max_tool_calls has no chat counterpart",
           "top_logprobs": "logprobs are not served on /v1/responses"}
STATE_KEY = "_responses"  # the adapter's slot in ctx.state (core slots start with _)


# -- the request --------------------------------------------------------------------------------
def _bad(message: str, param: str) -> BadRequestError:
    return BadRequestError(message, param=param)


def _user_part(part: Any, where: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "text", "output_text"):
        return {"type": "text", "text": part.get("text") or ""}
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        return {"type": "image_url", "image_url": {"url": part["image_url"], "detail": part.get("detail") or "auto"}}
    if kind == "input_image":
        raise _bad(f"{where}: input_image needs an image_url (a URL or a data URL); file_id images are "
                   "not served through the gateway", where)
    if kind == "input_file" and not part.get("file_url"):
        return {"type": "file", "file": {k: part[k] for k in ("file_data", "file_id", "filename") if part.get(k)}}
    if kind == "input_file":
        raise _bad(f"{where}: input_file by file_url is not served through the gateway; send file_data", where)
    raise _bad(f"{where}: content parts of type {kind!r} are not supported "
               "(use input_text, input_image or input_file)", where)


def _content(content: Any, role: str, where: str) -> Any:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad(f"{where}.content: must be a string or a list of content parts", f"{where}.content")
    if role == "assistant":
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type") == "output_text")
    parts = [_user_part(p, f"{where}.content[{j}]") for j, p in enumerate(content)]
    if len(parts) == 1 and parts[0]["type"] == "text":
        return parts[0]["text"]
    return parts


def _listed_content(content: Any, role: str) -> list[dict[str, Any]]:
    """An input message's content as input_items lists it (always parts)."""
    if isinstance(content, str):
        return [text_part(content)] if role == "assistant" else [{"type": "input_text", "text": content}]
    return [p for p in content if isinstance(p, dict)]


def _tool_output(output: Any, where: str) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list) and all(isinstance(p, dict) and p.get("type") == "input_text" for p in output):
        return "".join(p.get("text") or "" for p in output)
    raise _bad(f"{where}.output: must be a string or a list of input_text parts", f"{where}.output")


def translate_input(value: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`input` as chat messages, and as the input items `input_items` lists (with ids)."""
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise _bad("input: must be a string or a list of input items", "input")
    messages: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise _bad(f"{where}: must be an object", where)
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "system", "developer", "assistant"):
                raise _bad(f"{where}.role: {role!r} is not one of user, system, developer, assistant", f"{where}.role")
            messages.append({"role": role, "content": _content(item.get("content"), role, where)})
            items.append({"id": item.get("id") or new_id("msg"), "type": "message", "role": role,
                          "content": _listed_content(item.get("content"), role), "status": "completed"})
        elif kind == "function_call":
            if not all(isinstance(item.get(k), str) for k in ("call_id", "name")):
                raise _bad(f"{where}: a function_call needs call_id and name", where)
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item.get("arguments") or "{}"}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            items.append({"id": item.get("id") or new_id("fc"), "type": "function_call", "call_id": item["call_id"],
                          "name": item["name"], "arguments": call["function"]["arguments"], "status": "completed"})
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str):
                raise _bad(f"{where}: a function_call_output needs the call_id it answers", where)
            messages.append({"role": "tool", "tool_call_id": item["call_id"],
                             "content": _tool_output(item.get("output"), where)})
            items.append({"id": item.get("id") or new_id("fco"), "type": "function_call_output",
                          "call_id": item["call_id"], "output": item.get("output"), "status": "completed"})
        elif kind == "reasoning":  # the model's own notes: no chat counterpart, listed only
            items.append({**item, "id": item.get("id") or new_id("rs")})
        else:
            raise _bad(f"{where}.type: input items of type {kind!r} are not supported through the gateway "
                       "(use message, function_call, function_call_output)", f"{where}.type")
    return messages, items


def _tools(tools: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Function tools as chat tools, and as the response echoes them; built-in tools are refused."""
    if not isinstance(tools, list):
        raise _bad("tools: must be a list", "tools")
    chat, echo = [], []
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise _bad(f"tools[{i}].type: {kind!r} is a built-in tool of OpenAI's Responses API, which the gateway "
                       "does not serve; use function tools", f"tools[{i}].type")
        if isinstance(tool.get("function"), dict):  # chat's nested form, accepted as it is
            tool = {"type": "function", **tool["function"]}
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise _bad(f"tools[{i}].name: a function tool needs a name", f"tools[{i}].name")
        fn = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
        fn.setdefault("parameters", {"type": "object", "properties": {}})
        chat.append({"type": "function", "function": fn})
        echo.append({"type": "function", "description": None, "strict": None, **fn})
    return chat, echo


def _tool_choice(choice: Any) -> Any:
    if choice in ("none", "auto", "required"):
        return choice
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    if kind == "allowed_tools" and isinstance(choice.get("tools"), list):
        names = [t.get("name") for t in choice["tools"] if isinstance(t, dict) and t.get("type") == "function"]
        if len(names) == len(choice["tools"]):
            return {"type": "allowed_tools", "allowed_tools": {
                "mode": choice.get("mode") or "auto", "tools": [{"type": "function", "function": {"name": n}}
                                                                for n in names]}}
    raise _bad(f"tool_choice: {choice!r} is not served through the gateway (use none, auto, required, or a "
               "function by name)", "tool_choice")


def _response_format(text: Any) -> dict[str, Any] | None:
    if not isinstance(text, dict):
        raise _bad("text: must be an object", "text")
    fmt = text.get("format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema" and isinstance(fmt.get("name"), str) and isinstance(fmt.get("schema"), dict):
        return {"type": "json_schema", "json_schema": {k: fmt[k] for k in ("name", "schema", "strict", "description")
                                                       if fmt.get(k) is not None}}
    raise _bad("text.format: use text, json_object, or json_schema with a name and a schema", "text.format")


def _check(body: dict[str, Any]) -> None:
    for name, why in REFUSED.items():
        if body.get(name) not in (None, False, 0):
            raise _bad(f"{name}: {why}", name)
    if "messages" in body:
        raise _bad("messages: /v1/responses takes `input` (use /v1/chat/completions for messages)", "messages")
    if body.get("truncation") not in (None, "auto", "disabled"):
        raise _bad("truncation: must be auto or disabled", "truncation")
    if body.get("include") is not None and not isinstance(body["include"], list):
        raise _bad("include: must be a list", "include")
    for name, kind in (("instructions", str), ("store", bool), ("stream", bool), ("metadata", dict),
                       ("reasoning", dict), ("previous_response_id", str)):
        if body.get(name) is not None and not isinstance(body[name], kind):
            raise _bad(f"{name}: must be of type {kind.__name__}", name)
    limit = body.get("max_output_tokens")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise _bad("max_output_tokens: must be a positive integer", "max_output_tokens")


def chat_request(body: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat request of a Responses request whose conversation is `history` (instructions apart)."""
    chat: dict[str, Any] = {k: v for k, v in body.items() if k not in CONSUMED and k not in SAME_IN_CHAT}
    system = [{"role": "system", "content": body["instructions"]}] if body.get("instructions") else []
    chat.update(model=body.get("model"), messages=[*system, *history])
    for name in (*SAME_IN_CHAT, "stream"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("metadata") is not None:
        chat["metadata"] = dict(body["metadata"])
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])[0]
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    text = body.get("text")
    if text is not None:
        fmt = _response_format(text)
        if fmt is not None:
            chat["response_format"] = fmt
        if text.get("verbosity") is not None:
            chat["verbosity"] = text["verbosity"]
    if (body.get("reasoning") or {}).get("effort") is not None:
        chat["reasoning_effort"] = body["reasoning"]["effort"]
    return chat


def echo_of(body: dict[str, Any], chat: dict[str, Any]) -> dict[str, Any]:
    """The request fields a response repeats, with OpenAI's defaults for those not given."""
    echo = {name: body.get(name) for name in (*SAME_IN_CHAT, "instructions", "previous_response_id",
                                               "max_output_tokens")}
    echo.update(tools=_tools(body["tools"])[1] if chat.get("tools") else [],
                tool_choice=body.get("tool_choice") or "auto", metadata=dict(body.get("metadata") or {}),
                parallel_tool_calls=body.get("parallel_tool_calls") is not False, store=body.get("store") is not False,
                truncation=body.get("truncation") or "disabled",
                text={"format": {"type": "text"}, **(body.get("text") or {})},
                reasoning={"effort": None, "summary": None, **(body.get("reasoning") or {})})
    return echo


class ResponsesAdapter:
    """The /v1/responses adapter (gateway/core/apis)."""

    api = "aresponses"

    async def to_chat(self, body: dict[str, Any], principal: Principal) -> dict[str, Any]:
        _check(body)
        keeper = store_of(current_app.gateway)
        previous: Stored | None = None
        if body.get("previous_response_id") is not None:
            previous = await keeper.get(body["previous_response_id"], principal, retry=True)
            if previous is None:
                raise NotFoundError(f"Previous response with id '{body['previous_response_id']}' not found.",
                                    param="previous_response_id")
        if body.get("input") is None and previous is None:
            raise _bad("Missing required parameter: 'input'.", "input")
        messages, items = translate_input(body.get("input") if body.get("input") is not None else [])
        history = [*(previous.conversation if previous else ()), *messages]
        if not history:
            raise _bad("input: must not be empty", "input")
        chat = chat_request(body, history)
        prior_items = [*previous.input_items, *previous.response.get("output", [])] if previous else []
        g.response_turn = Turn(id=new_id("resp"), created_at=int(time.time()), model=str(body.get("model") or ""),
                               echo=echo_of(body, chat), store=body.get("store") is not False,
                               owner=owner_of(principal), history=history, items=[*prior_items, *items], keeper=keeper)
        return chat

    def _turn(self, ctx: RequestContext) -> Turn:
        state = ctx.state_for(STATE_KEY)
        if "turn" not in state:
            state["turn"] = g.pop("response_turn")
        return state["turn"]

    def from_chat(self, reply: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        turn = self._turn(ctx)
        choices = reply.get("choices") or [{}]
        finish = choices[0].get("finish_reason")
        return turn.response(output_items(choices[0].get("message") or {}, finish), finish, reply.get("usage"),
                             reply.get("model"))

    def encoder(self, ctx: RequestContext) -> ResponsesEncoder:
        return ResponsesEncoder(self._turn(ctx))

    def error_body(self, err: GatewayError) -> dict[str, Any]:
        return err.to_dict()

    async def stored(self, ctx: RequestContext, api_reply: dict[str, Any]) -> None:
        """Keep the reply (unless `store: false`) with the conversation a next turn continues from."""
        turn = self._turn(ctx)
        if not turn.store or turn.keeper is None:
            return
        assistant = assistant_message(api_reply.get("output") or [])
        await turn.keeper.put(Stored(
            id=turn.id, api_key=turn.owner, model=str(api_reply.get("model") or turn.model),
            created_at=datetime.fromtimestamp(turn.created_at, timezone.utc), status=str(api_reply.get("status")),
            input_items=turn.items, conversation=[*turn.history, *([assistant] if assistant else [])],
            response=api_reply))


ADAPTER = ResponsesAdapter()
