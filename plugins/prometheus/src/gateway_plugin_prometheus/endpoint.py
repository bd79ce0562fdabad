"""GET /metrics: the exposition, and who may read it.

`/metrics` is in the gateway's public route group, as in LiteLLM, so the core asks for no key. With
`require_auth_for_metrics_endpoint` this module asks the core to check the caller's key: the master
key or any valid virtual key, as LiteLLM. In development mode (no master key) every caller is
admin, as everywhere else.

The text is rendered off the event loop: in multiprocess mode it reads every worker's files.
The format follows the scraper's `Accept` header (Prometheus text 0.0.4, or OpenMetrics), gzip
when accepted, and `?name[]=<metric>` narrows it to some metrics, as prometheus_client's own
exporters do.
"""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

from quart import Blueprint, Response, request

from gateway import AuthenticationError

PATHS = ("/metrics", "/metrics/")


async def authorize(request: Any, gateway: Any, required: bool) -> None:
    """Raise 401 unless the caller may read the metrics: any key the gateway accepts (the master
    key or a valid virtual key, as LiteLLM), checked by the core itself. Never echoes the key."""
    if not required:
        return
    try:
        await gateway.authenticate(request)
    except AuthenticationError as exc:
        raise AuthenticationError(f"Unauthorized access to metrics endpoint: {exc.message}") from None


def render(registry: Any, accept: str, names: list[str]) -> tuple[bytes, str]:
    """The exposition of `registry` in the format the scraper asked for."""
    from prometheus_client.exposition import choose_encoder

    if names:
        registry = registry.restricted_registry(names)
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


def blueprint(plugin: Any) -> Blueprint:
    bp = Blueprint("prometheus", __name__)

    async def metrics() -> Response:
        """Prometheus metrics of this gateway (all workers pooled)."""
        await authorize(request, plugin.gateway, plugin.config.require_auth_for_metrics_endpoint)
        registry = plugin.scrape_registry()
        body, content_type = await asyncio.to_thread(render, registry, request.headers.get("accept", ""),
                                                     request.args.getlist("name[]"))
        headers = {}
        if "gzip" in request.headers.get("accept-encoding", ""):
            body = await asyncio.to_thread(gzip.compress, body)
            headers["content-encoding"] = "gzip"
        return Response(body, status=200, content_type=content_type, headers=headers)

    for i, path in enumerate(PATHS):
        bp.add_url_rule(path, f"metrics{i}", metrics, methods=["GET"])
    return bp
