"""Placeholder: being written (issue 16)."""

from quart import Blueprint

bp = Blueprint("responses", __name__)
