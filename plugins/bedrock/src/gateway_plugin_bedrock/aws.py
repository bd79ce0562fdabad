"""AWS plumbing for one deployment: its region, its endpoint, its credentials, and SigV4.

Credentials come from botocore, the way the AWS CLI and boto3 find them:

- keys in the deployment (`aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`);
- a named profile (`aws_profile_name`: `~/.aws/credentials`, `~/.aws/config`, SSO, `credential_process`,
  a profile's `role_arn`);
- else the default chain: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, the default
  profile, web identity (EKS IRSA), the container and the EC2 instance role;
- and optionally a role assumed on top of any of those (`aws_role_name` with `aws_session_name`,
  `aws_external_id`, `aws_sts_endpoint`), refreshed before it expires.

One credential provider is built per distinct source and shared by every deployment that names the
same source. A request reads the current credentials from it (`get_frozen_credentials()`), so
temporary credentials refresh as botocore refreshes them. The provider's `prepare` (before each
call) and the plugin's background task (ahead of time) find missing credentials and refresh
expiring ones in a worker thread, so neither blocks the event loop.

Signing is botocore's `SigV4Auth` (its canonical request, string to sign and scope), over the exact
bytes sent. Two of its steps are replaced with equivalents that do the same on plain dicts: its
header handling goes through `email.message` and made signing cost 120-160 µs per call, this
costs 19-35 µs (one core, bench/translation.py). `tests/test_signing.py` checks the result against the unmodified `SigV4Auth`, and
the fake Bedrock server verifies every request it receives with it.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from dataclasses import dataclass
from hashlib import sha256
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.auth import SIGNED_HEADERS_BLACKLIST, SigV4Auth

log = logging.getLogger("gateway.plugins.bedrock")

SERVICE = "bedrock"  # the signing name of bedrock-runtime
#: Where calls go when the deployment names no endpoint; `{region}` is the deployment's.
ENDPOINT_TEMPLATE = "https://bedrock-runtime.{region}.amazonaws.com"
#: LiteLLM's last resort when nothing names a region.
DEFAULT_REGION = "us-west-2"
#: Parameters that name where credentials come from (any of them: no bearer token from the environment).
#: Missing credentials are looked for again at most this often; a failed refresh is not retried on
#: the request path sooner.
SEARCH_EVERY_S = 5.0
#: botocore refreshes temporary credentials itself, blocking, this close to their expiry.
MANDATORY_REFRESH_S = 10 * 60
CREDENTIAL_PARAMS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_profile_name",
                     "aws_role_name")


class CredentialsMissing(Exception):
    """No credentials could be found for a deployment; the message says where we looked."""


def region_of(params: dict[str, Any], model_id: str) -> tuple[str, str]:
    """(region, where it came from), LiteLLM's order: the deployment, AWS_REGION_NAME, AWS_REGION,
    the model ARN's region, AWS_DEFAULT_REGION or the profile's region, else us-west-2."""
    region = params.get("aws_region_name")
    if region:
        return str(region), "aws_region_name"
    for name in ("AWS_REGION_NAME", "AWS_REGION"):
        if os.environ.get(name):
            return os.environ[name], name
    if model_id.startswith("arn:"):
        parts = model_id.split(":")
        if len(parts) > 3 and parts[3]:
            return parts[3], "the model ARN"
    if os.environ.get("AWS_DEFAULT_REGION"):
        return os.environ["AWS_DEFAULT_REGION"], "AWS_DEFAULT_REGION"
    profile = params.get("aws_profile_name")
    if profile:
        import botocore.session

        try:
            region = botocore.session.Session(profile=str(profile)).get_config_variable("region")
        except Exception:
            region = None
        if region:
            return str(region), f"profile {profile!r}"
    return DEFAULT_REGION, "default"


def host_of(url: str) -> str:
    """The Host header an HTTP client sends for `url` (default ports left out), as SigV4 signs it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    port = parts.port
    if port is not None and not ((parts.scheme == "https" and port == 443) or (parts.scheme == "http" and port == 80)):
        host = f"{host}:{port}"
    return host


