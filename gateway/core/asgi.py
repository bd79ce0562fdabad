"""The ASGI application each server worker imports, built from the environment the CLI set."""

from gateway.core.app import create_app, load
from gateway.core.logsetup import configure_logging
from gateway.core.supervisor import die_with_supervisor

die_with_supervisor()  # a worker of `--num_workers N` stops when its supervisor dies
configure_logging()
app = create_app(load())
