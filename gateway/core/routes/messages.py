"""Placeholder: being written (issue 16)."""

from quart import Blueprint

bp = Blueprint("messages", __name__)
