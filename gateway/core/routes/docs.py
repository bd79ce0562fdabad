"""The API docs: `/openapi.json`, Swagger UI (`/`, `/docs`) and ReDoc (`/redoc`).

Every asset comes from the gateway itself: Swagger UI 5 from the `swagger-ui-py` distribution and
ReDoc's standalone bundle from `flask-openapi3-redoc` (only their files are read; neither package
is imported). The pages carry a Content-Security-Policy that lets the browser load nothing from
anywhere but this server, so a docs page never calls a CDN, a validator or a logo host.
"""

from __future__ import annotations

import html
import importlib.util
import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from quart import Blueprint, Response, current_app, request
from quart_schema import document_response, tag_blueprint

from gateway.core.openapi import ASSETS_PATH, OPENAPI_PATH, DocsConfig
from gateway.core.route_groups import PUBLIC, declare
from gateway.errors import NotFoundError

log = logging.getLogger("gateway.docs")

# name -> (distribution's top-level package, file inside it, content type)
ASSETS = {
    "swagger-ui.css": ("swagger_ui", "static/swagger-ui.css", "text/css; charset=utf-8"),
    "swagger-ui-bundle.js": ("swagger_ui", "static/swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "favicon-32x32.png": ("swagger_ui", "static/favicon-32x32.png", "image/png"),
    "redoc.standalone.js": ("flask_openapi3_redoc", "templates/redoc/js/redoc.standalone.js",
                            "text/javascript; charset=utf-8"),
    "redoc.svg": ("flask_openapi3_redoc", "templates/redoc/images/redoc.svg", "image/svg+xml"),
}
# ReDoc's side menu shows Redocly's logo from a CDN; the same logo ships with the bundle.
REDOC_LOGO_URL = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
# Our own start-up script for Swagger UI (no inline script, so the CSP can forbid them).
SWAGGER_INIT = b"""// Swagger UI on the gateway's own document: no validator badge, nothing fetched from elsewhere.
window.ui = SwaggerUIBundle({
  url: document.getElementById("swagger-ui").dataset.specUrl,
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  validatorUrl: null,
  persistAuthorization: true,
});
"""
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'self'")
SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-spec-url="{spec}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/swagger-init.js"></script>
</body>
</html>
"""
REDOC_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
<style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<redoc spec-url="{spec}"></redoc>
<script src="{assets}/redoc.standalone.js"></script>
</body>
</html>
"""


class OpenAPIDocumentModel(BaseModel):
    """This gateway's OpenAPI 3.1 document."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


def asset_file(name: str) -> Path | None:
    """Where a bundled asset is installed, found without importing its package."""
    package, inside, _ = ASSETS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / inside
    return path if path.is_file() else None


def read_asset(name: str) -> bytes | None:
    """An asset's bytes; ReDoc's with its logo pointed at the copy served here."""
    path = asset_file(name)
    if path is None:
        return None
    body = path.read_bytes()
    if name == "redoc.standalone.js":
        body = body.replace(REDOC_LOGO_URL, (ASSETS_PATH + "/redoc.svg").encode())
    return body


def prefers_html() -> bool:
    """A browser asking for a page; JSON clients (and `Accept: */*`, curl's) get JSON."""
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def _page(template: str, title: str) -> Response:
    root = request.root_path.rstrip("/")
    body = template.format(title=html.escape(title), spec=html.escape(root + OPENAPI_PATH),
                           assets=html.escape(root + ASSETS_PATH))
    resp = Response(body, content_type="text/html; charset=utf-8")
    resp.headers["content-security-policy"] = CSP
    resp.headers["x-content-type-options"] = "nosniff"
    return resp


def swagger_page() -> Response:
    return _page(SWAGGER_PAGE, current_app.gateway.docs.title)


def blueprint(config: DocsConfig) -> Blueprint:
    """The docs routes this configuration asks for (`/` itself is the landing route's, in info.py)."""
    bp = declare(Blueprint("docs", __name__), PUBLIC)
    tag_blueprint(bp, ["Docs"])
    cache: dict[str, bytes] = {}

    @document_response(OpenAPIDocumentModel)
    async def openapi() -> Response:
        """The OpenAPI 3.1 document of this gateway (built from its routes on first request)."""
        await request.get_data()  # a body sent with the GET, read: closing on unread bytes resets the reply
        resp = Response(current_app.gateway.openapi.json_bytes(), content_type="application/json")
        resp.headers["access-control-allow-origin"] = "*"  # readable by docs tools on other origins
        return resp

    bp.add_url_rule(OPENAPI_PATH, "openapi", openapi, methods=["GET"])

    async def swagger_ui() -> Response:
        """Swagger UI (served from the gateway's own assets)."""
        return swagger_page()

    for path in config.swagger_paths:
        if path != "/":
            bp.add_url_rule(path, "swagger_ui" + path, swagger_ui, methods=["GET"])

    if config.redoc_path is not None and asset_file("redoc.standalone.js") is None:
        log.warning("ReDoc is off: its bundle (distribution flask-openapi3-redoc) is not installed")
    elif config.redoc_path is not None:
        async def redoc_ui() -> Response:
            """ReDoc (served from the gateway's own assets)."""
            return _page(REDOC_PAGE, current_app.gateway.docs.title)

        bp.add_url_rule(config.redoc_path, "redoc_ui", redoc_ui, methods=["GET"])

    if config.pages:
        async def asset(name: str) -> Response:
            """A file of Swagger UI or ReDoc."""
            await request.get_data()  # as for /openapi.json: the reply is large
            if name == "swagger-init.js":
                body: bytes | None = SWAGGER_INIT
            elif name in ASSETS:
                body = cache.get(name) or read_asset(name)
                if body is not None:
                    cache[name] = body
            else:
                body = None
            if body is None:
                raise NotFoundError(f"No such docs asset: {name}")
            content_type = ASSETS[name][2] if name in ASSETS else "text/javascript; charset=utf-8"
            resp = Response(body, content_type=content_type)
            resp.headers["cache-control"] = "public, max-age=86400"
            resp.headers["x-content-type-options"] = "nosniff"
            return resp

        bp.add_url_rule(ASSETS_PATH + "/<name>", "asset", asset, methods=["GET"])
    return bp
