"""An administrator's provisioning script written for the LiteLLM proxy's API, run unchanged: a model
added at runtime, a budget, a customer on it, a key limited to the new model, calls through the
`openai` SDK, the spend report by customer, the budget enforced, the model removed. Only the
gateway's answers are looked at, as the script would. Marked `db` (run again on PostgreSQL)."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import httpx
import openai
import pytest

pytestmark = pytest.mark.db

ADMIN = {"Authorization": "Bearer sk-1234"}


def test_a_provisioning_script_for_litellm_runs_unchanged(gateway_server, fake_upstream):
    gw = gateway_server({"model_list": [], "general_settings": {"store_model_in_db": True,
                                                                 "spend_flush_interval_s": 0.05}})
    fake_upstream.usage = {"prompt_tokens": 1000, "completion_tokens": 1000}
    with httpx.Client(base_url=gw.url, headers=ADMIN, timeout=10) as admin:
        def post(path: str, body: dict) -> dict:
            r = admin.post(path, json=body)
            assert r.status_code == 200, (path, r.text)
            return r.json()

        model = post("/model/new", {"model_name": "team-gpt", "litellm_params": {
            "model": "openai/gpt-4o-mini", "api_base": fake_upstream.url, "api_key": "sk-upstream-xyz",
            "input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6}})
        post("/budget/new", {"budget_id": "starter", "max_budget": 0.003, "rpm_limit": 100})
        post("/customer/new", {"user_id": "acme", "budget_id": "starter"})
        key = post("/key/generate", {"models": ["team-gpt"], "key_alias": "acme-app"})["key"]

        client = openai.OpenAI(api_key=key, base_url=gw.url + "/v1", max_retries=0)
        assert [m.id for m in client.models.list()] == ["team-gpt"]
        for _ in range(2):  # 0.002 each
            reply = client.chat.completions.create(model="team-gpt", user="acme",
                                                   messages=[{"role": "user", "content": "hi"}])
            assert reply.choices[0].message.content == "upstream says: hi"
        deadline = time.monotonic() + 10
        while (admin.get("/customer/info", params={"end_user_id": "acme"}).json().get("spend", 0) < 0.004
               and time.monotonic() < deadline):
            time.sleep(0.05)
        with pytest.raises(openai.RateLimitError, match="Budget has been exceeded!"):
            client.chat.completions.create(model="team-gpt", user="acme", messages=[{"role": "user", "content": "hi"}])
        day = datetime.now(timezone.utc).date().isoformat()
        report = admin.get("/global/spend/report", params={"start_date": day, "end_date": day,
                                                           "group_by": "customer"}).json()
        by_customer = {c["customer"]: c["total_spend"] for c in report[0]["customers"]}
        assert by_customer["acme"] == pytest.approx(0.004)

        post("/model/delete", {"id": model["model_id"]})
        with pytest.raises(openai.BadRequestError, match="Invalid model name"):
            client.chat.completions.create(model="team-gpt", messages=[{"role": "user", "content": "hi"}])
    assert "sk-upstream-xyz" not in httpx.get(gw.url + "/model/info", headers=ADMIN).text
