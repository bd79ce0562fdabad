"""Deployment URLs: credentials taken out of them, and a form safe to write anywhere.

LiteLLM users put reverse-proxy credentials in `api_base` (`http://user:pass@host/v1`); LiteLLM's
HTTP client sends them as HTTP basic auth, and so do we. The URL the gateway then calls carries no
userinfo, and every URL it writes (errors, logs, spend rows, `/model/info`) has its userinfo and the
values of secret-looking query parameters (`key`, `sig`, `token`, ...) masked.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

SECRET_PARAM = re.compile(r"(?i)^(api[-_]?key|key|token|access[-_]?token|auth|authorization|sig|signature|"
                          r"secret|client[-_]?secret|password|pass|pwd|code|x-api-key|sas)$")
MASK = "***"


def split_credentials(url: str) -> tuple[str, str | None]:
    """`url` without userinfo, and the `Authorization: Basic ...` value it carried (or None)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    return parts._replace(netloc=hostport).geturl(), f"Basic {token}"


def safe_url(url: str | None) -> str | None:
    """`url` as it may be written anywhere: no userinfo, secret query values masked."""
    if not url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if SECRET_PARAM.match(k) else v) for k, v in pairs], safe="*")
    return parts._replace(netloc=netloc, query=query).geturl()
