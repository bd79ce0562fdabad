"""banned_keywords end to end: a real gateway with the plugin enabled, a fake OpenAI upstream on
loopback, and the official `openai` SDK (streams included) as the client.

`fake_upstream` and `gateway_server` come from `gateway.testing`, a pytest plugin that is active as
soon as `gateway` is installed.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

NAME = "banned_keywords"
ADMIN = {"Authorization": "Bearer sk-1234"}
GATEWAY_BIN = str(Path(sys.executable).parent / "gateway")


def config(upstream: Any, plugin_entry: dict[str, Any] | None = None, **flat: Any) -> dict[str, Any]:
    """One model group on the fake upstream; the plugin enabled natively (`plugin_entry`) or
    through `litellm_settings.callbacks` with flat keys."""
    cfg: dict[str, Any] = {
        "model_list": [{"model_name": "gpt-test", "litellm_params": {
            "model": "openai/upstream-model", "api_base": upstream.url, "api_key": "sk-upstream"}}],
        "router_settings": {"num_retries": 0},
        "general_settings": {"spend_flush_interval_s": 0.05},
    }
    if plugin_entry is not None:
        cfg["plugins"] = [{"name": NAME, **plugin_entry}]
    else:
        cfg["litellm_settings"] = {"callbacks": [NAME], **flat}
    return cfg


def chat(client: Any, content: Any, **kw: Any) -> Any:
    return client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": content}], **kw)


def refusal(word: str) -> dict[str, Any]:
    return {"message": f"Keyword banned. Keyword={word}", "type": "bad_request_error", "param": None, "code": "400"}


def streamed(stream: Any) -> tuple[list[str], BaseException | None]:
    """The non-empty text deltas a client received, and the error that ended the stream, if any."""
    pieces: list[str] = []
    try:
        for chunk in stream:
            for choice in chunk.choices:
                text = choice.delta.content if hasattr(choice, "delta") else choice.text
                if text:
                    pieces.append(text)
    except openai.APIError as exc:
        return pieces, exc
    return pieces, None


def spend_row(server: Any, request_id: str, timeout: float = 15.0) -> dict[str, Any]:
    """The spend row of the call sent with `x-request-id: request_id`, once the background writer
    has written it (a row that has the upstream's reply id keeps ours in `metadata.gateway_request_id`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = httpx.get(server.url + "/spend/logs", headers=ADMIN).json()
        mine = [r for r in rows if request_id in (r["request_id"], r["metadata"].get("gateway_request_id"))]
        if mine:
            (row,) = mine
            return row
        time.sleep(0.05)
    raise AssertionError(f"no spend row for {request_id}")


# -- the seed's example ---------------------------------------------------------------------------

# The seed's curl, byte for byte: no Authorization header, so no master key (development mode).
SEED_BODY = b""" {
"model": "gpt-3.5-turbo",
"messages": [
{
"role": "user",
"content": "Hello world!"
}
]
}
"""


def test_seed_example_as_written(fake_upstream, gateway_server):
    server = gateway_server({
        "model_list": [{"model_name": "gpt-3.5-turbo", "litellm_params": {
            "model": "openai/gpt-3.5-turbo", "api_base": fake_upstream.url, "api_key": "sk-upstream"}}],
        "litellm_settings": {"callbacks": ["banned_keywords"], "banned_keywords_list": ["hello"]},
        "general_settings": {"master_key": None},
    })
    r = httpx.post(server.url + "/chat/completions", content=SEED_BODY, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json() == {"error": refusal("hello")}
    assert fake_upstream.requests == []
    ok = httpx.post(server.url + "/chat/completions", json={
        "model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "Goodbye world!"}]})
    assert ok.status_code == 200
    assert ok.json()["choices"][0]["message"]["content"] == "upstream says: Goodbye world!"


# -- requests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("call", [
    pytest.param(lambda c: chat(c, "well HELLO there"), id="string content"),
    pytest.param(lambda c: c.chat.completions.create(model="gpt-test", messages=[
        {"role": "system", "content": "Say hello to everyone."}, {"role": "user", "content": "hi"}]),
        id="system message"),
    pytest.param(lambda c: chat(c, [{"type": "text", "text": "first part"},
                                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                                    {"type": "text", "text": "second part: hElLo"}]), id="text parts"),
    pytest.param(lambda c: c.completions.create(model="gpt-test", prompt="Hello, completion"), id="prompt"),
    pytest.param(lambda c: c.completions.create(model="gpt-test", prompt=["fine", "Othello"]), id="prompt list"),
    pytest.param(lambda c: c.embeddings.create(model="gpt-test", input="say hello"), id="input"),
    pytest.param(lambda c: c.embeddings.create(model="gpt-test", input=["ok", "hello"]), id="input list"),
    pytest.param(lambda c: chat(c, "well hello there", stream=True), id="streamed call"),
])
def test_a_keyword_anywhere_in_the_request_is_refused_before_the_upstream(fake_upstream, gateway_server, call):
    server = gateway_server(config(fake_upstream, banned_keywords_list=["hello"]))
    with pytest.raises(openai.BadRequestError) as err:
        call(server.client())
    assert err.value.status_code == 400
    assert err.value.response.json() == {"error": refusal("hello")}
    assert fake_upstream.requests == []


def test_matching_is_case_insensitive_and_by_substring(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, banned_keywords_list=["Hello", "secret project", "zzz"]))
    client = server.client()
    for text, word in [("hello", "Hello"), ("OTHELLO", "Hello"), ("the Secret Project is late", "secret project")]:
        with pytest.raises(openai.BadRequestError) as err:
            chat(client, text)
        assert err.value.body["message"] == f"Keyword banned. Keyword={word}"
    # A keyword split by other characters, or only partly there, is not a match.
    for text in ("hel lo", "help", "secret-project", "zz"):
        assert chat(client, text).choices[0].message.content == f"upstream says: {text}"
    assert len(fake_upstream.requests) == 4


def test_keyword_file_relative_to_the_config_folder(fake_upstream, gateway_server, tmp_path, monkeypatch):
    # gateway_server writes the config into tmp_path: the relative path is read from there.
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "banned.txt").write_text(
        "# words we never say\r\nHello\r\n\r\n   secret project  \n#not-a-keyword\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not the current directory
    server = gateway_server(config(fake_upstream, banned_keywords_list="lists/banned.txt"))
    client = server.client()
    for text, word in [("oh hello", "Hello"), ("the SECRET PROJECT", "secret project")]:
        with pytest.raises(openai.BadRequestError) as err:
            chat(client, text)
        assert err.value.body["message"] == f"Keyword banned. Keyword={word}"
    for text in ("about #not-a-keyword and words we never say", "a secret and a project"):
        assert chat(client, text).choices[0].message.content == f"upstream says: {text}"


def test_keyword_file_absolute_path_in_a_native_entry(fake_upstream, gateway_server, tmp_path):
    path = tmp_path / "kw.txt"
    path.write_text("\ufeffbanana\n", encoding="utf-8")  # a BOM is not part of the first keyword
    server = gateway_server(config(fake_upstream, {"config": {"banned_keywords_list": str(path)}}))
    with pytest.raises(openai.BadRequestError, match="Keyword banned. Keyword=banana"):
        chat(server.client(), "Bananas!")


# -- replies ----------------------------------------------------------------------------------------


def test_a_keyword_in_the_reply_is_refused(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, banned_keywords_list=["hello"]))
    client = server.client()
    fake_upstream.reply = "Well, HELLO to you too."
    with pytest.raises(openai.BadRequestError) as err:
        chat(client, "hi")
    assert err.value.response.json() == {"error": refusal("hello")}
    with pytest.raises(openai.BadRequestError, match="Keyword=hello"):
        client.completions.create(model="gpt-test", prompt="hi")
    assert len(fake_upstream.requests) == 2  # the upstream was asked; its reply never left
    fake_upstream.reply = "Goodbye."
    assert chat(client, "hi").choices[0].message.content == "Goodbye."


