"""What the test modules share: a guard plugin that blocks on demand (to give the metrics verdicts
and a blocked call), installed the way any plugin is, and a parser for the /metrics text. The test
modules load this file by path (importlib mode puts no test folder on sys.path).

The guard is a real distribution (`gateway.local_distribution`): a module and its dist-info in a
directory put on `sys.path` (module-scoped, so not the function-scoped `local_plugin` fixture).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gateway.local_distribution import write_distribution

GUARD_NAME = "prom_test_guard"
GUARD_TRIGGER = "BLOCKME"
GUARD_MODULE = "gateway_plugin_prom_test_guard"
GUARD_SOURCE = f'''
from gateway import BadRequestError, Plugin, hookimpl


class Guard(Plugin):
    """Blocks a call whose text holds {GUARD_TRIGGER}."""

    name = "{GUARD_NAME}"
    priority = 900

    @hookimpl
    async def pre_request(self, ctx):
        if "{GUARD_TRIGGER}" in ctx.user_message_text:
            raise BadRequestError("Blocked by {GUARD_NAME}")
'''


def install_guard(site: Path) -> Path:
    """Write the guard's module and dist-info into `site`; returns `site`."""
    write_distribution(site, GUARD_NAME, GUARD_SOURCE, "Guard")
    return site


def forget_guard() -> None:
    sys.modules.pop(GUARD_MODULE, None)


class Scrape:
    """One /metrics exposition, parsed with prometheus_client's own parser."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: list[tuple[str, dict[str, str], float]] = []
        self.types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for s in family.samples:
                self.samples.append((s.name, dict(s.labels), s.value))

    def select(self, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
        return [(lab, v) for n, lab, v in self.samples
                if n == name and all(lab.get(k, "") == want for k, want in labels.items())]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named `name` whose labels include `labels` ("" = absent)."""
        return sum(v for _, v in self.select(name, **labels))

    def one(self, name: str, **labels: str) -> tuple[dict[str, str], float]:
        found = self.select(name, **labels)
        assert len(found) == 1, (name, labels, found)
        return found[0]

    def label_values(self, label: str) -> set[str]:
        return {lab[label] for _, lab, _ in self.samples if label in lab}


def scrape(url: str, **headers: Any) -> Scrape:
    resp = httpx.get(url + "/metrics", headers=headers, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(resp.text)
