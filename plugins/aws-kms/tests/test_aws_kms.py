"""aws_kms seen from outside: the real `gateway` command and in-process gateways, with moto's
server as KMS on loopback. Every value is encrypted by that server first.

The seed's example is run as written: `USE_AWS_KMS="True"` and
`LITELLM_SECRET_AWS_KMS_DATABASE_URL="<base64>"`, and the data must land in that database.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import yaml

from gateway_plugin_aws_kms import AwsKms

GATEWAY_BIN = str(Path(sys.executable).parent / "gateway")
MASTER = "sk-1234"


def forget(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Unset `names` now and again at teardown, whatever the plugin exports meanwhile."""
    for name in names:
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)


def model(api_base: str, name: str = "gpt-test", **params: Any) -> dict[str, Any]:
    return {"model_name": name, "litellm_params": {"model": "openai/upstream-model", "api_base": api_base, **params}}


# -- the real `gateway` command --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def cli_env(**extra: str) -> dict[str, str]:
    """This process's environment (the AWS fixtures applied) without stray gateway settings."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GATEWAY_MASTER_KEY", "LITELLM_MASTER_KEY", "GATEWAY_CONFIG", "CONFIG_FILE_PATH", "PORT",
                        "DATABASE_URL", "PYTEST_CURRENT_TEST")}
    env.update(extra)
    return env


def startup_error(tmp_path: Path, config: dict[str, Any], **env: str) -> tuple[int, str, str]:
    """Run the CLI server: it must exit quickly with one `gateway: error:` line; (code, line, stderr)."""
    path = write_config(tmp_path, config)
    started = time.monotonic()
    proc = subprocess.run([GATEWAY_BIN, "--config", str(path), "--host", "127.0.0.1", "--port", str(free_port())],
                          capture_output=True, text=True, timeout=60, env=cli_env(**env), cwd=tmp_path)
    assert time.monotonic() - started < 30
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("gateway: error: ")]
    assert len(lines) == 1, proc.stderr
    return proc.returncode, lines[0], proc.stderr


@contextlib.contextmanager
def cli_server(tmp_path: Path, config: dict[str, Any], **env: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The real `gateway` serving `config`; yields (process, base URL); always stopped."""
    path = write_config(tmp_path, config)
    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([GATEWAY_BIN, "--config", str(path), "--host", "127.0.0.1", "--port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, env=cli_env(**env), cwd=tmp_path)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, f"gateway exited: {log_path.read_text()}"
                assert time.monotonic() < deadline, f"gateway not ready: {log_path.read_text()}"
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(url + "/health/liveliness", timeout=1).status_code == 200:
                        break
                time.sleep(0.05)
            yield proc, url
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


def key_aliases(url: str) -> list[str]:
    """The key aliases stored in the database at `url` (SQLite file or PostgreSQL), read directly."""
    if url.startswith("sqlite://"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite://"))) as db:
            return [row[0] for row in db.execute("SELECT key_alias FROM keys")]

    async def read() -> list[str]:
        import asyncpg

        conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
        try:
            return [row[0] for row in await conn.fetch("SELECT key_alias FROM keys")]
        finally:
            await conn.close()

    return asyncio.run(read())


@pytest.mark.db
def test_seed_example_the_gateway_uses_the_decrypted_database_url(kms, database_url, tmp_path):
    target = database_url()  # an SQLite file, or a PostgreSQL database under GATEWAY_TEST_DATABASE_URL
    encrypted = kms.encrypt(target)
    config = {"model_list": [model("http://127.0.0.1:9/v1")], "general_settings": {"master_key": MASTER}}
    with cli_server(tmp_path, config, USE_AWS_KMS="True", LITELLM_SECRET_AWS_KMS_DATABASE_URL=encrypted) as (proc, url):
        created = httpx.post(url + "/key/generate", headers={"Authorization": f"Bearer {MASTER}"},
                             json={"key_alias": "made-under-kms"}, timeout=30)
        assert created.status_code == 200, created.text
    assert proc.returncode == 0
    assert "made-under-kms" in key_aliases(target)
    assert not (tmp_path / "gateway.db").exists()  # no silent fall-back to the default SQLite file
    log = (tmp_path / "server.log").read_text()
    assert "AWS KMS: decrypted 1 secret: DATABASE_URL (from LITELLM_SECRET_AWS_KMS_DATABASE_URL)" in log
    assert encrypted not in log
    # The gateway names its database itself (password redacted); this plugin's lines never do.
    assert not [line for line in log.splitlines() if "aws_kms" in line and target in line]


def test_bad_ciphertext_stops_the_gateway_command_naming_the_variable(kms, tmp_path):
    garbage = base64.b64encode(b"not a ciphertext, but base64 all right").decode()
    config = {"model_list": [model("http://127.0.0.1:9/v1")]}
    code, line, stderr = startup_error(tmp_path, config, USE_AWS_KMS="True",
                                       LITELLM_SECRET_AWS_KMS_DATABASE_URL=garbage)
    assert code == 2
    assert line == ("gateway: error: plugin 'aws_kms': prepare_environment failed: cannot decrypt "
                    "LITELLM_SECRET_AWS_KMS_DATABASE_URL: KMS refused it (InvalidCiphertextException)")
    assert garbage not in stderr
    assert not (tmp_path / "gateway.db").exists()


def test_unreachable_kms_stops_the_gateway_command(kms, tmp_path, closed_port):
    encrypted = kms.encrypt("postgresql://user:pw@db/gateway")
    endpoint = f"http://127.0.0.1:{closed_port}"
    config = {"model_list": [model("http://127.0.0.1:9/v1")]}
    code, line, stderr = startup_error(tmp_path, config, USE_AWS_KMS="True", AWS_ENDPOINT_URL_KMS=endpoint,
                                       GATEWAY_SECRET_AWS_KMS_DATABASE_URL=encrypted)
    assert code == 2
    assert line.startswith("gateway: error: plugin 'aws_kms': prepare_environment failed: cannot decrypt "
                           f"GATEWAY_SECRET_AWS_KMS_DATABASE_URL: KMS at {endpoint} failed: EndpointConnectionError")
    assert encrypted not in stderr and "user:pw" not in stderr


# -- in-process gateways ---------------------------------------------------------------------------


def test_every_kind_of_encrypted_value_reaches_its_reader(kms, fake_upstream, gateway_server, caplog, aws_env):
    forget(aws_env, "UPSTREAM_KEY", "OTHER_KEY")
    secrets = {
        "prefixed": kms.encrypt("sk-upstream-via-gateway-prefix"),
        "losing": kms.encrypt("sk-upstream-via-litellm-prefix"),
        "in_place_env": kms.encrypt("sk-upstream-in-place-env"),
        "in_config": kms.encrypt("sk-upstream-in-config"),
        "master": kms.encrypt("sk-master-from-kms"),
    }
    config = {
        "model_list": [
            model(fake_upstream.url, "by-prefix", api_key="os.environ/UPSTREAM_KEY"),
            model(fake_upstream.url, "by-env-value", api_key="os.environ/OTHER_KEY"),
            model(fake_upstream.url, "by-config-value", api_key=f"aws_kms/{secrets['in_config']}"),
        ],
        "general_settings": {"master_key": f"aws_kms/{secrets['master']}"},
    }
    caplog.set_level(logging.INFO, logger="gateway.plugins.aws_kms")
    caplog.set_level(logging.DEBUG, logger="botocore")  # as under --detailed_debug: it would log the reply
    server = gateway_server(config, env={
        "USE_AWS_KMS": "True",
        "GATEWAY_SECRET_AWS_KMS_UPSTREAM_KEY": secrets["prefixed"],
        "LITELLM_SECRET_AWS_KMS_UPSTREAM_KEY": secrets["losing"],  # the gateway's own prefix wins
        "OTHER_KEY": f"aws_kms/{secrets['in_place_env']}",
    })
    with server.client(api_key="sk-master-from-kms") as client:
        for name in ("by-prefix", "by-env-value", "by-config-value"):
            client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])
    assert [r.headers["Authorization"] for r in fake_upstream.requests] == [
        "Bearer sk-upstream-via-gateway-prefix", "Bearer sk-upstream-in-place-env", "Bearer sk-upstream-in-config"]
    assert httpx.get(server.url + "/health/liveliness").status_code == 200
    refused = httpx.get(server.url + "/v1/models", headers={"Authorization": f"Bearer aws_kms/{secrets['master']}"})
    assert refused.status_code == 401

    plugins = httpx.get(server.url + "/plugins", headers={"Authorization": "Bearer sk-master-from-kms"}).json()
    (entry,) = [p for p in plugins["enabled"] if p["name"] == "aws_kms"]
    assert entry["enabled_by"] == "setting USE_AWS_KMS"
    assert entry["hooks"] == ["prepare_environment"]

    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.plugins.aws_kms"]
    assert lines[0] == ("AWS KMS: decrypted 4 secrets: OTHER_KEY, "
                        "UPSTREAM_KEY (from GATEWAY_SECRET_AWS_KMS_UPSTREAM_KEY), "
                        "config key model_list.2.litellm_params.api_key, config key general_settings.master_key")
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    for value in secrets.values():
        assert value not in logged
    for plaintext in ("sk-upstream-via-gateway-prefix", "sk-upstream-in-place-env", "sk-upstream-in-config",
                      "sk-master-from-kms"):
        assert plaintext not in logged
        assert base64.b64encode(plaintext.encode()).decode() not in logged  # KMS's reply carries it so


@pytest.mark.parametrize("value", ["True", "true", "TRUE", "1", " True "])
def test_switched_on(value):
    assert AwsKms.is_switched_on({}, {"USE_AWS_KMS": value})


@pytest.mark.parametrize("value", ["False", "false", "0", "", "yes", "on", "Tru"])
def test_switched_off(value):
    assert not AwsKms.is_switched_on({}, {"USE_AWS_KMS": value})
    assert not AwsKms.is_switched_on({"USE_AWS_KMS": True}, {})  # the environment's switch, not the config's


def test_switched_off_nothing_is_decrypted(kms, fake_upstream, gateway_server):
    encrypted = kms.encrypt("sk-upstream")
    config = {"model_list": [model(fake_upstream.url, api_key="os.environ/UPSTREAM_KEY")]}
    unset = "model_list.0.litellm_params.api_key: environment variable UPSTREAM_KEY is not set"
    with pytest.raises(Exception, match=unset):
        gateway_server(config, env={"USE_AWS_KMS": "False", "LITELLM_SECRET_AWS_KMS_UPSTREAM_KEY": encrypted})


def test_named_in_callbacks_it_is_on_without_the_switch(kms, fake_upstream, gateway_server, aws_env):
    forget(aws_env, "UPSTREAM_KEY")
    config = {"model_list": [model(fake_upstream.url, api_key="os.environ/UPSTREAM_KEY")],
              "litellm_settings": {"callbacks": ["aws_kms"]}}
    server = gateway_server(config, env={"LITELLM_SECRET_AWS_KMS_UPSTREAM_KEY": kms.encrypt("sk-by-name")})
    with server.client() as client:
        client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert fake_upstream.requests[-1].headers["Authorization"] == "Bearer sk-by-name"


def test_switch_and_secrets_may_come_from_environment_variables(kms, fake_upstream, gateway_server, aws_env):
    forget(aws_env, "USE_AWS_KMS", "LITELLM_SECRET_AWS_KMS_UPSTREAM_KEY", "UPSTREAM_KEY")
    config = {"model_list": [model(fake_upstream.url, api_key="os.environ/UPSTREAM_KEY")],
              "environment_variables": {"USE_AWS_KMS": True,  # YAML's boolean, exported as "True"
                                        "LITELLM_SECRET_AWS_KMS_UPSTREAM_KEY": kms.encrypt("sk-from-the-file")}}
    server = gateway_server(config)
    with server.client() as client:
        client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert fake_upstream.requests[-1].headers["Authorization"] == "Bearer sk-from-the-file"


def test_nothing_to_decrypt_is_a_warning(kms, fake_upstream, gateway_server, caplog):
    caplog.set_level(logging.INFO, logger="gateway.plugins.aws_kms")
    gateway_server({"model_list": [model(fake_upstream.url)]}, env={"USE_AWS_KMS": "True"})
    (record,) = [r for r in caplog.records if r.name == "gateway.plugins.aws_kms"]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("USE_AWS_KMS is on, but there is nothing to decrypt")


BAD_VALUES: dict[str, Any] = {
    # case: kms -> (env, config additions, the error after `prepare_environment failed: `)
    "bad base64": lambda kms: (
        {"LITELLM_SECRET_AWS_KMS_DATABASE_URL": "AQICAH..not base64!"}, {},
        "cannot decrypt LITELLM_SECRET_AWS_KMS_DATABASE_URL: the value is not valid base64"),
    "garbage in the config": lambda kms: (
        {}, {"general_settings": {"master_key": "aws_kms/" + base64.b64encode(b"x" * 40).decode()}},
        "cannot decrypt config key general_settings.master_key: KMS refused it (InvalidCiphertextException)"),
    "key of another region": lambda kms: (  # moto refuses it as AWS does a key the caller may not use
        {"MY_KEY": "aws_kms/" + kms.encrypt("sk-secret"), "AWS_REGION_NAME": "ap-south-2"}, {},
        "cannot decrypt MY_KEY: KMS refused it (AccessDeniedException"),
    "not text": lambda kms: (
        {"GATEWAY_SECRET_AWS_KMS_BLOB": kms.encrypt(b"\xff\xfe\x00")}, {},
        "cannot decrypt GATEWAY_SECRET_AWS_KMS_BLOB: the decrypted value is not UTF-8 text"),
    "no region": lambda kms: (
        {"AWS_REGION_NAME": "", "GATEWAY_SECRET_AWS_KMS_X": kms.encrypt("x")}, {},
        "cannot decrypt GATEWAY_SECRET_AWS_KMS_X: no AWS region: set AWS_REGION_NAME "
        "(or AWS_REGION / AWS_DEFAULT_REGION)"),
    "no credentials": lambda kms: (
        {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "GATEWAY_SECRET_AWS_KMS_X": kms.encrypt("x")}, {},
        "cannot decrypt GATEWAY_SECRET_AWS_KMS_X: no AWS credentials found"),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_a_value_that_fails_stops_start_up_naming_it(case, kms, fake_upstream, gateway_server, aws_env):
    forget(aws_env, "MY_KEY", "BLOB", "X")
    env, extra, message = BAD_VALUES[case](kms)
    for name, value in env.items():
        if not value:
            aws_env.delenv(name)
    env = {k: v for k, v in env.items() if v}
    with pytest.raises(Exception) as err:
        gateway_server({"model_list": [model(fake_upstream.url)], **extra}, env={"USE_AWS_KMS": "True", **env})
    text = str(err.value)
    assert text.startswith(f"plugin 'aws_kms': prepare_environment failed: {message}"), text
    assert "\n" not in text
    for value in env.values():
        assert value.removeprefix("aws_kms/") not in text
    assert "BLOB" not in os.environ and "X" not in os.environ  # nothing applied
    assert os.environ.get("MY_KEY") == env.get("MY_KEY")


def test_a_kms_that_hangs_is_bounded_by_the_timeout(kms, fake_upstream, gateway_server, silent_port, aws_env):
    forget(aws_env, "DATABASE_URL")
    endpoint = f"http://127.0.0.1:{silent_port}"
    started = time.monotonic()
    with pytest.raises(Exception) as err:
        gateway_server({"model_list": [model(fake_upstream.url)]}, env={
            "USE_AWS_KMS": "True", "AWS_ENDPOINT_URL_KMS": endpoint, "GATEWAY_AWS_KMS_TIMEOUT_S": "0.5",
            "LITELLM_SECRET_AWS_KMS_DATABASE_URL": kms.encrypt("sqlite:///never.db")})
    elapsed = time.monotonic() - started
    assert str(err.value).startswith(
        "plugin 'aws_kms': prepare_environment failed: cannot decrypt LITELLM_SECRET_AWS_KMS_DATABASE_URL: "
        f"KMS at {endpoint} failed: ReadTimeoutError"), str(err.value)
    assert elapsed < 3  # one attempt of 0.5 s, no retries
