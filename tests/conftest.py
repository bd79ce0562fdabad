"""Shared fixtures of the core's tests: a Redis to test against, and the browser.

- `redis_url`: a reachable Redis (`GATEWAY_TEST_REDIS_URL`, default redis://127.0.0.1:6379/0).
  Unreachable, it fails the test in CI (`CI` set, or `GATEWAY_TEST_REQUIRE_REDIS=1`) and skips it
  elsewhere, saying why: CI must never pass by skipping what it was meant to check.

Browser fixtures: headless Chromium (Debian's package) driven by Playwright, kept on loopback.

- `browser`: one headless Chromium per test module (its docstring says why not per session), at
  /usr/bin/chromium or `GATEWAY_TEST_CHROMIUM`. `scripts/test.sh` installs it (`apt-get install
  chromium`); Playwright's own browser download is never used. Missing, it fails the tests in CI
  (`CI` set, or `GATEWAY_TEST_REQUIRE_BROWSER=1`) and skips them elsewhere, saying why.
- `browser_page`: a fresh page (its own context) at a desktop viewport; parametrize it indirectly
  with "phone" for a phone (`@pytest.mark.parametrize("browser_page", ["phone"], indirect=True)`).
  Every request it makes is recorded in `browser_requests`; one to a host that is not loopback is
  aborted and fails the test, and so does an uncaught JavaScript error.
- `screenshot(page, label="", full_page=True)`: saves a PNG under `test-artifacts/` (ignored by git;
  `GATEWAY_TEST_ARTIFACTS` moves it) named after the test, prints the path and returns it.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import pytest

pytest_plugins = ["tests.ui_kit", "tests.peers.stalling_proxy"]  # the admin UI fixtures; proxy_to
CHROMIUM = os.environ.get("GATEWAY_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("GATEWAY_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))
# Reduced motion: pages that honour it scroll at once, so screenshots never catch an animation.
VIEWPORTS: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1280, "height": 800}, "reduced_motion": "reduce"},
    "phone": {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True,
              "has_touch": True, "reduced_motion": "reduce"},
}
LOCAL_SCHEMES = ("data", "blob", "about", "chrome-error")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _browser_required() -> bool:
    return _in_ci() or os.environ.get("GATEWAY_TEST_REQUIRE_BROWSER") == "1"


@pytest.fixture
def redis_url() -> str:
    """A reachable Redis, else a failure in CI and a skip elsewhere (see the module docstring)."""
    import redis

    url = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        message = f"Redis at {url} is not reachable: {exc}"
        if _in_ci() or os.environ.get("GATEWAY_TEST_REQUIRE_REDIS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    finally:
        client.close()
    return url


def is_loopback_url(url: str) -> bool:
    """True for URLs that stay on this machine (127.0.0.0/8, ::1, localhost, data:, blob:)."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for one test module.

    Not for the whole session: while Playwright's sync API is open, the main thread has an event loop
    marked as running, and async tests or `asyncio.run` there fail ("Cannot run the event loop while
    another loop is running"). So keep async tests out of modules that use the browser, and put their
    browser tests last if other tests there call `asyncio.run`.
    """
    if not os.access(CHROMIUM, os.X_OK):
        message = (f"Chromium not found at {CHROMIUM}: run scripts/test.sh, which installs Debian's chromium "
                   "package (as root: apt-get update && apt-get install -y chromium)")
        if _browser_required():
            pytest.fail(message)
        pytest.skip(message)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # a venv synced without the dev group
        pytest.fail("playwright is not installed: run `uv sync --all-packages --all-groups` (or scripts/test.sh)")
    with sync_playwright() as p:
        # root needs --no-sandbox; never `playwright install` (it downloads browsers from outside).
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_requests() -> list[str]:
    """The URLs of every request `browser_page` made, in order."""
    return []


@pytest.fixture
def browser_page(request: pytest.FixtureRequest, browser: Any, browser_requests: list[str]) -> Iterator[Any]:
    """A fresh page that may only talk to loopback; see the module docstring."""
    kind = getattr(request, "param", "desktop")
    context = browser.new_context(**VIEWPORTS[kind])
    outside: list[str] = []
    errors: list[str] = []

    def watch(req: Any) -> None:
        browser_requests.append(req.url)
        if not is_loopback_url(req.url):
            outside.append(req.url)

    def guard(route: Any) -> None:
        # Nothing leaves the machine, and the page does not wait for a network that is not there.
        if is_loopback_url(route.request.url):
            route.continue_()
        else:
            route.abort("blockedbyclient")

    context.on("request", watch)
    context.route("**/*", guard)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(10_000)
    try:
        yield page
    finally:
        context.close()
    if outside:
        pytest.fail("the page made requests that leave loopback: " + ", ".join(outside), pytrace=False)
    if errors:
        pytest.fail("uncaught JavaScript error(s) on the page: " + "; ".join(errors), pytrace=False)


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[..., Path]:
    """`screenshot(page, label="")` -> the PNG's path under test-artifacts/, named after the test."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid.split("::", 1)[-1]).strip("_")
    module = Path(request.node.path).stem

    def take(page: Any, label: str = "", full_page: bool = True) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{module}.{name}{'-' + label if label else ''}.png"
        page.screenshot(path=str(path), full_page=full_page)
        print(f"screenshot: {path}")
        return path

    return take


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`GATEWAY_TEST_BUCKETS=0,1,2/5` keeps the test files of buckets 0, 1 and 2 out of 5 (every
    collected file, in sorted order, dealt round-robin): scripts/test.sh runs the suite as two
    processes side by side this way. Unset: every test."""
    spec = os.environ.get("GATEWAY_TEST_BUCKETS")
    if not spec:
        return
    wanted, _, count = spec.partition("/")
    buckets, n = {int(b) for b in wanted.split(",")}, int(count)
    files = sorted({str(item.path) for item in items})
    bucket_of = {path: i % n for i, path in enumerate(files)}
    keep = [item for item in items if bucket_of[str(item.path)] in buckets]
    if len(keep) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if bucket_of[str(item.path)] not in buckets])
        items[:] = keep
