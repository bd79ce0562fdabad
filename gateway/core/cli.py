"""The `gateway` command: serve (LiteLLM's flags), `check`, `plugins`, and the operator subcommands.

    gateway --config config.yaml [--host H] [--port 4000] [--num_workers N] [--debug | --detailed_debug]
    gateway --model openai/gpt-4o [--alias NAME] [--api_base URL]     (one model, no config file)
    gateway check [--config config.yaml]
    gateway version
    gateway plugins [--config config.yaml] [--json]
    gateway plugins new NAME [--dir DIR] [--template DIR]
    gateway plugins dev PATH
    gateway migrate [--config config.yaml] [--check]
    gateway audit verify [--config config.yaml]
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import logging
import os
import shutil
import sys
import tempfile
from typing import Any, Sequence

import yaml

import gateway
from gateway.core.db import Database, SchemaOutdatedError
from gateway.core.plugin_discovery import PluginError
from gateway.core.providers.deployment import DeploymentError
from gateway.core.scaffold import plugins_dev, plugins_new
from gateway.core.settings import ConfigError



class DatabaseUnavailable(Exception):
    """The database cannot be reached or opened."""


# ValueError covers the config checks of route control, enforced_params and database_url.
STARTUP_ERRORS = (ConfigError, PluginError, DeploymentError, SchemaOutdatedError, DatabaseUnavailable, ValueError)


def _fail(message: str) -> int:
    """Every problem on a line of its own, `gateway: error: ` first."""
    for line in str(message).splitlines() or [""]:
        print(f"gateway: error: {line}", file=sys.stderr)
    return 2


COMMANDS_HELP = """commands (`gateway COMMAND --help` for each):
  (none)      serve, with the flags above
  check       validate a config without serving: every problem at once, exit 1 if any
  version     print the version
  plugins     list installed and enabled plugins; `plugins new`, `plugins dev` for plugin authors
  migrate     apply pending database migrations (`--check` lists them)
  audit       `audit verify`: check the audit log's hash chain
