"""A fake AWS Bedrock runtime (and STS) on loopback, speaking the real protocol.

- Every request is authenticated as AWS does: a SigV4 signature is recomputed with botocore's
  `SigV4Auth` from the known test credentials, over the raw path and the exact body received,
  and compared; a wrong or stale one is refused with 403 and AWS's error type and message. A
  Bedrock API key (`Authorization: Bearer ...`) is accepted when registered.
- Request bodies are validated against the Converse / InvokeModel input shapes of botocore's
  service model (unknown fields, types, required members, blobs as base64), plus the rules
  Bedrock adds (a conversation starts with a user turn, turns alternate, no blank text, tool
  blocks need a toolConfig).
- Converse answers JSON; ConverseStream answers the binary event stream
  (`application/vnd.amazon.eventstream`), framed by `encode_message` below (prelude, headers,
  CRCs), optionally cut into pieces of any size; InvokeModel answers Titan / Cohere embeddings.
- Errors are AWS's: status, `x-amzn-ErrorType` header, `{"message": ...}` body; stream
  exceptions are `:message-type: exception` events.
- `POST /` with `Action=AssumeRole` is STS: it hands out temporary credentials, which the
  Bedrock side then accepts, with the expiry the test asks for.

`tests/test_peer_sdk.py` checks all of this against boto3 itself.
"""

from __future__ import annotations

import base64
import calendar
import hmac
import json
import struct
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.validate import ParamValidator

ACCESS_KEY = "AKIAGATEWAYTEST00001"
SECRET_KEY = "gatewayTestSecretKey/0123456789abcdefGHIJ"
SESSION_ACCESS_KEY = "ASIAGATEWAYTEST00002"
SESSION_SECRET = "gatewaySessionSecret/abcdefghij0123456789"
SESSION_TOKEN = "FwoGZXIvYXdzEGatewayTestSessionToken//////////wEaDOPQRSTUVWXYZ0123456789=="
BEARER_TOKEN = "ABSKQmVkcm9ja0FQSUtleS1nYXRld2F5LXRlc3Q="
PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"  # Bedrock pads events with "p"
MAX_SKEW_S = 300


# -- the event stream, encoded -------------------------------------------------------------------
HEADER_TYPES = {"true": 0, "false": 1, "byte": 2, "short": 3, "integer": 4, "long": 5, "bytes": 6, "string": 7,
                "timestamp": 8, "uuid": 9}


def _header(name: str, value: Any) -> bytes:
    """One header: a str is a string header; (kind, value) picks another type."""
    kind, value = ("string", value) if isinstance(value, str) else value
    raw = name.encode()
    out = bytes([len(raw)]) + raw + bytes([HEADER_TYPES[kind]])
    if kind in ("true", "false"):
        return out
    if kind == "byte":
        return out + struct.pack(">b", value)
    if kind == "short":
        return out + struct.pack(">h", value)
    if kind == "integer":
        return out + struct.pack(">i", value)
    if kind in ("long", "timestamp"):
        return out + struct.pack(">q", value)
    if kind == "uuid":
        return out + value
    data = value.encode() if isinstance(value, str) else value
    return out + struct.pack(">H", len(data)) + data


