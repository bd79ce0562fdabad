"""The public model hub: its JSON, who may read it, and its page in a real browser (Chromium).

Screenshots land in test-artifacts/ (see tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import io

import httpx
import pytest
from playwright.sync_api import expect

ADMIN = {"Authorization": "Bearer sk-1234"}
DOWN = "http://127.0.0.1:9/v1"  # nothing listens there: these deployments are never called

MODELS = [
    # One group, two providers; the Azure deployment overrides the input price.
    {"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o", "api_base": DOWN}},
    {"model_name": "gpt-4o", "litellm_params": {"model": "azure/gpt-4o", "api_base": DOWN, "input_cost_per_token": 5e-06}},
    # A dated name priced by its family in the table.
    {"model_name": "claude-sonnet", "litellm_params": {"model": "anthropic/claude-3-5-sonnet-20241022", "api_base": DOWN}},
    {"model_name": "embedder", "litellm_params": {"model": "text-embedding-3-small", "api_base": DOWN}},
    {"model_name": "groq-llama", "litellm_params": {"model": "groq/llama-3.3-70b-versatile", "api_base": DOWN}},
    # Limits from what model_info says; priced at 0 by the table's `ollama*/*` row.
    {"model_name": "local-llama", "litellm_params": {"model": "ollama_chat/llama3.1", "api_base": "http://127.0.0.1:9"},
     "model_info": {"mode": "chat", "max_input_tokens": 131072, "max_tokens": 2048,
                    "supports_function_calling": True, "supports_vision": False, "supports_pdf_input": True}},
    # Not in the table, priced by the deployment.
    {"model_name": "in-house", "litellm_params": {"model": "openai_like/house-7b", "api_base": DOWN,
                                                  "input_cost_per_token": 1e-07, "output_cost_per_token": 2e-07}},
    # Served in-process: the page's snippet is run against it.
    {"model_name": "fake-chat", "litellm_params": {"model": "fake/echo-1"}},
]


def hub(gw, **headers):
    return httpx.get(gw.url + "/public/model_hub", headers=headers)


def test_hub_lists_every_group_with_limits_prices_and_features(gateway_server):
    gw = gateway_server({"model_list": MODELS, "general_settings": {"enable_public_model_hub": True}})
    r = hub(gw)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    groups = {e["model_group"]: e for e in r.json()}
    assert list(groups) == ["gpt-4o", "claude-sonnet", "embedder", "groq-llama", "local-llama", "in-house", "fake-chat"]
    assert groups["gpt-4o"] == {
        "model_group": "gpt-4o", "providers": ["openai", "azure"], "mode": "chat",
        "max_input_tokens": 128000, "max_output_tokens": 16384,
        "input_cost_per_token": 5e-06, "output_cost_per_token": 1e-05,  # the highest of the two deployments
        "input_cost_per_million_tokens": 5.0, "output_cost_per_million_tokens": 10.0,
        "supports_streaming": True, "supports_function_calling": True, "supports_vision": True,
    }
    claude = groups["claude-sonnet"]
    assert (claude["providers"], claude["max_input_tokens"], claude["max_output_tokens"]) == (["anthropic"], 200000, 8192)
    assert (claude["input_cost_per_million_tokens"], claude["output_cost_per_million_tokens"]) == (3.0, 15.0)
    embedder = groups["embedder"]
    assert (embedder["mode"], embedder["max_input_tokens"], embedder["supports_streaming"]) == ("embedding", 8191, False)
    assert embedder["input_cost_per_million_tokens"] == 0.02
    assert groups["groq-llama"]["providers"] == ["groq"] and groups["groq-llama"]["max_input_tokens"] == 128000
    assert groups["local-llama"] == {
        "model_group": "local-llama", "providers": ["ollama_chat"], "mode": "chat",
        "max_input_tokens": 131072, "max_output_tokens": 2048,
        # A model on your own machine costs nothing: the table prices `ollama*/*` at 0.
        "input_cost_per_token": 0, "output_cost_per_token": 0,
        "input_cost_per_million_tokens": 0, "output_cost_per_million_tokens": 0,
        "supports_streaming": True, "supports_function_calling": True, "supports_vision": False,
        "supports_pdf_input": True,
    }
    house = groups["in-house"]
    assert (house["mode"], house["max_input_tokens"], house["supports_vision"]) == ("chat", None, None)
    assert (house["input_cost_per_million_tokens"], house["output_cost_per_million_tokens"]) == (0.1, 0.2)
    # The page is served from the same list, self-contained, with no key.
    page = httpx.get(gw.url + "/model_hub")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"].startswith("default-src 'none';")
    assert "<title>Models · gateway</title>" in page.text


def test_hub_is_admin_only_unless_enabled(gateway_server):
    # Listing the public route group does not publish the hub: only enable_public_model_hub does.
    gw = gateway_server({"model_list": MODELS[:1], "general_settings": {"public_routes": ["LiteLLMRoutes.public_routes"]}})
    for path in ("/public/model_hub", "/model_hub"):
        r = httpx.get(gw.url + path)
        assert r.status_code == 401, path
        assert r.json()["error"]["message"] == "Authentication Error, No api key passed in."
    key = httpx.post(gw.url + "/key/generate", headers=ADMIN, json={}).json()["key"]
    r = hub(gw, Authorization=f"Bearer {key}")
    assert r.status_code == 403
    assert r.json()["error"]["message"] == "Only proxy admin can access this route. Route=/public/model_hub"
    r = hub(gw, **ADMIN)
    assert r.status_code == 200 and [e["model_group"] for e in r.json()] == ["gpt-4o"]
    assert httpx.get(gw.url + "/model_hub", headers=ADMIN).status_code == 200


def test_page_escapes_what_the_config_says(gateway_server):
    name = '</script><script>alert("x")</script>'
    gw = gateway_server({"model_list": [{"model_name": name, "litellm_params": {"model": "fake/echo-1"}}],
                         "general_settings": {"enable_public_model_hub": True}},
                        env={"DOCS_TITLE": "<b>Acme</b> & Co"})
    page = httpx.get(gw.url + "/model_hub").text
    assert name not in page and "<b>Acme</b>" not in page
    assert "<title>Models · &lt;b&gt;Acme&lt;/b&gt; &amp; Co</title>" in page
    assert hub(gw).json()[0]["model_group"] == name


# --- In Chromium -------------------------------------------------------------------------------

def visible_models(page) -> list[str]:
    return page.locator("#models tbody tr:visible td.name").all_inner_texts()


def run_snippet(code: str) -> str:
    """Run the page's snippet as a user would paste it, and return what it prints."""
    namespace: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<snippet>", "exec"), namespace)
    namespace["client"].close()
    return out.getvalue()


