"""OpenAI's image, audio and moderation APIs and Cohere's rerank API, on the LLM request path.

Each route reads its request into the dict the hooks see as `ctx.body`, checks the few fields the
gateway itself reads, and hands the call to `request_path.serve` under its call type: model groups,
retries and fallbacks, `pre_request` / `post_response`, budgets, spend rows (priced per image,
second, character or search unit: `spend/pricing.py`). The upstream answers in its own API's shape,
which is what the client gets; speech is relayed as audio, with the upstream's content type.

- `POST /v1/images/generations` (`aimage_generation`), `/v1/audio/speech` (`aspeech`),
  `/v1/moderations` (`amoderation`: `model` may be left out, as LiteLLM allows: see
  `default_moderation_model`), each also without `/v1`.
- `POST /v1/audio/transcriptions` (`atranscription`): multipart form data, read into a dict whose
  `file` is an `UploadedFile` (its description as items, its bytes as `.content`, never logged or
  stored). Replies in `text`, `srt` or `vtt` are not relayed (the request path reads JSON replies):
  asking for them is a 400.
- `POST /rerank`, `/v1/rerank`, `/v2/rerank` (`arerank`): Cohere's rerank request and reply, as
  LiteLLM serves them. With `return_documents: true`, a result the upstream gave without its
  document (Cohere's v2 API never returns them) gets it back here, from the request.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import orjson
from quart import Blueprint, Response, current_app, g, request
from quart_schema import DataSource, document_request, document_response
from pydantic import BaseModel, ConfigDict, Field

from gateway.core import request_path
from gateway.core.model_access import may_use, visible_models
from gateway.core.providers.cohere_rerank import document_text
from gateway.core.route_groups import OPENAI, declare
from gateway.errors import BadRequestError, GatewayError

bp = declare(Blueprint("media", __name__), OPENAI)

#: Model groups tried, in order, when a moderation request names no model (OpenAI's own names).
DEFAULT_MODERATION_MODELS = ("omni-moderation-latest", "text-moderation-latest", "text-moderation-stable")
#: Form fields the gateway reads that a multipart client sends as JSON text.
JSON_FORM_FIELDS = ("metadata", "tags", "guardrails", "fallbacks", "additional_drop_params", "cache")


class UploadedFile(dict):
    """The audio of a transcription. As a dict it is what hooks, logs and spend rows see:
    `filename`, `content_type`, `bytes` (its size) and, for a WAV file, `duration_s`. The audio
    itself is `.content`, sent upstream by the provider and nowhere else."""

    def __init__(self, filename: str, content_type: str, content: bytes) -> None:
        super().__init__(filename=filename, content_type=content_type, bytes=len(content))
        self.content = content
        seconds = wav_seconds(content)
        if seconds is not None:
            self["duration_s"] = round(seconds, 3)


def wav_seconds(data: bytes) -> float | None:
    """The length of a PCM WAV file from its header (`fmt ` byte rate, `data` size); None for
    anything else (other formats need decoding, which the gateway does not do)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    offset, byte_rate = 12, None
    while offset + 8 <= len(data):
        kind, size = data[offset:offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        if kind == b"fmt " and size >= 16 and offset + 16 <= len(data):
            byte_rate = struct.unpack_from("<I", data, offset + 16)[0]
        elif kind == b"data":
            if not byte_rate:
                return None
            size = min(size, len(data) - offset - 8)  # a streamed WAV may declare 0 or too much
            return size / byte_rate
        offset += 8 + size + (size & 1)
    return None


# -- request bodies ------------------------------------------------------------------------------
def _optional(body: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> None:
    value = body.get(name)
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if value is not None and (not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)):
        raise BadRequestError(f"{name} must be {what}", param=name)


def _count(body: dict[str, Any], name: str, top: int | None = None) -> None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1
                              or (top is not None and value > top)):
        raise BadRequestError(f"{name} must be a whole number from 1 to {top}" if top else
                              f"{name} must be a whole number of 1 or more", param=name)


def _check_rerank(body: dict[str, Any]) -> None:
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents:
        raise BadRequestError("documents must be a non-empty list of strings or {\"text\": ...} objects",
                              param="documents")
    for i, doc in enumerate(documents):
        if not isinstance(doc, (str, dict)):
            raise BadRequestError(f"documents[{i}] must be a string or an object", param=f"documents[{i}]")
    _count(body, "top_n")
    _optional(body, "return_documents", bool, "true or false")