def test_a_keyword_split_across_chunks_never_reaches_the_client(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, banned_keywords_list=["hello", "zebra"]))
    fake_upstream.reply_chunks = ["Well, ", "he", "l", "LO", " there"]
    rid = f"req-{uuid.uuid4().hex}"
    pieces, err = streamed(chat(server.client(), "hi", stream=True, extra_headers={"x-request-id": rid}))
    assert isinstance(err, openai.APIError)
    assert err.message == "Keyword banned. Keyword=hello"
    assert err.body == refusal("hello")
    assert "".join(pieces) == "Well, "  # "he" and "l" were held back; the chunk completing it was not sent
    row = spend_row(server, rid)
    assert row["status"] == "blocked"
    assert row["metadata"]["blocked_by"] == NAME


def test_a_blocked_stream_ends_with_one_sse_error_event_and_no_done(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, banned_keywords_list=["hello"]))
    fake_upstream.reply_chunks = ["abc hel", "lo def"]
    body = {"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, headers=ADMIN) as r:
        assert r.status_code == 200
        events = [line for line in r.iter_lines() if line]
    assert events[-1] == ('data: {"error":{"message":"Keyword banned. Keyword=hello",'
                          '"type":"bad_request_error","param":null,"code":"400"}}')
    assert "data: [DONE]" not in events
    sent = "".join(re.findall(r'"content":"([^"]*)"', "\n".join(events[:-1])))
    assert sent == "abc "


def test_completion_streams_are_checked_too(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, banned_keywords_list=["hello"]))
    fake_upstream.reply_chunks = ["say h", "ello"]
    pieces, err = streamed(server.client().completions.create(model="gpt-test", prompt="hi", stream=True))
    assert isinstance(err, openai.APIError) and err.message == "Keyword banned. Keyword=hello"
    assert "".join(pieces) == "say "


