"""The plugin: before the upstream call, send the request's text to Google Cloud Natural Language
`moderateText` (v2, REST transport) and block when a category's confidence is above its threshold.

The Google client blocks (requests underneath), so each call runs on a small thread pool of the
plugin's own, never on the event loop. The client is built once in `startup`, with no retries and a
timeout per call: a slow or failing Google is a guard failure at once, and the framework's
`on_error` decides (503 `guardrail_unavailable`, or on with `fail_open`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import struct
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from gateway import BadRequestError, Plugin, RequestContext, hookimpl, iter_request_text

from gateway_plugin_google_moderation.config import (
    CATEGORIES,
    GoogleModerationConfig,
    category_key,
    misspelled_threshold_keys,
)

log = logging.getLogger("gateway.plugins.google_text_moderation")

CREDENTIALS_ENV = "GOOGLE_APPLICATION_CREDENTIALS"
ENDPOINT_ENV = "GOOGLE_MODERATION_API_ENDPOINT"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


class GuardReplyError(RuntimeError):
    """moderateText answered, but not with a usable verdict (a guard failure, not a pass)."""


class GoogleTextModeration(Plugin):
    """Blocks (400 `Violated content safety policy. Category=<key>`) an LLM call whose text Google
    scores above a category's confidence threshold."""

    name = "google_text_moderation"  # the entry-point name, the seed's callback name
    priority = 730  # remote guards band (700-799): after secret redaction, so no secret is sent
    concurrent = True  # only reads the request: runs together with neighbouring remote guards
    Config = GoogleModerationConfig

    config: GoogleModerationConfig

    def __init__(self, config: GoogleModerationConfig, gateway: Any) -> None:
        super().__init__(config, gateway)
        settings = getattr(gateway, "settings", None)
        wrong = misspelled_threshold_keys(getattr(settings, "flat_settings", None) or {})
        if wrong:
            raise ValueError(f"unknown setting {', '.join(wrong)}")
        self.thresholds = {key: _float32(t) for key, t in config.thresholds().items()}
        self.default_threshold = _float32(config.google_moderation_confidence_threshold)
        self.client: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._call_timeout = config.google_moderation_timeout_s

    @hookimpl
    async def startup(self, gateway: Any) -> None:
        endpoint = os.environ.get(ENDPOINT_ENV, "").strip()
        scheme = ""
        if endpoint:
            parts = urlsplit(endpoint)
            scheme = parts.scheme
            if scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"{ENDPOINT_ENV} must be an http:// or https:// base URL, got {endpoint!r}")
        if self.timeout_s is not None:  # a call need not outlive the framework's limit on the hook
            self._call_timeout = min(self._call_timeout, self.timeout_s)
        # Heavy imports (protobuf, grpc) only once the plugin serves.
        from google.api_core.client_options import ClientOptions
        from google.cloud import language_v2

        if scheme == "http":  # a local fake or a keyless private proxy: no token to send
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()
        else:
            credentials = await asyncio.to_thread(_load_credentials)
        options = ClientOptions(api_endpoint=endpoint.rstrip("/")) if endpoint else None
        self.client = language_v2.LanguageServiceClient(credentials=credentials, transport="rest",
                                                        client_options=options)
        size = self.config.google_moderation_max_concurrent_calls
        _size_connection_pool(self.client, size)
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="google-moderation")
        self._request_type = language_v2.ModerateTextRequest
        self._response_type = language_v2.ModerateTextResponse
        self._plain_text = language_v2.Document.Type.PLAIN_TEXT
        log.info("Google text moderation on: %s, default threshold %s, call timeout %ss",
                 endpoint or "language.googleapis.com", self.config.google_moderation_confidence_threshold,
                 self._call_timeout)

    @hookimpl
    async def shutdown(self, gateway: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self.client is not None:
            self.client.transport.close()
            self.client = None

    @hookimpl
    async def pre_request(self, ctx: RequestContext) -> None:
        text = "\n".join(t for t in iter_request_text(ctx.body) if t.strip())
        if not text:
            return  # nothing a person wrote: nothing to moderate
        request = self._request_type(document={"type_": self._plain_text, "content": text})
        call = functools.partial(self.client.moderate_text, request=request, retry=None, timeout=self._call_timeout)
        response = await asyncio.get_running_loop().run_in_executor(self._pool, call)
        # Read through the raw protobuf message: proto-plus wrappers cost ~80 µs for 16 categories.
        raw = self._response_type.pb(response)
        verdict = self.judge([(c.name, c.confidence) for c in raw.moderation_categories])
        if verdict is not None:
            key, confidence = verdict
            log.warning("request %s blocked: %s confidence %.3g > threshold %.3g", ctx.request_id, key, confidence,
                        self.thresholds.get(key, self.default_threshold))
            raise BadRequestError(f"Violated content safety policy. Category={key}")

    def judge(self, categories: list[tuple[str, float]]) -> tuple[str, float] | None:
        """The category to block for (the most confident one above its threshold), or None.

        Google scores every category for every text, so an empty list or a confidence outside
        0-1 is a broken reply: it raises, and the framework's `on_error` applies."""
        if not categories:
            raise GuardReplyError("moderateText returned no moderation categories")
        worst: tuple[str, float] | None = None
        for name, confidence in categories:
            if not 0 <= confidence <= 1:
                raise GuardReplyError(f"moderateText returned confidence {confidence!r} for {name!r}")
            key = CATEGORIES.get(name) or category_key(name)
            threshold = self.thresholds.get(key, self.default_threshold)
            if confidence > threshold and (worst is None or confidence > worst[1]):
                worst = (key, confidence)
        return worst


def _float32(value: float) -> float:
    """`value` as the API's 32-bit float holds it. Confidences arrive as float32 (0.4 becomes
    0.4000000059604645), so thresholds are compared at that precision: 0.4 is not above 0.4."""
    return struct.unpack("f", struct.pack("f", value))[0]


def _load_credentials() -> Any:
    """The credentials in GOOGLE_APPLICATION_CREDENTIALS (a service-account JSON, or any other
    credentials file google-auth reads), read the way every Google library reads them. Only when
    it is set: without it google-auth would go on guessing (gcloud's login, then probing the
    metadata server over the network), and start-up fails instead."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    path = os.environ.get(CREDENTIALS_ENV, "").strip()
    if not path:
        raise RuntimeError(
            f"{CREDENTIALS_ENV} is not set: set it to a service-account JSON file "
            f"(or {ENDPOINT_ENV} to an http:// endpoint that needs no credentials)"
        )
    try:
        credentials, _ = google.auth.default(scopes=SCOPES)
    except DefaultCredentialsError as exc:
        reason = re.sub(r"\s+", " ", str(exc))  # one line
        raise RuntimeError(f"{CREDENTIALS_ENV}={path}: {reason}") from None
    return credentials


def _size_connection_pool(client: Any, size: int) -> None:
    """Let the client's HTTP session keep one connection per thread (requests keeps 10 per host by
    default and drops the rest after use). The session is the transport's own; if a future client
    hides it, the default pool still works, only with more reconnects. An adapter the client set
    up itself (mutual TLS) is left as it is."""
    from requests.adapters import HTTPAdapter

    adapters = getattr(getattr(client.transport, "_session", None), "adapters", None)
    if not isinstance(adapters, dict):
        return
    for prefix in ("https://", "http://"):
        if type(adapters.get(prefix)) is HTTPAdapter:
            adapters[prefix] = HTTPAdapter(pool_connections=1, pool_maxsize=size)
