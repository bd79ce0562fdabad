"""The providers that speak OpenAI's wire format (OpenAI, Groq, vLLM, ...): requests go out as they
are, and replies, streams and errors come back untouched (`passthrough`). Azure's members live in
`azure.py`. `openai/responses/<model>` deployments are served by the Responses API through
`responses_bridge` instead (their `check` hands them to a `ResponsesBridge`).

Besides chat, completions and embeddings, members serve what their vendor does of OpenAI's image,
audio and moderation APIs, and of the Cohere-shaped `/rerank` that vLLM, Together and Jina-like
servers speak (`MEDIA_CALLS`). A transcription goes up as `multipart/form-data` built here (the
audio is `body["file"].content`), a rerank's `{text}` documents as plain strings."""

from __future__ import annotations

import os
import re
from typing import Any

import orjson

from gateway.core.providers import responses_bridge
from gateway.core.providers.responses_bridge import RESPONSES_PREFIX
from gateway.errors import BadRequestError
from gateway.provider import Provider, UpstreamRequest

#: OpenAI's reasoning models (o1, o3, o4-mini, gpt-5...), served by OpenAI and Azure.
REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")
REASONING_HOSTS = frozenset({"openai", "azure"})
PATHS = {"acompletion": "chat/completions", "atext_completion": "completions", "aembedding": "embeddings",
         "aimage_generation": "images/generations", "atranscription": "audio/transcriptions",
         "aspeech": "audio/speech", "amoderation": "moderations", "arerank": "rerank"}
#: What every member serves.
ALL_CALLS = frozenset({"acompletion", "atext_completion", "aembedding"})
_OPENAI_MEDIA = frozenset({"aimage_generation", "atranscription", "aspeech", "amoderation"})
#: The other APIs a member's vendor serves in OpenAI's shape (rerank: Cohere's shape at `/rerank`).
#: A call type a member lacks is refused with a 400 naming the provider, before any request leaves.
MEDIA_CALLS: dict[str, frozenset[str]] = {
    "openai": _OPENAI_MEDIA,
    "custom_openai": _OPENAI_MEDIA | {"arerank"},
    "openai_like": _OPENAI_MEDIA | {"arerank"},
    "hosted_vllm": frozenset({"atranscription", "arerank"}),
    "vllm": frozenset({"atranscription", "arerank"}),
    "groq": frozenset({"atranscription", "aspeech"}),
    "mistral": frozenset({"atranscription"}),
    "deepinfra": frozenset({"aimage_generation", "atranscription"}),
    "together_ai": frozenset({"aimage_generation", "arerank"}),
    "xai": frozenset({"aimage_generation"}),
}

# prefix: (default base URL, key variables, display name)
FAMILY: dict[str, tuple[str | None, tuple[str, ...], str]] = {
    "openai": ("https://api.openai.com/v1", ("OPENAI_API_KEY",), "OpenAI"),
    "text-completion-openai": ("https://api.openai.com/v1", ("OPENAI_API_KEY",), "OpenAI"),
    "custom_openai": (None, ("OPENAI_API_KEY",), "CustomOpenai"),
    "openai_like": (None, (), "OpenaiLike"),
    "groq": ("https://api.groq.com/openai/v1", ("GROQ_API_KEY",), "Groq"),
    "mistral": ("https://api.mistral.ai/v1", ("MISTRAL_API_KEY",), "Mistral"),
    "deepseek": ("https://api.deepseek.com/v1", ("DEEPSEEK_API_KEY",), "Deepseek"),
    "together_ai": ("https://api.together.xyz/v1", ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY"), "TogetherAi"),
    "fireworks_ai": ("https://api.fireworks.ai/inference/v1", ("FIREWORKS_AI_API_KEY", "FIREWORKS_API_KEY"),
                     "FireworksAi"),
    "openrouter": ("https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY",), "Openrouter"),
    "perplexity": ("https://api.perplexity.ai", ("PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"), "Perplexity"),
    "xai": ("https://api.x.ai/v1", ("XAI_API_KEY",), "Xai"),
    "deepinfra": ("https://api.deepinfra.com/v1/openai", ("DEEPINFRA_API_KEY",), "Deepinfra"),
    "cerebras": ("https://api.cerebras.ai/v1", ("CEREBRAS_API_KEY",), "Cerebras"),
    "hosted_vllm": (None, (), "HostedVllm"),
    "vllm": (None, (), "Vllm"),
    "lm_studio": ("http://localhost:1234/v1", (), "LmStudio"),
}
ALIASES = {"mistral": ("mistralai",)}


