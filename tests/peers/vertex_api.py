"""A fake Google Vertex AI on loopback, with the fake Google OAuth token endpoint its callers need.

One real HTTP server speaks both:

    POST /token                                                       Google's OAuth2 token endpoint
    POST /{v1|v1beta1}/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent
         ...:streamGenerateContent?alt=sse     SSE `data: {...}\\r\\n\\r\\n` (without alt=sse: one JSON array)
         ...:predict                           text embeddings (instances[{content}] -> predictions)
    POST /{version}/projects/{p}/locations/{l}/endpoints/{id}:generateContent   (a tuned model's endpoint)
    POST /{version}/projects/{p}/locations/{l}/publishers/anthropic/models/{m}:rawPredict | :streamRawPredict

The token endpoint takes what google-auth's service-account credentials post (`grant_type=
urn:ietf:params:oauth:grant-type:jwt-bearer`, `assertion=<RS256 JWT>`), verifies the JWT's signature
with the public key of a service account it issued (`service_account()` makes a fresh RSA key and a
service-account JSON whose `token_uri` points here), its audience (this endpoint or Google's, which google-auth
always names), its expiry and its scope, and
answers `{access_token, expires_in, token_type}`. Tokens live `token_ttl` seconds.

The Vertex routes check `Authorization: Bearer <token>` (missing or expired: 401 UNAUTHENTICATED,
as Google answers), the project (another: 403 PERMISSION_DENIED), and the body as the real API does,
with the Gemini fake's checks (tests/peers/gemini_api.py) for generateContent and the Anthropic
fake's (tests/peers/anthropic_api.py) for rawPredict, plus Vertex's own rules for Claude: no `model`
in the body (it is in the URL) and `anthropic_version: "vertex-2023-10-16"`. Replies are built by
those fakes too. Script replies with either fake's `Reply` (`api.script(...)`, `api.default`): a
gemini `Reply(status=..., message=...)` is a Google error on any route (Vertex's front end answers
quota and permission errors that way, Claude's included); an anthropic `Reply(error_type=...)` is
the model's own Anthropic-shaped error. tests/test_provider_vertex.py checks this fake against the
official `google-genai` SDK in Vertex mode.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from tests.peers.served import ServedInThread


def _load(name: str) -> Any:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


gemini_api = _load("gemini_api")
anthropic_api = _load("anthropic_api")
GeminiReply, AnthropicReply = gemini_api.Reply, anthropic_api.Reply

PATH = re.compile(r"^/(v1|v1beta1)/projects/([^/]+)/locations/([^/]+)/"
                  r"(?:publishers/(google|anthropic)/models|(endpoints))/([^/:]+):([A-Za-z]+)$")
GOOGLE_METHODS = frozenset({"generateContent", "streamGenerateContent", "predict"})
ANTHROPIC_METHODS = frozenset({"rawPredict", "streamRawPredict"})
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
NO_CREDENTIAL = ("Request is missing required authentication credential. Expected OAuth 2 access token, login "
                 "cookie or other valid authentication credential. See "
                 "https://developers.google.com/identity/sign-in/web/devconsole-project.")
BAD_CREDENTIAL = ("Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
                  "other valid authentication credential. See "
                  "https://developers.google.com/identity/sign-in/web/devconsole-project.")


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    json: Any
    url: str = ""

    @property
    def parts(self) -> tuple[str, ...] | None:
        """(version, project, location, publisher or 'endpoints', model, method)."""
        m = PATH.match(self.path)
        return (m.group(1), m.group(2), m.group(3), m.group(4) or m.group(5), m.group(6), m.group(7)) if m else None


@dataclass
class FakeVertex:
    """The fake. `project`: the only project the caller may use. `token_ttl`: seconds a token lives."""

    project: str = "test-project"
    token_ttl: float = 3600.0
    default_gemini: Any = field(default_factory=lambda: GeminiReply())
    default_anthropic: Any = field(default_factory=lambda: AnthropicReply())
    requests: list[Recorded] = field(default_factory=list)
    token_requests: list[dict[str, Any]] = field(default_factory=list)  # the verified JWT claims
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (time.time())
    keys: dict[str, bytes] = field(default_factory=dict)  # private_key_id -> public key PEM
    private_keys: list[str] = field(default_factory=list)  # PEMs issued, for leak checks
    queue: deque[Any] = field(default_factory=deque)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    def script(self, *replies: Any) -> None:
        self.queue.extend(replies)

    def service_account(self, project: str | None = None, email: str = "gateway@test-project.iam.gserviceaccount.com",
                        ) -> dict[str, Any]:
        """A service-account JSON (as Google's console downloads it) with a fresh RSA key this
        fake trusts, its token_uri pointing here."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        kid = os.urandom(20).hex()
        self.keys[kid] = key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
        self.private_keys.append(pem)
        return {"type": "service_account", "project_id": project or self.project, "private_key_id": kid,
                "private_key": pem, "client_email": email, "client_id": "1" * 21,
                "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": self.token_uri,
                "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
                "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/gateway",
                "universe_domain": "googleapis.com"}

    # -- serving --------------------------------------------------------------------------------
    def start(self) -> "FakeVertex":
        self._served = ServedInThread("fake-vertex", self._handle)
        self.port = self._served.start()
        return self

    def stop(self) -> None:
        self._served.stop()

    def __enter__(self) -> "FakeVertex":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if request.path == "/token":
            return self._token(request, raw)
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        self.requests.append(Recorded(request.method, request.path, dict(request.query),
                                      {k.lower(): v for k, v in request.headers.items()}, raw, parsed,
                                      str(request.rel_url)))
        m = PATH.match(request.path)
        if request.method != "POST" or not m:
            return gemini_api.error(404, f"Requested entity was not found: {request.method} {request.path}",
                                    "NOT_FOUND")
        project, location, publisher, model, method = (m.group(2), m.group(3), m.group(4) or "google",
                                                       m.group(6), m.group(7))
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return gemini_api.error(401, NO_CREDENTIAL, "UNAUTHENTICATED")
        expiry = self.tokens.get(auth[7:])
        if expiry is None or expiry <= time.time():
            return gemini_api.error(401, BAD_CREDENTIAL, "UNAUTHENTICATED")
        resource = f"//aiplatform.googleapis.com/projects/{project}/locations/{location}/publishers/{publisher}/models/{model}"
        if project != self.project:
            return gemini_api.error(403, f"Permission 'aiplatform.endpoints.predict' denied on resource '{resource}' "
                                         "(or it may not exist).", "PERMISSION_DENIED")
        if not isinstance(parsed, dict):
            return gemini_api.error(400, "Invalid JSON payload received. Expected an object.")
        if publisher == "anthropic":
            if method not in ANTHROPIC_METHODS:
                return gemini_api.error(400, f"Method {method} is not supported for Anthropic models; use "
                                             "rawPredict or streamRawPredict.", "FAILED_PRECONDITION")
            return await self._anthropic(request, parsed, model, method)
        if method not in GOOGLE_METHODS:
            return gemini_api.error(404, f"Method {method} not found for {resource}", "NOT_FOUND")
        try:
            if method == "predict":
                check_predict(parsed)
            else:
                gemini_api.check_generate(parsed)
        except gemini_api.Invalid as exc:
            return gemini_api.error(400, str(exc))
        reply = self._next(GeminiReply)
        if isinstance(reply, AnthropicReply):
            raise AssertionError("an Anthropic reply was scripted for a Gemini call")
        if reply.raw is not None:
            return web.Response(body=reply.raw, status=reply.status, content_type=reply.content_type)
        if reply.status >= 400:
            return gemini_api.error(reply.status, reply.message, reply.status_name, reason=reply.reason)
        if method == "predict":
            return gemini_api.json_reply(predict_reply(parsed))
        if method == "streamGenerateContent":
            return await self._gemini_stream(request, parsed, reply, model)
        body = reply.response if reply.response is not None else gemini_api.build_response(parsed, reply, model)
        body.setdefault("createTime", "2026-12-02T10:00:00.000000Z")
        return gemini_api.json_reply(body)

    def _next(self, kind: type) -> Any:
        if self.queue:
            return self.queue.popleft()
        return self.default_gemini if kind is GeminiReply else self.default_anthropic

    # -- OAuth ----------------------------------------------------------------------------------
    def _token(self, request: web.Request, raw: bytes) -> web.Response:
        from google.auth import exceptions, jwt

        form = dict(parse_qsl(raw.decode(errors="replace")))

        def refuse(error: str, description: str, status: int = 400) -> web.Response:
            return web.json_response({"error": error, "error_description": description}, status=status)

        if request.method != "POST":
            return refuse("invalid_request", "Method not allowed", 405)
        if form.get("grant_type") != JWT_GRANT:
            return refuse("unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')}")
        assertion = form.get("assertion") or ""
        try:
            # google-auth signs for Google's token endpoint whatever token_uri says, and Google accepts both.
            claims = jwt.decode(assertion, certs={k: v.decode() for k, v in self.keys.items()},
                                audience=[self.token_uri, GOOGLE_TOKEN_URI])
        except (ValueError, exceptions.GoogleAuthError):
            return refuse("invalid_grant", "Invalid JWT Signature.")
        if SCOPE not in str(claims.get("scope", "")).split():
            return refuse("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        self.token_requests.append(claims)
        token = "ya29.fake-" + hashlib.sha256(os.urandom(16)).hexdigest()
        self.tokens[token] = time.time() + self.token_ttl
        return web.json_response({"access_token": token, "expires_in": int(self.token_ttl), "token_type": "Bearer"})

    # -- Gemini ---------------------------------------------------------------------------------
    async def _gemini_stream(self, request: web.Request, body: dict[str, Any], reply: Any,
                             model: str) -> web.StreamResponse:
        events = reply.events if reply.events is not None else gemini_api.stream_responses(body, reply, model)
        if reply.cut_stream:
            events = [e for e in events if not any(c.get("finishReason") for c in e.get("candidates") or ())]
        sse = request.query.get("alt") == "sse"
        resp = web.StreamResponse(headers={"content-type": "text/event-stream" if sse else "application/json"})
        await resp.prepare(request)
        if sse:
            chunks = [b"data: " + orjson.dumps(e) + b"\r\n\r\n" for e in events]
            if reply.stream_error is not None:
                status, message = reply.stream_error
                err = {"error": {"code": status, "message": message,
                                 "status": gemini_api.STATUS_NAMES.get(status, "INTERNAL")}}
                chunks = [*chunks[:1], b"data: " + orjson.dumps(err) + b"\r\n\r\n"]
            data = b"".join(chunks)
        else:
            data = b"[" + b",\r\n".join(orjson.dumps(e) for e in events) + b"]"
        step = reply.stream_piece or len(data) or 1
        for i in range(0, len(data), step):
            await resp.write(data[i:i + step])
        await resp.write_eof()
        return resp

    # -- Claude ---------------------------------------------------------------------------------
    async def _anthropic(self, request: web.Request, body: dict[str, Any], model: str,
                         method: str) -> web.StreamResponse:
        if "model" in body:
            return anthropic_api.error(400, "invalid_request_error", "model: Extra inputs are not permitted")
        # Google documents "vertex-2023-10-16" (LiteLLM sends it); the official AnthropicVertex SDK
        # sends its own dated API version there.
        version = body.get("anthropic_version")
        if not isinstance(version, str) or not (version == "vertex-2023-10-16" or anthropic_api.VERSION.match(version)):
            return anthropic_api.error(400, "invalid_request_error",
                                       "anthropic_version: Input should be 'vertex-2023-10-16'")
        if bool(body.get("stream")) != (method == "streamRawPredict"):
            return anthropic_api.error(400, "invalid_request_error",
                                       "stream: must be true for streamRawPredict and absent for rawPredict")
        checked = {k: v for k, v in body.items() if k != "anthropic_version"} | {"model": model}
        try:
            anthropic_api.check_request(checked)
        except anthropic_api.Invalid as exc:
            return anthropic_api.error(400, "invalid_request_error", str(exc))
        reply = self._next(AnthropicReply)
        if isinstance(reply, GeminiReply):  # a Google error from Vertex's front end
            if reply.raw is not None:
                return web.Response(body=reply.raw, status=reply.status, content_type=reply.content_type)
            return gemini_api.error(reply.status, reply.message, reply.status_name, reason=reply.reason)
        if reply.raw is not None:
            return web.Response(body=reply.raw, status=reply.status, content_type=reply.content_type)
        if reply.error_type is not None:
            return anthropic_api.error(reply.status, reply.error_type, reply.error_message)
        message = anthropic_api.build_message(checked, reply)
        message["id"] = "msg_vrtx_01Fake"
        if method == "rawPredict":
            return web.Response(body=orjson.dumps(message), content_type="application/json")
        resp = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8"})
        await resp.prepare(request)
        data = b"".join(anthropic_api.sse(kind, ev) for kind, ev in anthropic_api.stream_events(message,
                                                                                             reply.stream_error))
        step = reply.stream_piece or len(data)
        for i in range(0, len(data), step):
            await resp.write(data[i:i + step])
        await resp.write_eof()
        return resp


# -- embeddings -------------------------------------------------------------------------------------
def check_predict(body: dict[str, Any]) -> None:
    for name in body:
        if name not in ("instances", "parameters"):
            raise gemini_api.Invalid(f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances:
        raise gemini_api.Invalid("instances: at least one instance is required")
    if len(instances) > 250:
        raise gemini_api.Invalid("instances: at most 250 instances per request")
    for i, inst in enumerate(instances):
        if not isinstance(inst, dict) or not isinstance(inst.get("content"), str):
            raise gemini_api.Invalid(f"instances[{i}].content: a string is required")
        extra = set(inst) - {"content", "task_type", "title"}
        if extra:
            raise gemini_api.Invalid(f"instances[{i}]: unknown field {sorted(extra)[0]!r}")
    params = body.get("parameters") or {}
    if not isinstance(params, dict) or set(params) - {"outputDimensionality", "autoTruncate"}:
        raise gemini_api.Invalid("parameters: only outputDimensionality and autoTruncate are known")


def predict_reply(body: dict[str, Any]) -> dict[str, Any]:
    dims = int((body.get("parameters") or {}).get("outputDimensionality") or 8)
    predictions = []
    for inst in body["instances"]:
        words = len(inst["content"].split())
        predictions.append({"embeddings": {"values": gemini_api._vector(inst["content"], dims),
                                           "statistics": {"token_count": words, "truncated": False}}})
    chars = sum(len(i["content"]) for i in body["instances"])
    return {"predictions": predictions, "metadata": {"billableCharacterCount": chars}}


def dump(info: dict[str, Any]) -> str:
    return json.dumps(info)