async def _transcription_body() -> dict[str, Any]:
    """The multipart form as a body dict: fields as strings (`name[]` fields as lists, the
    gateway's own JSON fields parsed, `temperature` a number), the audio as `file`."""
    if request.mimetype != "multipart/form-data":
        raise BadRequestError("audio/transcriptions takes multipart/form-data, with the audio as `file`",
                              param="file")
    form, files = await request.form, await request.files
    upload = files.get("file")
    if upload is None:
        raise BadRequestError("Missing required parameter: file (an audio file in the form)", param="file")
    content = upload.read()
    if not content:
        raise BadRequestError("file is empty", param="file")
    body: dict[str, Any] = {"model": form.get("model")}
    for name in form.keys():
        values = form.getlist(name)
        key = name[:-2] if name.endswith("[]") else name
        body[key] = values if name.endswith("[]") or len(values) > 1 else values[0]
    body["file"] = UploadedFile(upload.filename or "audio", upload.mimetype or "application/octet-stream", content)
    for name in JSON_FORM_FIELDS:
        if isinstance(body.get(name), str):
            try:
                body[name] = orjson.loads(body[name])
            except orjson.JSONDecodeError:
                raise BadRequestError(f"{name} must be JSON in a form field", param=name) from None
    if isinstance(body.get("stream"), str):
        body["stream"] = body["stream"].strip().lower() == "true"
    if body.get("temperature") is not None:
        try:
            body["temperature"] = float(body["temperature"])
        except (TypeError, ValueError):
            raise BadRequestError("temperature must be a number", param="temperature") from None
        if not math.isfinite(body["temperature"]):
            raise BadRequestError("temperature must be a number", param="temperature")
    return body


def default_moderation_model(gw: Any, principal: Any) -> str:
    """The model a moderation request without one goes to (LiteLLM needs none named either): the
    first of `DEFAULT_MODERATION_MODELS` this key may call, else the first model group of a
    moderation model (`model_info.mode: moderation`, or `moderation` in its name)."""
    for name in DEFAULT_MODERATION_MODELS:
        try:
            gw.router.resolve(name, principal)
        except GatewayError:
            continue
        if may_use(gw, principal, name):
            return name
    for name in visible_models(gw, principal):
        deps = gw.router.groups.get(name) or ()
        if any(d.model_info.get("mode") == "moderation" or "moderation" in d.upstream_model for d in deps):
            return name
    raise BadRequestError("model: no moderation model is configured (none this key may call). Pass `model`, or add "
                          "one to model_list, e.g. "
                          "model_name: omni-moderation-latest with litellm_params.model: "
                          "openai/omni-moderation-latest", param="model")


async def _with_documents(resp: Response, body: dict[str, Any]) -> Response:
    """`return_documents: true`: each result carries its document (`{"text": ...}`)."""
    if resp.status_code != 200 or body.get("return_documents") is not True:
        return resp
    data = orjson.loads(await resp.get_data())
    documents = body.get("documents") or []
    results = data.get("results") if isinstance(data, dict) else None
    changed = False
    for result in results if isinstance(results, list) else ():
        index = result.get("index") if isinstance(result, dict) else None
        if isinstance(index, int) and 0 <= index < len(documents) and not result.get("document"):
            result["document"] = {"text": document_text(documents[index])}
            changed = True
    if changed:
        resp.set_data(orjson.dumps(data))
    return resp


# -- what the OpenAPI document shows (never used to validate) --------------------------------------
class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ImageGenerationRequest(_Open):
    """OpenAI's `CreateImageRequest`; other fields go to the model untouched."""

    model: str = Field(examples=["dall-e-3"])
    prompt: str = Field(examples=["A watercolour of a lighthouse"])
    n: int | None = Field(None, ge=1, le=10)
    size: str | None = Field(None, examples=["1024x1024"])
    quality: str | None = Field(None, examples=["standard", "hd"])
    response_format: str | None = Field(None, examples=["url", "b64_json"])
    user: str | None = None


class ImagesResponse(_Open):
    created: int
    data: list[dict[str, Any]] = Field(description="Each image: `url` or `b64_json`, and `revised_prompt`")


