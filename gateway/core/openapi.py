"""The OpenAPI 3.1 document of the running app, generated from its routes with quart-schema.

Every rule in the app's url_map becomes an operation: the core's routes, the docs pages and any
plugin's blueprint alike. A handler describes itself where it is written, with quart-schema's
`document_request` / `document_querystring` / `document_response` (and `document_stream` here for
SSE replies), naming the pydantic models the handler itself uses, so the document cannot drift
from the code. On top of that, each operation gets a unique operationId, the error envelope for
4XX/5XX, and "no key needed" on the public routes.

The document is built on the first request for it and cached: start-up and the request path
never pay for it. quart-schema's `init_app` is not used: it wraps every response of the app in a
conversion step (and swaps the JSON provider), which the LLM routes must not pay for.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Callable, Iterable, TypeVar

import orjson

import gateway
from gateway.core.access import AccessPolicy
from gateway.core.route_groups import OPENAI
from gateway.core.errors import ErrorEnvelope
from gateway.core.settings import Environment

log = logging.getLogger("gateway.docs")
T = TypeVar("T", bound=Callable[..., Any])

OPENAPI_PATH = "/openapi.json"
ASSETS_PATH = "/docs-assets"
STREAM_ATTRIBUTE = "_gateway_stream_schema"
DEFAULT_TITLE = "gateway"
DEFAULT_DESCRIPTION = (
    "An OpenAI-compatible LLM gateway. Point the official OpenAI SDKs at it (`base_url=<this server>/v1`) "
    "with a virtual key (`sk-...`) as the API key. Errors always come back as "
    '`{"error": {"message", "type", "param", "code"}}`.'
)
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "A virtual key (sk-...) or the master key"},
    "api-key": {"type": "apiKey", "in": "header", "name": "api-key"},
    "x-api-key": {"type": "apiKey", "in": "header", "name": "x-api-key"},
}
PATH_PARAM = re.compile(r"<(?:[^:<>]*:)?([^<>]+)>")


def document_stream(model: type) -> Callable[[T], T]:
    """Document that the route's 200 reply may be a `text/event-stream` of `model` events."""

    def decorator(func: T) -> T:
        setattr(func, STREAM_ATTRIBUTE, model)
        return func

    return decorator


def _path(path: str) -> str:
    return "/" + path.strip().strip("/")


class DocsConfig:
    """What the environment says about the docs: branding, filtering and where the pages are.

    Swagger UI is at `/` (for browsers; JSON clients still get the landing JSON) and `/docs`, or at
    `DOCS_URL` alone; ReDoc at `/redoc` or `REDOC_URL`. `NO_DOCS` / `NO_REDOC` turn a page off;
    `/openapi.json` stays.
    """

    def __init__(self, env: Environment) -> None:
        self.title = env.docs_title or DEFAULT_TITLE
        self.description = env.docs_description or DEFAULT_DESCRIPTION
        self.filtered = env.docs_filtered
        if env.no_docs:
            self.swagger_paths: tuple[str, ...] = ()
        elif env.docs_url:
            self.swagger_paths = (_path(env.docs_url),)
        else:
            self.swagger_paths = ("/", "/docs")
        self.redoc_path: str | None = None if env.no_redoc else _path(env.redoc_url or "/redoc")

    @property
    def pages(self) -> bool:
        return bool(self.swagger_paths or self.redoc_path)


class OpenAPIDocument:
    """Builds the document of `app` once, on first use, and keeps its JSON bytes."""

    def __init__(self, app: Any, config: DocsConfig, policy: AccessPolicy) -> None:
        self.app = app
        self.config = config
        self.policy = policy
        self._bytes: bytes | None = None
        # quart-schema's settings, read by its `validate_*` decorators (plugin routes) and its provider.
        app.config.setdefault("QUART_SCHEMA_CONVERSION_PREFERENCE", None)
        app.config.setdefault("QUART_SCHEMA_CONVERT_CASING", False)
        app.config.setdefault("QUART_SCHEMA_PYDANTIC_DUMP_OPTIONS", {})

    def json_bytes(self) -> bytes:
        if self._bytes is None:
            self._bytes = orjson.dumps(self.build())
        return self._bytes

    def build(self) -> dict[str, Any]:
        from quart_schema import Info, QuartSchema

        extension = QuartSchema(  # not bound to the app: only its settings are used (see the module doc)
            info=Info(title=self.config.title, version=gateway.__version__, description=self.config.description),
        )
        provider = _provider_class()(self.app, extension)
        provider.document = self
        provider.seen = {}
        spec = provider.schema()
        spec["paths"] = dict(spec["paths"])
        components = spec["components"]
        components["schemas"].update(_error_schemas())
        components["securitySchemes"] = SECURITY_SCHEMES
        spec["security"] = [{name: []} for name in SECURITY_SCHEMES]
        components["responses"] = {"Error": {
            "description": "The error envelope (HTTP status = `code`)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}},
        }}
        return spec

    def listed(self, rule: str) -> bool:
        """Whether the route `rule` is in the document (`DOCS_FILTERED`: only the OpenAI routes)."""
        return not self.config.filtered or rule in self.policy.groups[OPENAI]


