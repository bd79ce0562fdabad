"""/openapi.json, Swagger UI and ReDoc as users see them (REFERENCE.md section 15).

The document is valid OpenAPI 3.1 and lists every route the app serves (plugins' included); the
replies the gateway really sends match the shapes it documents; the DOCS_* / NO_* variables brand,
filter, move and turn off the pages; and both pages render in Chromium from the gateway's own
assets, with no request leaving loopback.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate as validate_spec

from gateway.core.route_groups import OPENAI
from gateway.testing import MASTER_KEY

ADMIN = {"Authorization": f"Bearer {MASTER_KEY}"}
HI = [{"role": "user", "content": "hi"}]
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def models(upstream_url: str) -> list[dict[str, Any]]:
    params = {"api_base": upstream_url, "api_key": "sk-upstream"}
    return [{"model_name": "gpt-test", "litellm_params": {"model": "openai/gpt-test", **params}},
            {"model_name": "embed-test", "litellm_params": {"model": "openai/embed-test", **params}}]


def template(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]*:)?([^<>]+)>", r"{\1}", rule)


def spec_of(server: Any) -> dict[str, Any]:
    r = httpx.get(server.url + "/openapi.json")  # public: no key
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return r.json()


class Shapes:
    """Checks a reply against the schema the document gives for it (JSON Schema 2020-12)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    def schema(self, path: str, method: str, status: str = "200", media: str = "application/json") -> dict:
        response = self.spec["paths"][path][method]["responses"][status]
        if "$ref" in response:
            response = self.spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
        return response["content"][media]["schema"]

    def check(self, reply: Any, path: str, method: str, status: str = "200",
              media: str = "application/json") -> None:
        schema = {**self.schema(path, method, status, media), "components": self.spec["components"]}
        jsonschema.Draft202012Validator(schema).validate(reply)


@pytest.fixture
def full(gateway_server, fake_upstream):
    """A gateway with a plugin that adds routes (probe_recorder) and the audit store on."""
    return gateway_server({"model_list": models(fake_upstream.url),
                           "litellm_settings": {"callbacks": ["probe_recorder"], "store_audit_logs": True}})


# -- the document ------------------------------------------------------------------------------
def test_document_is_valid_and_lists_every_route(full, caplog):
    spec = spec_of(full)
    assert "two different models" not in caplog.text  # each schema name means one model
    validate_spec(spec)  # OpenAPI 3.1, unique operationIds, resolvable $refs
    assert spec["openapi"].startswith("3.1")
    missing = []
    for rule in full.app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if method.lower() not in spec["paths"].get(template(rule.rule), {}):
                missing.append(f"{method} {rule.rule}")
    assert not missing, missing
    assert len(spec["paths"]) > 60
    # A plugin's routes are there, validated body and all, under the plugin's blueprint.
    echo = spec["paths"]["/probe/echo"]["post"]
    assert echo["tags"] == ["probe_recorder"]
    assert echo["requestBody"]["content"]["application/json"]["schema"]["required"] == ["text"]
    assert "/probe/recorded" in spec["paths"]


def test_llm_routes_have_the_openai_shapes(full):
    spec = spec_of(full)
    schemas = spec["components"]["schemas"]
    chat = spec["paths"]["/v1/chat/completions"]["post"]
    body = chat["requestBody"]["content"]["application/json"]["schema"]
    assert {"model", "messages"} <= set(body["required"])
    assert body["additionalProperties"] is True  # any OpenAI parameter passes through
    assert {"temperature", "tools", "stream", "stream_options", "user", "metadata"} <= set(body["properties"])
    ok = chat["responses"]["200"]["content"]
    assert ok["application/json"]["schema"]["properties"]["object"]["const"] == "chat.completion"
    assert ok["text/event-stream"]["schema"] == {"$ref": "#/components/schemas/ChatCompletionChunk"}
    assert schemas["ChatCompletionChunk"]["properties"]["object"]["const"] == "chat.completion.chunk"
    for path, obj in (("/v1/completions", "text_completion"), ("/v1/embeddings", "list"), ("/v1/models", "list")):
        method = "get" if path.endswith("models") else "post"
        reply = spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
        assert reply["properties"]["object"]["const"] == obj, path
    # Every operation documents the error envelope; the public ones need no key.
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            assert op["responses"]["4XX"] == {"$ref": "#/components/responses/Error"}, (method, path)
    assert set(schemas["ErrorBody"]["required"]) == {"message", "type", "code"}
    assert spec["paths"]["/health/liveliness"]["get"]["security"] == []
    assert spec["paths"]["/openapi.json"]["get"]["security"] == []
    assert "security" not in spec["paths"]["/key/generate"]["post"]  # the document-wide bearer / api-key
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "api-key", "x-api-key"}


