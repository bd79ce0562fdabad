"""`ctx.annotate` and `ctx.set_header` as a plugin calls them (the end-to-end path, spend row and
headers, is tested through plugins/email-mask); here the rules a plugin author can trip over."""

from __future__ import annotations

import logging

import pytest

from gateway import Principal, RequestContext


def make_ctx() -> RequestContext:
    return RequestContext(request_id="req-1", call_type="acompletion", route="/v1/chat/completions",
                          body={"messages": []}, principal=Principal())


@pytest.mark.parametrize("name", ["x-gateway-overhead-ms", "X-Gateway-Guardrails", "x-request-id",
                                  "x-ratelimit-remaining-requests", "content-type", "authorization", "x-", "x_bad"])
def test_set_header_refuses_the_gateways_own_and_non_x_names(name):
    ctx = make_ctx()
    with pytest.raises(ValueError, match="x-"):
        ctx.set_header(name, "1")
    assert ctx.response_headers == {}


def test_set_header_refuses_a_line_break_in_the_value():
    with pytest.raises(ValueError, match="one line"):
        make_ctx().set_header("x-my-plugin", "a\r\nx-injected: 1")


def test_set_header_after_a_streams_headers_left_is_not_sent_and_says_so(caplog):
    ctx = make_ctx()
    assert ctx.set_header("X-My-Plugin-Count", 3) is True
    assert ctx.response_headers == {"x-my-plugin-count": "3"}
    ctx.headers_sent = True
    with caplog.at_level(logging.WARNING, logger="gateway.plugins"):
        assert ctx.set_header("x-my-plugin-late", "1") is False
    assert "x-my-plugin-late" not in ctx.response_headers
    assert "after the stream's headers were sent" in caplog.text


def test_annotate_outside_a_hook_needs_the_plugin_name():
    ctx = make_ctx()
    with pytest.raises(ValueError, match="plugin="):
        ctx.annotate("count", 1)
    ctx.annotate("count", 1, plugin="my_plugin")
    ctx.annotate("count", 2, plugin="my_plugin")
    assert ctx.annotations == {"my_plugin": {"count": 2}}
