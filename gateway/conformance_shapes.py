"""What the plugin conformance check calls (conformance.py): every LLM route as clients call it,
each request shape that carries text in (REQUEST_SHAPES) and each route whose reply carries text
out (REPLY_SHAPES). Plugins' own tests walk these tables too, so a route added here is checked
everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

#: The hooks the check covers: the ones that see a call's text on its way in or out.
TEXT_HOOKS = ("pre_request", "post_response", "stream_chunk")
#: The OpenAI routes as clients call them: each path with and without /v1, and the Azure and
#: engines forms that carry the model in the path. `{model}` is replaced by the check's model name.
ROUTE_PREFIXES = ("", "/v1", "/openai/deployments/{model}", "/engines/{model}")
CONFORMANCE_MODEL = "conformance-model"
CONFORMANCE_RERANK_MODEL = "conformance-rerank-model"
MESSAGES_PATHS = ("/v1/messages", "/anthropic/v1/messages")
RESPONSES_PATHS = ("/v1/responses", "/responses")
TRANSCRIPTION_PATHS = ("/v1/audio/transcriptions", "/audio/transcriptions")
#: The audio a transcription case sends: a tiny WAV file (the fake upstream transcribes anything).
AUDIO = b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00@\x1f\x00\x00\x80>\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00"


def _openai(route: str) -> tuple[str, ...]:
    return tuple(f"{prefix}/{route}" for prefix in ROUTE_PREFIXES)


def _both(route: str) -> tuple[str, ...]:
    return (f"/v1/{route}", f"/{route}")


@dataclass(frozen=True)
class Shape:
    """One request shape: the paths that take it, a label, the body with the text in it, whether
    it streams, and whether the upstream receives it translated into chat (Messages, Responses:
    the upstream then gets exactly the text) or as sent (it gets the body's text as the helpers
    read it)."""

    paths: tuple[str, ...]
    label: str
    make: Callable[[str], dict[str, Any]]
    streams: bool
    translated: bool = False
    model: str = CONFORMANCE_MODEL
    #: Sent as multipart form data with an audio file (transcriptions), not as JSON.
    multipart: bool = False


def _messages(t: str) -> dict[str, Any]:
    return {"max_tokens": 64, "messages": [{"role": "user", "content": t}]}


REQUEST_SHAPES: tuple[Shape, ...] = (
    Shape(_openai("chat/completions"), "content as a string", lambda t: {"messages": [{"role": "user", "content": t}]},
          True),
    Shape(_openai("chat/completions"), "content as text parts",
          lambda t: {"messages": [{"role": "user", "content": [{"type": "text", "text": t}]}]}, True),
    Shape(_openai("completions"), "prompt as a string", lambda t: {"prompt": t}, True),
    Shape(_openai("completions"), "prompt as a list", lambda t: {"prompt": [t]}, True),
    Shape(_openai("embeddings"), "input as a string", lambda t: {"input": t}, False),
    Shape(_openai("embeddings"), "input as a list", lambda t: {"input": [t]}, False),
    Shape(MESSAGES_PATHS, "Anthropic messages, content as a string", _messages, True, translated=True),
    Shape(MESSAGES_PATHS, "Anthropic messages, text blocks",
          lambda t: {"max_tokens": 64, "messages": [{"role": "user", "content": [{"type": "text", "text": t}]}]},
          True, translated=True),
    Shape(RESPONSES_PATHS, "Responses input as a string", lambda t: {"input": t}, True, translated=True),
    Shape(RESPONSES_PATHS, "Responses input items",
          lambda t: {"input": [{"role": "user", "content": [{"type": "input_text", "text": t}]}]}, True,
          translated=True),
    Shape(_both("images/generations"), "image prompt", lambda t: {"prompt": t}, False),
    Shape(_both("audio/speech"), "speech input", lambda t: {"input": t, "voice": "alloy"}, False),
    Shape(_both("moderations"), "moderation input", lambda t: {"input": t}, False),
    Shape((*_both("rerank"), "/v2/rerank"), "rerank query and documents",
          lambda t: {"query": t, "documents": ["a document"]}, False, model=CONFORMANCE_RERANK_MODEL),
    Shape(TRANSCRIPTION_PATHS, "transcription prompt", lambda t: {"prompt": t}, False, multipart=True),
)
#: The routes whose reply carries text (embeddings' are vectors, images' and speech's are not
#: text the upstream chose from the prompt): each with the request that asks for it.
REPLY_SHAPES: tuple[tuple[tuple[str, ...], Callable[[str], dict[str, Any]]], ...] = (
    (_openai("chat/completions"), lambda t: {"messages": [{"role": "user", "content": t}]}),
    (_openai("completions"), lambda t: {"prompt": t}),
    (MESSAGES_PATHS, _messages),
    (RESPONSES_PATHS, lambda t: {"input": t}),
    (TRANSCRIPTION_PATHS, lambda t: {}),  # the transcribed text is the reply
)
DEFAULT_TRIGGER = "conformance check: please act on this text"
