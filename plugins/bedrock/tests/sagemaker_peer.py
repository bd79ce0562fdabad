"""A fake SageMaker runtime on loopback, speaking the real protocol (built on the fake Bedrock's
server, its SigV4 check and its STS).

- `POST /endpoints/{name}/invocations` (InvokeEndpoint) and `/invocations-response-stream`
  (InvokeEndpointWithResponseStream), every request's SigV4 signature recomputed with botocore for
  the service `sagemaker` and compared; refused with 403 and AWS's error type and message.
- The container behind the endpoint is chosen by the body, as TGI's SageMaker route does:
  `{"inputs": "<prompt>", "parameters": {...}}` is text generation (parameters checked against TGI's
  own rules), `{"messages": [...]}` is the OpenAI Messages API, `{"inputs": [texts]}` embeddings.
- Streams are AWS's binary event stream of `PayloadPart` events (`:event-type: PayloadPart`, the
  container's bytes as the payload), cut into parts of any size (even inside a line or a UTF-8
  character); `ModelStreamError` / `InternalStreamFailure` are exception events.
- Errors are SageMaker's: status, `x-amzn-ErrorType`, `{"message": ...}`; a container's refusal is a
  424 `ModelError` with `OriginalStatusCode` and `OriginalMessage`.

`tests/test_sagemaker_peer_sdk.py` checks all of this against boto3's `sagemaker-runtime` client.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

from bedrock_peer import BedrockPeer, Recorded, _Denied, encode_message

ACCOUNT = "123456789012"
TGI_PARAMS = {"best_of", "decoder_input_details", "details", "do_sample", "frequency_penalty", "grammar",
              "max_new_tokens", "repetition_penalty", "return_full_text", "seed", "stop", "temperature", "top_k",
              "top_n_tokens", "top_p", "truncate", "typical_p", "watermark", "adapter_id"}
MESSAGES_FIELDS = {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop",
                   "stream", "stream_options", "n", "seed", "tools", "tool_choice", "response_format",
                   "frequency_penalty", "presence_penalty", "logprobs", "top_logprobs", "user"}


@dataclass
class SmReply:
    """One scripted answer. Defaults: a short text reply."""

    text: str = "Hello from SageMaker."
    pieces: list[str] | None = None  # the streamed tokens (default: word by word)
    finish_reason: str = "eos_token"  # TGI's details.finish_reason
    prompt_tokens: int = 12  # the Messages API's usage
    # an AWS error instead: status, x-amzn-ErrorType, message (ModelError: the container's status and text)
    status: int = 200
    error_type: str | None = None
    message: str = ""
    original_status: int | None = None
    # streams
    lines: str = "tgi"  # tgi: SSE `data:` events with a final details event; lmi: JSON lines, no final event
    part_size: int | None = None  # cut the container's bytes into PayloadParts of this size (default: per event)
    chunk_size: int | None = None  # cut the HTTP body's bytes into pieces of this size
    exception: tuple[str, str] | None = None  # (ModelStreamError | InternalStreamFailure, message) after 2 parts
    cut_after: int | None = None  # stop after this many event-stream messages, and this many bytes of the next
    cut_bytes: int = 0
    container_error: str | None = None  # TGI's in-stream `{"error": ...}` event after the first token
    # embeddings
    embeddings: list[list[float]] | None = None
    wrapped: bool = False  # {"embedding": [...]} instead of a bare list
    extra: dict[str, Any] = field(default_factory=dict)  # merged into a non-streamed TGI reply object


def sm_error(kind: str, message: str, status: int, original_status: int | None = None) -> SmReply:
    return SmReply(status=status, error_type=kind, message=message, original_status=original_status)


def payload_part(data: bytes) -> bytes:
    return encode_message({":event-type": "PayloadPart", ":content-type": "application/octet-stream",
                           ":message-type": "event"}, data)


def stream_exception(kind: str, message: str) -> bytes:
    body = {"Message": message, "ErrorCode": "ModelError"} if kind == "ModelStreamError" else {"Message": message}
    return encode_message({":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"},
                          json.dumps(body).encode())


def _pieces(reply: SmReply) -> list[str]:
    if reply.pieces is not None:
        return reply.pieces
    words = reply.text.split(" ")
    return [w if i == len(words) - 1 else w + " " for i, w in enumerate(words)]


class SageMakerPeer(BedrockPeer):
    """The fake. `script(*replies)` queues answers (then the default); `requests` records."""

    def __init__(self, region: str = "eu-west-3") -> None:
        super().__init__(region)
        self.default = SmReply()

    def reset(self) -> None:
        super().reset()
        self.default = SmReply()

    def _send_error(self, handler: BaseHTTPRequestHandler, status: int, kind: str, message: str,
                    extra: dict[str, Any] | None = None) -> None:
        body = {"message": message} if extra is None else {"ErrorCode": "CLIENT_ERROR_FROM_MODEL", "Message": message, **extra}
        self._send_json(handler, status, body,
                        {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.sagemaker/"})

    def _serve(self, handler: BaseHTTPRequestHandler, raw_path: str, headers: dict[str, str], body: bytes) -> None:
        path = raw_path.split("?", 1)[0]
        if path == "/":
            return self._sts(handler, raw_path, headers, body)
        parts = path.split("/")
        if len(parts) != 4 or parts[1] != "endpoints" or parts[3] not in ("invocations", "invocations-response-stream"):
            return self._send_error(handler, 404, "UnknownOperationException", "Unknown operation")
        operation, name = parts[3], unquote(parts[2])
        try:
            auth, access_key = self.authenticate("POST", raw_path, headers, body, "sagemaker")
        except _Denied as denied:
            with self._lock:
                self.requests.append(Recorded(operation, name, raw_path, headers, None, "denied", None, denied.status))
            return self._send_error(handler, denied.status, denied.kind, denied.message)
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        with self._lock:
            self.requests.append(Recorded(operation, name, raw_path, headers, data, auth, access_key))
            reply = self.replies.pop(0) if self.replies else self.default
        if reply.error_type:
            extra = None
            if reply.error_type == "ModelError":
                extra = {"OriginalStatusCode": reply.original_status or 400, "OriginalMessage": reply.message,
                         "LogStreamArn": f"arn:aws:logs:{self.region}:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{name}"}
                message = (f"Received client error ({reply.original_status or 400}) from primary with message "
                           f"\"{reply.message}\". See https://{self.region}.console.aws.amazon.com/cloudwatch/home "
                           f"in account {ACCOUNT} for more information.")
            else:
                message = reply.message
            return self._send_error(handler, reply.status, reply.error_type, message, extra)
        try:
            kind = self._container(headers, data, operation == "invocations-response-stream")
        except _Denied as denied:  # the container refused: SageMaker wraps it in a ModelError
            return self._send_error(handler, 424, "ModelError", f"Received client error ({denied.status}) from primary "
                                    f"with message \"{denied.message}\".",
                                    {"OriginalStatusCode": denied.status, "OriginalMessage": denied.message})
        if operation == "invocations":
            return self._send_json(handler, 200, self._reply(kind, data, reply))
        return self._stream(handler, reply, self._lines(kind, data, reply))

    # -- the container ---------------------------------------------------------------------------------
    def _container(self, headers: dict[str, str], data: Any, stream: bool) -> str:
        """'tgi', 'messages' or 'embeddings'; raises _Denied (422, as TGI) for a body it refuses."""
        if headers.get("content-type") != "application/json":
            raise _Denied(415, "UnsupportedMediaType", "Expected request with `Content-Type: application/json`")
        if not isinstance(data, dict):
            raise _Denied(422, "Validation", "Failed to deserialize the JSON body into the target type")
        if "messages" in data:
            unknown = set(data) - MESSAGES_FIELDS
            if unknown or not isinstance(data["messages"], list) or not data["messages"]:
                raise _Denied(422, "Validation", f"Failed to deserialize the JSON body: unknown field(s) {sorted(unknown)}")
            if stream != bool(data.get("stream")):
                raise _Denied(422, "Validation", "stream must be true on invocations-response-stream, only there")
            return "messages"
        inputs = data.get("inputs")
        if isinstance(inputs, list):
            if not inputs or not all(isinstance(t, str) for t in inputs) or set(data) != {"inputs"}:
                raise _Denied(422, "Validation", "inputs must be a non-empty list of strings")
            return "embeddings"
        if not isinstance(inputs, str) or not inputs or set(data) - {"inputs", "parameters", "stream"}:
            raise _Denied(422, "Validation", "Failed to deserialize the JSON body into the target type: missing field `inputs`")
        params = data.get("parameters") or {}
        unknown = set(params) - TGI_PARAMS
        if unknown:
            raise _Denied(422, "Validation", f"parameters: unknown field `{sorted(unknown)[0]}`")
        for name in ("temperature", "repetition_penalty", "max_new_tokens", "top_k"):
            if name in params and not params[name] > 0:
                raise _Denied(422, "Validation", f"`{name}` must be strictly positive")
        if "top_p" in params and not 0 < params["top_p"] < 1:
            raise _Denied(422, "Validation", "`top_p` must be > 0.0 and < 1.0")
        if "stop" in params and not (isinstance(params["stop"], list) and all(isinstance(s, str) for s in params["stop"])):
            raise _Denied(422, "Validation", "`stop` must be a list of strings")
        if bool(data.get("stream")) != stream:
            raise _Denied(422, "Validation", "stream must be true on invocations-response-stream, only there")
        return "tgi"

    def _reply(self, kind: str, data: dict[str, Any], reply: SmReply) -> Any:
        if kind == "embeddings":
            vectors = reply.embeddings or [[0.5, -0.25, float(i)] for i in range(len(data["inputs"]))]
            return {"embedding": vectors} if reply.wrapped else vectors
        if kind == "messages":
            tokens = len(_pieces(reply))
            return {"id": f"chatcmpl-{uuid.uuid4().hex[:8]}", "object": "chat.completion", "created": int(time.time()),
                    "model": "tgi", "system_fingerprint": "3.0.1-sha-abc",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                                 "logprobs": None, "finish_reason": "stop" if reply.finish_reason == "eos_token" else "length"}],
                    "usage": {"prompt_tokens": reply.prompt_tokens, "completion_tokens": tokens,
                              "total_tokens": reply.prompt_tokens + tokens}}
        params = data.get("parameters") or {}
        text = (data["inputs"] + reply.text) if params.get("return_full_text") else reply.text
        out: dict[str, Any] = {"generated_text": text}
        if params.get("details"):
            out["details"] = {"finish_reason": reply.finish_reason, "generated_tokens": len(_pieces(reply)) + 1,
                              "seed": None, "prefill": [], "tokens": []}
        return [{**out, **reply.extra}]

    def _lines(self, kind: str, data: dict[str, Any], reply: SmReply) -> list[bytes]:
        """The container's stream, one item per event it writes."""
        pieces = _pieces(reply)
        if kind == "messages":
            ident, created = f"chatcmpl-{uuid.uuid4().hex[:8]}", int(time.time())

            def chunk(choices: list[dict[str, Any]], **more: Any) -> bytes:
                body = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": "tgi",
                        "system_fingerprint": "3.0.1-sha-abc", "choices": choices, **more}
                return b"data: " + json.dumps(body).encode() + b"\n\n"

            def choice(content: str, finish: str | None = None) -> list[dict[str, Any]]:
                return [{"index": 0, "delta": {"role": "assistant", "content": content}, "logprobs": None,
                         "finish_reason": finish}]

            out = [chunk(choice(p)) for p in pieces]
            out.append(chunk(choice("", "stop" if reply.finish_reason == "eos_token" else "length")))
            if (data.get("stream_options") or {}).get("include_usage"):
                out.append(chunk([], usage={"prompt_tokens": reply.prompt_tokens, "completion_tokens": len(pieces),
                                            "total_tokens": reply.prompt_tokens + len(pieces)}))
            return out + [b"data: [DONE]\n\n"]
        out = []
        for i, piece in enumerate(pieces):
            token = {"id": 100 + i, "text": piece, "logprob": -0.25, "special": False}
            if reply.lines == "lmi":
                out.append(json.dumps({"token": {"id": 100 + i, "text": piece, "log_prob": -0.25}}).encode() + b"\n")
            else:
                out.append(b"data:" + json.dumps({"index": i + 1, "token": token, "generated_text": None,
                                                   "details": None}).encode() + b"\n\n")
            if reply.container_error and i == 0:
                out.append(b"data:" + json.dumps({"error": reply.container_error, "error_type": "generation"}).encode()
                           + b"\n\n")
                return out
        if reply.lines == "tgi":
            eos = {"id": 2, "text": "</s>", "logprob": -0.01, "special": True}
            details = {"finish_reason": reply.finish_reason, "generated_tokens": len(pieces) + 1, "seed": None}
            out.append(b"data:" + json.dumps({"index": len(pieces) + 1, "token": eos, "generated_text": reply.text,
                                               "details": details}).encode() + b"\n\n")
        return out

    def _stream(self, handler: BaseHTTPRequestHandler, reply: SmReply, lines: list[bytes]) -> None:
        if reply.part_size:
            raw = b"".join(lines)
            parts = [raw[i:i + reply.part_size] for i in range(0, len(raw), reply.part_size)]
        else:
            parts = lines
        messages = [payload_part(p) for p in parts]
        if reply.exception is not None:
            messages = messages[:2] + [stream_exception(*reply.exception)]
        data = b"".join(messages)
        if reply.cut_after is not None:
            data = b"".join(messages[:reply.cut_after]) + messages[reply.cut_after][:reply.cut_bytes]
        handler.send_response(200)
        handler.send_header("Content-Type", "application/vnd.amazon.eventstream")
        handler.send_header("X-Amzn-SageMaker-Content-Type", "text/event-stream" if reply.lines == "tgi" else "application/jsonlines")
        handler.send_header("x-Amzn-Invoked-Production-Variant", "AllTraffic")
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


__all__ = ["SageMakerPeer", "SmReply", "sm_error", "payload_part", "stream_exception"]
