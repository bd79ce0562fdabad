"""Generated requests from the gateway's own /openapi.json (schemathesis), against a live gateway.

Whatever a client sends, the answer is never a 5xx, and every 4xx carries the error envelope
(REFERENCE.md section 0) with `code` equal to the status. Both valid-looking (positive) and
schema-violating (negative) requests are generated, a bounded number per operation, with a fixed
seed so a failure reproduces. Followed by hand-picked cases that once gave a 5xx (issue 11).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from gateway.testing import MASTER_KEY

pytestmark = pytest.mark.db

ADMIN = {"Authorization": f"Bearer {MASTER_KEY}"}
CONFIG = {"model_list": [{"model_name": "gpt-fake", "litellm_params": {"model": "fake/gpt-fake"}},
                         {"model_name": "embed-fake", "litellm_params": {"model": "fake/embed-fake"}}]}
EXAMPLES = 20  # per operation and mode: the whole file stays well under 90 s on 2 cores


def envelope_problem(status: int, body: bytes) -> str | None:
    """Why `body` is not the error envelope for `status`, or None when it is."""
    try:
        err = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return "not the JSON error envelope"
    if not isinstance(err, dict) or not {"message", "type", "param", "code"} <= set(err):
        return "envelope lacks message/type/param/code"
    if err["code"] != str(status):
        return f"code {err['code']!r} != {str(status)!r}"
    return None


def fuzz(base_url: str, mode: GenerationMode) -> list[str]:
    """Every problem seen over all operations, as `METHOD path -> status: why` lines."""
    spec = httpx.get(base_url + "/openapi.json").json()
    schema = schemathesis.openapi.from_dict(spec)
    session = requests.Session()
    problems: list[str] = []

    for result in schema.get_all_operations():
        op = result.ok()

        @given(case=op.as_strategy(mode))
        @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            if isinstance(case.body, dict) and case.body.get("stream") is True:
                case.body["stream"] = False  # streams are covered elsewhere; keep this bounded
            r = case.call(base_url=base_url, session=session, headers=ADMIN, timeout=10)
            why = "server error" if r.status_code >= 500 else (
                envelope_problem(r.status_code, r.content) if r.status_code >= 400 else None)
            if why:
                problems.append(f"{case.method} {case.formatted_path} -> {r.status_code}: {why}: "
                                f"{r.content[:200]!r}")

        try:
            run()
        except Unsatisfiable:  # nothing to break in this operation (no parameters, no body)
            pass
    return problems


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_generated_requests_get_no_5xx_and_the_envelope(gateway_server, mode):
    server = gateway_server(CONFIG)
    problems = fuzz(server.url, mode)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:40])


# -- cases that once gave a 5xx (issue 11, item 4) ---------------------------------------------
BIG = "9" * 30
DEEP: Any = 1
for _ in range(500):
    DEEP = {"a": DEEP}
LONG = "a" * 100_000
BAD_BODIES = [  # (path, body, the field the 400 names)
    ("/key/generate", {"duration": f"{BIG}d"}, "duration"),
    ("/key/generate", {"budget_duration": f"{BIG}mo"}, "budget_duration"),
    ("/team/new", {"budget_duration": f"{BIG}w"}, "budget_duration"),
    ("/user/new", {"budget_duration": f"{BIG}d"}, "budget_duration"),
    ("/customer/new", {"user_id": "c1", "budget_duration": f"{BIG}d"}, "budget_duration"),
    ("/key/generate", {"tpm_limit": 2**63}, "tpm_limit"),
    ("/key/generate", {"rpm_limit": 2**64}, "rpm_limit"),
    ("/key/generate", {"max_parallel_requests": 2**63}, "max_parallel_requests"),
    ("/team/new", {"tpm_limit": 2**63}, "tpm_limit"),
    ("/user/new", {"rpm_limit": 2**63}, "rpm_limit"),
    ("/key/generate", {"key_alias": LONG}, "key_alias"),
    ("/key/generate", {"user_id": LONG}, "user_id"),
    ("/team/new", {"team_alias": LONG}, "team_alias"),
    ("/team/new", {"team_id": LONG}, "team_id"),
    ("/user/new", {"user_id": LONG}, "user_id"),
    ("/customer/new", {"user_id": LONG}, "user_id"),
    ("/key/generate", {"metadata": DEEP}, "metadata"),
    ("/team/new", {"metadata": DEEP}, "metadata"),
    ("/user/new", {"metadata": DEEP}, "metadata"),
    ("/key/generate", {"key_alias": "a\x00b"}, "key_alias"),
    ("/key/generate", {"metadata": {"k": "a\x00b"}}, "metadata"),
    ("/team/new", {"team_alias": "a\x00b"}, "team_alias"),
    ("/user/new", {"user_id": "u\x00"}, "user_id"),
    ("/customer/new", {"user_id": "c\x00"}, "user_id"),
    ("/embeddings", {"model": "embed-fake", "input": "hi", "dimensions": "x"}, "dimensions"),
    ("/embeddings", {"model": "embed-fake", "input": "hi", "dimensions": 300_000}, "dimensions"),
    ("/embeddings", {"model": "embed-fake", "input": "hi", "dimensions": -1}, "dimensions"),
    ("/chat/completions", {"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}],
                           "metadata": DEEP}, None),
    ("/chat/completions", {"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}],
                           "user": "u\x00", "tags": ["t\x00"]}, None),
    ("/chat/completions", {"model": "gpt-fake", "messages": [{"role": "user", "content": DEEP}]}, None),
    ("/chat/completions", {"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}],
                           "response_format": DEEP, "tools": [DEEP]}, None),
    ("/embeddings", {"model": "embed-fake", "input": [DEEP]}, None),
]
BAD_QUERIES = [
    ("/spend/logs", {"end_date": "9999-12-31"}),
    ("/spend/logs", {"start_date": "0001-01-01", "end_date": "9999-12-31"}),
    ("/spend/tags", {"end_date": "9999-12-31"}),
    ("/spend/keys", {"end_date": "9999-12-31"}),
    ("/spend/users", {"end_date": "9999-12-31"}),
    ("/key/list", {"page": BIG}),
    ("/user/list", {"page": BIG}),
    ("/team/list", {"page": BIG}),
    ("/customer/list", {"page": BIG}),
    ("/audit", {"page": BIG}),
    ("/spend/logs", {"page": BIG}),
    ("/key/info", {"key": "k" * 5000}),
    ("/team/info", {"team_id": "t\x00"}),
]


@pytest.fixture
def hand_picked(gateway_server):
    return gateway_server(CONFIG)


def test_known_bad_inputs_get_a_400_naming_the_field(hand_picked):
    seen = []
    for path, body, field in BAD_BODIES:
        r = httpx.post(hand_picked.url + path, json=body, headers=ADMIN, timeout=30)
        problem = "server error" if r.status_code >= 500 else (
            envelope_problem(r.status_code, r.content) if r.status_code >= 400 or field else None)
        if problem is None and field is not None:
            param, message = r.json()["error"]["param"], r.json()["error"]["message"]
            if r.status_code != 400 or not (param == field or field in message):
                problem = f"not a 400 naming {field}"
        if problem:
            seen.append(f"POST {path} {field}: {r.status_code} {problem}: {r.content[:160]!r}")
    for path, params in BAD_QUERIES:
        r = httpx.get(hand_picked.url + path, params=params, headers=ADMIN, timeout=30)
        problem = "server error" if r.status_code >= 500 else (
            envelope_problem(r.status_code, r.content) if r.status_code >= 400 else None)
        if problem:
            seen.append(f"GET {path} {list(params)}: {r.status_code} {problem}: {r.content[:160]!r}")
    assert not seen, f"{len(seen)} problems:\n" + "\n".join(seen)
