"""uvicorn's HTTP protocol, with requests it cannot parse answered in the error envelope.

A request whose HTTP framing is broken (a bad content-length, broken chunked encoding, control
characters in a header) never reaches the app: uvicorn answers it itself with a plain-text 400. This
subclass of its httptools protocol (the one the gateway serves with) writes the gateway's JSON error
envelope instead, with an `x-request-id`, and still closes the connection (its framing is lost).
Not covered: `--server hypercorn`, and uvicorn's h11 protocol, keep their own plain-text 400s.

On a graceful stop (SIGTERM, or the old workers of a config reload) uvicorn closes idle keep-alive
connections at once; a request the client had just sent on one was then reset (a failed call with
nothing wrong). Here an idle connection stays open `IDLE_GRACE_S` longer: a request that arrives is
served with `Connection: close`, and only a connection still idle then is closed.
"""

from __future__ import annotations

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.core.request_id import new_request_id

MESSAGE = "Malformed HTTP request: the request's framing or headers could not be parsed"
IDLE_GRACE_S = 1.0


class EnvelopeHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; its answer to an unparsable request, and its graceful stop of
    an idle connection, differ."""

    stopping = False

    def shutdown(self) -> None:
        self.stopping = True
        if self.cycle is None or self.cycle.response_complete:
            self.loop.call_later(IDLE_GRACE_S, self._close_if_idle)
        else:
            self.cycle.keep_alive = False  # closed once this response is sent

    def _close_if_idle(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.stopping and self.cycle is not None:
            self.cycle.keep_alive = False  # a request that came during the grace: served, then closed

    def send_400_response(self, msg: str) -> None:
        body = orjson.dumps({"error": {"message": MESSAGE, "type": "bad_request_error", "param": None,
                                       "code": "400"}})
        request_id = new_request_id().encode()
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head += [b"content-type: application/json\r\n", b"content-length: " + str(len(body)).encode() + b"\r\n",
                 b"x-request-id: " + request_id + b"\r\n", b"connection: close\r\n", b"\r\n"]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
