"""SageMaker Runtime on loopback, for the tests: moto's server, and a recording peer in front of it.

- `moto`: moto's server (`moto[server]`), started once per test module on a free loopback port and
  reset before each test. Replies are queued with its static results API
  (`POST /moto-api/static/sagemaker/endpoint-results`); with the queue empty it answers the literal
  body `body`. moto remembers the reply per request body: a repeated identical request gets the
  same reply, so every test call sends text of its own.
- `sagemaker`: `SageMakerPeer`, an HTTP peer in front of moto that records every request (path,
  headers, the JSON body) and relays it, optionally after a delay. moto does not show what it
  received; this is how the tests see the prompt that was really sent. Without an upstream it
  answers a fixed reply itself (the benchmark uses that: moto takes longer than 5 ms).
  `sagemaker.judge = lambda prompt: reply` makes the verdict depend on the prompt sent (the
  conformance check makes hundreds of calls, harmless and not, in an order of its own): before a
  request body moto has not seen is relayed, the peer queues `judge(prompt)` in moto for it.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import httpx
import pytest

REGION = "us-west-2"  # not boto3's or moto's default: proves that AWS_REGION_NAME is what is used
ENDPOINT = "jumpstart-dft-meta-textgeneration-llama-guard-7b"  # the seed's endpoint


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the JSON body, parsed
    at: float


class SageMakerPeer:
    """Records and relays SageMaker Runtime calls to `upstream` (moto), or answers `reply` itself."""

    def __init__(self, upstream: str | None = None, reply: bytes = b'[{"generated_text": "safe"}]') -> None:
        self.upstream = upstream
        self.reply = reply
        self.delay = 0.0
        self.requests: list[Recorded] = []
        #: prompt -> the reply to queue in moto for a body it has not seen (None: queue nothing).
        self.judge: Callable[[str], Any] | None = None
        self._judged: set[bytes] = set()  # bodies moto has a reply for (it answers those again)
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._relay_lock = threading.Lock()  # a judged reply is queued and taken in one step
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="sagemaker-peer", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def prompts(self) -> list[str]:
        with self._lock:
            return [r.body["inputs"] for r in self.requests]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
        self.delay = 0.0
        self.judge = None
        self._judged.clear()  # the `moto` fixture resets moto's memory too

    def _relay(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, list, bytes]:
        assert self.upstream is not None
        host = self.upstream.split("://", 1)[1]
        conn = http.client.HTTPConnection(host, timeout=10)
        try:
            conn.request(method, path, body=raw, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def _relay_judged(self, path: str, headers: dict[str, str], raw: bytes, body: Any) -> tuple[int, list, bytes]:
        """Relay to moto; with `judge` set, first queue its verdict on this body's prompt, once per body."""
        judge = self.judge
        if judge is None:
            return self._relay("POST", path, headers, raw)
        with self._relay_lock:
            if raw not in self._judged:
                self._judged.add(raw)
                reply = judge(body["inputs"])
                queued = json.dumps({"results": [{"Body": reply if isinstance(reply, str) else json.dumps(reply),
                                                  "ContentType": "application/json"}], "region": REGION})
                status, _, data = self._relay("POST", "/moto-api/static/sagemaker/endpoint-results",
                                              {"Content-Type": "application/json"}, queued.encode())
                if not 200 <= status < 300:  # moto answers 201
                    raise RuntimeError(f"moto refused the queued verdict: {status} {data[:200]!r}")
            return self._relay("POST", path, headers, raw)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as SageMaker does
            disable_nagle_algorithm = True  # else headers and body, written apart, wait ~40 ms for an ACK

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k: v for k, v in self.headers.items()}
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
                with peer._lock:
                    peer.requests.append(Recorded("POST", self.path, {k.lower(): v for k, v in headers.items()},
                                                  body, time.monotonic()))
                if peer.delay:
                    peer._closing.wait(peer.delay)
                if peer.upstream is None:
                    status, out_headers, data = 200, [("Content-Type", "application/json")], peer.reply
                else:
                    status, out_headers, data = peer._relay_judged(self.path, headers, raw, body)
                try:
                    self.send_response(status)
                    for name, value in out_headers:
                        if name.lower() not in ("content-length", "connection", "transfer-encoding", "server", "date"):
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (a timeout test)

        return Handler

    def stop(self) -> None:
        self._closing.set()  # wake delayed handlers
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


class Moto:
    """moto's server in this process, on a free loopback port."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per call otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def reset(self) -> None:
        self.http.post("/moto-api/reset").raise_for_status()

    def queue(self, *bodies: str | bytes | Any, content_type: str = "application/json") -> None:
        """Queue replies of InvokeEndpoint, in order. A str/bytes body is sent as is; anything else
        as its JSON."""
        results = []
        for body in bodies:
            if isinstance(body, bytes):
                body = body.decode()
            elif not isinstance(body, str):
                body = json.dumps(body)
            results.append({"Body": body, "ContentType": content_type})
        self.http.post("/moto-api/static/sagemaker/endpoint-results",
                       json={"results": results, "region": REGION}).raise_for_status()

    def stop(self) -> None:
        self.http.close()
        self._server.stop()
        inner = getattr(self._server, "_server", None)  # moto's stop() leaves the socket open
        if inner is not None:
            inner.server_close()


@pytest.fixture(scope="module")
def moto_server():
    # In this plugin's own test environment (`--group test`) moto is always there; an environment
    # without it (a workspace synced without this group) skips, saying what to install.
    pytest.importorskip("moto.server", reason="moto[server] is not installed: install this plugin's `test` group")
    server = Moto()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sagemaker_peer(moto_server):
    peer = SageMakerPeer(upstream=moto_server.url)
    yield peer
    peer.stop()


@pytest.fixture
def moto(moto_server, sagemaker_peer):
    """moto, reset for this test (empty queue, nothing remembered)."""
    moto_server.reset()
    sagemaker_peer.clear()
    return moto_server


@pytest.fixture
def sagemaker(moto, sagemaker_peer):
    """The recording peer in front of a freshly reset moto."""
    return sagemaker_peer


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def aws_env(monkeypatch, tmp_path):
    """Fake credentials, the seed's AWS_REGION_NAME, and nothing from this machine's AWS setup."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY", "AWS_REGION_NAME", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
