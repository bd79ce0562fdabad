"""`Principal` is immutable: one object serves every request of its key (the virtual-key builtin
caches it), so a plugin must not be able to change it for the requests that follow, nor for
their spend rows."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import httpx
import pytest

from gateway import Principal

ADMIN = {"Authorization": "Bearer sk-1234"}


# -- the object ------------------------------------------------------------------------------------


def test_fields_cannot_be_assigned_and_collections_are_read_only() -> None:
    p = Principal(api_key="h", tags=["a"], models=["m"], permissions={"hide_secrets": False},
                  metadata={"tags": ["meta"]}, team_metadata={"t": 1}, extra={"records": ()})
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.tags = ["b"]  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.is_admin = True  # type: ignore[misc]
    assert (p.tags, p.models) == (("a",), ("m",))
    with pytest.raises(AttributeError):
        p.tags.append("b")  # type: ignore[attr-defined]
    for mapping in (p.permissions, p.metadata, p.team_metadata, p.extra):
        with pytest.raises(TypeError):
            mapping["new"] = 1  # type: ignore[index]
    assert dict(p.permissions) == {"hide_secrets": False} and p.permissions.get("hide_secrets") is False


def test_what_it_was_built_from_is_copied_and_replace_derives_a_copy() -> None:
    tags, permissions = ["a"], {"x": 1}
    p = Principal(tags=tags, permissions=permissions)
    tags.append("later")
    permissions["y"] = 2
    assert p.tags == ("a",) and dict(p.permissions) == {"x": 1}
    q = dataclasses.replace(p, tags=[*p.tags, "b"], metadata={"k": "v"})
    assert q.tags == ("a", "b") and q.metadata["k"] == "v" and q.permissions is p.permissions
    assert p.tags == ("a",) and dict(p.metadata) == {}
    assert Principal() == Principal() and Principal().display_name == "-"


# -- a plugin that tries, end to end ---------------------------------------------------------------

TAMPER = """
    import operator

    from gateway import Plugin, hookimpl


    class Tamper(Plugin):
        name = "principal_tamper"

        @hookimpl
        async def pre_request(self, ctx):
            refused = {}
            attempts = {
                "append": lambda: ctx.principal.tags.append("leaked"),
                "assign": lambda: setattr(ctx.principal, "tags", ["leaked"]),
                "metadata": lambda: operator.setitem(ctx.principal.metadata, "tags", ["leaked"]),
                "permissions": lambda: operator.setitem(ctx.principal.permissions, "hide_secrets", False),
            }
            for name, attempt in attempts.items():
                try:
                    attempt()
                except Exception as exc:
                    refused[name] = type(exc).__name__
            ctx.annotate("refused", refused)
            ctx.annotate("principal", id(ctx.principal))
    """


def _row(gw: Any, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        rows = httpx.get(gw.url + "/spend/logs", params={"request_id": request_id}, headers=ADMIN, timeout=10).json()
        if rows or time.monotonic() > deadline:
            assert len(rows) == 1, rows
            return rows[0]
        time.sleep(0.05)


@pytest.mark.db
def test_a_plugin_cannot_change_the_principal_for_the_next_request(gateway_server, fake_upstream, local_plugin):
    name = local_plugin("principal_tamper", TAMPER, class_name="Tamper")
    gw = gateway_server({
        "model_list": [{"model_name": "gpt-test", "litellm_params": {
            "model": "openai/upstream-model", "api_base": fake_upstream.url, "api_key": "sk-upstream"}}],
        "litellm_settings": {"callbacks": [name]},
        "general_settings": {"spend_flush_interval_s": 0.05},
    })
    made = httpx.post(gw.url + "/key/generate", headers=ADMIN, timeout=30,
                      json={"metadata": {"tags": ["meta-tag"]}, "tags": ["key-tag"]})
    assert made.status_code == 200, made.text
    client = gw.client(api_key=made.json()["key"])
    rows = []
    for _ in range(2):
        reply = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
        rows.append(_row(gw, reply.id))
    for row in rows:
        assert row["request_tags"] == ["meta-tag", "key-tag"]  # the key's real tags, nothing leaked
        assert row["metadata"]["annotations"][name]["refused"] == {
            "append": "AttributeError", "assign": "FrozenInstanceError", "metadata": "TypeError",
            "permissions": "TypeError"}
    # Both requests were handed the key's one cached Principal: no copy per request.
    assert len({row["metadata"]["annotations"][name]["principal"] for row in rows}) == 1
