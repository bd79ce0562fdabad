"""uvicorn's HTTP protocol, with requests it cannot parse answered in the error envelope.

A request whose HTTP framing is broken (a bad content-length, broken chunked encoding, control
characters in a header) never reaches the app: uvicorn answers it itself with a plain-text 400. This
subclass of its httptools protocol (the one the gateway serves with) writes the gateway's JSON error
envelope instead, with an `x-request-id`, and still closes the connection (its framing is lost).
Not covered: `--server hypercorn`, and uvicorn's h11 protocol, keep their own plain-text 400s.
"""

from __future__ import annotations

import random
import uuid

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MESSAGE = "Malformed HTTP request: the request's framing or headers could not be parsed"


class EnvelopeHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; only its answer to an unparsable request differs."""

    def send_400_response(self, msg: str) -> None:
        body = orjson.dumps({"error": {"message": MESSAGE, "type": "bad_request_error", "param": None,
                                       "code": "400"}})
        request_id = str(uuid.UUID(int=random.getrandbits(128), version=4)).encode()
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head += [b"content-type: application/json\r\n", b"content-length: " + str(len(body)).encode() + b"\r\n",
                 b"x-request-id: " + request_id + b"\r\n", b"connection: close\r\n", b"\r\n"]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
