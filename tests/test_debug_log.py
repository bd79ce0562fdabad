"""`--detailed_debug` (or `LITELLM_LOG=DEBUG`) shows each upstream call without its credentials, and
with its body capped: the real `gateway` CLI, its log read as an operator reads it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

GATEWAY_BIN = str(Path(sys.executable).parent / "gateway")
SECRETS = {
    "x-api-key": "xak-0123456789abcdef-secret",
    "cookie": "session=cookie-0123456789abcdef-secret",
    "proxy-authorization": "Basic cHJveHktdXNlcjpwcm94eS1wYXNzd29yZC1zZWNyZXQ=",
    "x-goog-api-key": "AIzaSy-goog-0123456789abcdef",
    "x-custom-token": "tok-0123456789abcdef-secret",
    "x-tenant-secret": "ten-0123456789abcdef-secret",
    "X-Portkey-Api-Key": "pk-0123456789abcdef-secret",
}
UPSTREAM_KEY = "sk-upstream-0123456789abcdef"
BIG = 1_000_000  # about 1 MiB; the fake upstream (aiohttp) refuses bodies over 1 MiB


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("switch", ["--detailed_debug", "LITELLM_LOG=DEBUG"])
def test_debug_log_masks_credentials_and_caps_bodies(tmp_path, fake_upstream, switch):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "gpt-test", "litellm_params": {
            "model": "openai/upstream-model", "api_base": fake_upstream.url, "api_key": UPSTREAM_KEY,
            "extra_headers": {**SECRETS, "x-plain": "visible-value"}}}],
        "general_settings": {"master_key": "sk-1234"}}))
    env = {k: v for k, v in os.environ.items()
           if k not in ("GATEWAY_MASTER_KEY", "LITELLM_MASTER_KEY", "GATEWAY_CONFIG", "PORT", "GATEWAY_LOG_LEVEL",
                        "GATEWAY_DETAILED_DEBUG", "LITELLM_LOG")}
    env["DATABASE_URL"] = f"sqlite://{tmp_path / 'gateway.db'}"
    args = [GATEWAY_BIN, "--config", str(config), "--host", "127.0.0.1", "--port", str(port := free_port())]
    if switch.startswith("--"):
        args.append(switch)
    else:
        name, _, value = switch.partition("=")
        env[name] = value
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            try:
                if httpx.get(url + "/health/liveliness", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        auth = {"Authorization": "Bearer sk-1234"}
        for text in ("small", "x" * BIG):
            reply = httpx.post(url + "/v1/chat/completions", headers=auth, timeout=30,
                               json={"model": "gpt-test", "messages": [{"role": "user", "content": text}]})
            assert reply.status_code == 200, reply.text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    log = log_path.read_text()

    # The upstream got every header in clear; the log shows none of their values.
    sent = {k.lower(): v for k, v in fake_upstream.requests[0].headers.items()}
    for name, value in SECRETS.items():
        assert sent[name.lower()] == value
    assert sent["authorization"] == f"Bearer {UPSTREAM_KEY}"
    lines = [line for line in log.splitlines() if "POST Request Sent from gateway" in line]
    assert len(lines) == 2, log[-3000:]
    for secret in [*SECRETS.values(), UPSTREAM_KEY, "cHJveHktdXNlcjpwcm94eS1wYXNzd29yZC1zZWNyZXQ", "sk-1234"]:
        assert secret not in log, f"{secret} in the log"
    assert "'x-plain': 'visible-value'" in lines[0]  # other headers are shown as they are
    assert "'authorization': 'Bearer sk-u************'" in lines[0]
    assert '"content":"small"' in lines[0]

    # The ~1 MB body: its first 2 KiB, and how much more there was.
    big = lines[1]
    more = re.search(r"\.\.\. \((\d+) bytes more\)$", big)
    assert more, big[-200:]
    assert BIG - 2048 < int(more.group(1)) < BIG + 1024
    assert len(big) < 4096
    assert len(log) < 64 * 1024
