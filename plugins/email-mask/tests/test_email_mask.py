"""End-to-end: a real gateway with `email_mask`, the scriptable fake upstream on loopback, and the
official `openai` SDK as the client (fixtures from `gateway.testing`; docs/testing-a-plugin.md)."""

from __future__ import annotations

import time

import httpx

NAME = "email_mask"


def config(upstream, **settings):
    return {
        "model_list": [{"model_name": "gpt-test", "litellm_params": {
            "model": "openai/upstream-model", "api_base": upstream.url, "api_key": "sk-upstream"}}],
        "litellm_settings": {"callbacks": [NAME], **settings},
    }


def chat_raw(client, text, **kwargs):
    return client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=[{"role": "user", "content": text}], **kwargs)


def spend_row(server, request_id, timeout=10.0):
    """The call's spend row, once the gateway's background writer has stored it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = httpx.get(f"{server.url}/spend/logs", params={"request_id": request_id},
                         headers={"Authorization": "Bearer sk-1234"}).json()
        if rows:
            return rows[0]
        time.sleep(0.1)
    raise AssertionError(f"no spend row for {request_id}")


def test_addresses_are_masked_before_they_leave_and_counted(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, email_mask_allow_domains=["example.com"]))
    with server.client() as client:
        raw = chat_raw(client, "mail bob@corp.io and eve@mail.corp.io, cc me@dev.example.com")
    reply = raw.parse()
    (sent,) = fake_upstream.requests
    assert sent.text == "mail [email] and [email], cc me@dev.example.com"
    assert raw.headers["x-email-mask-request"] == "2"
    assert "bob@" not in reply.choices[0].message.content  # the echo carries what was sent
    row = spend_row(server, reply.id)
    assert row["metadata"]["annotations"] == {NAME: {"request_masked": 2}}


def test_a_reply_is_masked(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream))
    fake_upstream.script(reply="Write to help@corp.io or sales@corp.io.")
    with server.client() as client:
        raw = chat_raw(client, "who do I write to?")
    reply = raw.parse()
    assert reply.choices[0].message.content == "Write to [email] or [email]."
    assert (raw.headers["x-email-mask-request"], raw.headers["x-email-mask-reply"]) == ("0", "2")
    assert spend_row(server, reply.id)["metadata"]["annotations"] == {NAME: {"reply_masked": 2}}


def test_a_streamed_address_split_across_chunks_is_masked(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, email_mask_replacement="<hidden>"))
    fake_upstream.script(chunks=["Contact: bo", "b@co", "rp.", "io", " or a@b.co", "m."])
    with server.client() as client:
        stream = client.chat.completions.create(model="gpt-test", stream=True,
                                                messages=[{"role": "user", "content": "contact?"}])
        chunks = list(stream)
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(pieces) == "Contact: <hidden> or <hidden>."
    assert not any("@" in p for p in pieces)
    row = spend_row(server, chunks[0].id)
    assert row["metadata"]["annotations"] == {NAME: {"reply_masked": 2}}


def test_replies_pass_untouched_when_switched_off(fake_upstream, gateway_server):
    server = gateway_server(config(fake_upstream, email_mask_replies=False))
    fake_upstream.script(reply="Write to help@corp.io.")
    with server.client() as client:
        raw = chat_raw(client, "mine is me@corp.io")
    assert raw.parse().choices[0].message.content == "Write to help@corp.io."
    assert fake_upstream.requests[0].text == "mine is [email]"
    assert "x-email-mask-reply" not in raw.headers


def test_every_llm_route_is_masked(plugin_conformance):
    """The kit's conformance check: on every LLM route, streamed and not, the request's address is
    masked before the upstream gets it, and the reply's address before the client gets it."""
    report = plugin_conformance(NAME, trigger="alice@corp.io")  # raises, naming route and hook, on a miss
    assert {"/v1/chat/completions", "/v1/completions", "/v1/embeddings"} <= report.routes_for("pre_request")
    assert "/v1/chat/completions" in report.routes_for("stream_chunk")