@pytest.mark.db
def test_replies_match_the_documented_shapes(full):
    """What the gateway really sends, checked against what the document says it sends."""
    shapes = Shapes(spec_of(full))
    with httpx.Client(base_url=full.url, headers=ADMIN, timeout=30) as http:
        shapes.check(http.post("/v1/chat/completions", json={"model": "gpt-test", "messages": HI}).json(),
                     "/v1/chat/completions", "post")
        with http.stream("POST", "/v1/chat/completions",
                         json={"model": "gpt-test", "messages": HI, "stream": True}) as r:
            events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]" and len(events) > 2
        for event in events[:-1]:
            shapes.check(json.loads(event), "/v1/chat/completions", "post", media="text/event-stream")
        shapes.check(http.post("/v1/completions", json={"model": "gpt-test", "prompt": "hi"}).json(),
                     "/v1/completions", "post")
        shapes.check(http.post("/v1/embeddings", json={"model": "embed-test", "input": "hi"}).json(),
                     "/v1/embeddings", "post")
        shapes.check(http.get("/v1/models").json(), "/v1/models", "get")
        shapes.check(http.get("/v1/models/gpt-test").json(), "/v1/models/{model}", "get")

        team = http.post("/team/new", json={"team_alias": "t", "members_with_roles": [{"user_id": "u1"}]}).json()
        shapes.check(team, "/team/new", "post")
        user = http.post("/user/new", json={"user_id": "u1", "user_role": "internal_user"}).json()
        shapes.check(user, "/user/new", "post")
        key = http.post("/key/generate", json={"team_id": team["team_id"], "user_id": "u1", "duration": "1h",
                                               "metadata": {"tags": ["a"]}, "max_budget": 10}).json()
        shapes.check(key, "/key/generate", "post")
        shapes.check(http.post("/key/update", json={"key": key["key"], "tpm_limit": 5}).json(), "/key/update", "post")
        shapes.check(http.get("/key/info", params={"key": key["key"]}).json(), "/key/info", "get")
        for full_object in ("false", "true"):
            shapes.check(http.get("/key/list", params={"return_full_object": full_object}).json(), "/key/list", "get")
        shapes.check(http.get("/team/info", params={"team_id": team["team_id"]}).json(), "/team/info", "get")
        shapes.check(http.get("/team/list").json(), "/team/list", "get")
        shapes.check(http.get("/user/info", params={"user_id": "u1"}).json(), "/user/info", "get")
        shapes.check(http.get("/user/list").json(), "/user/list", "get")
        shapes.check(http.post("/customer/new", json={"user_id": "end-1", "max_budget": 1}).json(),
                     "/customer/new", "post")
        shapes.check(http.post("/customer/block", json={"user_ids": ["end-1"]}).json(), "/customer/block", "post")
        shapes.check(http.get("/customer/list").json(), "/customer/list", "get")
        shapes.check(http.get("/customer/info", params={"end_user_id": "end-1"}).json(), "/customer/info", "get")
        shapes.check(http.post("/customer/unblock", json={"user_ids": ["end-1"]}).json(), "/customer/unblock", "post")
        shapes.check(http.post("/team/block", json={"team_id": team["team_id"]}).json(), "/team/block", "post")
        shapes.check(http.post("/team/unblock", json={"team_id": team["team_id"]}).json(), "/team/unblock", "post")
        shapes.check(http.post("/team/member_add", json={"team_id": team["team_id"], "member": {"user_id": "u2"}})
                     .json(), "/team/member_add", "post")
        shapes.check(http.post("/user/update", json={"user_id": "u1", "max_budget": 5}).json(), "/user/update", "post")
        spare = http.post("/key/generate", json={}).json()["key"]
        shapes.check(http.post("/key/block", json={"key": spare}).json(), "/key/block", "post")
        spare = http.post("/key/regenerate", json={"key": spare}).json()
        shapes.check(spare, "/key/regenerate", "post")
        shapes.check(http.post("/key/delete", json={"keys": [spare["key"]]}).json(), "/key/delete", "post")
        user_key = {"Authorization": f"Bearer {key['key']}"}
        assert http.post("/v1/chat/completions", headers=user_key, json={
            "model": "gpt-test", "messages": HI, "metadata": {"tags": ["b"]}}).status_code == 200
        deadline = time.monotonic() + 10
        while not (rows := http.get("/spend/logs").json()) and time.monotonic() < deadline:
            time.sleep(0.1)  # spend rows are written in batches, off the request path
        assert rows
        shapes.check(rows, "/spend/logs", "get")
        today = rows[0]["startTime"][:10]
        shapes.check(http.get("/spend/logs", params={"start_date": today, "end_date": today}).json(),
                     "/spend/logs", "get")
        shapes.check(http.get("/spend/tags").json(), "/spend/tags", "get")
        shapes.check(http.get("/spend/keys").json(), "/spend/keys", "get")
        shapes.check(http.get("/spend/users").json(), "/spend/users", "get")
        shapes.check(http.post("/spend/calculate", json={"model": "gpt-4", "messages": HI}).json(),
                     "/spend/calculate", "post")
        shapes.check(http.get("/audit").json(), "/audit", "get")
        shapes.check(http.get("/dead_letters").json(), "/dead_letters", "get")
        shapes.check(http.get("/health/readiness").json(), "/health/readiness", "get")
        shapes.check(http.get("/routes").json(), "/routes", "get")
        shapes.check(http.get("/plugins").json(), "/plugins", "get")
        shapes.check(http.get("/", headers={"accept": "application/json"}).json(), "/", "get")
        # Errors: the envelope, whatever the route.
        for reply in (http.get("/key/info", params={"key": "sk-nope-nope-nope"}),
                      http.post("/v1/chat/completions", json={"model": "nope", "messages": HI}),
                      httpx.get(full.url + "/key/list")):
            assert reply.status_code in (400, 401, 404), reply.text
            shapes.check(reply.json(), "/key/info", "get", "4XX")


