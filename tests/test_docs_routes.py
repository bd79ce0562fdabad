"""Nothing the docs promise is a 404: every route that README.md, docs/ and the plugins' READMEs
name (a path in backticks, or after GET/POST in a code block) is served by the gateway, with the
plugins those pages describe switched on. A doc that names a route the gateway does not serve fails
here until the route exists or the doc stops naming it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
# docs/providers/ is left out: its pages name the vendors' own APIs (`POST /model/{modelId}/converse`).
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted(REPO.glob("plugins/*/README.md")),
         REPO / "contrib" / "plugin-template" / "README.md"]
ADMIN = {"Authorization": "Bearer sk-1234"}

# A route-looking path: `/a/b`, `/v1/chat/completions`, `/key/info?key=...`, `/engines/{model}/...`.
PATH = r"(?P<path>/(?:[A-Za-z0-9_.:*\-/]|\{[^}`\n]*\}|<[^>`\n]*>)*)"
METHOD = r"(?P<method>GET|POST|PUT|PATCH|DELETE)"
IN_BACKTICKS = re.compile(r"`(?:" + METHOD + " )?" + PATH + r"(?:\?[^`]*)?`")
AFTER_METHOD = re.compile(r"\b" + METHOD + r" (?:https?://[^/\s]+)?" + PATH)
# Paths in the docs that are not the gateway's routes (files, other services' APIs), each with why.
NOT_ROUTES = {
    "/analyze/prompt": "LLM Guard API's route (the guard's peer)",
    "/analyze/output": "LLM Guard API's route",
    "/scan/prompt": "LLM Guard API's route",
    "/scan/output": "LLM Guard API's route",
    "/moto-api/static/sagemaker/endpoint-results": "moto's route (the tests' SageMaker peer)",
    "/v1/documents:moderateText": "Google's route",
    "/v2/documents:moderateText": "Google's route",
    "/api/chat": "Ollama's native route",
    "/api/generate": "Ollama's native route",
    "/api/embed": "Ollama's native route",
    "/v1": "the prefix of the OpenAI routes (`with or without /v1`)",
    "/openai": "part of an Azure api_base users copy (providers table)",
    "/openai/v1": "Azure's v1 API path, upstream",
    "/anthropic": "the prefix of Anthropic's routes (`/anthropic/v1/messages`)",
    "/bria/<path:rest>": "a pass-through endpoint of the docs' example config",
    "/v2/chat": "Cohere's route, upstream",
    "/v2/embed": "Cohere's route, upstream",
    "/x": "the example of an unknown route in the error table",
    "/webhook/stats": "an example plugin's route in the hooks guide",
    "/v1/traces": "the OTLP collector's route (the otel plugin's peer)",
    "/nginx-health": "the compose file's load balancer answers it itself",
}
FILE_LIKE = re.compile(r"^/(etc|tmp|usr|var|home|work|path|relative|opt|srv|data|secrets|run)(/|$)|\.(ya?ml|txt|py|toml|sqlite3|db|pem|log)$")


def named_calls() -> dict[tuple[str | None, str], str]:
    """Each (method or None, route-looking path) the pages name -> the first page that names it."""
    found: dict[tuple[str | None, str], str] = {}
    for page in PAGES:
        text = page.read_text()
        for pattern in (IN_BACKTICKS, AFTER_METHOD):
            for match in pattern.finditer(text):
                raw = match.group("path")
                path = raw.rstrip("/.:*") or "/"
                if raw.endswith(("/...", "/*")):
                    path = "prefix:" + path  # a family of routes: `/customer/*`, `/engines/{model}/...`
                if FILE_LIKE.search(path) or path in NOT_ROUTES or path.startswith("//"):
                    continue
                found.setdefault((match.group("method"), path), str(page.relative_to(REPO)))
    return found


def named_routes() -> dict[str, str]:
    """Each route-looking path the pages name -> the first page that names it."""
    found: dict[str, str] = {}
    for (_, path), page in named_calls().items():
        found.setdefault(path, page)
    return found


def serves_prefix(app: Any, prefix: str) -> bool:
    """Whether some registered route starts with `prefix` (placeholders in either compared alike)."""
    norm = lambda p: re.sub(r"\{[^}]*\}|<[^>]*>", "<>", p)  # noqa: E731
    return any(norm(rule.rule).startswith(norm(prefix)) for rule in app.url_map.iter_rules())


def concrete(path: str) -> str:
    """A template path with sample values: `/engines/{model}/chat/completions` -> a real URL."""
    path = re.sub(r"\{[^}]*\}|<[^>]*>", "fake-gpt", path)
    return path.replace("...", "x")


def test_every_route_the_docs_name_is_served(gateway_server, tmp_path):
    routes = named_routes()
    assert len(routes) > 40, routes  # the scan itself works
    gw = gateway_server({
        "model_list": [{"model_name": "fake-gpt", "litellm_params": {"model": "fake/echo"}}],
        "general_settings": {"enable_public_model_hub": True},
        "litellm_settings": {"store_audit_logs": True, "callbacks": ["prometheus"]},  # `/metrics`
    })
    missing: list[str] = []
    # A new connection per request: hypercorn (the test server) can drop a kept-alive connection
    # after answering a POST without reading its body (uvicorn, the production server, does not).
    with httpx.Client(base_url=gw.url, headers={**ADMIN, "Connection": "close"}, timeout=30) as client:
        for path, page in sorted(routes.items()):
            if path.startswith("prefix:"):
                if not serves_prefix(gw.app, path[7:]):
                    missing.append(f"{path[7:]}/... (named in {page}; no route starts so)")
                continue
            url = concrete(path)
            statuses = []
            for method in ("GET", "POST"):
                r = client.request(method, url, json={} if method == "POST" else None)
                statuses.append(r.status_code)
                if r.status_code != 405:
                    break
            if statuses[-1] == 404 and _route_missing(r):
                missing.append(f"{path} (named in {page}; {'/'.join(map(str, statuses))})")
    assert not missing, "routes the docs name but the gateway does not serve:\n" + "\n".join(missing)


def _route_missing(r: httpx.Response) -> bool:
    """A 404 for the route itself (`Route not found: ...`), not one about a record or a model."""
    try:
        return r.json()["error"]["message"].startswith("Route not found")
    except (ValueError, KeyError, TypeError):
        return True


def test_every_method_the_docs_give_a_route_is_one_it_answers(tmp_path, monkeypatch):
    """`POST /key/generate` in a doc: the route answers POST (a GET-only route fails here; a route
    not served at all is the test above's)."""
    import yaml
    from werkzeug.exceptions import MethodNotAllowed, NotFound
    from werkzeug.routing import RequestRedirect

    from gateway.core.app import create_app, load

    calls = {(method, path): page for (method, path), page in named_calls().items()
             if method is not None and not path.startswith("prefix:")}
    assert len(calls) > 100, calls  # the scan itself works
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "fake-gpt", "litellm_params": {"model": "fake/echo"}}],
        "general_settings": {"master_key": "sk-1234", "enable_public_model_hub": True},
        "litellm_settings": {"store_audit_logs": True, "callbacks": ["prometheus"]},
    }))
    monkeypatch.setenv("DATABASE_URL", f"sqlite://{tmp_path}/gateway.db")
    routes = create_app(load(str(config))).url_map.bind("gateway.test")
    wrong: list[str] = []
    for (method, path), page in sorted(calls.items()):
        try:
            routes.match(concrete(path), method=method)
        except MethodNotAllowed as e:
            wrong.append(f"{method} {path} (named in {page}; it answers {', '.join(sorted(e.valid_methods or []))})")
        except (NotFound, RequestRedirect):
            continue
    assert not wrong, "methods the docs give routes that the routes do not answer:\n" + "\n".join(wrong)
