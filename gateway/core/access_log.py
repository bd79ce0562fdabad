"""One log line per request: request id, key, model, status, latency. Never a secret."""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("gateway.access")


class AccessLog:
    def __init__(self) -> None:
        self.enabled = log.isEnabledFor(logging.INFO)

    def _line(self, request_id: str, method: str, path: str, principal: Any, model: str | None,
              status: int, started: float, extra: str = "") -> None:
        if not self.enabled:
            return
        who = principal.display_name if principal is not None else "-"
        ms = (time.perf_counter() - started) * 1000
        # `access`: the same fields for JSON logs (logsetup.JsonFormatter); the key's alias and
        # masked name only, never the key.
        fields = {"request_id": request_id, "method": method, "path": path,
                  "key_alias": getattr(principal, "key_alias", None), "key_name": getattr(principal, "key_name", None),
                  "model": model, "status": status, "latency_ms": round(ms, 1), "stream": bool(extra)}
        log.info("%s %s %s key=%s model=%s status=%d latency_ms=%.1f%s",
                 request_id, method, path, who, model or "-", status, ms, extra, extra={"access": fields})

    def response(self, request_id: str, method: str, path: str, principal: Any, model: str | None,
                 status: int, started: float) -> None:
        self._line(request_id, method, path, principal, model, status, started)

    def stream_finished(self, ctx: Any, status: int) -> None:
        self._line(ctx.request_id, "POST", ctx.route, ctx.principal, ctx.model, status, ctx.started, " stream=true")
