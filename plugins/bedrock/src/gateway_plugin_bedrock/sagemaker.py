"""The `sagemaker/` and `sagemaker_chat/` providers: SageMaker real-time endpoints, as LiteLLM calls them.

- `sagemaker/<endpoint name>`: the Hugging Face TGI format (`{"inputs", "parameters"}`), chat
  (translated in `sagemaker_tgi`) and embeddings (`{"inputs": [...]}`).
- `sagemaker_chat/<endpoint name>`: an endpoint serving the OpenAI Messages API (TGI >= 1.4, LMI):
  the OpenAI body goes as it is, the reply comes back as it is.

Calls are `InvokeEndpoint` (`POST /endpoints/{name}/invocations`) and, for streams,
`InvokeEndpointWithResponseStream` (`/invocations-response-stream`), whose body is AWS's binary event
stream of `PayloadPart` events: raw bytes of the container's own stream (SSE or JSON lines), cut
anywhere, even inside a line. Errors in the stream are `ModelStreamError` / `InternalStreamFailure`
exception events. Requests are SigV4-signed for the service `sagemaker` with the credentials of
`aws.py` (the same sources, the same shared cache as `bedrock/`). No I/O here: the gateway sends.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import orjson
from botocore.auth import SigV4Auth

from gateway import GatewayError, Provider, ProviderError, UpstreamRequest

from gateway_plugin_bedrock import aws, sagemaker_tgi
from gateway_plugin_bedrock.eventstream import EventStreamDecoder, EventStreamError

SERVICE = "sagemaker"  # the signing name of runtime.sagemaker
ENDPOINT_TEMPLATE = "https://runtime.sagemaker.{region}.amazonaws.com"
#: SageMaker's rule for an endpoint name (CreateEndpoint's EndpointName pattern, at most 63).
ENDPOINT_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
COMPONENT_HEADER = "x-amzn-sagemaker-inference-component"  # LiteLLM's `model_id`
STATUS_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 408: "timeout_error", 413: "request_too_large", 424: "api_error",
                429: "rate_limit_error", 500: "api_error", 503: "service_unavailable"}
ERROR_NAMES = {"ValidationError": "invalid_request_error", "ModelError": "api_error",
               "ModelNotReadyException": "model_not_ready", "InternalFailure": "api_error",
               "ServiceUnavailable": "service_unavailable", "ThrottlingException": "rate_limit_error",
               "AccessDeniedException": "permission_error", "UnrecognizedClientException": "authentication_error",
               "InvalidSignatureException": "authentication_error", "ExpiredTokenException": "authentication_error",
               "IncompleteSignatureException": "authentication_error"}


@dataclass(slots=True)
class Target:
    """Where and how one deployment's calls go, worked out once per deployment."""

    dep: Any
    endpoint_name: str
    region: str
    base: str  # what errors, logs and spend rows name
    host: str
    url: str
    stream_url: str
    credentials: aws.Credentials
    component: str | None  # an inference component (`model_id`)


class _Signer(aws.Signer):
    """aws.Signer (plain-dict headers) for another service: botocore's own signing-key derivation,
    since aws.Signer's cache of day keys is keyed without the service name."""

    signature = SigV4Auth.signature


def sign(url: str, host: str, headers: dict[str, str], body: bytes, creds: Any, region: str) -> dict[str, str]:
    """`headers` with the SigV4 headers of a POST of `body` to `url`, signed for `sagemaker`."""
    timestamp = aws.amz_date()
    signed = dict(headers)
    signed["host"] = host
    signed["x-amz-date"] = timestamp
    if creds.token:
        signed["x-amz-security-token"] = creds.token
    request = aws._Request(url, signed, body, timestamp)
    auth = _Signer(creds, SERVICE, region)
    string_to_sign = auth.string_to_sign(request, auth.canonical_request(request))
    signature = auth.signature(string_to_sign, request)
    signed["authorization"] = (f"AWS4-HMAC-SHA256 Credential={auth.scope(request)}, "
                               f"SignedHeaders={auth.signed_headers(auth.headers_to_sign(request))}, Signature={signature}")
    del signed["host"]
    return signed


