"""`general_settings.pass_through_endpoints`: each entry read, checked and normalised once, at start-up.

LiteLLM's keys: `path` (the gateway's route), `target` (an http(s) URL), `headers` (added to every
forwarded request; values are provider keys: secrets), `forward_headers` (also send the client's
headers), `include_subpath` (serve every path under `path` too, appended to `target`), `auth`
(require a gateway key; off by default, as in LiteLLM) and `cost_per_request` (USD on the spend
row). A header value may hold `os.environ/NAME` after other text (`Bearer os.environ/KEY`, LiteLLM's
own example), which is resolved here; `LANGFUSE_PUBLIC_KEY` with `LANGFUSE_SECRET_KEY` become
Langfuse's basic-auth header, as LiteLLM does. Every problem is one line naming the entry's index
and key, and never a header's value.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable
from urllib.parse import urlsplit

from gateway.core.providers.urls import safe_url, split_credentials

log = logging.getLogger("gateway.pass_through")

SETTING = "general_settings.pass_through_endpoints"
DEFAULT_TIMEOUT_S = 600.0  # LiteLLM's `pass_through_request_timeout` default
KNOWN_KEYS = ("path", "target", "headers", "forward_headers", "include_subpath", "auth", "cost_per_request",
              "timeout")
#: LiteLLM keys with nothing to do here: `id` names an entry in LiteLLM's UI; query strings are always
#: merged (the target's own, then the client's), which is what `merge_query_params: true` asks for.
IGNORED_KEYS = ("id", "merge_query_params")
#: LiteLLM keys this gateway does not implement: refused rather than silently not applied.
UNSUPPORTED_KEYS = ("guardrails", "methods", "default_query_params")
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
PLAIN_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@/-]*$")
ENV_REF = "os.environ/"
LANGFUSE_KEYS = ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY")


class PassThroughConfigError(ValueError):
    """A pass-through entry that cannot be served; the message is one line naming the entry and key."""


@dataclass(frozen=True, slots=True)
class PassThroughEndpoint:
    """One entry, ready to serve. `headers` hold secrets: never log, show or store them."""

    index: int
    path: str  # starts with "/", no trailing "/" (except "/" itself)
    target: str  # http(s), without userinfo (moved into `headers` as basic auth)
    headers: dict[str, str] = field(repr=False)
    forward_headers: bool = False
    include_subpath: bool = False
    auth: bool = False
    cost_per_request: float = 0.0
    timeout: float = DEFAULT_TIMEOUT_S

    @property
    def where(self) -> str:
        """The target as it may be written in an error or a log: scheme, host and port only."""
        parts = urlsplit(self.target)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def display_target(self) -> str:
        return safe_url(self.target) or ""

    def routes(self) -> list[str]:
        """The gateway routes this entry serves, as the access policy names them."""
        if not self.include_subpath:
            return [self.path]
        return [self.path, f"{self.path.rstrip('/')}/<path:subpath>"]


def _error(index: int, key: str | None, message: str) -> PassThroughConfigError:
    where = f"{SETTING}[{index}]" + (f".{key}" if key else "")
    return PassThroughConfigError(f"{where}: {message}")


def _flag(index: int, entry: dict[str, Any], key: str) -> bool:
    """A boolean key; "true"/"false" strings too (what `os.environ/...` resolves to, and LiteLLM reads)."""
    value = entry.get(key)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _error(index, key, f"must be true or false (got {type(value).__name__})")


def _number(index: int, entry: dict[str, Any], key: str, default: float, positive: bool = False) -> float:
    value = entry.get(key)
    if value is None:
        return default
    try:
        number = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        number = float("nan")
    if number != number or number in (float("inf"), float("-inf")) or number < 0 or (positive and number == 0):
        raise _error(index, key, f"must be a {'positive' if positive else 'non-negative'} number (got {value!r})")
    return number


def _path(index: int, entry: dict[str, Any]) -> str:
    path = entry.get("path")
    if path is None or path == "":
        raise _error(index, "path", "is required: the gateway route to serve, e.g. /bria")
    if not isinstance(path, str):
        raise _error(index, "path", f"must be a string (got {type(path).__name__})")
    if not path.startswith("/"):
        raise _error(index, "path", f"must start with '/' (got {path!r})")
    if not PLAIN_PATH.match(path) or "//" in path or any(p in (".", "..") for p in path.split("/")):
        raise _error(index, "path", f"must be a plain URL path, without placeholders, query or spaces (got {path!r})")
    return path.rstrip("/") or "/"


def _target(index: int, entry: dict[str, Any]) -> tuple[str, str | None]:
    """The target URL without userinfo, and the basic-auth header value its userinfo stood for."""
    target = entry.get("target")
    if target is None or target == "":
        raise _error(index, "target", "is required: the http(s) URL requests are forwarded to")
    if not isinstance(target, str):
        raise _error(index, "target", f"must be a string (got {type(target).__name__})")
    try:
        parts = urlsplit(target)
        parts.port  # noqa: B018  # an invalid port raises here
    except ValueError:
        raise _error(index, "target", "is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        shown = safe_url(target) if "://" in target else target
        raise _error(index, "target", f"must be an http:// or https:// URL with a host (got {shown!r})")
    if parts.fragment:
        raise _error(index, "target", "must not have a #fragment")
    return split_credentials(target)


def _resolve(index: int, name: str, value: str) -> str:
    """`os.environ/NAME` anywhere in a header value (LiteLLM: the rest of the value is the name)."""
    start = value.find(ENV_REF)
    if start < 0:
        return value
    variable = value[start + len(ENV_REF):]
    if variable not in os.environ:
        raise _error(index, f"headers.{name}", f"environment variable {variable} is not set")
    return value[:start] + os.environ[variable]


def _headers(index: int, entry: dict[str, Any]) -> dict[str, str]:
    raw = entry.get("headers")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _error(index, "headers", "must be a mapping of header name to value")
    headers: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not HEADER_NAME.match(name):
            raise _error(index, "headers", f"{name!r} is not a valid header name")
        if value is None or isinstance(value, (dict, list)):
            raise _error(index, f"headers.{name}", "must be a string")
        if isinstance(value, bool):
            value = "true" if value else "false"
        text = _resolve(index, name, str(value))
        if "\r" in text or "\n" in text or "\x00" in text:
            raise _error(index, f"headers.{name}", "must be one line")
        headers[name] = text
    if any(k in headers for k in LANGFUSE_KEYS):
        if not all(k in headers for k in LANGFUSE_KEYS):
            missing = next(k for k in LANGFUSE_KEYS if k not in headers)
            raise _error(index, f"headers.{missing}", "is required with the other Langfuse key")
        token = f"{headers.pop(LANGFUSE_KEYS[0])}:{headers.pop(LANGFUSE_KEYS[1])}"
        headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode("ascii")
    return headers


def parse_entry(index: int, entry: Any, default_timeout: float = DEFAULT_TIMEOUT_S) -> PassThroughEndpoint:
    if not isinstance(entry, dict):
        raise _error(index, None, "must be a mapping with at least `path` and `target`")
    for key in entry:
        if key in UNSUPPORTED_KEYS:
            raise _error(index, str(key), "is not supported by this gateway; remove it")
        if key not in KNOWN_KEYS and key not in IGNORED_KEYS:
            raise _error(index, str(key), "unknown key; known: " + ", ".join(KNOWN_KEYS))
    path = _path(index, entry)
    target, basic = _target(index, entry)
    headers = _headers(index, entry)
    if basic is not None and not any(k.lower() == "authorization" for k in headers):
        headers["Authorization"] = basic  # the target's userinfo, sent as LiteLLM's client sends it
    return PassThroughEndpoint(
        index=index, path=path, target=target, headers=headers,
        forward_headers=_flag(index, entry, "forward_headers"),
        include_subpath=_flag(index, entry, "include_subpath"),
        auth=_flag(index, entry, "auth"),
        cost_per_request=_number(index, entry, "cost_per_request", 0.0),
        timeout=_number(index, entry, "timeout", default_timeout, positive=True),
    )


def parse(general_settings: dict[str, Any]) -> list[PassThroughEndpoint]:
    """Every entry of `general_settings.pass_through_endpoints`, or PassThroughConfigError."""
    entries = general_settings.get("pass_through_endpoints")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise PassThroughConfigError(f"{SETTING}: must be a list of entries with `path` and `target`")
    try:
        default_timeout = float(general_settings.get("pass_through_request_timeout") or DEFAULT_TIMEOUT_S)
    except (TypeError, ValueError):
        raise PassThroughConfigError("general_settings.pass_through_request_timeout: must be a number") from None
    endpoints = [parse_entry(i, entry, default_timeout) for i, entry in enumerate(entries)]
    seen: dict[str, int] = {}
    for ep in endpoints:
        if ep.path in seen:
            raise _error(ep.index, "path", f"{ep.path} is already served by entry [{seen[ep.path]}]")
        seen[ep.path] = ep.index
    return endpoints


def collision(endpoint: PassThroughEndpoint, matches: Any, gateway_routes: Iterable[str]) -> str | None:
    """The gateway route `endpoint` would shadow or be shadowed by, or None.

    `matches(path)` says whether a mounted route serves `path`; `gateway_routes` are the route
    templates the gateway owns (mounted or reserved). With `include_subpath`, any of them under
    the entry's path collides too.
    """
    if matches(endpoint.path):
        return endpoint.path
    if endpoint.include_subpath:
        prefix = endpoint.path.rstrip("/") + "/"
        for route in gateway_routes:
            if route.startswith(prefix):
                return route
    return None
