"""Placeholder: being written (issue 16)."""

from quart import Blueprint

bp = Blueprint("pass_through", __name__)