class _SageMaker(Provider):
    """What both prefixes share: the endpoint, the credentials, signing, errors."""

    display_name = "Sagemaker"  # errors read `SagemakerException - ...`, as LiteLLM's
    default_api_base = ENDPOINT_TEMPLATE
    #: boto3's own variable for a custom SageMaker runtime endpoint.
    api_base_env = ("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",)
    passthrough = False

    def __init__(self, credentials: aws.CredentialCache | None = None) -> None:
        self.credentials = credentials if credentials is not None else aws.CredentialCache()
        self._targets: dict[int, Target] = {}

    def check(self, dep: Any) -> None:
        target = self._target(dep)
        dep.api_base = target.base
        dep.display_base = target.base
        if not target.credentials.load():  # ValueError (an unknown profile) stops start-up
            aws.log.warning("%s: deployment %s: %s; calls to it fail until credentials appear", self.name,
                            dep.model_name, target.credentials.why())

    def _target(self, dep: Any) -> Target:
        target = self._targets.get(id(dep))
        if target is None or target.dep is not dep:
            target = self._targets[id(dep)] = self._work_out(dep)
        return target

    def _work_out(self, dep: Any) -> Target:
        params = dep.params
        name = dep.upstream_model
        if len(name) > 63 or not ENDPOINT_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a SageMaker endpoint name (letters, digits and hyphens, at most 63, "
                             f"starting and ending with a letter or digit): write {self.name}/<endpoint name>")
        region, _ = aws.region_of(params, name)
        if not all(c.isalnum() or c == "-" for c in region):
            raise ValueError(f"aws_region_name {region!r} is not an AWS region name")
        if dep.basic_auth:
            raise ValueError("a SageMaker endpoint URL must not carry credentials (calls are signed with AWS credentials)")
        full = params.get("sagemaker_base_url")
        if full:  # LiteLLM's: the whole URL, for calls streamed or not
            url = stream_url = base = str(full)
        else:
            if params.get("api_base") or dep.api_base != ENDPOINT_TEMPLATE:
                base = str(dep.api_base).rstrip("/")  # api_base, or AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME
            else:
                base = ENDPOINT_TEMPLATE.format(region=region)
            url = f"{base}/endpoints/{name}/invocations"
            stream_url = f"{url}-response-stream"
        if not base.startswith(("http://", "https://")) or "@" in base.split("/", 3)[2]:
            raise ValueError("the SageMaker endpoint URL must start with http:// or https:// and carry no credentials")
        component = params.get("model_id")
        return Target(dep=dep, endpoint_name=name, region=region, base=base, host=aws.host_of(url), url=url,
                      stream_url=stream_url, credentials=self.credentials.get(aws.Source.of(params, region)),
                      component=str(component) if component else None)

    async def prepare(self, dep: Any, call_type: str | None = None) -> None:
        """Finding or refreshing credentials happens here, in a worker thread, never on the event loop."""
        creds = self._target(dep).credentials
        if creds.due():
            await asyncio.to_thread(creds.make_ready)

    def _request(self, dep: Any, payload: dict[str, Any], stream: bool) -> UpstreamRequest:
        target = self._target(dep)
        url = target.stream_url if stream else target.url
        data = orjson.dumps(payload)
        headers = {"content-type": "application/json"}
        if not stream:
            headers["accept"] = "application/json"
        if target.component:
            headers[COMPONENT_HEADER] = target.component
        if dep.extra_headers:
            headers.update((k.lower(), str(v)) for k, v in dep.extra_headers.items())
        try:
            creds = target.credentials.current()
        except aws.CredentialsMissing as exc:
            raise GatewayError(f"{sagemaker_tgi.PREFIX}deployment {dep.model_name}: {exc}", status=500,
                               type="api_error") from None
        return UpstreamRequest(url, sign(url, target.host, headers, data, creds, target.region), data)

    def parse_error(self, dep: Any, status: int, data: bytes) -> ProviderError:
        """SageMaker's `{"message": ...}` / `{"Message": ...}` (ModelError adds the container's
        `OriginalStatusCode` and `OriginalMessage`, already quoted in `Message`). The error's name
        travels in `x-amzn-ErrorType`, which this method is not given: the type comes from the status,
        a ModelError with a 4xx from the container being the request's fault."""
        message, name, original = None, None, None
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            for key in ("message", "Message", "errorMessage"):
                if isinstance(body.get(key), str) and body[key]:
                    message = body[key]
                    break
            raw = body.get("__type") or body.get("code")
            if isinstance(raw, str) and raw:
                name = raw.rsplit("#", 1)[-1].split(":", 1)[0]
            original = body.get("OriginalStatusCode")
        if message is None:
            message = data.decode(errors="replace").strip()[:500] or f"upstream returned HTTP {status}"
        kind = ERROR_NAMES.get(name or "") or STATUS_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        if status == 424 and isinstance(original, int) and 400 <= original < 500:
            kind = "invalid_request_error"
        if status == 403 and any(w in message.lower() for w in ("security token", "signature", "authentication token")):
            kind = "authentication_error"
        return ProviderError(self._redact(dep, message), kind)

    def _redact(self, dep: Any, text: str) -> str:
        for name in ("aws_secret_access_key", "aws_session_token", "aws_access_key_id"):
            value = dep.params.get(name)
            if isinstance(value, str) and len(value) >= 8 and value in text:
                text = text.replace(value, value[:4] + "*" * 12)
        return text


