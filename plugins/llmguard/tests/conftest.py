"""A fake LLM Guard API on loopback, held to LLM Guard's published OpenAPI document.

It speaks what LLM Guard API speaks (llm_guard_api/app/app.py and its openapi.json): `POST
/analyze/prompt {"prompt", "scanners_suppress"?}` -> `{"sanitized_prompt", "is_valid",
"scanners"}`, `POST /analyze/output {"prompt", "output", "scanners_suppress"?}` ->
`{"sanitized_output", "is_valid", "scanners"}`, bearer auth when a token is set (403 `Not
authenticated` without credentials, 401 `Invalid API key` with wrong ones), errors as `{"message",
"details"}`, 422 `Validation failed` for a body off the schema.

Every request it receives and every reply it sends is checked against `llm_guard_openapi.json`
(the analyze part of the published document); each mismatch is recorded in `violations`, and the
`llm_guard` fixture fails the test on any.

Its scanners, made to behave like LLM Guard's:
- PromptInjection: a prompt containing `ignore all previous instructions` is invalid (score 1.0).
- Anonymize: e-mail addresses become `[REDACTED_EMAIL_ADDRESS_<n>]`, and the prompt is then
  invalid, as LLM Guard's Anonymize scanner marks every prompt it changed.
- `replacements`: a sanitizer that changes text and still passes (a deployment's own scanner).
- Toxicity (output): a reply containing `you are an idiot` is invalid.
Otherwise the verdict is the seed's: `{"sanitized_prompt": <prompt>, "is_valid": true, "scanners": {"Regex": 0.0}}`.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

DOCUMENT = Path(__file__).with_name("llm_guard_openapi.json")
INJECTION = "ignore all previous instructions"
TOXIC = "you are an idiot"
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


class Contract:
    """LLM Guard API's contract as the published OpenAPI document states it. Besides what JSON
    Schema checks, a request field the document does not name is a mismatch: FastAPI would ignore
    it silently, and the plugin would believe it had asked for something it did not get."""

    def __init__(self, path: Path = DOCUMENT) -> None:
        self.doc = json.loads(path.read_text())

    def _check(self, schema: dict[str, Any], instance: Any) -> list[str]:
        # The document's components sit beside the schema, so `#/components/...` references resolve.
        validator = jsonschema.Draft202012Validator({**schema, "components": self.doc["components"]})
        return [f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}" for e in validator.iter_errors(instance)]

    def operation(self, path: str) -> dict[str, Any]:
        return self.doc["paths"][path]["post"]

    def request_errors(self, path: str, body: Any) -> list[str]:
        if path not in self.doc["paths"]:
            return [f"POST {path} is not in the document"]
        schema = self.operation(path)["requestBody"]["content"]["application/json"]["schema"]
        errors = self._check(schema, body)
        if isinstance(body, dict):
            name = schema["$ref"].rsplit("/", 1)[1]
            known = self.doc["components"]["schemas"][name]["properties"]
            errors += [f"{key}: not a field of {name}" for key in body if key not in known]
        return errors

    def response_errors(self, path: str, status: int, body: Any) -> list[str]:
        if status == 200:
            schema = self.operation(path)["responses"]["200"]["content"]["application/json"]["schema"]
        else:  # the server's own error body (app.py's exception handlers)
            schema = self.doc["x-error-body"]["schema"]
        return self._check(schema, body)

    def needs_bearer(self, path: str) -> bool:
        return {"HTTPBearer": []} in self.operation(path).get("security", [])


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    json: Any


class FakeLLMGuard:
    def __init__(self) -> None:
        self.contract = Contract()
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.reset()

    def reset(self) -> None:
        self.token: str | None = None
        self.delay = 0.0
        self.replacements: dict[str, str] = {}
        self.failures: deque[tuple[str | None, int, bytes, str]] = deque()
        self.calls.clear()

    def fail_next(self, status: int = 500, body: bytes | str | None = None, content_type: str = "application/json",
                  times: int = 1, path: str | None = None) -> None:
        """The next calls (to `path`, or to any path) answer this instead; off the contract on
        purpose, so these replies are not checked."""
        if body is None:
            body = json.dumps({"message": "Internal Server Error", "details": None})
        for _ in range(times):
            self.failures.append((path, status, body.encode() if isinstance(body, str) else body, content_type))

    def prompts(self) -> list[str]:
        return [c.json["prompt"] for c in self.calls if c.path == "/analyze/prompt"]

    def outputs(self) -> list[dict[str, Any]]:
        return [c.json for c in self.calls if c.path == "/analyze/output"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- the scanners --------------------------------------------------------------------------
    def _analyze_prompt(self, prompt: str) -> dict[str, Any]:
        scanners: dict[str, float] = {"Regex": 0.0}
        valid = True
        if INJECTION in prompt.lower():
            scanners["PromptInjection"] = 1.0
            valid = False
        sanitized, found = prompt, 0
        for address in dict.fromkeys(EMAIL.findall(prompt)):
            found += 1
            sanitized = sanitized.replace(address, f"[REDACTED_EMAIL_ADDRESS_{found}]")
        if found:
            scanners["Anonymize"] = 1.0
            valid = False
        for old, new in self.replacements.items():
            sanitized = sanitized.replace(old, new)
        return {"sanitized_prompt": sanitized, "is_valid": valid, "scanners": scanners}

    def _analyze_output(self, output: str) -> dict[str, Any]:
        toxic = TOXIC in output.lower()
        return {"sanitized_output": output, "is_valid": not toxic, "scanners": {"Toxicity": 1.0 if toxic else -1.0}}

    # -- the server ----------------------------------------------------------------------------
    def _reply(self, path: str, status: int, body: dict[str, Any]) -> Any:
        from aiohttp import web

        problems = self.contract.response_errors(path, status, body)
        self.violations += [f"reply from {path} ({status}): {p}" for p in problems]
        return web.json_response(body, status=status)

    def _error(self, path: str, status: int, message: str, details: Any = None) -> Any:
        return self._reply(path, status, {"message": message, "details": details})

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        path = request.path
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self.calls.append(Call(path, dict(request.headers), body))
        # Every request is held to the document, whatever this fake was told to answer.
        problems = self.contract.request_errors(path, body)
        if request.content_type != "application/json":  # the document's only request media type
            problems.append(f"content-type {request.content_type!r}, not application/json")
        self.violations += [f"request to {path}: {p}" for p in problems]
        if self.delay:
            try:  # ends early when the server stops
                await asyncio.wait_for(self._closing.wait(), self.delay)
            except TimeoutError:
                pass
        for failure in self.failures:
            if failure[0] in (None, path):
                self.failures.remove(failure)
                _, status, payload, content_type = failure
                return web.Response(status=status, body=payload, content_type=content_type)
        if self.token is not None and self.contract.needs_bearer(path):
            scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not credentials:
                return self._error(path, 403, "Not authenticated")
            if credentials != self.token:
                return self._error(path, 401, "Invalid API key")
        if problems:
            details = [{"loc": ["body"], "msg": p, "type": "value_error"} for p in problems]
            return self._error(path, 422, "Validation failed", details)
        if path == "/analyze/prompt":
            return self._reply(path, 200, self._analyze_prompt(body["prompt"]))
        return self._reply(path, 200, self._analyze_output(body["output"]))

    def start(self) -> "FakeLLMGuard":
        from aiohttp import web

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-llm-guard", daemon=True)
        self._thread.start()
        app = web.Application()
        app.router.add_post("/analyze/prompt", self._handle)
        app.router.add_post("/analyze/output", self._handle)

        async def boot() -> int:
            self._closing = asyncio.Event()
            # handler_cancellation: a client that gave up (a timeout test) ends its handler.
            self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            return self._runner.addresses[0][1]

        self.port = asyncio.run_coroutine_threadsafe(boot(), self._loop).result(10)
        return self

    def stop(self) -> None:
        async def down() -> None:
            self._closing.set()
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(down(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture(scope="session")
def llm_guard_server():
    server = FakeLLMGuard().start()
    yield server
    server.stop()


@pytest.fixture
def llm_guard(llm_guard_server: FakeLLMGuard):
    """The fake LLM Guard API, reset; the test fails if anything sent or answered was off the contract."""
    llm_guard_server.reset()
    llm_guard_server.violations.clear()
    yield llm_guard_server
    violations, llm_guard_server.violations = llm_guard_server.violations, []
    assert violations == [], "off LLM Guard's published contract:\n" + "\n".join(violations)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
