"""One KMS decryption at a time: base64 text in, plaintext out, within a bounded time.

The client is boto3's `kms` client with the standard credential chain. The region comes from
`AWS_REGION_NAME` (the seed's name), `AWS_REGION` or `AWS_DEFAULT_REGION`; the endpoint is boto3's
own business (`AWS_ENDPOINT_URL_KMS`, `AWS_ENDPOINT_URL`), so private endpoints work as they do for
every AWS tool. One attempt per value, with connect and read timeouts: an unreachable KMS stops
start-up in seconds instead of hanging it.

Every failure is a `DecryptError` whose message is one line and never holds the ciphertext or the
plaintext: it goes to the operator's terminal and logs.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
from typing import Any, Iterator, Mapping

REGION_VARS = ("AWS_REGION_NAME", "AWS_REGION", "AWS_DEFAULT_REGION")
TIMEOUT_VAR = "GATEWAY_AWS_KMS_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 5.0
VALUE_PREFIX = "aws_kms/"


class DecryptError(Exception):
    """A value could not be decrypted; the message is one line without any secret."""


@contextlib.contextmanager
def _quiet_botocore() -> Iterator[None]:
    """botocore logs request and response bodies at DEBUG (`--detailed_debug`): the response
    holds the plaintext. Hold its loggers at INFO while we call KMS."""
    logger = logging.getLogger("botocore")
    level = logger.level
    if logger.getEffectiveLevel() < logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.setLevel(level)


def _one_line(text: str, *secrets: str) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return " ".join(text.split())


def ciphertext_of(value: str) -> bytes:
    """The KMS ciphertext blob inside `value`: base64, optionally after `aws_kms/`."""
    text = value.strip()
    if text.startswith(VALUE_PREFIX):
        text = text[len(VALUE_PREFIX):]
    try:
        blob = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptError("the value is not valid base64") from None
    if not blob:
        raise DecryptError("the value is empty")
    return blob


class Decryptor:
    """Decrypts values with one KMS client, built on first use (nothing to decrypt: no client)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self._client: Any = None

    def _timeout(self) -> float:
        raw = self.environ.get(TIMEOUT_VAR)
        if not raw:
            return DEFAULT_TIMEOUT_S
        try:
            timeout = float(raw)
        except ValueError:
            timeout = 0.0
        if not timeout > 0:
            raise DecryptError(f"{TIMEOUT_VAR} must be a positive number of seconds, not {raw!r}")
        return timeout

    def client(self) -> Any:
        if self._client is not None:
            return self._client
        import boto3
        from botocore.config import Config

        region = next((self.environ[v] for v in REGION_VARS if self.environ.get(v)), None)
        session = boto3.session.Session(region_name=region)
        if not session.region_name:
            raise DecryptError(f"no AWS region: set {REGION_VARS[0]} (or {' / '.join(REGION_VARS[1:])})")
        if session.get_credentials() is None:
            raise DecryptError("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                               "AWS_PROFILE, or run with an IAM role")
        timeout = self._timeout()
        self._client = session.client("kms", config=Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"mode": "standard", "total_max_attempts": 1},
        ))
        return self._client

    def decrypt(self, value: str) -> str:
        """The plaintext of `value` (base64 of a KMS ciphertext, optionally `aws_kms/`-prefixed)."""
        from botocore.exceptions import BotoCoreError, ClientError

        blob = ciphertext_of(value)
        client = self.client()
        try:
            with _quiet_botocore():
                plaintext = client.decrypt(CiphertextBlob=blob)["Plaintext"]
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code") or "error"
            message = error.get("Message") or ""
            detail = f"{code}: {message}" if message else code
            raise DecryptError(_one_line(f"KMS refused it ({detail})", value.strip())) from None
        except BotoCoreError as exc:
            endpoint = client.meta.endpoint_url
            raise DecryptError(_one_line(f"KMS at {endpoint} failed: {type(exc).__name__}: {exc}",
                                         value.strip())) from None
        try:
            return plaintext.decode("utf-8")
        except UnicodeDecodeError:
            raise DecryptError("the decrypted value is not UTF-8 text") from None