def encode_message(headers: dict[str, Any], payload: bytes) -> bytes:
    """One event-stream message: prelude (total length, headers length, CRC32), headers,
    payload, CRC32 of all that."""
    block = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(block) + len(payload) + 4
    prelude = struct.pack(">II", total, len(block))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + block + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(kind: str, body: dict[str, Any], pad: bool = True) -> bytes:
    payload = dict(body, p=PADDING[: 1 + len(kind) % len(PADDING)]) if pad else body
    return encode_message({":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
                          json.dumps(payload).encode())


def exception(kind: str, message: str) -> bytes:
    return encode_message({":exception-type": kind, ":content-type": "application/json",
                           ":message-type": "exception"}, json.dumps({"message": message}).encode())


# -- what the fake answers -------------------------------------------------------------------------
@dataclass
class Reply:
    """One scripted answer. Defaults: a short text reply."""

    text: str = "Hello from Bedrock."
    stop_reason: str = "end_turn"
    tool_uses: list[dict[str, Any]] = field(default_factory=list)  # {"toolUseId", "name", "input"}
    reasoning: str | None = None
    signature: str | None = None
    input_tokens: int = 25
    output_tokens: int | None = None  # default: one per text piece and tool
    cache_read: int | None = None
    cache_write: int | None = None
    # an AWS error instead: status, x-amzn-ErrorType, message
    status: int = 200
    error_type: str | None = None
    message: str = ""
    # streams
    pieces: list[str] | None = None  # the text deltas (default: word by word)
    exception: tuple[str, str] | None = None  # (exception type, message), sent after messageStart
    cut_after: int | None = None  # close the stream after this many events (no messageStop)
    chunk_size: int | None = None  # cut the stream's bytes into pieces of this size
    raw_stream: bytes | None = None  # send these bytes as the stream
    no_metadata: bool = False
    delay_s: float = 0.0
    # embeddings
    embeddings: list[list[float]] | None = None


@dataclass
class Recorded:
    operation: str  # converse | converse-stream | invoke | AssumeRole
    model_id: str | None
    raw_path: str
    headers: dict[str, str]
    body: Any
    auth: str  # sigv4 | bearer
    access_key: str | None
    status: int = 200


ERRORS = {  # a few of AWS's own bodies, for tests that want realistic text
    "ValidationException": (400, "The provided model identifier is invalid."),
    "AccessDeniedException": (403, "You don't have access to the model with the specified model ID."),
    "ThrottlingException": (429, "Too many requests, please wait before trying again."),
    "ModelNotReadyException": (429, "Model is not ready for inference. Wait and try your request again."),
    "InternalServerException": (500, "The server encountered an internal error while processing the request."),
    "ServiceUnavailableException": (503, "Bedrock is unable to process your request."),
}


def aws_error(kind: str, message: str | None = None, status: int | None = None) -> Reply:
    default_status, default_message = ERRORS.get(kind, (400, kind))
    return Reply(status=status or default_status, error_type=kind, message=message or default_message)


class _Denied(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


# -- validation against botocore's service model ---------------------------------------------------
_model = botocore.session.get_session().get_service_model("bedrock-runtime")
_validator = ParamValidator()


def _blobs_to_bytes(shape: Any, value: Any, where: str) -> Any:
    """The JSON body as botocore's validator expects parameters (blobs as bytes)."""
    kind = shape.type_name
    if kind == "blob":
        if not isinstance(value, str):
            raise _Denied(400, "ValidationException", f"{where}: a blob must be a base64 string")
        try:
            return base64.b64decode(value, validate=True)
        except Exception:
            raise _Denied(400, "ValidationException", f"{where}: invalid base64") from None
    if kind == "structure" and isinstance(value, dict) and not shape.is_document_type:
        return {k: (_blobs_to_bytes(shape.members[k], v, f"{where}.{k}") if k in shape.members else v)
                for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [_blobs_to_bytes(shape.member, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind == "map" and isinstance(value, dict):
        return {k: _blobs_to_bytes(shape.value, v, f"{where}.{k}") for k, v in value.items()}
    return value


def validate_converse(model_id: str, body: Any, operation: str = "Converse") -> None:
    if not isinstance(body, dict):
        raise _Denied(400, "SerializationException", "Start of structure or map found where not expected.")
    shape = _model.operation_model(operation).input_shape
    params = _blobs_to_bytes(shape, {**body, "modelId": model_id}, "")
    report = _validator.validate(params, shape)
    if report.has_errors():
        raise _Denied(400, "ValidationException", report.generate_report())
    messages = body.get("messages") or []
    if not messages or messages[0].get("role") != "user":
        raise _Denied(400, "ValidationException", "A conversation must start with a user message. Try again with "
                      "a conversation that starts with a user message.")
    has_tools = bool((body.get("toolConfig") or {}).get("tools"))
    for i, message in enumerate(messages):
        if i and message.get("role") == messages[i - 1].get("role"):
            raise _Denied(400, "ValidationException", "A conversation must alternate between user and assistant "
                          "roles. Make sure the conversation alternates between user and assistant roles and try again.")
        for j, block in enumerate(message.get("content") or ()):
            if "text" in block and not block["text"].strip():
                raise _Denied(400, "ValidationException", f"The text field in the ContentBlock object at "
                              f"messages.{i}.content.{j} is blank. Add text to the text field, and try again.")
            if ("toolUse" in block or "toolResult" in block) and not has_tools:
                raise _Denied(400, "ValidationException", "The toolConfig field must be defined when using toolUse "
                              "and toolResult content blocks.")
    choice = (body.get("toolConfig") or {}).get("toolChoice")
    if isinstance(choice, dict) and len(choice) != 1:
        raise _Denied(400, "ValidationException", "toolChoice must name exactly one of auto, any, tool")


# -- the server -----------------------------------------------------------------------------------------
class BedrockPeer:
    """The fake. `script(*replies)` queues answers (then the default reply); `requests` records."""

    def __init__(self, region: str = "eu-west-3") -> None:
        self.region = region
        self.credentials: dict[str, tuple[str, str | None]] = {
            ACCESS_KEY: (SECRET_KEY, None), SESSION_ACCESS_KEY: (SESSION_SECRET, SESSION_TOKEN)}
        self.bearer_tokens = {BEARER_TOKEN}
        self.requests: list[Recorded] = []
        self.replies: list[Reply] = []
        self.default = Reply()
        self.sts_expiry_s = 3600.0  # lifetime of the credentials AssumeRole hands out
        self.sts_issued: list[str] = []  # access keys handed out, in order
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="bedrock-peer", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.replies.clear()
            self.sts_issued.clear()
            self.sts_expiry_s = 3600.0
            self.credentials = {k: v for k, v in self.credentials.items()
                                if k in (ACCESS_KEY, SESSION_ACCESS_KEY)}
            self.bearer_tokens = {BEARER_TOKEN}
            self.default = Reply()

    def calls(self, operation: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if operation is None or r.operation == operation]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    # -- authentication ----------------------------------------------------------------------------
    def authenticate(self, method: str, raw_path: str, headers: dict[str, str], body: bytes,
                     service: str) -> tuple[str, str | None]:
        """('sigv4', access key) or ('bearer', None); raises _Denied as AWS would."""
        auth = headers.get("authorization")
        if not auth:
            raise _Denied(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        if auth.startswith("Bearer "):
            if service == "bedrock" and auth[7:] in self.bearer_tokens:
                return "bearer", None
            raise _Denied(403, "UnrecognizedClientException", "Invalid API Key format: Must start with pre-defined prefix")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            raise _Denied(400, "IncompleteSignatureException", "Authorization header requires 'Credential' parameter.")
        fields = dict(part.strip().split("=", 1) for part in auth[17:].split(",") if "=" in part)
        try:
            access_key, day, region, scope_service, terminator = fields["Credential"].split("/")
            signed = fields["SignedHeaders"].split(";")
            signature = fields["Signature"]
        except (KeyError, ValueError):
            raise _Denied(400, "IncompleteSignatureException", "Authorization header is malformed.") from None
        known = self.credentials.get(access_key)
        if known is None:
            raise _Denied(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        secret, token = known
        if terminator != "aws4_request" or scope_service != service:
            raise _Denied(403, "InvalidSignatureException",
                          f"Credential should be scoped to correct service: '{service}'.")
        if region != self.region:
            raise _Denied(403, "InvalidSignatureException",
                          "Credential should be scoped to a valid region. ")
        stamp = headers.get("x-amz-date", "")
        try:
            when = calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
        except ValueError:
            raise _Denied(400, "IncompleteSignatureException",
                          "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.") from None
        if abs(time.time() - when) > MAX_SKEW_S:
            raise _Denied(403, "InvalidSignatureException", f"Signature expired: {stamp} is now earlier than "
                          f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(time.time() - MAX_SKEW_S))}")
        if day != stamp[:8] or "host" not in signed or "x-amz-date" not in signed:
            raise _Denied(403, "InvalidSignatureException", "The request signature we calculated does not match "
                          "the signature you provided.")
        if token is not None and (headers.get("x-amz-security-token") != token or "x-amz-security-token" not in signed):
            raise _Denied(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        missing = [h for h in signed if h not in headers]
        if missing:
            raise _Denied(403, "InvalidSignatureException", f"Signed header(s) not sent: {', '.join(missing)}")
        # Recompute with botocore: the request as received, only the signed headers.
        request = AWSRequest(method=method, url=f"http://{headers['host']}{raw_path}", data=body,
                             headers={h: headers[h] for h in signed})
        request.context["timestamp"] = stamp
        signer = SigV4Auth(Credentials(access_key, secret, token), service, region)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if not hmac.compare_digest(expected, signature):
            raise _Denied(403, "InvalidSignatureException", "The request signature we calculated does not match the "
                          "signature you provided. Check your AWS Secret Access Key and signing method. Consult the "
                          "service documentation for details.")
        return "sigv4", access_key

    # -- HTTP ----------------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                peer._serve(self, self.path, headers, body)

        return Handler

    def _send_json(self, handler: BaseHTTPRequestHandler, status: int, data: Any, headers: dict[str, str] | None = None,
                   content_type: str = "application/json") -> None:
        raw = data if isinstance(data, bytes) else json.dumps(data).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(raw)))
        handler.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for k, v in (headers or {}).items():
            handler.send_header(k, v)
        handler.end_headers()
        handler.wfile.write(raw)

    def _send_error(self, handler: BaseHTTPRequestHandler, status: int, kind: str, message: str) -> None:
        self._send_json(handler, status, {"message": message},
                        {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"})

    def _serve(self, handler: BaseHTTPRequestHandler, raw_path: str, headers: dict[str, str], body: bytes) -> None:
        path = raw_path.split("?", 1)[0]
        if path == "/":
            return self._sts(handler, raw_path, headers, body)
        parts = path.split("/")
        if len(parts) != 4 or parts[1] != "model" or parts[3] not in ("converse", "converse-stream", "invoke"):
            return self._send_error(handler, 404, "UnknownOperationException", "Unknown operation")
        operation, model_id = parts[3], unquote(parts[2])
        try:
            auth, access_key = self.authenticate("POST", raw_path, headers, body, "bedrock")
        except _Denied as denied:
            with self._lock:
                self.requests.append(Recorded(operation, model_id, raw_path, headers, None, "denied", None, denied.status))
            return self._send_error(handler, denied.status, denied.kind, denied.message)
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        with self._lock:
            self.requests.append(Recorded(operation, model_id, raw_path, headers, data, auth, access_key))
            reply = self.replies.pop(0) if self.replies else self.default
        if reply.delay_s:
            time.sleep(reply.delay_s)
        try:
            if data is None:
                raise _Denied(400, "SerializationException", "The request body is not valid JSON")
            if operation == "invoke":
                return self._invoke(handler, model_id, data, reply)
            validate_converse(model_id, data, "Converse" if operation == "converse" else "ConverseStream")
        except _Denied as denied:
            return self._send_error(handler, denied.status, denied.kind, denied.message)
        if reply.error_type:
            return self._send_error(handler, reply.status, reply.error_type, reply.message)
        if operation == "converse":
            return self._send_json(handler, 200, converse_reply(reply))
        return self._stream(handler, reply)

    def _stream(self, handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        data = reply.raw_stream if reply.raw_stream is not None else b"".join(stream_events(reply))
        handler.send_response(200)
        handler.send_header("Content-Type", "application/vnd.amazon.eventstream")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        handler.end_headers()
        size = reply.chunk_size or len(data) or 1
        for start in range(0, len(data), size):
            piece = data[start:start + size]
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            handler.wfile.flush()
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()

    def _invoke(self, handler: BaseHTTPRequestHandler, model_id: str, data: Any, reply: Reply) -> None:
        if reply.error_type:
            return self._send_error(handler, reply.status, reply.error_type, reply.message)
        if "titan-embed" in model_id:
            if set(data) - {"inputText", "dimensions", "normalize", "embeddingTypes"} or not isinstance(data.get("inputText"), str):
                raise _Denied(400, "ValidationException", "Malformed input request, please reformat your input and try again.")
            dims = int(data.get("dimensions") or 1024)
            vector = (reply.embeddings or [[round(0.001 * i, 3) for i in range(dims)]])[0]
            tokens = len(data["inputText"].split())
            return self._send_json(handler, 200, {"embedding": vector, "inputTextTokenCount": tokens},
                                   {"X-Amzn-Bedrock-Input-Token-Count": str(tokens)})
        if model_id.startswith("cohere.embed"):
            texts = data.get("texts")
            if not isinstance(texts, list) or not isinstance(data.get("input_type"), str):
                raise _Denied(400, "ValidationException", "Malformed input request: #: required key [input_type] not found")
            vectors = reply.embeddings or [[0.5, -0.25, float(i)] for i in range(len(texts))]
            found: Any = {"float": vectors} if data.get("embedding_types") else vectors
            return self._send_json(handler, 200, {"id": str(uuid.uuid4()), "texts": texts, "embeddings": found,
                                                  "response_type": "embeddings_by_type" if data.get("embedding_types")
                                                  else "embeddings_floats"},
                                   {"X-Amzn-Bedrock-Input-Token-Count": str(sum(len(t.split()) for t in texts))})
        raise _Denied(400, "ValidationException", "The provided model identifier is invalid.")

    def _sts(self, handler: BaseHTTPRequestHandler, raw_path: str, headers: dict[str, str], body: bytes) -> None:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        try:
            self.authenticate("POST", raw_path, headers, body, "sts")
        except _Denied as denied:
            xml = (f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
                   f'<Code>{denied.kind}</Code><Message>{denied.message}</Message></Error>'
                   f'<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>')
            return self._send_json(handler, denied.status, xml.encode(), content_type="text/xml")
        if form.get("Action") != "AssumeRole":
            return self._send_json(handler, 400, b"<ErrorResponse/>", content_type="text/xml")
        with self._lock:
            n = len(self.sts_issued) + 1
            access_key = f"ASIASTSROLE{n:09d}"
            secret, token = f"stsSecret{n:04d}/{uuid.uuid4().hex}", f"stsToken{n:04d}{uuid.uuid4().hex}"
            self.credentials[access_key] = (secret, token)
            self.sts_issued.append(access_key)
            self.requests.append(Recorded("AssumeRole", None, raw_path, headers, form, "sigv4", None))
            expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + self.sts_expiry_s))
        role, session = form.get("RoleArn", ""), form.get("RoleSessionName", "")
        xml = (
            '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
            f'<AssumedRoleUser><AssumedRoleId>AROAGATEWAYTEST:{session}</AssumedRoleId>'
            f'<Arn>{role.replace(":role/", ":assumed-role/")}/{session}</Arn></AssumedRoleUser>'
            f'<Credentials><AccessKeyId>{access_key}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey>'
            f'<SessionToken>{token}</SessionToken><Expiration>{expiry}</Expiration></Credentials>'
            f'</AssumeRoleResult><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>'
            '</AssumeRoleResponse>')
        self._send_json(handler, 200, xml.encode(), content_type="text/xml")


# -- replies, as Bedrock shapes them ---------------------------------------------------------------------
def _usage(reply: Reply, pieces: int) -> dict[str, Any]:
    output = reply.output_tokens if reply.output_tokens is not None else pieces + len(reply.tool_uses)
    usage: dict[str, Any] = {"inputTokens": reply.input_tokens, "outputTokens": output}
    total = reply.input_tokens + output
    if reply.cache_read is not None:
        usage["cacheReadInputTokens"] = reply.cache_read
        total += reply.cache_read
    if reply.cache_write is not None:
        usage["cacheWriteInputTokens"] = reply.cache_write
        total += reply.cache_write
    usage["totalTokens"] = total
    return usage


def _pieces(reply: Reply) -> list[str]:
    if reply.pieces is not None:
        return reply.pieces
    words = reply.text.split(" ") if reply.text else []
    return [w if i == len(words) - 1 else w + " " for i, w in enumerate(words)]


def converse_reply(reply: Reply) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.reasoning is not None:
        text: dict[str, Any] = {"text": reply.reasoning}
        if reply.signature:
            text["signature"] = reply.signature
        content.append({"reasoningContent": {"reasoningText": text}})
    if reply.text:
        content.append({"text": reply.text})
    for use in reply.tool_uses:
        content.append({"toolUse": dict(use)})
    return {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": reply.stop_reason,
            "usage": _usage(reply, len(_pieces(reply))), "metrics": {"latencyMs": 321}}


def stream_events(reply: Reply) -> list[bytes]:
    events = [event("messageStart", {"role": "assistant"})]
    if reply.exception is not None:
        return [*events, exception(*reply.exception)]
    index = 0
    if reply.reasoning is not None:
        for piece in reply.reasoning.split(" "):
            events.append(event("contentBlockDelta", {"delta": {"reasoningContent": {"text": piece}},
                                                      "contentBlockIndex": index}))
        if reply.signature:
            events.append(event("contentBlockDelta", {"delta": {"reasoningContent": {"signature": reply.signature}},
                                                      "contentBlockIndex": index}))
        events.append(event("contentBlockStop", {"contentBlockIndex": index}))
        index += 1
    pieces = _pieces(reply)
    if pieces:
        for piece in pieces:
            events.append(event("contentBlockDelta", {"delta": {"text": piece}, "contentBlockIndex": index}))
        events.append(event("contentBlockStop", {"contentBlockIndex": index}))
        index += 1
    for use in reply.tool_uses:
        events.append(event("contentBlockStart", {"start": {"toolUse": {"toolUseId": use["toolUseId"],
                                                                        "name": use["name"]}},
                                                  "contentBlockIndex": index}))
        raw = json.dumps(use["input"])
        half = len(raw) // 2
        for part in (raw[:half], raw[half:]):
            events.append(event("contentBlockDelta", {"delta": {"toolUse": {"input": part}}, "contentBlockIndex": index}))
        events.append(event("contentBlockStop", {"contentBlockIndex": index}))
        index += 1
    events.append(event("messageStop", {"stopReason": reply.stop_reason}))
    if not reply.no_metadata:
        events.append(event("metadata", {"usage": _usage(reply, len(pieces)), "metrics": {"latencyMs": 321}}))
    if reply.cut_after is not None:
        events = events[:reply.cut_after]
    return events
