"""The OpenAI wire shapes of the LLM routes, for the OpenAPI document.

Documentation only: the LLM routes never validate a body through these models (the handler checks
the few fields the gateway reads, and everything else goes upstream untouched), so every model
allows extra fields. Field names and `object` values are OpenAI's, so that the document reads like
the one the official SDKs are generated from.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatMessage(_Open):
    """One message of the conversation; `content` is text or a list of parts (text, image_url, ...)."""

    role: str = Field(description="system, developer, user, assistant or tool", examples=["user"])
    content: str | list[dict[str, Any]] | None = Field(None, examples=["Hello!"])
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class GatewayFields(_Open):
    """What the gateway itself reads; never sent upstream (`metadata`, `tags`, `guardrails`)."""

    user: str | None = Field(None, max_length=255, description="The end user: tracked, budgeted and blockable")
    metadata: dict[str, Any] | None = Field(
        None, description="Gateway only: `tags` (list) and `spend_logs_metadata` (object) land on the spend log")
    tags: list[str] | None = Field(None, description="Gateway only: tags for spend tracking")
    guardrails: list[str] | None = Field(
        None, description="Gateway only: guardrails to switch on for this request (GET /guardrails/list); "
        "`metadata.guardrails` may also map a name to true/false")


class ChatCompletionRequest(GatewayFields):
    """OpenAI's `CreateChatCompletionRequest`. Any other field is passed to the model untouched."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "Hello!"}]}]})

    model: str = Field(examples=["gpt-3.5-turbo"])
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = Field(None, description="true: the reply is an SSE stream of chat.completion.chunk")
    stream_options: dict[str, Any] | None = Field(None, examples=[{"include_usage": True}])
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: dict[str, Any] | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None


class CompletionUsage(_Open):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class AssistantMessage(_Open):
    role: str = Field(examples=["assistant"])
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChatChoice(_Open):
    index: int
    message: AssistantMessage
    finish_reason: str | None = Field(None, examples=["stop"])
    logprobs: dict[str, Any] | None = None


class ChatCompletion(_Open):
    """OpenAI's `ChatCompletion` (a non-streamed reply)."""

    id: str = Field(examples=["chatcmpl-123"])
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None


class ChunkDelta(_Open):
    role: str | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChunkChoice(_Open):
    index: int
    delta: ChunkDelta
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletionChunk(_Open):
    """OpenAI's `ChatCompletionChunk`: one `data:` event of a stream, which ends with `data: [DONE]`.
    A failure after the stream started is one `data: {"error": {...}}` event (the error envelope)."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None


class CompletionRequest(GatewayFields):
    """OpenAI's `CreateCompletionRequest` (legacy completions). Any other field is passed through."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"model": "gpt-3.5-turbo-instruct", "prompt": "Say this is a test", "max_tokens": 16}]})

    model: str = Field(examples=["gpt-3.5-turbo-instruct"])
    prompt: str | list[str] | list[int] | list[list[int]] = Field(examples=["Say this is a test"])
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    echo: bool | None = None
    suffix: str | None = None
    logprobs: int | None = None
    seed: int | None = None


class CompletionChoice(_Open):
    index: int
    text: str
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class Completion(_Open):
    """OpenAI's `Completion`; streamed, each `data:` event has this shape with a piece of `text`."""

    id: str = Field(examples=["cmpl-123"])
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: CompletionUsage | None = None


class EmbeddingRequest(GatewayFields):
    """OpenAI's `CreateEmbeddingRequest`. Any other field is passed through."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"model": "text-embedding-3-small", "input": "The food was delicious"}]})

    model: str = Field(examples=["text-embedding-3-small"])
    input: str | list[str] | list[int] | list[list[int]] = Field(examples=["The food was delicious"])
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = None


class Embedding(_Open):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 when encoding_format is base64")


class EmbeddingUsage(_Open):
    prompt_tokens: int
    total_tokens: int


class CreateEmbeddingResponse(_Open):
    """OpenAI's `CreateEmbeddingResponse`."""

    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage | None = None


class Model(_Open):
    """OpenAI's `Model`: one model group this key may call."""

    id: str = Field(examples=["gpt-3.5-turbo"])
    object: Literal["model"] = "model"
    created: int
    owned_by: str = Field(examples=["gateway"])


class ModelList(_Open):
    """OpenAI's `ListModelsResponse`: the model groups this key may call."""

    object: Literal["list"] = "list"
    data: list[Model]