# -- credentials -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Source:
    """Where one deployment's credentials come from (the parts of its params that say so)."""

    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    profile: str | None = None
    role_arn: str | None = None
    session_name: str | None = None
    external_id: str | None = None
    sts_endpoint: str | None = None
    region: str | None = None  # for STS, when a role is assumed

    def __repr__(self) -> str:  # never the keys
        where = ("keys" if self.access_key else f"profile {self.profile!r}" if self.profile else "the default chain")
        return f"Source({where}{', role ' + repr(self.role_arn) if self.role_arn else ''})"

    def describe(self) -> str:
        return repr(self)[7:-1]

    @classmethod
    def of(cls, params: dict[str, Any], region: str) -> "Source":
        def text(name: str) -> str | None:
            value = params.get(name)
            return str(value) if value not in (None, "") else None

        if text("aws_web_identity_token"):
            raise ValueError("aws_web_identity_token is not supported by the bedrock provider; for web identity "
                             "(EKS, OIDC) set AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, which the standard AWS "
                             "credential chain reads, or use aws_role_name with other credentials")
        access, secret = text("aws_access_key_id"), text("aws_secret_access_key")
        if bool(access) != bool(secret):
            raise ValueError("aws_access_key_id and aws_secret_access_key go together: set both or neither")
        role = text("aws_role_name")
        return cls(access_key=access, secret_key=secret, session_token=text("aws_session_token"),
                   profile=text("aws_profile_name"), role_arn=role,
                   session_name=text("aws_session_name") if role else None,
                   external_id=text("aws_external_id") if role else None,
                   sts_endpoint=text("aws_sts_endpoint") if role else None,
                   region=region if role else None)


class Credentials:
    """A source's botocore credential provider, found once and read on every request.

    Reading may mean I/O (finding missing credentials: files, IMDS; refreshing temporary ones: STS,
    SSO, the container endpoint). `due()` says so cheaply, and `make_ready()` does it, blocking: the
    provider's `prepare` runs it in a worker thread before `build_request`, and the plugin's
    background task runs it ahead of time. `current()` then only reads, except that botocore itself
    refreshes credentials within 10 minutes of expiry when no one did so earlier.
    """

    def __init__(self, source: Source) -> None:
        self.source = source
        self._creds: Any = None
        self._lock = threading.Lock()
        self._problem = ""
        self._next_attempt = 0.0  # monotonic: `due()` hands out one search or refresh per SEARCH_EVERY_S
        self._failed_until = 0.0  # a refresh failed: do not try again on the request path before this

    @property
    def found(self) -> bool:
        return self._creds is not None

    def load(self) -> bool:
        """Find the credentials (may read files, call IMDS or STS). False when there are none;
        raises ValueError for a configuration that can never work (an unknown profile)."""
        with self._lock:
            if self._creds is not None:
                return True
            try:
                self._creds = _provider(self.source)
            except ValueError:
                raise
            except Exception as exc:  # a source that is there but failed (STS down, IMDS timeout, ...)
                self._problem = f"{type(exc).__name__}: {exc}"
                self._creds = None
            else:
                self._problem = "" if self._creds is not None else "none found"
            return self._creds is not None

    def due(self) -> bool:
        """True when `make_ready()` has work to do: credentials missing, or temporary ones within
        botocore's advisory refresh window (15 minutes before expiry). Cheap, and it hands the work to
        one caller per SEARCH_EVERY_S: the others go on with what there is (still valid, or a fast
        CredentialsMissing), so a burst of requests never starts a burst of searches."""
        now = time.monotonic()
        if now < self._next_attempt:
            return False
        creds = self._creds
        if creds is not None:
            needed = getattr(creds, "refresh_needed", None)
            if needed is None or not needed():
                return False
        self._next_attempt = now + SEARCH_EVERY_S
        return True

    def make_ready(self) -> None:
        """Blocking (a worker thread): find missing credentials, or refresh temporary ones now."""
        if self._creds is None:
            try:
                if self.load():
                    log.info("bedrock: AWS credentials from %s found", self.source.describe())
            except ValueError:
                pass
            return
        if hasattr(self._creds, "refresh_needed"):
            try:
                self._creds.get_frozen_credentials()
            except Exception as exc:
                self._failed_until = time.monotonic() + SEARCH_EVERY_S
                log.warning("bedrock: refreshing AWS credentials from %s failed: %s", self.source.describe(),
                            type(exc).__name__)

    def current(self) -> Any:
        """The credentials to sign this request with (botocore's ReadOnlyCredentials). Raises
        CredentialsMissing. Never searches for missing credentials itself, and never retries on
        the request path a refresh that just failed."""
        creds = self._creds
        if creds is None:
            raise CredentialsMissing(self.why())
        if time.monotonic() < self._failed_until and getattr(creds, "refresh_needed", None) \
                and creds.refresh_needed(MANDATORY_REFRESH_S):
            raise CredentialsMissing(f"AWS credentials from {self.source.describe()} expire and could not be "
                                     "refreshed; retrying in the background")
        try:
            frozen = creds.get_frozen_credentials()
        except Exception as exc:  # a refresh that failed (STS refused, network)
            self._failed_until = time.monotonic() + SEARCH_EVERY_S
            raise CredentialsMissing(f"AWS credentials from {self.source.describe()} could not be refreshed "
                                     f"({type(exc).__name__})") from None
        if not frozen.access_key or not frozen.secret_key:
            raise CredentialsMissing(self.why())
        return frozen

    def why(self) -> str:
        detail = f" ({self._problem})" if self._problem and self._problem != "none found" else ""
        return (f"no AWS credentials found from {self.source.describe()}{detail}: set aws_access_key_id and "
                "aws_secret_access_key (or aws_profile_name) on the deployment, or provide them through the "
                "standard AWS environment variables, profile or instance role (looked for again, off the request path, every few seconds)")


