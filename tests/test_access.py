"""Route control and enforced params, as the seed configures them and as the reference words them."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx

from gateway.core.route_groups import INFO, OPENAI, PUBLIC, SPEND

ADMIN = {"Authorization": "Bearer sk-1234"}
MODELS = [{"model_name": "gpt-3.5-turbo", "litellm_params": {"model": "fake/gpt-3.5-turbo"}}]
HI = [{"role": "user", "content": "hi"}]


def user_key(gw) -> str:
    r = httpx.post(gw.url + "/key/generate", headers=ADMIN, json={})
    assert r.status_code == 200, r.text
    return r.json()["key"]


def test_seed_route_control_example(gateway_server):
    gw = gateway_server({"model_list": MODELS, "general_settings": {
        "public_routes": ["LiteLLMRoutes.public_routes", "/spend/calculate"],
        "admin_only_routes": ["/key/generate"],
        "allowed_routes": ["/chat/completions", "/spend/calculate", "LiteLLMRoutes.public_routes"],
    }})
    # The seed's step 3: /spend/calculate with no Authorization header works.
    r = httpx.post(gw.url + "/spend/calculate", json={
        "model": "gpt-4", "messages": [{"role": "user", "content": "Hey, how's it going?"}]})
    assert r.status_code == 200 and r.json()["cost"] > 0
    key = user_key(gw)  # the master key is never refused, even on a route outside allowed_routes
    user = {"Authorization": f"Bearer {key}"}
    assert httpx.post(gw.url + "/chat/completions", headers=user,
                      json={"model": "gpt-3.5-turbo", "messages": HI}).status_code == 200
    r = httpx.post(gw.url + "/v1/chat/completions", headers=user, json={"model": "gpt-3.5-turbo", "messages": HI})
    assert r.status_code == 403
    assert r.json()["error"] == {"message": "Access forbidden: Route /v1/chat/completions not allowed",
                                 "type": "auth_error", "param": None, "code": "403"}
    r = httpx.post(gw.url + "/key/generate", headers=user, json={})
    assert r.status_code == 403
    assert r.json()["error"]["message"] == "Access forbidden: Route /key/generate not allowed"
    assert httpx.get(gw.url + "/health/liveliness").status_code == 200


def test_admin_only_route_message(gateway_server):
    gw = gateway_server({"model_list": MODELS, "general_settings": {"admin_only_routes": ["/v1/models"]}})
    key = user_key(gw)
    r = httpx.get(gw.url + "/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403
    assert r.json()["error"]["message"] == (
        "user not allowed to access this route. Route=/v1/models is an admin only route")
    assert httpx.get(gw.url + "/v1/models", headers=ADMIN).status_code == 200


def test_seed_enforced_params_example(gateway_server):
    gw = gateway_server({"model_list": MODELS, "general_settings": {
        "enforced_params": ["user", "metadata.generation_name"]}})
    key = user_key(gw)
    h = {"Authorization": f"Bearer {key}"}
    r = httpx.post(gw.url + "/chat/completions", headers=h, json={"model": "gpt-3.5-turbo", "messages": HI})
    assert r.status_code == 401
    assert r.json()["error"] == {
        "message": "Authentication Error, BadRequest please pass param=user in request body. This is a required param",
        "type": "auth_error", "param": None, "code": "401"}
    r = httpx.post(gw.url + "/chat/completions", headers=h,
                   json={"model": "gpt-3.5-turbo", "messages": HI, "user": "u1", "metadata": {}})
    assert r.json()["error"]["message"] == (
        "Authentication Error, BadRequest please pass param=[metadata][generation_name] in request body. "
        "This is a required param")
    r = httpx.post(gw.url + "/chat/completions", headers=h, json={
        "model": "gpt-3.5-turbo", "messages": HI, "user": "u1", "metadata": {"generation_name": "g"}})
    assert r.status_code == 200
    # Not on non-LLM routes.
    assert httpx.get(gw.url + "/key/info", headers=h).status_code == 200


def test_unknown_route_group_stops_start_up(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("general_settings:\n  master_key: sk-1234\n  public_routes: ['LiteLLMRoutes.no_such_group']\n")
    proc = subprocess.run([sys.executable, "-m", "gateway.core.cli", "--config", str(cfg), "--port", "1"],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite://{tmp_path}/x.db"})
    assert proc.returncode == 2
    assert "unknown route group 'LiteLLMRoutes.no_such_group'" in proc.stderr
    assert "Traceback" not in proc.stderr


def _concrete(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?[^>]+>", "m", rule)


def test_every_route_with_no_key_a_user_key_and_an_admin_key(gateway_server):
    """The whole matrix: nothing answers without a key unless public; users are kept to their
    own routes; the admin is never refused."""
    gw = gateway_server({"model_list": MODELS})
    key = user_key(gw)
    routes = httpx.get(gw.url + "/routes").json()["routes"]
    assert len(routes) > 40
    groups = gw.gateway.access.groups  # the route rules in each group, as the routes declare them
    public = groups[PUBLIC]
    user_ok = {*groups[OPENAI], *groups[INFO], *groups[SPEND]}
    templ = {r["path"] for r in routes}
    checked = 0
    for r in routes:
        path = _concrete(r["path"])
        template = r["path"]
        for method in r["methods"]:
            def call(headers: dict[str, str]) -> httpx.Response:
                return httpx.request(method, gw.url + path, headers=headers, json={}, timeout=10)

            anon = call({})
            if template in public:
                assert anon.status_code not in (401, 403), (method, path, anon.text)
            else:
                assert anon.status_code == 401, (method, path, anon.status_code, anon.text)
                assert anon.json()["error"]["message"] == "Authentication Error, No api key passed in."
            as_user = call({"Authorization": f"Bearer {key}"})
            if template in public or template in user_ok:
                assert as_user.status_code != 401, (method, path, as_user.text)
                if as_user.status_code == 403:  # only for someone else's records
                    assert "Only proxy admin" not in as_user.text, (method, path, as_user.text)
            else:
                assert as_user.status_code == 403, (method, path, as_user.status_code, as_user.text)
                assert as_user.json()["error"]["message"] == f"Only proxy admin can access this route. Route={path}"
            as_admin = call(ADMIN)
            assert as_admin.status_code not in (401, 403), (method, path, as_admin.text)
            checked += 1
    assert checked >= len(routes)
    assert templ  # every route was listed by /routes
