"""What the admin UI tests share: a gateway with a priced model, logging in through the page or
through the API, and a call made with the official openai SDK.

Each UI test module takes `ui_gw` (a gateway for the test) and `browser_page` (tests/conftest.py);
screenshots go to test-artifacts/ with the `screenshot` fixture.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import httpx
import pytest

MASTER_KEY = "sk-1234"
ADMIN = {"Authorization": f"Bearer {MASTER_KEY}"}
PRICE_IN, PRICE_OUT = 1e-06, 2e-06


def ui_config(upstream_url: str, **general: Any) -> dict[str, Any]:
    return {
        "model_list": [{"model_name": "gpt-test", "litellm_params": {
            "model": "openai/upstream-model", "api_base": upstream_url, "api_key": "sk-upstream",
            "input_cost_per_token": PRICE_IN, "output_cost_per_token": PRICE_OUT}}],
        "router_settings": {"num_retries": 0, "cooldown_time": 0},
        "general_settings": {"master_key": MASTER_KEY, "spend_flush_interval_s": 0.05, **general},
        "litellm_settings": {"store_audit_logs": True},
    }


@pytest.fixture
def ui_gw(gateway_server, fake_upstream) -> Any:
    return gateway_server(ui_config(fake_upstream.url))


def api(gw: Any, method: str, path: str, **kw: Any) -> Any:
    """A management call with the master key; asserts a 200 and returns the JSON."""
    r = httpx.request(method, gw.url + path, headers=ADMIN, timeout=10, **kw)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def session_client() -> Iterator[Callable[..., tuple[httpx.Client, str]]]:
    """`session_client(gw, key=...)` (or `username=..., password=...`): an httpx client logged in to
    the UI, and its CSRF token. Closed at the end of the test."""
    clients: list[httpx.Client] = []

    def make(gw: Any, **login: Any) -> tuple[httpx.Client, str]:
        client = httpx.Client(base_url=gw.url, timeout=10)
        clients.append(client)
        r = client.post("/ui/login", json=login or {"key": MASTER_KEY})
        assert r.status_code == 200, r.text
        return client, r.json()["csrf_token"]

    yield make
    for client in clients:
        client.close()


def login(page: Any, gw: Any, key: str = MASTER_KEY, where: str = "") -> None:
    """Log in through the page with a key, then open `#/where` when given."""
    page.goto(gw.url + "/ui/")
    page.get_by_label("Key").fill(key)
    page.get_by_role("button", name="Log in", exact=True).click()
    page.get_by_role("button", name="Log out").wait_for()
    if where:
        page.goto(f"{gw.url}/ui/#/{where}")
        page.locator(f'[data-page="{where}"].page').wait_for()


def chat(gw: Any, key: str, content: str = "hi", **kw: Any) -> Any:
    """One chat call with the official openai SDK (its client closed when the gateway stops)."""
    return gw.client(key).chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": content}], **kw)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 15) -> Any:
    """`check()` once it is truthy (spend and audit rows are written in the background)."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return found


def money(value: float) -> str:
    """As the page writes an amount (dom.js `money`): at least 2 and at most 6 decimals."""
    text = f"{value:,.6f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"
