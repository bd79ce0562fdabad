"""What a debug log may show of a request: credential-bearing headers masked, bodies capped.

`--detailed_debug` logs each upstream call. Deployments add headers of their own (`extra_headers`:
`x-api-key`, `cookie`, `proxy-authorization`, ...), so masking is decided by the header's name, and
generously: a masked header that was not a secret costs nothing, a shown secret is a leak. Bodies
are capped so that one large request cannot fill the log.
"""

from __future__ import annotations

import re
from typing import Mapping

BODY_LIMIT = 2048  # bytes of a body shown in a debug line

SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "api-key", "x-api-key", "x-goog-api-key",
    "ocp-apim-subscription-key", "x-functions-key", "x-amz-security-token", "x-csrf-token", "x-xsrf-token",
})
# Any other name carrying one of these words: x-auth-token, x-portkey-api-key, my-secret, x-session-id...
SECRET_NAME = re.compile(r"(?i)(auth|key|token|secret|passw|cookie|session|credential|signature)")


def is_secret_header(name: str) -> bool:
    return name.lower() in SECRET_HEADERS or SECRET_NAME.search(name) is not None


def mask_secret(value: str) -> str:
    """Enough of a secret to recognise it in a debug log, never enough to use it."""
    scheme, sep, rest = value.partition(" ")
    if sep and scheme.lower() in ("bearer", "basic", "token", "digest"):
        return f"{scheme} {mask_secret(rest)}"
    return value[:4] + "*" * 12 if len(value) >= 20 else "*" * 8


def safe_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """`headers` with the value of every credential-bearing header masked."""
    return {k: (mask_secret(v) if is_secret_header(k) else v) for k, v in headers.items()}


def capped_body(content: bytes | str, limit: int = BODY_LIMIT) -> str:
    """The first `limit` bytes of a body as text, and how many more there were."""
    raw = content.encode() if isinstance(content, str) else content
    if len(raw) <= limit:
        return raw.decode(errors="replace")
    return f"{raw[:limit].decode(errors='ignore')}... ({len(raw) - limit} bytes more)"
