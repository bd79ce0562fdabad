"""The `gateway` command: serve (the seed's flags), `plugins`, and the operator subcommands.

    gateway --config config.yaml [--host H] [--port 4000] [--num_workers N] [--detailed_debug]
    gateway plugins [--config config.yaml] [--json]
    gateway plugins new NAME [--dir DIR] [--template DIR]
    gateway plugins dev PATH
    gateway migrate [--config config.yaml] [--check]
    gateway audit verify [--config config.yaml]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any, Sequence

import gateway
from gateway.core.db import Database, SchemaOutdatedError
from gateway.core.plugins import PluginError
from gateway.core.providers.deployment import DeploymentError
from gateway.core.scaffold import plugins_dev, plugins_new
from gateway.core.settings import ConfigError



class DatabaseUnavailable(Exception):
    """The database cannot be reached or opened."""


# ValueError covers the config checks of route control, enforced_params and database_url.
STARTUP_ERRORS = (ConfigError, PluginError, DeploymentError, SchemaOutdatedError, DatabaseUnavailable, ValueError)


def _fail(message: str) -> int:
    print(f"gateway: error: {message}", file=sys.stderr)
    return 2


def _serve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gateway", description="An OpenAI-compatible LLM gateway.")
    p.add_argument("--config", "-c", help="YAML config file (default: $GATEWAY_CONFIG)")
    p.add_argument("--host", help="address to bind (default 0.0.0.0)")
    p.add_argument("--port", type=int, help="port to bind (default $PORT or 4000)")
    p.add_argument("--num_workers", "--num-workers", type=int, dest="num_workers", help="worker processes (default 1)")
    p.add_argument("--server", choices=("uvicorn", "hypercorn"),
                   help="ASGI server (default $GATEWAY_SERVER or uvicorn: about twice hypercorn's throughput here)")
    p.add_argument("--detailed_debug", "--detailed-debug", action="store_true", dest="detailed_debug",
                   help="debug logs, including each request sent upstream (credentials masked, bodies cut at 2 KiB)")
    p.add_argument("--version", action="version", version=f"gateway {gateway.__version__}")
    return p


def serve(argv: Sequence[str]) -> int:
    args = _serve_parser().parse_args(argv)
    if args.config:
        os.environ["GATEWAY_CONFIG"] = os.path.abspath(args.config)
    if args.detailed_debug:
        os.environ["GATEWAY_DETAILED_DEBUG"] = "true"
    os.environ["GATEWAY_EXIT_ON_STARTUP_FAILURE"] = "1"  # workers inherit it
    from gateway.core.app import create_app, load
    from gateway.core.logsetup import configure_logging

    configure_logging()
    try:
        settings = load()
        create_app(settings)  # build once here so that every start-up error is one line
        asyncio.run(_check_database(settings))
    except STARTUP_ERRORS as exc:
        return _fail(str(exc))
    host = args.host or settings.env.host
    port = args.port or settings.env.port
    workers = args.num_workers or settings.env.num_workers
    if workers < 1:
        return _fail("--num_workers must be at least 1")
    server = args.server or settings.env.server
    os.environ.pop("GATEWAY_SUPERVISOR_PID", None)  # set again below for the workers of a supervisor only
    print(f"gateway {gateway.__version__} serving on http://{host}:{port} with {workers} worker(s) ({server})",
          file=sys.stderr)
    return (_run_uvicorn if server == "uvicorn" else _run_hypercorn)(host, port, workers)


def _run_uvicorn(host: str, port: int, workers: int) -> int:
    import signal

    import uvicorn

    from gateway.core.http_protocol import EnvelopeHttpToolsProtocol

    # uvicorn re-raises the signal that stopped it once it has shut down gracefully; with these
    # handlers in place that re-raise returns here, so a clean SIGTERM/SIGINT stop exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    # http: uvicorn's httptools protocol, answering unparsable requests in the error envelope.
    options: dict[str, Any] = dict(host=host, port=port, loop="auto", http=EnvelopeHttpToolsProtocol,
                                   lifespan="on", access_log=False, log_config=None, timeout_keep_alive=75,
                                   timeout_graceful_shutdown=30, server_header=False)
    if workers > 1:  # workers that die with the supervisor, which closes its socket before they drain
        from gateway.core.supervisor import run_uvicorn_workers

        run_uvicorn_workers("gateway.core.asgi:app", workers, **options)
    else:
        uvicorn.run("gateway.core.asgi:app", **options)
    return 0


def _run_hypercorn(host: str, port: int, workers: int) -> int:
    from hypercorn.config import Config
    from hypercorn.run import run

    config = Config()
    config.application_path = "gateway.core.asgi:app"
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.workers = 0 if workers == 1 else workers
    config.accesslog = None
    config.errorlog = "-"
    config.keep_alive_timeout = 75
    config.graceful_timeout = 30
    if workers > 1:  # workers that die with the supervisor and drain on SIGTERM, every one of them
        from gateway.core.supervisor import run_hypercorn_workers

        return run_hypercorn_workers(config, workers)
    return run(config) or 0


async def _check_database(settings: Any) -> None:
    """Reach the database and check its schema before any worker starts (SQLite: migrate it)."""
    db = Database(settings.database_url)
    try:
        await db.connect()
        await db.ensure_current()
    except SchemaOutdatedError:
        raise
    except Exception as exc:
        raise DatabaseUnavailable(f"cannot use the database at {db.display_url}: {type(exc).__name__}: {exc}") from None
    finally:
        await db.close()


def migrate(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="gateway migrate", description="Apply pending database migrations.")
    p.add_argument("--config", "-c")
    p.add_argument("--check", action="store_true", help="only list pending migrations; exit 1 if any")
    args = p.parse_args(argv)
    from gateway.core.app import load

    try:
        settings = load(args.config)
    except STARTUP_ERRORS as exc:
        return _fail(str(exc))

    async def run() -> int:
        db = Database(settings.database_url)
        try:
            await db.connect()
            if args.check:
                pending = await db.pending_migrations()
                print("\n".join(pending) if pending else "no pending migrations")
                return 1 if pending else 0
            applied = await db.migrate()
            print(f"applied: {', '.join(applied)}" if applied else "the database is up to date")
            return 0
        except Exception as exc:
            return _fail(f"migration failed on {db.display_url}: {type(exc).__name__}: {exc}")
        finally:
            await db.close()

    return asyncio.run(run())


def plugins(argv: Sequence[str]) -> int:
    if argv and argv[0] in PLUGIN_COMMANDS:
        return PLUGIN_COMMANDS[argv[0]](argv[1:])
    p = argparse.ArgumentParser(
        prog="gateway plugins", description="List installed and enabled plugins.",
        epilog="Also: `gateway plugins new NAME` (a new plugin from the template) and "
               "`gateway plugins dev PATH` (install a plugin you are writing into this environment).")
    p.add_argument("--config", "-c")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    from gateway.core.app import create_app, load

    try:
        app = create_app(load(args.config))
    except STARTUP_ERRORS as exc:
        return _fail(str(exc))
    info = app.gateway.host.describe()  # type: ignore[attr-defined]
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print("installed:")
    for row in info["installed"] or [{"name": "(none)", "distribution": "", "version": "", "enabled": False}]:
        mark = "*" if row["enabled"] else " "
        print(f"  {mark} {row['name']:<28} {row['distribution'] or ''} {row['version'] or ''}")
    print("enabled, in order:")
    for row in info["enabled"]:
        print(f"  {row['priority']:>5}  {row['name']:<26} mode={row['mode']} on_error={row['on_error']} "
              f"timeout_s={row['timeout_s']} hooks={','.join(row['hooks'])} ({row['enabled_by']})")
    return 0


PLUGIN_COMMANDS = {"new": plugins_new, "dev": plugins_dev}


def audit(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="gateway audit", description="Check the audit log.")
    sub = p.add_subparsers(dest="action", required=True)
    v = sub.add_parser("verify", help="recompute the hash chain; exit 1 naming the first edited or removed row")
    v.add_argument("--config", "-c")
    args = p.parse_args(argv)
    from gateway.builtins.audit_store import verify_chain
    from gateway.core.app import load

    try:
        settings = load(args.config)
        db = Database(settings.database_url)
    except STARTUP_ERRORS as exc:
        return _fail(str(exc))
    if db.is_sqlite:
        path = db.url.split("://", 1)[1]
        if path != ":memory:" and not os.path.isfile(os.path.expanduser(path)):
            return _fail(f"no database at {db.display_url}")

    async def run() -> int:
        try:
            await db.connect()
            verdict = await verify_chain()
        except Exception as exc:
            return _fail(f"cannot read the audit log at {db.display_url}: {type(exc).__name__}: {exc}")
        finally:
            await db.close()
        print(verdict.message if verdict.ok else f"audit log broken: {verdict.message}")
        return 0 if verdict.ok else 1

    return asyncio.run(run())


COMMANDS = {"plugins": plugins, "migrate": migrate, "audit": audit}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    return serve(argv)


if __name__ == "__main__":
    sys.exit(main())