class OpenAICompatible(Provider):
    """One member of the family: its prefix, default base URL and key variables."""

    passthrough = True
    call_types = ALL_CALLS

    def __init__(self, name: str, base: str | None, key_env: tuple[str, ...], display: str) -> None:
        self.name = name  # type: ignore[misc]  # per instance: one class serves the whole family
        self.aliases = ALIASES.get(name, ())  # type: ignore[misc]
        self.default_api_base = base  # type: ignore[misc]
        self.api_key_env = key_env  # type: ignore[misc]
        self.display_name = display  # type: ignore[misc]
        self.call_types = type(self).call_types | MEDIA_CALLS.get(name, frozenset())  # type: ignore[misc]
        self._bridge: Provider | None = None
        if name in ("openai", "text-completion-openai"):
            self.api_base_env = ("OPENAI_API_BASE", "OPENAI_BASE_URL")  # type: ignore[misc]

    def headers(self, dep: Any) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if dep.api_key:
            headers["authorization"] = f"Bearer {dep.api_key}"
        return headers

    def url(self, dep: Any, call_type: str) -> str:
        return f"{dep.api_base.rstrip('/')}/{PATHS[call_type]}"

    def request_headers(self, dep: Any) -> dict[str, str]:
        """Every header of a call: credentials, then the deployment's own `extra_headers`."""
        headers = self.headers(dep)
        if dep.basic_auth:  # as LiteLLM's HTTP client does, userinfo in api_base wins over a bearer key
            headers["authorization"] = dep.basic_auth
        headers.update(dep.extra_headers)
        return headers

    def check(self, dep: Any) -> None:
        if self.name == "openai" and dep.upstream_model.startswith(RESPONSES_PREFIX):
            # `openai/responses/<model>`: chat completions served by the Responses API (LiteLLM's bridge)
            if self._bridge is None:
                self._bridge = responses_bridge.ResponsesBridge(self, lambda d: f"{d.api_base.rstrip('/')}/responses")
            dep.handler = self._bridge

    def build_request(self, dep: Any, call_type: str, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        headers = self.request_headers(dep)
        if "max_tokens" in body and call_type == "acompletion" and self.name in REASONING_HOSTS \
                and REASONING_MODEL.match(dep.upstream_model) and "max_completion_tokens" not in body:
            # OpenAI's reasoning models refuse max_tokens on chat: it is max_completion_tokens
            # there (as LiteLLM renames it), whichever API the client called
            body = {**body, "max_completion_tokens": body["max_tokens"]}
            del body["max_tokens"]
        if call_type == "atranscription":
            content, headers["content-type"] = multipart(body)
            return UpstreamRequest(self.url(dep, call_type), headers, content)
        if call_type == "aspeech":
            headers["accept"] = "*/*"  # the reply is audio
        elif call_type == "arerank":
            body = rerank_body(body)
        return UpstreamRequest(self.url(dep, call_type), headers, orjson.dumps(body))


def rerank_body(body: dict[str, Any]) -> dict[str, Any]:
    """Cohere's rerank request with every document as a string (`{"text": ...}` objects, which
    Cohere's v1 API and LiteLLM accept, become their text: vLLM and Cohere's v2 take strings)."""
    documents = body.get("documents")
    if isinstance(documents, list) and any(isinstance(d, dict) for d in documents):
        body = {**body, "documents": [d.get("text", "") if isinstance(d, dict) else d for d in documents]}
    return body


def _quoted(text: str) -> str:
    """A multipart header parameter, escaped as browsers do (WHATWG): quotes and line breaks
    cannot end it early."""
    return text.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def multipart(body: dict[str, Any]) -> tuple[bytes, str]:
    """A transcription request as OpenAI takes it: `multipart/form-data` with the audio as `file`
    and every other field as text (lists as repeated `name[]`, objects as JSON). Returns the body
    and its content type."""
    boundary = "gateway-" + os.urandom(16).hex()
    dash = f"--{boundary}\r\n".encode()
    out: list[bytes] = []
    for name, value in body.items():
        if value is None:
            continue
        if name == "file":
            content = getattr(value, "content", None)
            if not isinstance(content, (bytes, bytearray)):
                raise BadRequestError("file: the audio file's content is missing (a hook replaced the `file` "
                                      "object?)", param="file")
            filename = _quoted(str(value.get("filename") or "audio")) if isinstance(value, dict) else "audio"
            kind = (value.get("content_type") if isinstance(value, dict) else None) or "application/octet-stream"
            out += [dash, f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                          f"Content-Type: {_quoted(str(kind))}\r\n\r\n".encode(), bytes(content), b"\r\n"]
            continue
        items = [(f"{name}[]", v) for v in value] if isinstance(value, list) else [(name, value)]
        for field, item in items:
            if isinstance(item, bool):
                text = "true" if item else "false"
            elif isinstance(item, (dict, list)):
                text = orjson.dumps(item).decode()
            else:
                text = str(item)
            out += [dash, f'Content-Disposition: form-data; name="{_quoted(field)}"\r\n\r\n'.encode(),
                    text.encode(), b"\r\n"]
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def family() -> list[Provider]:
    """The family's members. Azure's (`azure`, `azure_text`, `azure_ai`) are in `azure.providers()`."""
    return [OpenAICompatible(name, *spec) for name, spec in FAMILY.items()]
