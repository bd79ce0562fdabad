"""The plugin author's testing kit (`gateway.testing`, `gateway.fake_upstream`), as an author uses it.

Several gateways in one test (the first in-process, the rest the real `gateway` command in a
process of their own), the fake upstream run on its own and scripted (from Python, per request
from the client), and what its recorded requests look like. The conformance check has its own
file, test_testing_kit_conformance.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.testing import MASTER_KEY, GatewayFixtureError, GatewayProcess, GatewayServer

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


def config(upstream: Any, **extra: Any) -> dict[str, Any]:
    return {"model_list": [{"model_name": "gpt-test", "litellm_params": {
        "model": "openai/upstream-model", "api_base": upstream.url, "api_key": "sk-upstream"}}], **extra}


def chat(client: Any, text: str = "hi", **kwargs: Any) -> Any:
    return client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": text}], **kwargs)


def new_key(gw: Any) -> str:
    resp = httpx.post(gw.url + "/key/generate", headers=AUTH, json={}, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()["key"]


# -- several gateways per test -----------------------------------------------------------------------


def test_two_gateways_in_one_test_both_serve_each_with_its_own_database(gateway_server, fake_upstream):
    first = gateway_server(config(fake_upstream))
    second = gateway_server(config(fake_upstream))
    assert isinstance(first, GatewayServer) and first.in_process
    assert isinstance(second, GatewayProcess) and not second.in_process
    assert first.url != second.url
    assert chat(first.client(), "to the first").choices[0].message.content == "upstream says: to the first"
    assert chat(second.client(), "to the second").choices[0].message.content == "upstream says: to the second"
    assert [r.json["messages"][0]["content"] for r in fake_upstream.requests] == ["to the first", "to the second"]

    key = new_key(first)  # each gateway has a database of its own: a key of one is unknown to the other
    assert chat(first.client(api_key=key)).choices[0].message.content == "upstream says: hi"
    with pytest.raises(openai.AuthenticationError):
        chat(second.client(api_key=key))
    assert "gateway ready" in second.log


def test_gateways_given_one_database_share_keys(gateway_server, fake_upstream, database_url):
    url = database_url()
    first = gateway_server(config(fake_upstream), env={"DATABASE_URL": url})
    second = gateway_server(config(fake_upstream), env={"DATABASE_URL": url})
    key = new_key(second)  # made on the gateway in its own process, used on the in-process one
    assert chat(first.client(api_key=key)).choices[0].message.content == "upstream says: hi"
    assert chat(second.client(api_key=key)).choices[0].message.content == "upstream says: hi"


def test_each_gateway_gets_its_own_env(gateway_server, fake_upstream):
    cfg = {"model_list": [{"model_name": "gpt-test", "litellm_params": {
        "model": "openai/upstream-model", "api_base": fake_upstream.url, "api_key": "os.environ/KIT_UPSTREAM_KEY"}}]}
    first = gateway_server(cfg, env={"KIT_UPSTREAM_KEY": "sk-for-the-first"})
    second = gateway_server(cfg, env={"KIT_UPSTREAM_KEY": "sk-for-the-second"})
    chat(first.client())
    chat(second.client())
    assert [r.headers["authorization"] for r in fake_upstream.requests] == [
        "Bearer sk-for-the-first", "Bearer sk-for-the-second"]


def test_a_gateway_in_its_own_process_stops_gracefully(gateway_server, fake_upstream, tmp_path):
    events = tmp_path / "events.txt"
    gw = gateway_server(config(fake_upstream, plugins=[
        {"name": "probe_recorder", "config": {"events_file": str(events)}}]), process=True)
    assert isinstance(gw, GatewayProcess)
    assert chat(gw.client()).choices[0].message.content == "upstream says: hi"
    assert events.read_text() == "startup\n"
    gw.stop()  # SIGTERM, as an operator stops it: shutdown hooks run
    assert events.read_text() == "startup\nshutdown\n"
    assert gw.proc is not None and gw.proc.returncode == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(gw.url + "/health/liveliness", timeout=5)


def test_an_in_process_gateway_started_after_one_stopped_is_in_process_again(gateway_server, fake_upstream):
    first = gateway_server(config(fake_upstream))
    first.stop()
    second = gateway_server(config(fake_upstream))
    assert isinstance(second, GatewayServer)
    assert second.gateway.router.model_names() == ["gpt-test"]
    assert chat(second.client()).choices[0].message.content == "upstream says: hi"


def test_fixture_errors_name_fixtures_not_the_orm(gateway_server, fake_upstream):
    first = gateway_server(config(fake_upstream))
    with pytest.raises(GatewayFixtureError) as err:
        gateway_server(config(fake_upstream), process=False)
    message = str(err.value)
    assert first.url in message and "gateway_server" in message and "process=True" in message
    assert "tortoise" not in message.lower() and "global context" not in message.lower()

    second = gateway_server(config(fake_upstream))
    with pytest.raises(GatewayFixtureError, match=r"runs in a process of its own.*`\.client\(\)`") as err:
        second.gateway  # noqa: B018 - the attribute access is the test
    assert "tortoise" not in str(err.value).lower()


def test_a_start_up_error_in_its_own_process_says_what_the_command_said(gateway_server, fake_upstream):
    gateway_server(config(fake_upstream))
    with pytest.raises(GatewayFixtureError) as err:
        gateway_server(config(fake_upstream, plugins=[{"name": "no_such_plugin"}]))
    assert "gateway failed to start in its own process (exit status 2)" in str(err.value)
    assert "plugin 'no_such_plugin' is enabled in the config but not installed" in str(err.value)


def test_starting_a_second_in_process_server_by_hand_explains_what_to_do(gateway_server, fake_upstream, tmp_path):
    gateway_server(config(fake_upstream))
    path = tmp_path / "by-hand.yaml"
    path.write_text(json.dumps(config(fake_upstream)))  # JSON is YAML
    with pytest.raises(GatewayFixtureError, match="only one gateway can run in-process at a time"):
        GatewayServer(path).start()


# -- the fake upstream on its own --------------------------------------------------------------------


def start_fake_upstream(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "gateway.fake_upstream", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    line = proc.stdout.readline() if proc.stdout else ""
    assert line.startswith("fake upstream listening on http://127.0.0.1:"), line
    api_base = line.split("(api_base: ", 1)[1].rstrip(")\n")
    return proc, api_base


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    return out


def test_the_fake_upstream_runs_on_its_own_and_a_gateway_uses_it(gateway_server):
    proc, api_base = start_fake_upstream("--chunk", "Hel", "--chunk", "lo wor", "--chunk", "ld",
                                         "--usage", '{"prompt_tokens": 7, "completion_tokens": 3}')
    try:
        assert api_base.endswith("/v1")
        gw = gateway_server({"model_list": [{"model_name": "gpt-test", "litellm_params": {
            "model": "openai/upstream-model", "api_base": api_base}}]})
        client = gw.client()
        reply = chat(client)
        assert reply.choices[0].message.content == "Hello world"
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (7, 3, 10)
        pieces = [c.choices[0].delta.content for c in chat(client, stream=True) if c.choices and c.choices[0].delta.content]
        assert pieces == ["Hel", "lo wor", "ld"]
    finally:
        out = stop(proc)
    assert proc.returncode == 0
    assert out.strip().endswith("fake upstream stopped")


def test_the_fake_upstream_command_refuses_a_bad_flag_and_a_taken_port():
    bad = subprocess.run([sys.executable, "-m", "gateway.fake_upstream", "--usage", "[1]"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--usage must be a JSON object" in bad.stderr
    proc, api_base = start_fake_upstream()
    try:
        port = api_base.rsplit(":", 1)[1].split("/")[0]
        taken = subprocess.run([sys.executable, "-m", "gateway.fake_upstream", "--port", port],
                               capture_output=True, text=True, timeout=60)
        assert taken.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in taken.stderr
    finally:
        stop(proc)


# -- scripting the fake upstream ---------------------------------------------------------------------


def test_a_client_scripts_one_reply_through_the_gateway(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream))
    client = gw.client()
    script = {"chunks": ["sec", "ret", " stuff"], "usage": {"prompt_tokens": 11, "completion_tokens": 2}}
    stream = chat(client, stream=True, stream_options={"include_usage": True}, extra_body={"fake_upstream": script})
    chunks = list(stream)
    assert [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content] == [
        "sec", "ret", " stuff"]
    assert chunks[-1].usage.total_tokens == 13
    # The next call has no script: the default echo again.
    assert chat(client, "plain").choices[0].message.content == "upstream says: plain"


def test_a_scripted_error_reaches_the_client_with_its_status(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream))
    with pytest.raises(openai.BadRequestError) as err:
        chat(gw.client(), extra_body={"fake_upstream": {"status": 400, "message": "context too long",
                                                        "type": "invalid_request_error"}})
    assert err.value.status_code == 400
    assert "context too long" in err.value.response.json()["error"]["message"]
    assert len(fake_upstream.requests) == 1


def test_a_scripted_stream_error_and_delay(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream))
    started = time.monotonic()
    got: list[str] = []
    with pytest.raises(openai.APIError, match="model overloaded"):
        for chunk in chat(gw.client(), stream=True, extra_body={"fake_upstream": {
                "chunks": ["one", " two", " three"], "stream_error_after": 2, "delay": 0.3,
                "message": "model overloaded"}}):
            if chunk.choices and chunk.choices[0].delta.content:
                got.append(chunk.choices[0].delta.content)
    assert time.monotonic() - started >= 0.3
    assert got == ["one", " two"]


def test_the_script_header_and_queued_scripts(fake_upstream):
    url = fake_upstream.url + "/chat/completions"
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    fake_upstream.script(reply="first queued")
    fake_upstream.script(status=503, message="queued outage")
    with httpx.Client(timeout=30) as http:
        # A script sent with the request wins and leaves the queue as it is.
        direct = http.post(url, json=body, headers={"x-fake-upstream": json.dumps({"reply": "from the header",
                                                                                   "usage": False})})
        assert direct.json()["choices"][0]["message"]["content"] == "from the header"
        assert "usage" not in direct.json()
        assert http.post(url, json=body).json()["choices"][0]["message"]["content"] == "first queued"
        outage = http.post(url, json=body)
        assert outage.status_code == 503 and outage.json()["error"]["message"] == "queued outage"
        assert http.post(url, json=body).json()["choices"][0]["message"]["content"] == "upstream says: hi"
        bad = http.post(url, json={**body, "fake_upstream": {"replay": "typo"}})
    assert bad.status_code == 400
    assert "unknown key(s) replay" in bad.json()["error"]["message"]
    for wrong, says in (({"status": 200}, "status must be an HTTP error status"), ({"delay": "1"}, "delay must be"),
                        ({"usage": True}, "usage must be an object")):
        resp = httpx.post(url, json={**body, "fake_upstream": wrong}, timeout=30)
        assert resp.status_code == 400 and says in resp.json()["error"]["message"], resp.text


def test_python_defaults_still_work_as_before(gateway_server, fake_upstream):
    fake_upstream.reply = "fixed"
    fake_upstream.usage = {"prompt_tokens": 1, "completion_tokens": 1}
    gw = gateway_server(config(fake_upstream))
    reply = chat(gw.client())
    assert reply.choices[0].message.content == "fixed" and reply.usage.total_tokens == 2
    fake_upstream.fail_next(status=400, message="queued refusal", type="invalid_request_error")
    with pytest.raises(openai.BadRequestError, match="queued refusal"):
        chat(gw.client())
    assert chat(gw.client()).choices[0].message.content == "fixed"  # one-shot: gone after one call


def test_recorded_requests_are_objects(gateway_server, fake_upstream):
    gw = gateway_server(config(fake_upstream))
    chat(gw.client(), "what the upstream saw", stream=True).close()
    gw.client().embeddings.create(model="gpt-test", input=["a", "b"])
    streamed, embedded = fake_upstream.requests
    assert (streamed.method, streamed.path, streamed.stream) == ("POST", "/v1/chat/completions", True)
    assert streamed.json["messages"] == [{"role": "user", "content": "what the upstream saw"}]
    assert streamed.text == "what the upstream saw"
    assert streamed.headers["Authorization"] == streamed.headers["authorization"] == "Bearer sk-upstream"
    assert "CONTENT-TYPE" in streamed.headers and streamed.headers.get("x-missing") is None
    assert json.loads(streamed.body) == streamed.json
    assert (embedded.path, embedded.stream, embedded.text) == ("/v1/embeddings", False, "a\nb")


def test_a_plugin_written_in_the_test_guards_gateways_in_process_and_in_their_own(gateway_server, fake_upstream,
                                                                                  local_plugin):
    name = local_plugin("halt_guard", """
        from gateway import BadRequestError, Plugin, hookimpl


        class Guard(Plugin):
            name = "halt_guard"

            @hookimpl
            async def pre_request(self, ctx):
                if "halt" in ctx.user_message_text:
                    raise BadRequestError("halted by the test's guard")
        """)
    here = gateway_server(config(fake_upstream, litellm_settings={"callbacks": [name]}))
    there = gateway_server(config(fake_upstream, litellm_settings={"callbacks": [name]}))
    assert (type(here), type(there)) == (GatewayServer, GatewayProcess)
    for gw in (here, there):
        with pytest.raises(openai.BadRequestError, match="halted by the test's guard"):
            chat(gw.client(), "please halt")
        assert chat(gw.client(), "go on").choices[0].message.content
    assert len(fake_upstream.requests) == 2


def test_a_local_plugin_needs_a_plugin_name(local_plugin):
    with pytest.raises(ValueError, match="lower case"):
        local_plugin("Bad-Name", "")


def test_docs_page_exists_and_is_linked():
    docs = Path(__file__).resolve().parents[1] / "docs"
    assert "(testing-a-plugin.md)" in (docs / "README.md").read_text()
    page = (docs / "testing-a-plugin.md").read_text()
    for name in ("gateway_server", "fake_upstream", "plugin_conformance", "python -m gateway.fake_upstream",
                 "x-fake-upstream", ".json", ".headers", ".path"):
        assert name in page


def test_the_fake_upstream_as_a_context_manager_outside_pytest_fixtures():
    from gateway.fake_upstream import FakeUpstream

    with FakeUpstream(reply="ok") as upstream:
        resp = httpx.post(upstream.url + "/completions", json={"model": "m", "prompt": "hi"}, timeout=30)
        assert resp.json()["choices"][0]["text"] == "ok"
        assert upstream.requests[0].json == {"model": "m", "prompt": "hi"}
    with pytest.raises(httpx.ConnectError):
        httpx.post(upstream.url + "/completions", json={"model": "m", "prompt": "hi"}, timeout=5)
