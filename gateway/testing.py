"""pytest plugin for plugin authors (and the core's own tests): real servers on loopback.

Fixtures (docs/testing-a-plugin.md is the guide):
- `fake_upstream`: an HTTP server speaking the OpenAI wire format (JSON and SSE), scriptable
  (reply text, chunk boundaries, delays, errors, usage), recording every request it receives.
- `gateway_server`: a factory that starts a real gateway from a config dict and returns a handle
  with its URL and `openai` clients. The first gateway of a test runs in this process (hypercorn,
  in a thread); any further one while it runs is the real `gateway` command in a process of its
  own, with its own database, behind the same handle.
- `database_url`: fresh, migrated databases (SQLite files, or PostgreSQL when configured).
- `plugin_conformance`: `check_plugin_conformance` bound to this test's fixtures: one call that
  runs a plugin over every LLM route, streamed and not, and fails naming each route a hook skipped.
- `local_plugin`: installs a plugin written in the test (a guard that blocks on demand, say) beside
  the plugin under test, so its tests need no other shipped plugin.

Loaded through the `pytest11` entry point, so installing `gateway` is enough. The fixtures are here;
the gateway handles are testing_servers.py's, the PostgreSQL databases testing_databases.py's.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from gateway.conformance import ConformanceCase, ConformanceError, ConformanceReport, check_plugin_conformance
from gateway.fake_upstream import FakeUpstream, RecordedRequest, Script
from gateway.testing_databases import PostgresDatabases, migrate_database
from gateway.testing_servers import (MASTER_KEY, GatewayFixtureError, GatewayProcess, GatewayServer, gateway_command,
                                     in_process_gateway_running)

__all__ = ["MASTER_KEY", "ConformanceCase", "ConformanceError", "ConformanceReport", "FakeUpstream",
           "GatewayFixtureError", "GatewayProcess", "GatewayServer", "PostgresDatabases", "RecordedRequest",
           "Script", "check_plugin_conformance", "gateway_command", "migrate_database"]


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstream]:
    """A running OpenAI-compatible upstream; see `FakeUpstream`."""
    upstream = FakeUpstream().start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="session")
def postgres_databases():
    """Fresh PostgreSQL databases when `GATEWAY_TEST_DATABASE_URL` is set; None otherwise.

    An unreachable server skips the database tests with the reason, unless
    `GATEWAY_TEST_REQUIRE_DATABASE=1`, which makes it a failure (CI sets it).
    """
    import os

    url = os.environ.get("GATEWAY_TEST_DATABASE_URL")
    if not url:
        yield None
        return
    pg = PostgresDatabases(url)
    try:
        asyncio.run(pg._admin_check())
    except Exception as exc:
        message = f"PostgreSQL at {url} is not reachable: {type(exc).__name__}: {exc}"
        if os.environ.get("GATEWAY_TEST_REQUIRE_DATABASE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    yield pg
    pg.drop_all()


@pytest.fixture
def database_url(tmp_path: Path, postgres_databases: Any) -> Callable[[], str]:
    """Factory: a new, migrated database URL (PostgreSQL when configured, else an SQLite file)."""
    count = [0]

    def make() -> str:
        count[0] += 1
        if postgres_databases is None:
            return f"sqlite://{tmp_path / f'db-{count[0]}.sqlite3'}"
        url = postgres_databases.create()
        migrate_database(url)
        return url

    return make


@pytest.fixture
def gateway_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   database_url: Callable[[], str]) -> Iterator[Callable[..., GatewayServer | GatewayProcess]]:
    """Factory: `gateway_server(config_dict, env={...}, process=None)` starts a gateway and returns its handle.

    `general_settings.master_key` defaults to `sk-1234` unless the config sets one (None: dev mode).
    Each gateway gets a fresh database unless the config or `env` names one.
    The first gateway runs in this process (`GatewayServer`: `.gateway` gives white-box access; `env`
    is set in this process for the test). While it runs, any further one runs the `gateway` command
    in a process of its own (`GatewayProcess`, with `env` added to its environment). `process=True`
    asks for a process of its own anyway; `process=False` insists on in-process.
    Gateways are stopped at the end of the test (gracefully, so shutdown hooks run).
    """
    import yaml

    started: list[GatewayServer | GatewayProcess] = []
    set_here: set[str] = set()  # variables this fixture set in os.environ for in-process gateways

    def start(config: dict[str, Any], env: dict[str, str] | None = None,
              process: bool | None = None) -> GatewayServer | GatewayProcess:
        config = dict(config)
        general = dict(config.get("general_settings") or {})
        general.setdefault("master_key", MASTER_KEY)
        if general["master_key"] is None:
            del general["master_key"]
        config["general_settings"] = general
        env = dict(env or {})
        if "database_url" not in general and "DATABASE_URL" not in env:  # a fresh database per gateway
            env["DATABASE_URL"] = database_url()
        path = tmp_path / f"gateway-{len(started)}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        separate = in_process_gateway_running() if process is None else process
        server: GatewayServer | GatewayProcess
        if separate:
            # Its own environment: this test's, less what earlier gateways' `env` set, plus its own.
            environ = {k: v for k, v in os.environ.items() if k not in set_here or k in env}
            environ.update(env)
            server = GatewayProcess(path, general.get("master_key"), env=environ)
        else:
            for name, value in env.items():
                monkeypatch.setenv(name, value)
                set_here.add(name)
            server = GatewayServer(path, general.get("master_key"))
        server.start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def plugin_conformance(gateway_server: Callable[..., Any], fake_upstream: FakeUpstream) -> Callable[..., ConformanceReport]:
    """`plugin_conformance(plugin, config=..., trigger=..., ...)`: `check_plugin_conformance` with
    this test's `gateway_server` and `fake_upstream`."""

    def check(plugin: str, **kwargs: Any) -> ConformanceReport:
        return check_plugin_conformance(plugin, gateway_server=gateway_server, fake_upstream=fake_upstream, **kwargs)

    return check


@pytest.fixture
def local_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """Factory: `local_plugin(name, source, class_name="Guard")` installs a plugin written in the
    test (see `gateway.local_distribution`) for this test's gateways, in process and in processes of
    their own (via PYTHONPATH); enable it by `name` in the config. Returns the name."""
    from gateway.local_distribution import write_distribution

    site = tmp_path / "local-plugins"
    modules: list[str] = []

    def install(name: str, source: str, class_name: str = "Guard") -> str:
        if not modules:
            monkeypatch.syspath_prepend(str(site))
            monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
        modules.append(write_distribution(site, name, source, class_name))
        return name

    yield install
    for module in modules:
        sys.modules.pop(module, None)
