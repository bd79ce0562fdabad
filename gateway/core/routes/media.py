"""Placeholder: being written (issue 16)."""

from quart import Blueprint

bp = Blueprint("media", __name__)