def test_schema_validation_errors_are_the_envelope(full):
    """A plugin route that validates with quart-schema answers JSON, never quart's HTML 400."""
    url = full.url + "/probe/echo"
    r = httpx.post(url, headers=ADMIN, json={"text": "ab", "times": 2})
    assert r.status_code == 200 and r.json() == {"echo": "abab"}
    r = httpx.post(url, headers=ADMIN, json={"text": "ab", "times": 99})
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json" and r.headers["x-request-id"]
    error = r.json()["error"]
    assert error["type"] == "bad_request_error" and error["code"] == "400" and error["param"] == "times"
    assert error["message"].startswith("Invalid value for times:")
    r = httpx.post(url, headers=ADMIN, json={"times": 1})
    assert r.status_code == 400 and r.json()["error"]["param"] == "text"
    r = httpx.post(url, headers={**ADMIN, "content-type": "application/json"}, content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["type"] == "bad_request_error"


# -- the environment ---------------------------------------------------------------------------
def test_branding_filtering_and_the_landing(gateway_server):
    gw = gateway_server({}, env={"DOCS_TITLE": "TotalGPT", "DOCS_DESCRIPTION": "Sample Company Description",
                                 "DOCS_FILTERED": "True"})
    spec = spec_of(gw)
    validate_spec(spec)
    assert spec["info"]["title"] == "TotalGPT"
    assert spec["info"]["description"] == "Sample Company Description"
    assert "/v1/chat/completions" in spec["paths"]
    openai = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule) for rule in gw.gateway.access.groups[OPENAI]}
    assert set(spec["paths"]) <= openai  # only the OpenAI routes are listed ...
    assert httpx.post(gw.url + "/key/generate", headers=ADMIN, json={}).status_code == 200  # ... all still work
    page = httpx.get(gw.url + "/", headers={"accept": BROWSER_ACCEPT})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<title>TotalGPT</title>" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "https://" not in page.text  # every asset is the gateway's own
    # JSON clients (curl sends */*, the SDKs application/json) keep the landing JSON.
    for accept in ("*/*", "application/json"):
        landing = httpx.get(gw.url + "/", headers={"accept": accept})
        assert landing.json()["openapi"] == "/openapi.json" and landing.json()["docs"] == "/docs", accept
    assert httpx.get(gw.url + "/docs").status_code == 200
    assert "<redoc spec-url=\"/openapi.json\">" in httpx.get(gw.url + "/redoc").text
    bundle = httpx.get(gw.url + "/docs-assets/redoc.standalone.js")
    assert bundle.status_code == 200 and b"cdn.redoc.ly" not in bundle.content
    assert httpx.get(gw.url + "/docs-assets/nope.js").json()["error"]["code"] == "404"