"""


def _serve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gateway", description="An OpenAI-compatible LLM gateway (LiteLLM's config "
                                "and flags).", epilog=COMMANDS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", "-c", help="YAML config file (default: $GATEWAY_CONFIG)")
    p.add_argument("--host", help="address to bind (default 0.0.0.0)")
    p.add_argument("--port", type=int, help="port to bind (default $PORT or 4000)")
    p.add_argument("--num_workers", "--num-workers", type=int, dest="num_workers", help="worker processes (default 1)")
    p.add_argument("--server", choices=("uvicorn", "hypercorn"),
                   help="ASGI server (default $GATEWAY_SERVER or uvicorn: about twice hypercorn's throughput here)")
    p.add_argument("--run_hypercorn", action="store_true", help="LiteLLM's flag: same as --server hypercorn")
    p.add_argument("--debug", action="store_true", help="INFO logs, whatever $GATEWAY_LOG_LEVEL says")
    p.add_argument("--detailed_debug", "--detailed-debug", action="store_true", dest="detailed_debug",
                   help="debug logs, including each request sent upstream (credentials masked, bodies cut at 2 KiB)")
    p.add_argument("--model", "-m", help="serve this one model (`openai/gpt-4o`) with no config file, as "
                   "`litellm --model` does; clients call it by this name (or --alias)")
    p.add_argument("--alias", help="with --model: the name clients call the model by")
    p.add_argument("--api_base", help="with --model: the model's api_base")
    p.add_argument("--api_version", help="with --model: the model's api_version (Azure)")
    p.add_argument("--version", "-v", action="version", version=f"gateway {gateway.__version__}")
    return p


def serve(argv: Sequence[str]) -> int:
    args = _serve_parser().parse_args(argv)
    if args.model:
        if args.config:
            return _fail("--model serves one model without a config file; with --config, add the model to "
                         "model_list instead")
        os.environ["GATEWAY_CONFIG"] = one_model_config(args.model, args.alias, args.api_base, args.api_version)
    elif args.alias or args.api_base or args.api_version:
        return _fail("--alias, --api_base and --api_version go with --model")
    if args.config:
        os.environ["GATEWAY_CONFIG"] = os.path.abspath(args.config)
    if args.detailed_debug:
        os.environ["GATEWAY_DETAILED_DEBUG"] = "true"
    if args.debug:
        os.environ["GATEWAY_LOG_LEVEL"] = "INFO"
    os.environ["GATEWAY_EXIT_ON_STARTUP_FAILURE"] = "1"  # workers inherit it
    from gateway.core.config_check import check_config
    from gateway.core.logsetup import announce, configure_logging, export_logging_settings

    configure_logging()
    report = check_config()  # every problem of the config at once, before anything starts
    if not report.ok or report.settings is None:
        return _fail("\n".join(report.problems))
    settings = report.settings
    export_logging_settings(settings)  # the workers configure their logging from the environment
    configure_logging()
    if report.ignored:
        logging.getLogger("gateway.config").warning("%s", report.warning())
    try:
        asyncio.run(_check_database(settings))
    except STARTUP_ERRORS as exc:
        return _fail(str(exc))
    host = args.host or settings.env.host
    port = args.port or settings.env.port
    workers = args.num_workers or settings.env.num_workers
    if workers < 1:
        return _fail("--num_workers must be at least 1")
    server = "hypercorn" if args.run_hypercorn else args.server or settings.env.server
    os.environ.pop("GATEWAY_SUPERVISOR_PID", None)  # set again below for the workers of a supervisor only
    announce(f"gateway {gateway.__version__} serving on http://{host}:{port} with {workers} worker(s) ({server})")
    return (_run_uvicorn if server == "uvicorn" else _run_hypercorn)(host, port, workers)


def _run_uvicorn(host: str, port: int, workers: int) -> int:
    import signal

    from gateway.core.http_protocol import EnvelopeHttpToolsProtocol

    # uvicorn re-raises the signal that stopped it once it has shut down gracefully; with these
    # handlers in place that re-raise returns here, so a clean SIGTERM/SIGINT stop exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    # http: uvicorn's httptools protocol, answering unparsable requests in the error envelope.
    options: dict[str, Any] = dict(host=host, port=port, loop="auto", http=EnvelopeHttpToolsProtocol,
                                   lifespan="on", access_log=False, log_config=None, timeout_keep_alive=75,
                                   timeout_graceful_shutdown=30, server_header=False)
    # Workers under a supervisor, one worker too: they die with it, it closes its socket before they
    # drain, and SIGHUP swaps them for workers on the re-read config (gateway/core/reload.py).
    from gateway.core.supervisor import run_uvicorn_workers

    return run_uvicorn_workers("gateway.core.asgi:app", workers, **options)


def _run_hypercorn(host: str, port: int, workers: int) -> int:
    from hypercorn.config import Config
    from hypercorn.run import run

    from gateway.core.logsetup import json_logs

    config = Config()
    config.application_path = "gateway.core.asgi:app"
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.workers = 0 if workers == 1 else workers
    config.accesslog = None
    # JSON logs: hypercorn's own lines go through the root logger's JSON formatter too.
    config.errorlog = logging.getLogger("hypercorn.error") if json_logs() else "-"
    config.keep_alive_timeout = 75
    config.graceful_timeout = 30
    from gateway.core.supervisor import refuse_reload_on_sighup, run_hypercorn_workers

    if workers > 1:  # workers that die with the supervisor and drain on SIGTERM, every one of them
        return run_hypercorn_workers(config, workers)
    refuse_reload_on_sighup()
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
    from gateway.core.audit_chain import verify_chain
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


def check(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="gateway check", description="Validate a config without serving: the environment, every key of the "
        "file, the plugins (loaded and configured), the models (each resolved to its provider), route rules, "
        "guardrails, fallbacks. Prints every problem, or `config OK`; exits 1 if there is a problem. Connects to "
        "nothing (no database, Redis or upstream); plugins' prepare_environment runs, as at start-up.")
    p.add_argument("--config", "-c", help="YAML config file (default: $GATEWAY_CONFIG)")
    args = p.parse_args(argv)
    from gateway.core.config_check import check_config
    from gateway.core.logsetup import configure_logging

    configure_logging(default_level="WARNING")  # only what goes wrong while plugins are built
    report = check_config(os.path.abspath(args.config) if args.config else None)
    for problem in report.problems:
        print(f"error: {problem}")
    if report.ignored:
        print(f"warning: {report.warning()}")
    if report.ok:
        print("config OK")
        return 0
    count = len(report.problems)
    print(f"{count} problem{'s' if count > 1 else ''}")
    return 1


def version(argv: Sequence[str]) -> int:
    argparse.ArgumentParser(prog="gateway version", description="Print the version.").parse_args(argv)
    print(f"gateway {gateway.__version__}")
    return 0


def one_model_config(model: str, alias: str | None, api_base: str | None, api_version: str | None) -> str:
    """`--model`: a config file serving that one model (removed when the command exits); its path."""
    params = {"model": model, **({"api_base": api_base} if api_base else {}),
              **({"api_version": api_version} if api_version else {})}
    name = alias or model
    config: dict[str, Any] = {"model_list": [{"model_name": name, "litellm_params": params}]}
    bare = model.split("/", 1)[1] if "/" in model else model
    if not alias and bare != name:  # `openai/gpt-4o` answers to `gpt-4o` too (not listed twice)
        config["router_settings"] = {"model_group_alias": {bare: {"model": name, "hidden": True}}}
    folder = tempfile.mkdtemp(prefix="gateway-model-")
    atexit.register(shutil.rmtree, folder, True)
    path = os.path.join(folder, "config.yaml")
    with open(path, "w") as out:
        yaml.safe_dump(config, out, sort_keys=False)
    return path


COMMANDS = {"check": check, "version": version, "plugins": plugins, "migrate": migrate, "audit": audit}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    return serve(argv)


if __name__ == "__main__":
    sys.exit(main())