def test_clean_streams_arrive_whole_and_in_order(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, banned_keywords_list=["hello"]))
    client = server.client()
    # "he" is held back until "llx" shows it is not "hello"; a reply ending in "hell" is flushed
    # with the finish_reason chunk.
    fake_upstream.reply_chunks = ["say he", "llx", " done, hel", "p and hell"]
    chunks = list(chat(client, "hi", stream=True, stream_options={"include_usage": True}))
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert deltas == ["say ", "hellx", " done, ", "help and ", "hell"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert "".join(deltas) == "".join(fake_upstream.reply_chunks)
    fake_upstream.reply_chunks = ["He", "lp"]
    pieces, err = streamed(client.completions.create(model="gpt-test", prompt="hi", stream=True))
    assert err is None and "".join(pieces) == "Help"


# -- monitor mode and the per-key opt-out -----------------------------------------------------------


def test_monitor_mode_records_and_lets_everything_through(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, {"config": {"banned_keywords_list": ["hello"]}, "mode": "monitor"}))
    client = server.client()
    rid = f"req-{uuid.uuid4().hex}"
    reply = chat(client, "hello upstream", extra_headers={"x-request-id": rid})
    assert reply.choices[0].message.content == "upstream says: hello upstream"
    assert fake_upstream.requests[0].json["messages"][0]["content"] == "hello upstream"
    row = spend_row(server, rid)
    assert row["status"] == "success"
    seen = {"plugin": NAME, "status": 400, "message": "Keyword banned. Keyword=hello"}
    assert row["metadata"]["would_have_blocked"] == [seen, seen]  # in the request, then in the reply
    # A stream with a split keyword arrives whole, and is recorded once.
    fake_upstream.reply_chunks = ["oh he", "llo", " and hello again"]
    rid = f"req-{uuid.uuid4().hex}"
    pieces, err = streamed(chat(client, "hi", stream=True, extra_headers={"x-request-id": rid}))
    assert err is None and "".join(pieces) == "oh hello and hello again"
    assert len(spend_row(server, rid)["metadata"]["would_have_blocked"]) == 1
    counters = httpx.get(server.url + "/plugins", headers=ADMIN).json()["counters"]
    assert counters["monitored"][NAME] == 3 and NAME not in counters["blocks"]


def test_a_key_with_permissions_banned_keywords_false_is_not_checked(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, banned_keywords_list=["hello"]))

    def new_key(body: dict[str, Any]) -> str:
        r = httpx.post(server.url + "/key/generate", headers=ADMIN, json=body)
        assert r.status_code == 200, r.text
        return r.json()["key"]

    free = server.client(api_key=new_key({"permissions": {"banned_keywords": False}}))
    checked = server.client(api_key=new_key({"permissions": {"banned_keywords": True}}))
    assert chat(free, "hello").choices[0].message.content == "upstream says: hello"
    fake_upstream.reply_chunks = ["hel", "lo"]
    pieces, err = streamed(chat(free, "hi", stream=True))
    assert err is None and "".join(pieces) == "hello"
    with pytest.raises(openai.BadRequestError):
        chat(checked, "hello")
    pieces, err = streamed(chat(checked, "hi", stream=True))
    assert isinstance(err, openai.APIError) and pieces == []