class SpeechRequest(_Open):
    """OpenAI's `CreateSpeechRequest`; the reply is the audio itself (`audio/*`)."""

    model: str = Field(examples=["tts-1"])
    input: str = Field(examples=["Hello there"])
    voice: str | dict[str, Any] = Field(examples=["alloy"])
    response_format: str | None = Field(None, examples=["mp3", "wav"])
    speed: float | None = None


class TranscriptionForm(_Open):
    """OpenAI's `CreateTranscriptionRequest`, as multipart form data (`file` is the audio)."""

    model: str = Field(examples=["whisper-1"])
    file: str = Field(json_schema_extra={"format": "binary"})
    prompt: str | None = None
    language: str | None = None
    response_format: str | None = Field(None, description="json or verbose_json (text, srt and vtt: 400)")
    temperature: float | None = None


class Transcription(_Open):
    text: str
    usage: dict[str, Any] | None = None


class ModerationRequest(_Open):
    """OpenAI's `CreateModerationRequest`; `model` may be left out (see the route's doc)."""

    input: str | list[Any] = Field(examples=["I want to hurt someone"])
    model: str | None = Field(None, examples=["omni-moderation-latest"])


class ModerationResponse(_Open):
    id: str
    model: str
    results: list[dict[str, Any]] = Field(description="Per input: flagged, categories, category_scores")


class RerankRequest(_Open):
    """Cohere's rerank request, as LiteLLM takes it."""

    model: str = Field(examples=["rerank-v3.5"])
    query: str = Field(examples=["What is the capital of France?"])
    documents: list[str | dict[str, Any]] = Field(min_length=1, examples=[["Paris is in France", "Bananas"]])
    top_n: int | None = Field(None, ge=1)
    return_documents: bool | None = None


class RerankResponse(_Open):
    id: str
    results: list[dict[str, Any]] = Field(description="Best first: index, relevance_score, document ({text})")
    meta: dict[str, Any] | None = Field(None, description="billed_units.search_units")


# -- the routes ------------------------------------------------------------------------------------
@document_request(ImageGenerationRequest)
@document_response(ImagesResponse)
async def images_generations() -> Response:
    """Create images from a prompt (OpenAI's API)."""
    body = await request_path.read_json_body()
    _count(body, "n", 10)
    for name in ("size", "quality", "response_format", "style"):
        _optional(body, name, str, "a string")
    return await request_path.serve("aimage_generation", body)


@document_request(SpeechRequest)
async def audio_speech() -> Response:
    """Turn text into speech (OpenAI's API): the reply is the audio."""
    body = await request_path.read_json_body()
    _optional(body, "response_format", str, "a string")
    _optional(body, "speed", (int, float), "a number")
    return await request_path.serve("aspeech", body)


@document_request(TranscriptionForm, source=DataSource.FORM_MULTIPART)
@document_response(Transcription)
async def audio_transcriptions() -> Response:
    """Transcribe an audio file (OpenAI's API, multipart form data)."""
    return await request_path.serve("atranscription", await _transcription_body())


@document_request(ModerationRequest)
@document_response(ModerationResponse)
async def moderations() -> Response:
    """Classify text as harmful or not (OpenAI's API)."""
    body = await request_path.read_json_body()
    if body.get("model") is None:
        gw = current_app.gateway
        if gw.router.pending:
            await gw.router.settle()
        body["model"] = default_moderation_model(gw, g.principal)
    return await request_path.serve("amoderation", body)


@document_request(RerankRequest)
@document_response(RerankResponse)
async def rerank() -> Response:
    """Order documents by relevance to a query (Cohere's rerank API, as LiteLLM serves it)."""
    body = await request_path.read_json_body()
    _check_rerank(body)
    return await _with_documents(await request_path.serve("arerank", body), body)


for _prefix in ("", "/v1"):
    bp.add_url_rule(f"{_prefix}/images/generations", f"images{_prefix}", images_generations, methods=["POST"])
    bp.add_url_rule(f"{_prefix}/audio/speech", f"speech{_prefix}", audio_speech, methods=["POST"])
    bp.add_url_rule(f"{_prefix}/audio/transcriptions", f"transcriptions{_prefix}", audio_transcriptions,
                    methods=["POST"])
    bp.add_url_rule(f"{_prefix}/moderations", f"moderations{_prefix}", moderations, methods=["POST"])
for _path in ("/rerank", "/v1/rerank", "/v2/rerank"):
    bp.add_url_rule(_path, f"rerank{_path.replace('/', '_')}", rerank, methods=["POST"])
