"""The admin UI's login, session cookie, CSRF protection and logout, through its HTTP API (the
pages themselves: tests/test_ui_*.py in Chromium)."""

from __future__ import annotations

import hashlib

import httpx

from tests.ui_kit import ADMIN, MASTER_KEY, api, ui_config


def test_the_page_and_its_assets_load_with_a_strict_policy_and_nothing_from_elsewhere(ui_gw):
    for path in ("/ui", "/ui/"):
        r = httpx.get(ui_gw.url + path, follow_redirects=True)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert 'src="/ui/static/app.js"' in r.text and "http" not in r.text.split("<body>")[0].replace("http-equiv", "")
    js = httpx.get(ui_gw.url + "/ui/static/app.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    for bad in ("/ui/static/../routes.py", "/ui/static/nope.js", "/ui/static/pages"):
        assert httpx.get(ui_gw.url + bad).status_code == 404, bad


def test_a_login_sets_a_strict_http_only_cookie_and_never_echoes_the_key(ui_gw):
    r = httpx.post(ui_gw.url + "/ui/login", json={"key": MASTER_KEY})
    assert r.status_code == 200, r.text
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("gateway_session=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Path=/" in cookie and "Secure" not in cookie  # plain HTTP here; behind TLS it is Secure
    assert MASTER_KEY not in r.text and MASTER_KEY not in cookie
    body = r.json()
    assert (body["is_admin"], body["user_role"], body["dev_mode"]) == (True, "proxy_admin", False)
    behind_tls = httpx.post(ui_gw.url + "/ui/login", json={"key": MASTER_KEY}, headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in behind_tls.headers["set-cookie"]


def test_the_session_calls_the_api_and_a_change_needs_the_csrf_token(ui_gw, session_client):
    client, csrf = session_client(ui_gw)
    assert client.get("/key/list").status_code == 200  # reading needs no token
    refused = client.post("/key/generate", json={"key_alias": "no-token"})
    assert refused.status_code == 403
    assert "CSRF token missing or invalid" in refused.json()["error"]["message"]
    wrong = client.post("/key/generate", json={"key_alias": "bad-token"}, headers={"X-CSRF-Token": "x" * 64})
    assert wrong.status_code == 403
    ok = client.post("/key/generate", json={"key_alias": "with-token"}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200, ok.text
    aliases = [k["key_alias"] for k in api(ui_gw, "GET", "/key/list", params={"return_full_object": "true"})["keys"]]
    assert aliases == ["with-token"]
    assert client.get("/ui/session").json()["csrf_token"] == csrf


def test_logout_ends_the_session_everywhere(ui_gw, session_client):
    client, csrf = session_client(ui_gw)
    stolen = dict(client.cookies)
    r = client.post("/ui/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.headers["set-cookie"].startswith("gateway_session=; ") and "Max-Age=0" in r.headers["set-cookie"]
    replay = httpx.get(ui_gw.url + "/key/list", cookies=stolen)
    assert replay.status_code == 401
    assert replay.json()["error"]["message"] == "Authentication Error, the admin UI session has ended: log in again."
    assert httpx.get(ui_gw.url + "/ui/session", cookies=stolen).status_code == 401


def test_a_users_key_logs_in_as_that_user_and_sees_only_their_own_keys(ui_gw, session_client):
    api(ui_gw, "POST", "/user/new", json={"user_id": "alice", "user_role": "internal_user"})
    api(ui_gw, "POST", "/user/new", json={"user_id": "bob", "user_role": "internal_user"})
    alice = api(ui_gw, "POST", "/key/generate", json={"user_id": "alice", "key_alias": "alice-1"})["key"]
    api(ui_gw, "POST", "/key/generate", json={"user_id": "bob", "key_alias": "bob-1"})
    client, csrf = session_client(ui_gw, key=alice)
    me = client.get("/ui/session").json()
    assert (me["user_id"], me["is_admin"], me["key_alias"]) == ("alice", False, "alice-1")
    listed = client.get("/key/list", params={"return_full_object": "true"}).json()["keys"]
    assert "alice-1" in [k["key_alias"] for k in listed] and {k["user_id"] for k in listed} == {"alice"}
    assert client.get("/key/list", params={"user_id": "bob"}).status_code == 403
    assert client.get("/audit").status_code == 403  # admin only, as with the key itself


def test_blocking_the_key_ends_its_session_at_once(ui_gw, session_client):
    raw = api(ui_gw, "POST", "/key/generate", json={"key_alias": "soon-blocked"})["key"]
    client, _ = session_client(ui_gw, key=raw)
    assert client.get("/key/info").json()["info"]["key_alias"] == "soon-blocked"
    api(ui_gw, "POST", "/key/block", json={"key": raw})
    r = client.get("/key/info")
    assert r.status_code == 401 and r.json()["error"]["message"] == "Authentication Error, Key is blocked."


def test_bad_logins_are_refused_without_naming_a_secret(ui_gw, caplog):
    for body, status in (({"key": "sk-wrong"}, 401), ({"username": "admin", "password": "nope"}, 401),
                         ({}, 400), ({"key": "not-a-key"}, 401)):
        r = httpx.post(ui_gw.url + "/ui/login", json=body)
        assert r.status_code == status, (body, r.text)
        assert "set-cookie" not in r.headers
    form = httpx.post(ui_gw.url + "/ui/login", data={"key": MASTER_KEY})  # a form from another site
    assert form.status_code == 400 and "set-cookie" not in form.headers
    assert "sk-wrong" not in caplog.text and "nope" not in caplog.text


def test_username_and_password_log_in_as_admin(gateway_server, fake_upstream, monkeypatch, session_client):
    monkeypatch.setenv("UI_USERNAME", "ops")
    monkeypatch.setenv("UI_PASSWORD", "correct horse")
    gw = gateway_server(ui_config(fake_upstream.url))
    client, _ = session_client(gw, username="ops", password="correct horse")
    assert client.get("/ui/session").json()["is_admin"] is True
    assert httpx.post(gw.url + "/ui/login", json={"username": "ops", "password": MASTER_KEY}).status_code == 401


def test_sessions_are_stored_as_an_hmac_of_the_cookie(ui_gw, session_client):
    import os
    import sqlite3

    client, _ = session_client(ui_gw)
    cookie = client.cookies["gateway_session"]
    with sqlite3.connect(os.environ["DATABASE_URL"].removeprefix("sqlite://")) as db:
        rows = db.execute("SELECT id, token FROM ui_sessions").fetchall()
    assert len(rows) == 1 and rows[0][1] is None  # the master key: no key hash
    assert cookie not in str(rows) and hashlib.sha256(cookie.encode()).hexdigest() != rows[0][0]


def test_the_ui_can_be_moved_or_switched_off(gateway_server, fake_upstream):
    moved = gateway_server(ui_config(fake_upstream.url, ui_path="/admin"))
    assert httpx.get(moved.url + "/admin/").status_code == 200
    assert 'src="/admin/static/app.js"' in httpx.get(moved.url + "/admin/").text
    assert httpx.get(moved.url + "/ui/").status_code == 404
    assert httpx.post(moved.url + "/admin/login", json={"key": MASTER_KEY}).status_code == 200


def test_disable_admin_ui_leaves_no_page(gateway_server, fake_upstream):
    gw = gateway_server(ui_config(fake_upstream.url, disable_admin_ui=True))
    for path in ("/ui", "/ui/", "/ui/static/app.js"):
        assert httpx.get(gw.url + path, follow_redirects=True).status_code == 404
    assert httpx.post(gw.url + "/ui/login", json={"key": MASTER_KEY}).status_code == 404
    assert httpx.get(gw.url + "/key/list", headers=ADMIN).status_code == 200
