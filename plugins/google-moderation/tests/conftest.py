"""A fake Google Cloud Natural Language API on loopback, for the tests and the benchmark.

It speaks the REST protocol of `documents.moderateText` (v1 and v2) as Google documents it:
`POST /v{1,2}/documents:moderateText {"document": {"type", "content", ...}}` answered
`{"moderationCategories": [{"name", "confidence"[, "severity"]}], "languageCode", ...}`, errors as
`{"error": {"code", "message", "status"}}`. It serves HTTPS beside HTTP and checks the bearer JWT
of HTTPS calls against a service-account key it made, so the official client's credential path
runs against it too. It checks requests as the real API does (unknown fields, a missing document,
a bad token are 400/401) and records every one.

Programmable per test: `scores` (category -> confidence), `scores_for` (text -> such a dict, for
a verdict that depends on the text judged), `delay`, `fail(status, times)`, `garbage` (a body to
answer with 200).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

#: The categories the real API returns, in its order.
GOOGLE_CATEGORIES = (
    "Toxic", "Insult", "Profanity", "Derogatory", "Sexual", "Death, Harm & Tragedy", "Violent",
    "Firearms & Weapons", "Public Safety", "Health", "Religion & Belief", "Illicit Drugs", "War & Conflict",
    "Politics", "Finance", "Legal",
)
SERVICE_ACCOUNT = "gateway@fake-project.iam.gserviceaccount.com"
BASELINE = 0.05  # every category's confidence unless a test sets it
DOCUMENT_FIELDS = {"type", "content", "gcsContentUri", "language", "languageCode", "type_"}
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
          503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


@dataclass
class Seen:
    scheme: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


class FakeGoogle:
    """The fake API: `.url` (http), `.https_url`, `.requests`, and the knobs above."""

    CATEGORIES = GOOGLE_CATEGORIES

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.requests: list[Seen] = []
        self.scores: dict[str, float] = {}
        self.scores_for: Callable[[str], dict[str, float]] | None = None
        self.categories: list[dict[str, Any]] | None = None  # verbatim reply list, when set
        self.delay = 0.0
        self.garbage: str | None = None
        self._failures: list[int] = []
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._closing: asyncio.Event | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-google", daemon=True)
        self._thread.start()
        self.port, self.tls_port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    # -- knobs ------------------------------------------------------------------------------

    def reset(self) -> None:
        self.requests.clear()
        self.scores.clear()
        self.scores_for = None
        self.categories = None
        self.delay = 0.0
        self.garbage = None
        self._failures.clear()

    def fail(self, status: int = 503, times: int = 1) -> None:
        self._failures.extend([status] * times)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}"

    @property
    def ca_file(self) -> str:
        return str(self.workdir / "fake-google-ca.pem")

    def service_account_file(self) -> str:
        """A service-account key file for this fake (it accepts JWTs signed with this key)."""
        pem = self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()
        info = {
            "type": "service_account", "project_id": "fake-project", "private_key_id": "k1",
            "private_key": pem, "client_email": SERVICE_ACCOUNT,
            "client_id": "1", "token_uri": self.https_url + "/token",  # never called: self-signed JWTs
        }
        path = self.workdir / "service-account.json"
        path.write_text(json.dumps(info))
        return str(path)

    @property
    def texts(self) -> list[str]:
        return [r.body["document"]["content"] for r in self.requests if "moderateText" in r.path]

    # -- server -----------------------------------------------------------------------------

    async def _start(self) -> tuple[int, int]:
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_post(r"/{version:v1|v2}/documents:moderateText", self._moderate)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1)
        await self._runner.setup()
        ports = []
        for tls in (False, True):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            site = web.SockSite(self._runner, sock, ssl_context=self._tls_context() if tls else None)
            await site.start()
            ports.append(sock.getsockname()[1])
        return ports[0], ports[1]

    def _tls_context(self) -> ssl.SSLContext:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-google")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                .sign(key, hashes.SHA256()))
        cert_file, key_file = self.workdir / "fake-google-ca.pem", self.workdir / "fake-google-key.pem"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        return context

    def stop(self) -> None:
        async def close() -> None:
            assert self._closing is not None
            self._closing.set()
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    @staticmethod
    def _error(status: int, message: str) -> web.Response:
        return web.json_response({"error": {"code": status, "message": message, "status": STATUS.get(status, "UNKNOWN")}},
                                 status=status)

    def _verify_jwt(self, token: str) -> dict[str, Any] | None:
        """The claims of a JWT signed with the service account's key (RS256), else None."""
        try:
            header, payload, signature = token.split(".")
            self._key.public_key().verify(_b64url(signature), f"{header}.{payload}".encode(),
                                          padding.PKCS1v15(), hashes.SHA256())
            return json.loads(_b64url(payload))
        except Exception:
            return None

    def _authorised(self, request: web.Request) -> bool:
        """HTTPS calls carry a JWT signed with the service account's key (google-auth signs its own
        for a service account with scopes, which Google accepts: no token endpoint involved);
        plain HTTP is the keyless local endpoint."""
        if request.scheme == "http":
            return True
        auth = request.headers.get("Authorization", "")
        claims = self._verify_jwt(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
        return claims is not None and claims.get("iss") == SERVICE_ACCOUNT

    async def _pause(self, seconds: float) -> None:
        """Wait `seconds` (measured from the request's arrival), or until `stop`."""
        assert self._closing is not None
        try:
            await asyncio.wait_for(self._closing.wait(), max(0.0, seconds))
        except TimeoutError:
            pass

    async def _moderate(self, request: web.Request) -> web.StreamResponse:
        arrived = time.perf_counter()
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self.requests.append(Seen(request.scheme, request.path, dict(request.query), dict(request.headers), body))
        if self.delay:
            await self._pause(self.delay - (time.perf_counter() - arrived))
        if not self._authorised(request):
            return self._error(401, "Request had invalid authentication credentials.")
        if self._failures:
            status = self._failures.pop(0)
            return self._error(status, "The service is currently unavailable." if status == 503 else "Internal error.")
        if self.garbage is not None:
            return web.Response(text=self.garbage, content_type="application/json")
        problem = self._check(body, request.match_info["version"])
        if problem:
            return self._error(400, problem)
        if self.categories is not None:
            categories = self.categories
        else:
            scores = self.scores if self.scores_for is None else self.scores_for(body["document"]["content"])
            categories = [{"name": n, "confidence": scores.get(n, BASELINE)} for n in self.CATEGORIES]
        reply: dict[str, Any] = {"moderationCategories": categories}
        if request.match_info["version"] == "v2":
            if body.get("modelVersion") in (2, "MODEL_VERSION_2"):
                reply["moderationCategories"] = [{**c, "severity": c["confidence"] / 2} for c in categories]
            reply.update(languageCode="en", languageSupported=True)
        return web.json_response(reply)

    @staticmethod
    def _check(body: Any, version: str) -> str | None:
        """What the real API refuses with 400 INVALID_ARGUMENT."""
        if not isinstance(body, dict):
            return "Invalid JSON payload received."
        allowed = {"document", "modelVersion"} if version == "v2" else {"document"}
        unknown = set(body) - allowed
        if unknown:
            return f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}": Cannot find field.'
        document = body.get("document")
        if not isinstance(document, dict) or set(document) - DOCUMENT_FIELDS:
            return "Invalid JSON payload received. Bad document."
        if document.get("type") not in (1, 2, "PLAIN_TEXT", "HTML"):
            return "The document type is not specified or not supported."
        if not isinstance(document.get("content"), str) or not document["content"].strip():
            return "The document is empty."
        return None


@pytest.fixture(scope="session")
def fake_google_server(tmp_path_factory: pytest.TempPathFactory):
    server = FakeGoogle(tmp_path_factory.mktemp("fake-google"))
    yield server
    server.stop()


@pytest.fixture
def fake_google(fake_google_server: FakeGoogle) -> FakeGoogle:
    """The shared fake, reset for this test."""
    fake_google_server.reset()
    yield fake_google_server
    fake_google_server.reset()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
