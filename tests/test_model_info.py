"""`/model/info` and `/model_group/info`: what a key may call, with no credential in sight."""

from __future__ import annotations

import httpx

ADMIN = {"Authorization": "Bearer sk-1234"}


def test_model_info_lists_deployments_without_credentials_and_scoped_to_the_key(gateway_server, fake_upstream):
    secret_base = fake_upstream.url.replace("http://", "http://proxy-user:hunter2-pass@") + "?key=qs-secret"
    gw = gateway_server({"model_list": [
        {"model_name": "gpt-test", "litellm_params": {"model": "openai/gpt-4o", "api_base": secret_base,
                                                      "api_key": "sk-upstream-secret-0001"},
         "model_info": {"id": "dep-1", "supports_vision": True}},
        {"model_name": "embedder", "litellm_params": {"model": "fake/embed-1"},
         "model_info": {"mode": "embedding"}},
    ]})
    r = httpx.get(gw.url + "/model/info", headers=ADMIN, timeout=10)
    assert r.status_code == 200, r.text
    for secret in ("sk-upstream-secret-0001", "hunter2-pass", "qs-secret"):
        assert secret not in r.text
    by_name = {d["model_name"]: d for d in r.json()["data"]}
    assert set(by_name) == {"gpt-test", "embedder"}
    gpt = by_name["gpt-test"]
    assert gpt["litellm_params"] == {"model": "openai/gpt-4o", "api_base": fake_upstream.url + "?key=***"}
    assert gpt["model_info"]["id"] == "dep-1" and gpt["model_info"]["supports_vision"] is True
    assert gpt["model_info"]["input_cost_per_token"] > 0  # gpt-4o is in the price table
    assert by_name["embedder"]["model_info"]["mode"] == "embedding"

    key = httpx.post(gw.url + "/key/generate", json={"models": ["embedder"]}, headers=ADMIN, timeout=10).json()["key"]
    mine = {"Authorization": f"Bearer {key}"}
    for path in ("/model/info", "/v1/model/info"):
        data = httpx.get(gw.url + path, headers=mine, timeout=10).json()["data"]
        assert [d["model_name"] for d in data] == ["embedder"]
    groups = httpx.get(gw.url + "/model_group/info", headers=mine, timeout=10).json()["data"]
    assert [g["model_group"] for g in groups] == ["embedder"] and groups[0]["mode"] == "embedding"
    one = httpx.get(gw.url + "/model_group/info", params={"model_group": "gpt-test"}, headers=ADMIN, timeout=10)
    assert [g["model_group"] for g in one.json()["data"]] == ["gpt-test"]
    assert httpx.get(gw.url + "/model/info", timeout=10).status_code == 401