# -- configuration ----------------------------------------------------------------------------------


def test_listed_with_its_priority_and_hooks(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, banned_keywords_list=["hello"]))
    plugins = httpx.get(server.url + "/plugins", headers=ADMIN).json()
    (mine,) = [p for p in plugins["enabled"] if p["name"] == NAME]
    assert mine["priority"] == 950
    assert mine["distribution"] == "gateway-plugin-banned-keywords"
    assert mine["hooks"] == ["post_response", "pre_request", "stream_chunk"]


BAD_CONFIGS = [
    pytest.param({}, "config key banned_keywords_list: Field required", id="missing"),
    pytest.param({"banned_keywords_list": 5},
                 "config key banned_keywords_list: Value error, must be a list of keywords or the path of a "
                 "keyword file, not int", id="a number"),
    pytest.param({"banned_keywords_list": ["hello", 5]},
                 "config key banned_keywords_list: Value error, entry 1 is not a string: 5", id="a number entry"),
    pytest.param({"banned_keywords_list": ["hello", " "]},
                 "config key banned_keywords_list: Value error, entry 1 is empty", id="an empty entry"),
    pytest.param({"banned_keywords_list": []},
                 "config key banned_keywords_list: Value error, is an empty list; give at least one keyword",
                 id="an empty list"),
    pytest.param({"banned_keywords_list": "missing.txt"},
                 "failed to start: ValueError: banned_keywords_list: cannot read keyword file '{tmp}/missing.txt': "
                 "No such file or directory", id="a missing file"),
    pytest.param({"banned_keywords_list": "."},
                 "failed to start: ValueError: banned_keywords_list: cannot read keyword file '{tmp}': "
                 "Is a directory", id="a folder"),
    pytest.param({"banned_keywords_list": "comments.txt"},
                 "failed to start: ValueError: banned_keywords_list: keyword file '{tmp}/comments.txt' has no "
                 "keywords", id="a file without keywords"),
    pytest.param({"banned_keywords_list": "latin1.txt"},
                 "failed to start: ValueError: banned_keywords_list: keyword file '{tmp}/latin1.txt' is not UTF-8 "
                 "text (byte 0xe9 at offset 3)", id="a file not in UTF-8"),
]


def write_bad_files(folder: Path) -> None:
    (folder / "comments.txt").write_text("# nothing here yet\n\n")
    (folder / "latin1.txt").write_bytes("caf\u00e9\n".encode("latin-1"))


@pytest.mark.parametrize(("flat", "message"), BAD_CONFIGS)
def test_a_bad_config_stops_start_up_with_one_line(fake_upstream, gateway_server, tmp_path, flat, message):
    write_bad_files(tmp_path)
    with pytest.raises(Exception) as err:
        gateway_server(config(fake_upstream, **flat))
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(f"plugin '{NAME}'")
    assert text.endswith(message.format(tmp=tmp_path.resolve()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(("flat", "message"), [BAD_CONFIGS[2], BAD_CONFIGS[5], BAD_CONFIGS[8]])
def test_the_gateway_command_refuses_a_bad_config_in_one_line(fake_upstream, tmp_path, flat, message):
    write_bad_files(tmp_path)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(fake_upstream, **flat)))
    env = {k: v for k, v in os.environ.items()
           if k not in ("GATEWAY_MASTER_KEY", "LITELLM_MASTER_KEY", "GATEWAY_CONFIG", "CONFIG_FILE_PATH", "PORT")}
    env["DATABASE_URL"] = f"sqlite://{tmp_path / 'cli.db'}"
    proc = subprocess.run([GATEWAY_BIN, "--config", str(path), "--host", "127.0.0.1", "--port", str(free_port())],
                          capture_output=True, text=True, timeout=30, env=env, check=False, cwd=tmp_path.parent)
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("gateway: error: ")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"gateway: error: plugin '{NAME}'"), proc.stderr
    assert lines[0].endswith(message.format(tmp=tmp_path.resolve())), proc.stderr