def _error_schemas() -> dict[str, Any]:
    from quart_schema.conversion import model_schema

    schema = model_schema(ErrorEnvelope, preference=None)
    schemas = dict(schema.pop("$defs", {}))
    schemas["ErrorEnvelope"] = schema
    return schemas


def _stream_schema(model: type) -> tuple[dict[str, Any], dict[str, Any]]:
    from quart_schema.conversion import model_schema

    schema = model_schema(model, preference=None, schema_mode="serialization")
    defs = dict(schema.pop("$defs", {}))
    defs[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}, defs


def _plain_query(parameter: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent rather than null: `int | None = None` documented as an integer."""
    schema = parameter.get("schema") or {}
    options = schema.get("anyOf")
    if parameter.get("in") != "query" or not options or {"type": "null"} not in options:
        return parameter
    rest = [o for o in options if o != {"type": "null"}]
    plain = {k: v for k, v in schema.items() if k not in ("anyOf", "default", "title")}
    plain.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
    if schema.get("default") is not None:
        plain["default"] = schema["default"]
    return {**parameter, "schema": plain}


def _operation_id(method: str, template: str) -> str:
    """From the method and path (`post_v1_chat_completions`): unique, as a view may serve many paths."""
    return re.sub(r"[^A-Za-z0-9]+", "_", f"{method.lower()} {template}").strip("_") or method.lower()


def _provider_class() -> type:
    """quart-schema's provider with the gateway's additions (imported on first use only)."""
    from quart_schema import OpenAPIProvider

    class Provider(OpenAPIProvider):
        document: OpenAPIDocument
        seen: dict[str, Any]

        def generate_rules(self) -> Iterable[Any]:
            for rule in super().generate_rules():
                if rule.endpoint != "static" and self.document.listed(rule.rule):
                    yield rule

        def build_paths(self, rule: Any) -> tuple[dict, dict]:
            paths, components = super().build_paths(rule)
            stream = getattr(self._app.view_functions[rule.endpoint], STREAM_ATTRIBUTE, None)
            if stream is not None:
                ref, defs = _stream_schema(stream)
                components.update(defs)
            for name, schema in components.items():  # one name, one shape: never a silent overwrite
                first = self.seen.setdefault(name, schema)
                if first != schema:
                    log.error("OpenAPI: two different models are named %s (route %s); the document shows "
                              "the first one", name, rule.rule)
                    components[name] = first
            tag = rule.endpoint.rsplit(".", 1)[0] if "." in rule.endpoint else None
            for template, operations in paths.items():
                public = self.document.policy.is_public(PATH_PARAM.sub("x", rule.rule))
                for method, op in operations.items():
                    op["operationId"] = _operation_id(method, template)
                    op["parameters"] = [_plain_query(p) for p in op.get("parameters", [])]
                    responses = {str(code): dict(r) for code, r in op.get("responses", {}).items()}
                    if not responses:
                        responses["200"] = {"description": "Success"}
                    if stream is not None:
                        ok = responses.setdefault("200", {"description": "Success"})
                        ok["content"] = {**ok.get("content", {}), "text/event-stream": {"schema": ref}}
                        ok["description"] = ((ok.get("description") or "") + " With `stream: true`: an SSE "
                                             "stream of `data: <event>` lines, one event per chunk, ending "
                                             "with `data: [DONE]`.").strip()
                    responses["4XX"] = {"$ref": "#/components/responses/Error"}
                    responses["5XX"] = {"$ref": "#/components/responses/Error"}
                    op["responses"] = responses
                    if public:
                        op["security"] = []
                    if "tags" not in op and tag:
                        op["tags"] = [tag]
                    if not op.get("summary"):
                        op["summary"] = f"{method.upper()} {template}"
                    if not op.get("description"):
                        op.pop("description", None)
            return paths, components

    return Provider