@pytest.fixture
def hub_server(gateway_server):
    return gateway_server({"model_list": MODELS, "general_settings": {"enable_public_model_hub": True}},
                          env={"DOCS_TITLE": "TotalGPT", "DOCS_DESCRIPTION": "Sample Company Description"})


def test_page_on_a_desktop_filters_and_gives_a_working_snippet(hub_server, browser_page, browser_requests, screenshot):
    page = browser_page
    page.goto(hub_server.url + "/model_hub")
    assert page.title() == "Models · TotalGPT"
    assert page.locator(".brand").inner_text() == "TotalGPT"
    assert page.locator(".tagline").inner_text() == "Sample Company Description"
    assert len(visible_models(page)) == len(MODELS) - 1  # gpt-4o is one group of two deployments
    row = page.locator("tr[data-model='gpt-4o']")
    assert row.locator("td").nth(1).locator(".chip").all_inner_texts() == ["openai", "azure"]
    assert [row.locator("td").nth(i).inner_text() for i in (3, 4, 5, 6)] == ["128K", "16K", "$5.00", "$10.00"]
    assert row.locator(".feature").all_inner_texts() == ["streaming", "tools", "vision"]
    assert page.locator("tr[data-model='embedder'] td").nth(5).inner_text() == "$0.02"
    assert page.locator("tr[data-model='local-llama'] td").nth(5).inner_text() == "$0.00"  # a local model is free
    assert page.locator("tr[data-model='in-house'] td").nth(5).inner_text() == "$0.10"
    wrap = page.locator(".table-wrap")  # the whole table fits: no sideways scrolling
    assert wrap.evaluate("w => w.scrollWidth <= w.clientWidth")
    screenshot(page, "all")

    page.fill("#search", "llama")
    assert visible_models(page) == ["groq-llama", "local-llama"]
    assert page.locator("#count").inner_text() == "Showing 2 of 7 models"
    page.fill("#search", "anthropic")  # providers are searched too
    assert visible_models(page) == ["claude-sonnet"]
    page.fill("#search", "no such model")
    assert visible_models(page) == [] and page.locator("#empty").is_visible()
    page.fill("#search", "")
    page.select_option("#provider", "azure")
    assert visible_models(page) == ["gpt-4o"]
    page.select_option("#provider", "")
    page.select_option("#mode", "embedding")
    assert visible_models(page) == ["embedder"]
    page.select_option("#mode", "")

    # The snippet: the first model until another is picked, this gateway's own URL, and it works.
    assert page.locator("#snippet-model").inner_text() == "gpt-4o"
    page.locator("tr[data-model='embedder'] button").click()
    assert "client.embeddings.create(" in page.locator("#snippet").inner_text()
    page.locator("tr[data-model='fake-chat'] button").click()
    code = page.locator("#snippet").inner_text()
    assert f'base_url="{hub_server.url}/v1"' in code and 'model="fake-chat"' in code
    screenshot(page, "snippet", full_page=False)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.click("#copy")
    expect(page.locator("#copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == code
    printed = run_snippet(code.replace('api_key="sk-..."', 'api_key="sk-1234"'))
    assert printed == "This is a fake reply from echo-1 to: Hello!\n"
    assert all(url.startswith(hub_server.url) for url in browser_requests)


@pytest.mark.parametrize("browser_page", ["phone"], indirect=True)
def test_page_on_a_phone_is_one_readable_column(hub_server, browser_page, screenshot):
    page = browser_page
    page.goto(hub_server.url + "/model_hub#embedder")  # a link may name the model to show
    assert page.locator("#snippet-model").inner_text() == "embedder"
    screenshot(page, "top", full_page=False)
    # Nothing wider than the screen but the snippet, which scrolls inside its own box.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert not page.locator("thead").is_visible()
    card = page.locator("tr[data-model='claude-sonnet']")
    context = card.locator("td[data-label='Context']")
    assert context.inner_text() == "200K"
    assert context.evaluate("td => getComputedStyle(td, '::before').content") == '"Context"'  # labelled on the card
    box = card.bounding_box()
    assert box is not None and box["width"] <= 390
    page.fill("#search", "gpt")
    assert visible_models(page) == ["gpt-4o"]
    page.fill("#search", "")
    screenshot(page, "all")
    card.locator("button").tap()  # the card's Snippet button brings the snippet into view
    expect(page.locator("#usage")).to_be_in_viewport()
    assert page.locator("#snippet-model").inner_text() == "claude-sonnet"
    screenshot(page, "snippet", full_page=False)