def _provider(source: Source) -> Any:
    """The botocore credentials object for `source` (None when the chain finds nothing)."""
    import botocore.credentials
    import botocore.exceptions
    import botocore.session

    session = botocore.session.Session(profile=source.profile) if source.profile else botocore.session.Session()
    if source.access_key:
        base: Any = botocore.credentials.Credentials(source.access_key, source.secret_key, source.session_token)
    else:
        try:
            base = session.get_credentials()
        except botocore.exceptions.ProfileNotFound:
            raise ValueError(f"aws_profile_name {source.profile!r} is not a profile in the AWS config or "
                             "credentials file") from None
    if base is None or not source.role_arn:
        return base
    return _assumed_role(session, base, source)


def _assumed_role(session: Any, base: Any, source: Source) -> Any:
    """`aws_role_name` assumed with `base`, refreshed by botocore before it expires (LiteLLM's
    aws_role_name / aws_session_name / aws_external_id / aws_sts_endpoint)."""
    from botocore.config import Config
    from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

    def client_creator(service: str, **kwargs: Any) -> Any:
        if source.sts_endpoint:
            kwargs["endpoint_url"] = source.sts_endpoint
        kwargs.setdefault("region_name", source.region)
        # bounded: botocore's defaults (60 s connect, 60 s read, retries) would hold a refresh for minutes
        kwargs.setdefault("config", Config(connect_timeout=5, read_timeout=10, retries={"total_max_attempts": 2}))
        return session.create_client(service, **kwargs)

    extra: dict[str, Any] = {"RoleSessionName": source.session_name or "gateway-bedrock"}
    if source.external_id:
        extra["ExternalId"] = source.external_id
    fetcher = AssumeRoleCredentialFetcher(client_creator, base, source.role_arn, extra_args=extra)
    creds = DeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials, method="assume-role")
    creds.get_frozen_credentials()  # assume it now (at start-up), not on the first request
    return creds


class CredentialCache:
    """One `Credentials` per distinct source, shared by the deployments that name it."""

    def __init__(self) -> None:
        self._by_source: dict[Source, Credentials] = {}
        self._lock = threading.Lock()

    def get(self, source: Source) -> Credentials:
        creds = self._by_source.get(source)
        if creds is None:
            with self._lock:
                creds = self._by_source.setdefault(source, Credentials(source))
        return creds

    def all(self) -> list[Credentials]:
        return list(self._by_source.values())


