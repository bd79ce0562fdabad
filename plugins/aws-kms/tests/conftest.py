"""AWS KMS on loopback, for the tests: moto's server, one per test module, with a key per test.

A ciphertext only decrypts within the moto server that made it, so every test encrypts its own
values first (`kms.encrypt`). Each encryption is fresh (random), so no value is ever one the
plugin has already decrypted, and remembered, in this process.

Nothing of this machine's AWS setup is used: fake credentials, no config files, no instance
metadata, and the endpoint through boto3's standard `AWS_ENDPOINT_URL_KMS`.
"""

from __future__ import annotations

import base64
import logging
import os
import socket

import pytest

REGION = "eu-west-3"  # not boto3's or moto's default: proves that AWS_REGION_NAME is what is used

_CLEARED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_REGION_NAME",
            "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "USE_AWS_KMS",
            "GATEWAY_AWS_KMS_TIMEOUT_S", "DATABASE_URL")


class Kms:
    """moto's server in this process, on a free loopback port, and a client of it."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per call otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        self.key_id = ""

    def client(self):
        import boto3

        return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                     region_name=REGION).client("kms", endpoint_url=self.url)

    def new_key(self) -> str:
        self.key_id = self.client().create_key()["KeyMetadata"]["KeyId"]
        return self.key_id

    def encrypt(self, plaintext: str | bytes, key_id: str | None = None) -> str:
        """Base64 of the ciphertext, as `aws kms encrypt --output text` prints it."""
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        blob = self.client().encrypt(KeyId=key_id or self.key_id, Plaintext=data)["CiphertextBlob"]
        return base64.b64encode(blob).decode()

    def stop(self) -> None:
        self._server.stop()
        inner = getattr(self._server, "_server", None)  # moto's stop() leaves the socket open
        if inner is not None:
            inner.server_close()


@pytest.fixture(scope="module")
def kms_server():
    # In this plugin's own test environment (`--group test`) moto is always there; an environment
    # without it (a workspace synced without this group) skips, saying what to install.
    pytest.importorskip("moto.server", reason="moto[server] is not installed: install this plugin's `test` group")
    server = Kms()
    yield server
    server.stop()


@pytest.fixture
def kms(kms_server, aws_env):
    """moto's KMS with a fresh key; the environment points boto3 at it."""
    kms_server.new_key()
    aws_env.setenv("AWS_ENDPOINT_URL_KMS", kms_server.url)
    return kms_server


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Fake credentials, the seed's AWS_REGION_NAME, and nothing from this machine's AWS setup;
    no secret variable, switch or DATABASE_URL left over from outside."""
    for name in list(os.environ):
        if name in _CLEARED or name.upper().startswith(("LITELLM_SECRET_AWS_KMS_", "GATEWAY_SECRET_AWS_KMS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION_NAME", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_port():
    """A loopback port that accepts connections and never answers (a KMS that hangs)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]
