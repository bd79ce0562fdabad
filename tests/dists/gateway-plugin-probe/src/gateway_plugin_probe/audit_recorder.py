"""Records every audit event it is told about, for tests to read at GET /probe/audit."""

from __future__ import annotations

import dataclasses
from typing import Any

from gateway import Plugin, hookimpl


class AuditRecorder(Plugin):
    name = "probe_audit"
    priority = 10

    def __init__(self, config: Any, gateway: Any) -> None:
        super().__init__(config, gateway)
        self.events: list[dict[str, Any]] = []

    @hookimpl
    async def audit(self, event: Any) -> None:
        self.events.append(dataclasses.asdict(event))

    @hookimpl
    def routes(self, gateway: Any) -> list[Any]:
        from quart import Blueprint

        bp = Blueprint("probe_audit", __name__)

        @bp.get("/probe/audit")
        async def recorded() -> Any:
            return {"events": self.events}

        return [bp]