def test_pages_off(gateway_server):
    gw = gateway_server({}, env={"NO_DOCS": "True", "NO_REDOC": "True"})
    for path in ("/docs", "/redoc", "/docs-assets/swagger-ui.css"):
        assert httpx.get(gw.url + path).status_code == 404, path
    landing = httpx.get(gw.url + "/", headers={"accept": BROWSER_ACCEPT})
    assert landing.json()["docs"] is None and landing.json()["redoc"] is None
    assert spec_of(gw)["paths"]  # the document itself stays


def test_pages_moved(gateway_server):
    gw = gateway_server({"general_settings": {"allowed_routes": ["LiteLLMRoutes.public_routes"]}},
                        env={"DOCS_URL": "/api-docs", "REDOC_URL": "/api-redoc/"})
    for path in ("/api-docs", "/api-redoc", "/openapi.json", "/docs-assets/swagger-ui-bundle.js"):
        r = httpx.get(gw.url + path)  # no key, and inside the public group wherever it moved
        assert r.status_code == 200, (path, r.text[:200])
    assert httpx.get(gw.url + "/docs").status_code in (403, 404)
    assert httpx.get(gw.url + "/", headers={"accept": BROWSER_ACCEPT}).json()["docs"] == "/api-docs"


# -- in the browser ----------------------------------------------------------------------------
@pytest.fixture
def branded(gateway_server, fake_upstream):
    return gateway_server({"model_list": models(fake_upstream.url)}, env={"DOCS_TITLE": "TotalGPT"})


def test_swagger_ui_renders_from_local_assets(branded, browser_page, browser_requests, screenshot):
    page = browser_page
    page.goto(branded.url + "/")
    page.get_by_role("heading", name=re.compile("TotalGPT")).wait_for()
    page.locator(".opblock-summary-path", has_text="/v1/chat/completions").first.wait_for()
    assert page.locator(".opblock").count() > 60
    page.locator(".opblock-summary", has_text="/v1/chat/completions").first.click()
    page.locator(".opblock.is-open").get_by_text("Request body").first.wait_for()
    page.locator(".opblock.is-open").first.scroll_into_view_if_needed()
    screenshot(page, full_page=False)
    assert any(u.endswith("/docs-assets/swagger-ui-bundle.js") for u in browser_requests)
    assert any(u.endswith("/openapi.json") for u in browser_requests)


def test_redoc_renders_from_local_assets(branded, browser_page, browser_requests, screenshot):
    page = browser_page
    page.goto(branded.url + "/redoc")
    page.get_by_role("heading", name=re.compile("TotalGPT")).wait_for()
    page.get_by_role("heading", name=re.compile("Create a chat completion")).first.wait_for()
    page.get_by_role("heading", name="OpenAI").first.wait_for()
    screenshot(page, full_page=False)  # the whole reference is many screens tall
    assert any(u.endswith("/docs-assets/redoc.standalone.js") for u in browser_requests)
    assert any(u.endswith("/docs-assets/redoc.svg") for u in browser_requests)
