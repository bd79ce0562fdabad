"""The ASGI application for hypercorn workers, built from the environment the CLI set."""

from gateway.core.app import create_app, load
from gateway.core.logsetup import configure_logging

configure_logging()
app = create_app(load())