class SageMakerProvider(_SageMaker):
    """`sagemaker/<endpoint>`: TGI's text-generation format, and Hugging Face embeddings."""

    name = "sagemaker"
    call_types = frozenset({"acompletion", "aembedding"})

    def build_request(self, dep: Any, call_type: str, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        if call_type == "aembedding":
            return self._request(dep, sagemaker_tgi.translate_embedding_request(body), False)
        payload = sagemaker_tgi.translate_request(body, dep.params, dep.upstream_model, stream)
        return self._request(dep, payload, stream)

    def parse_reply(self, dep: Any, call_type: str, data: bytes) -> dict[str, Any]:
        reply = orjson.loads(data)
        if call_type == "aembedding":
            return sagemaker_tgi.translate_embedding_reply(reply, dep.upstream_model)
        return sagemaker_tgi.translate_reply(reply, dep.upstream_model, dep.upstream_model)

    def stream(self, dep: Any, call_type: str) -> "PayloadStream":
        tokens = sagemaker_tgi.TgiTokens(dep.upstream_model, dep.upstream_model)
        return PayloadStream(tokens.event, tokens.finish)


class SageMakerChatProvider(_SageMaker):
    """`sagemaker_chat/<endpoint>`: a container serving the OpenAI Messages API."""

    name = "sagemaker_chat"
    call_types = frozenset({"acompletion"})

    def build_request(self, dep: Any, call_type: str, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        payload = dict(body)
        if stream:
            payload["stream"] = True  # the container streams only when asked in the body
        else:
            payload.pop("stream", None)
            payload.pop("stream_options", None)
        return self._request(dep, payload, stream)

    def parse_reply(self, dep: Any, call_type: str, data: bytes) -> dict[str, Any]:
        reply = orjson.loads(data)
        if not isinstance(reply, dict) or not isinstance(reply.get("choices"), list):
            raise ValueError("not a chat.completion")
        return reply

    def stream(self, dep: Any, call_type: str) -> "PayloadStream":
        def chunk(ev: dict[str, Any], out: list[dict[str, Any]]) -> None:
            out.append(ev)

        return PayloadStream(chunk, None)


class PayloadStream:
    """InvokeEndpointWithResponseStream's event stream -> the container's stream objects -> chunks.

    PayloadPart bytes are joined and cut into lines (a part may end anywhere, even inside a UTF-8
    character); each line is an SSE `data:` line or a JSON line. `on_object(obj, out)` translates
    one object; `on_end(out, {})`, if given, closes a stream that ended cleanly without saying so."""

    __slots__ = ("decoder", "buffer", "on_object", "on_end", "failed")

    def __init__(self, on_object: Any, on_end: Any) -> None:
        self.decoder = EventStreamDecoder()
        self.buffer = b""
        self.on_object = on_object
        self.on_end = on_end
        self.failed = False

    def _fail(self, message: str, kind: str = "api_error") -> list[dict[str, Any]]:
        self.failed = True
        return [{"error": {"message": message, "type": kind}}]

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        if self.failed:
            return []
        try:
            messages = self.decoder.feed(data)
        except EventStreamError as exc:
            return self._fail(f"SageMaker sent an unreadable event stream: {exc}")
        out: list[dict[str, Any]] = []
        for headers, payload in messages:
            kind = headers.get(":message-type")
            if kind == "event" and headers.get(":event-type") == "PayloadPart":
                self.buffer += payload
                while not self.failed:
                    end = self.buffer.find(b"\n")
                    if end < 0:
                        break
                    line, self.buffer = self.buffer[:end], self.buffer[end + 1:]
                    self._line(line, out)
            elif kind == "exception":
                name = str(headers.get(":exception-type") or "exception")
                try:
                    found = orjson.loads(payload) or {}
                    message = found.get("Message") or found.get("message")
                except (orjson.JSONDecodeError, AttributeError):
                    message = None
                return out + self._fail(f"{name}: {message or 'the stream failed'}")
            elif kind == "error":
                return out + self._fail(f"{headers.get(':error-code') or 'error'}: "
                                        f"{headers.get(':error-message') or 'the stream failed'}")
            if self.failed:
                break
        return out

    def _line(self, line: bytes, out: list[dict[str, Any]]) -> None:
        line = line.strip()
        if line.startswith(b"data:"):
            line = line[5:].strip()
        if not line or line == b"[DONE]" or not line.startswith(b"{"):
            return  # blank lines, SSE comments, `event:` / `id:` fields, the end marker
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            out.extend(self._fail("the SageMaker endpoint sent a line that is not JSON"))
            return
        if not isinstance(obj, dict):
            return
        error = obj.get("error")
        if error:  # TGI's `{"error": "...", "error_type": "..."}`, or an OpenAI-shaped error object
            message = error.get("message") if isinstance(error, dict) else str(error)
            out.extend(self._fail(f"{obj.get('error_type') or 'model error'}: {message}"))
            return
        self.on_object(obj, out)

    def end(self) -> list[dict[str, Any]]:
        if self.failed:
            return []
        if self.decoder.pending:
            return self._fail("SageMaker closed the stream in the middle of an event")
        out: list[dict[str, Any]] = []
        if self.buffer.strip():
            self._line(self.buffer, out)
            self.buffer = b""
        if self.on_end is not None and not self.failed:
            self.on_end(out, {})
        return out