# -- signing -----------------------------------------------------------------------------------
class _Request:
    """What SigV4Auth reads of a request: method, url, headers, params, body, context."""

    __slots__ = ("method", "url", "headers", "params", "body", "context", "to_sign")

    def __init__(self, url: str, headers: dict[str, str], body: bytes, timestamp: str) -> None:
        self.method = "POST"
        self.url = url
        self.headers = headers
        self.params: dict[str, str] = {}
        self.body = body
        self.context = {"timestamp": timestamp}
        self.to_sign: dict[str, str] | None = None


_canonical_paths: dict[str, str] = {}
_signing_keys: dict[tuple[str, str, str], bytes] = {}


class Signer(SigV4Auth):
    """botocore's SigV4Auth over a plain dict of lower-case header names (host included), with
    the canonical path and the day's signing key cached. Everything else is SigV4Auth's own."""

    def headers_to_sign(self, request: Any) -> dict[str, str]:  # type: ignore[override]
        if request.to_sign is None:
            request.to_sign = {k: v for k, v in request.headers.items() if k not in SIGNED_HEADERS_BLACKLIST}
        return request.to_sign

    def canonical_headers(self, headers_to_sign: Any) -> str:
        return "\n".join(f"{k}:{' '.join(v.split())}" for k, v in sorted(headers_to_sign.items()))

    def signed_headers(self, headers_to_sign: Any) -> str:
        return ";".join(sorted(headers_to_sign))

    def _normalize_url_path(self, path: str) -> str:
        canonical = _canonical_paths.get(path)
        if canonical is None:
            if len(_canonical_paths) > 1024:
                _canonical_paths.clear()
            canonical = _canonical_paths[path] = super()._normalize_url_path(path)
        return canonical

    def signature(self, string_to_sign: str, request: Any) -> str:
        day = request.context["timestamp"][:8]
        ident = (self.credentials.secret_key, day, self._region_name)
        key = _signing_keys.get(ident)
        if key is None:
            k = hmac.new(f"AWS4{ident[0]}".encode(), day.encode(), sha256).digest()
            k = hmac.new(k, self._region_name.encode(), sha256).digest()
            k = hmac.new(k, self._service_name.encode(), sha256).digest()
            key = hmac.new(k, b"aws4_request", sha256).digest()
            if len(_signing_keys) > 256:
                _signing_keys.clear()
            _signing_keys[ident] = key
        return hmac.new(key, string_to_sign.encode(), sha256).hexdigest()


def amz_date(now: float | None = None) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


def sign(url: str, host: str, headers: dict[str, str], body: bytes, creds: Any, region: str,
         timestamp: str | None = None) -> dict[str, str]:
    """`headers` (lower-case names) with `host`, `x-amz-date`, `x-amz-security-token` and the
    SigV4 `authorization` for a POST of `body` to `url`. `host` is left for the HTTP client to send."""
    timestamp = timestamp or amz_date()
    signed = dict(headers)
    signed["host"] = host
    signed["x-amz-date"] = timestamp
    if creds.token:
        signed["x-amz-security-token"] = creds.token
    request = _Request(url, signed, body, timestamp)
    auth = Signer(creds, SERVICE, region)
    canonical = auth.canonical_request(request)
    string_to_sign = auth.string_to_sign(request, canonical)
    signature = auth.signature(string_to_sign, request)
    to_sign = auth.headers_to_sign(request)
    signed["authorization"] = (f"AWS4-HMAC-SHA256 Credential={auth.scope(request)}, "
                               f"SignedHeaders={auth.signed_headers(to_sign)}, Signature={signature}")
    del signed["host"]  # the client writes it, from the same URL
    return signed


def quote_model_id(model_id: str) -> str:
    """A model id or ARN as one URL path segment, spelt the way every HTTP client sends it.

    AWS checks the signature against the path it receives, so the signed URL must be the bytes on
    the wire. botocore escapes `:` as `%3A`, but aiohttp (the gateway's transport) normalises
    `%3A` back to `:` before sending, and a signature over `%3A` then fails. A `:` is legal in a
    path segment and every client sends it as it is: it stays unescaped. `/` (ARNs) must be
    escaped, or it would split the segment; `%2F` reaches AWS unchanged."""
    return quote(model_id, safe="-._~:")
