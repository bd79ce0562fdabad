"""Signing and credentials: the provider's requests as the fake Bedrock (which verifies SigV4 with
botocore) receives them, from every credential source; and the fast signer against the
unmodified botocore `SigV4Auth`, byte for byte."""

from __future__ import annotations

import asyncio
import json
import random
import stat
import sys
import time
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bedrock_peer import (ACCESS_KEY, BEARER_TOKEN, SECRET_KEY, SESSION_ACCESS_KEY, SESSION_SECRET, SESSION_TOKEN,
                          Reply)
from gateway_plugin_bedrock import aws
from gateway_plugin_bedrock.provider import BedrockProvider

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}


def deployment(model: str = f"bedrock/{MODEL}", api_key: str | None = None, api_base: str | None = None,
               extra_headers: dict[str, str] | None = None, **params: Any) -> SimpleNamespace:
    """What the gateway's `resolve` hands a provider, for the parts this provider reads."""
    import os

    upstream = model.split("/", 1)[1]
    base = api_base or os.environ.get("AWS_BEDROCK_RUNTIME_ENDPOINT") or aws.ENDPOINT_TEMPLATE
    key = api_key or os.environ.get("AWS_BEARER_TOKEN_BEDROCK")
    full = {"model": model, **params}
    if api_base:
        full["api_base"] = api_base
    if api_key:
        full["api_key"] = api_key
    return SimpleNamespace(model_name="claude", provider="bedrock", upstream_model=upstream, api_base=base,
                           display_base=base, api_key=key, basic_auth=None, extra_headers=extra_headers or {},
                           params=full)


def call(provider: BedrockProvider, dep: Any, body: dict[str, Any] | None = None, stream: bool = False) -> httpx.Response:
    """As the gateway calls a provider: `await prepare(...)`, then `build_request(...)`, then send."""
    asyncio.run(provider.prepare(dep, "acompletion"))
    req = provider.build_request(dep, "acompletion", dict(body or CHAT), stream)
    with httpx.Client() as http:
        return http.post(req.url, headers=req.headers, content=req.body)


def checked(bedrock, **params: Any) -> tuple[BedrockProvider, Any]:
    provider = BedrockProvider()
    dep = deployment(api_base=bedrock.url, aws_region_name=bedrock.region, **params)
    provider.check(dep)
    return provider, dep


# -- the signer against botocore's --------------------------------------------------------------------
@pytest.mark.parametrize("token", [None, SESSION_TOKEN])
def test_the_fast_signer_matches_botocores_sigv4auth(token):
    rng = random.Random(3)
    creds = Credentials(ACCESS_KEY, SECRET_KEY, token).get_frozen_credentials()
    for i in range(50):
        model = rng.choice([MODEL, "us.anthropic.claude-3-7-sonnet-20250219-v1:0", "meta.llama3-1-8b-instruct-v1:0",
                            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-2-1b-instruct-v1:0",
                            "amazon.nova-pro-v1:0"])
        host = rng.choice(["bedrock-runtime.eu-west-3.amazonaws.com", "127.0.0.1:8080", "vpce-1.bedrock-runtime.x.io"])
        scheme = "http" if ":" in host else "https"
        url = f"{scheme}://{host}/model/{aws.quote_model_id(model)}/converse"
        body = json.dumps({"messages": [{"role": "user", "content": [{"text": "x" * i + " ü  spaced  "}]}]}).encode()
        headers = {"content-type": "application/json", "accept": "application/json"}
        if i % 3 == 0:
            headers["x-custom"] = "  several   spaces  inside "
        if i % 5 == 0:
            headers["user-agent"] = "never signed"
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(1_800_000_000 + i * 86_000))
        ours = aws.sign(url, aws.host_of(url), headers, body, creds, "eu-west-3", timestamp=stamp)

        reference = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
        signer = SigV4Auth(creds, "bedrock", "eu-west-3")
        reference.headers["X-Amz-Date"] = stamp
        if token:
            reference.headers["X-Amz-Security-Token"] = token
        reference.context["timestamp"] = stamp
        canonical = signer.canonical_request(reference)
        signature = signer.signature(signer.string_to_sign(reference, canonical), reference)
        expected = (f"AWS4-HMAC-SHA256 Credential={signer.scope(reference)}, "
                    f"SignedHeaders={signer.signed_headers(signer.headers_to_sign(reference))}, Signature={signature}")
        assert ours["authorization"] == expected, (url, headers)
        assert ours["x-amz-date"] == stamp and ours.get("x-amz-security-token") == token
        assert "host" not in ours  # the HTTP client writes it, from the same URL


def test_model_ids_are_spelt_as_they_reach_aws():
    assert aws.quote_model_id(MODEL) == MODEL  # `:` as every client sends it (aiohttp unescapes %3A)
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"
    assert aws.quote_model_id(arn) == "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile%2Fabc123"


@pytest.mark.parametrize("transport", ["httpx", "aiohttp", "httpx-aiohttp"])
async def test_every_transport_of_the_gateway_sends_the_signed_path(bedrock, transport):
    """The gateway sends with aiohttp (directly, or under httpx) or httpx alone
    (`GATEWAY_HTTP_TRANSPORT`): the fake must see the very path that was signed, ARNs included."""
    import aiohttp
    from httpx_aiohttp import AiohttpTransport

    provider = BedrockProvider()
    arn = f"arn:aws:bedrock:{bedrock.region}:123456789012:inference-profile/eu.anthropic.claude-3-5-sonnet-20240620-v1:0"
    for model in (f"bedrock/{MODEL}", f"bedrock/{arn}"):
        dep = deployment(model, api_base=bedrock.url, aws_region_name=bedrock.region, aws_access_key_id=ACCESS_KEY,
                         aws_secret_access_key=SECRET_KEY)
        provider.check(dep)
        req = provider.build_request(dep, "acompletion", dict(CHAT), False)
        if transport == "aiohttp":
            async with aiohttp.ClientSession() as session:
                async with session.post(req.url, data=req.body, headers=req.headers) as reply:
                    status = reply.status
        else:
            kwargs = {"transport": AiohttpTransport()} if transport == "httpx-aiohttp" else {}
            async with httpx.AsyncClient(**kwargs) as http:
                status = (await http.post(req.url, headers=req.headers, content=req.body)).status_code
        assert status == 200, bedrock.calls()[-1]
    assert [c.model_id for c in bedrock.calls("converse")] == [MODEL, arn]


# -- credential sources, checked by the fake ------------------------------------------------------------
def test_keys_on_the_deployment(bedrock):
    provider, dep = checked(bedrock, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    reply = call(provider, dep)
    assert reply.status_code == 200, reply.text
    (seen,) = bedrock.calls("converse")
    assert seen.access_key == ACCESS_KEY and seen.model_id == MODEL
    assert seen.raw_path == "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse"


def test_temporary_keys_with_a_session_token(bedrock):
    provider, dep = checked(bedrock, aws_access_key_id=SESSION_ACCESS_KEY, aws_secret_access_key=SESSION_SECRET,
                            aws_session_token=SESSION_TOKEN)
    assert call(provider, dep).status_code == 200
    assert bedrock.calls("converse")[0].headers["x-amz-security-token"] == SESSION_TOKEN


def test_a_wrong_secret_is_refused_by_the_fake(bedrock):
    provider, dep = checked(bedrock, aws_access_key_id=ACCESS_KEY, aws_secret_access_key="not-the-secret-at-all")
    reply = call(provider, dep)
    assert reply.status_code == 403 and reply.headers["x-amzn-errortype"].startswith("InvalidSignatureException")
    error = provider.parse_error(dep, 403, reply.content)
    assert error.type == "authentication_error" and "signature" in error.message


def test_the_environment_chain(bedrock, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", SESSION_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SESSION_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    monkeypatch.setenv("AWS_REGION", bedrock.region)
    provider = BedrockProvider()
    dep = deployment(api_base=bedrock.url)  # no region, no keys on the deployment
    provider.check(dep)
    assert call(provider, dep).status_code == 200
    assert bedrock.calls("converse")[0].access_key == SESSION_ACCESS_KEY


def test_a_named_profile_with_its_region(bedrock, aws_env):
    (aws_env / "credentials").write_text(f"[team]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    (aws_env / "config").write_text(f"[profile team]\nregion = {bedrock.region}\n")
    provider = BedrockProvider()
    dep = deployment(api_base=bedrock.url, aws_profile_name="team")
    provider.check(dep)
    assert call(provider, dep).status_code == 200
    assert bedrock.calls("converse")[0].access_key == ACCESS_KEY


def test_an_unknown_profile_stops_start_up(aws_env):
    with pytest.raises(ValueError, match="aws_profile_name 'nope' is not a profile"):
        BedrockProvider().check(deployment(aws_profile_name="nope", aws_region_name="us-east-1"))


def test_settings_that_cannot_work_stop_start_up_with_one_line(aws_env):
    for params, says in [
        ({"aws_web_identity_token": "eyJhbGciOi", "aws_role_name": "arn:aws:iam::1:role/r"}, "AWS_WEB_IDENTITY_TOKEN_FILE"),
        ({"aws_access_key_id": ACCESS_KEY}, "go together"),
        ({"aws_region_name": "us-east-1/../x", "aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY},
         "not an AWS region name"),
        ({"aws_bedrock_runtime_endpoint": "bedrock.internal", "aws_region_name": "us-east-1"}, "must start with http"),
        ({"aws_bedrock_runtime_endpoint": "https://user:pw@proxy.internal", "aws_region_name": "us-east-1"},
         "must not carry credentials"),
    ]:
        with pytest.raises(ValueError, match=says):
            BedrockProvider().check(deployment(**params))


def test_no_credentials_anywhere_fails_the_call_clearly(aws_env, caplog):
    from gateway import GatewayError

    provider = BedrockProvider()
    dep = deployment(aws_region_name="us-east-1")
    provider.check(dep)  # starts (credentials may appear later), with a warning
    assert "no AWS credentials found" in caplog.text
    with pytest.raises(GatewayError) as caught:
        provider.build_request(dep, "acompletion", dict(CHAT), False)
    assert caught.value.status == 500
    assert caught.value.message.startswith("BedrockException - deployment claude: no AWS credentials found")


def test_credentials_that_appear_later_are_found_off_the_request_path(bedrock, monkeypatch):
    from gateway import GatewayError

    monkeypatch.setattr(aws, "SEARCH_EVERY_S", 0.0)
    provider = BedrockProvider()
    dep = deployment(api_base=bedrock.url, aws_region_name=bedrock.region)
    provider.check(dep)  # nothing yet
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    with pytest.raises(GatewayError):  # build_request never searches itself (that may mean network calls)
        provider.build_request(dep, "acompletion", dict(CHAT), False)
    assert call(provider, dep).status_code == 200  # prepare() found them, in a worker thread


def test_a_burst_of_requests_starts_one_search_not_a_burst(aws_env):
    provider = BedrockProvider()
    dep = deployment(aws_region_name="us-east-1")
    provider.check(dep)
    (creds,) = provider.credentials.all()
    assert [creds.due() for _ in range(5)] == [True, False, False, False, False]


def test_credential_process_profiles_refresh(bedrock, aws_env, tmp_path):
    """A profile whose credentials come from `credential_process` with an expiry: botocore's
    refreshable credentials, read per request, pick up new ones when the old expire."""
    current = tmp_path / "current.json"
    script = tmp_path / "creds.py"
    script.write_text(f"import sys; sys.stdout.write(open({str(current)!r}).read())\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    (aws_env / "config").write_text(f"[profile rotating]\nregion = {bedrock.region}\n"
                                    f"credential_process = {sys.executable} {script}\n")

    def issue(key: str, secret: str, token: str, lifetime_s: float) -> None:
        bedrock.credentials[key] = (secret, token)
        expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + lifetime_s))
        current.write_text(json.dumps({"Version": 1, "AccessKeyId": key, "SecretAccessKey": secret,
                                       "SessionToken": token, "Expiration": expiry}))

    issue("ASIAPROCESS000000001", "process-secret-1", "process-token-1", 5)  # due: inside botocore's 10-minute window
    provider = BedrockProvider()
    dep = deployment(api_base=bedrock.url, aws_profile_name="rotating")
    provider.check(dep)
    issue("ASIAPROCESS000000002", "process-secret-2", "process-token-2", 3600)
    assert call(provider, dep).status_code == 200
    assert bedrock.calls("converse")[-1].access_key == "ASIAPROCESS000000002"  # refreshed on this request
    issue("ASIAPROCESS000000003", "process-secret-3", "process-token-3", 3600)
    assert call(provider, dep).status_code == 200
    assert bedrock.calls("converse")[-1].access_key == "ASIAPROCESS000000002"  # still valid: not refreshed


def test_an_assumed_role_is_refreshed_before_it_expires(bedrock):
    bedrock.sts_expiry_s = 700  # inside botocore's advisory refresh window (15 minutes before expiry)
    provider, dep = checked(bedrock, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                            aws_role_name="arn:aws:iam::123456789012:role/bedrock-caller", aws_session_name="gw",
                            aws_sts_endpoint=bedrock.url)
    assert bedrock.sts_issued == ["ASIASTSROLE000000001"]  # assumed at start-up
    assert bedrock.calls("AssumeRole")[0].body["RoleSessionName"] == "gw"
    bedrock.sts_expiry_s = 3600
    assert call(provider, dep).status_code == 200  # prepare() refreshed it first, in a worker thread
    assert call(provider, dep).status_code == 200
    assert bedrock.sts_issued == ["ASIASTSROLE000000001", "ASIASTSROLE000000002"]
    assert [c.access_key for c in bedrock.calls("converse")] == ["ASIASTSROLE000000002"] * 2


def test_a_bedrock_api_key_is_sent_as_a_bearer_token(bedrock):
    provider, dep = checked(bedrock, api_key=BEARER_TOKEN)
    reply = call(provider, dep)
    assert reply.status_code == 200
    (seen,) = bedrock.calls("converse")
    assert seen.auth == "bearer" and "x-amz-date" not in seen.headers


def test_the_environments_api_key_does_not_override_named_aws_keys(bedrock, monkeypatch):
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "ABSKsomethingelse")
    provider, dep = checked(bedrock, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    assert call(provider, dep).status_code == 200
    assert bedrock.calls("converse")[0].auth == "sigv4"


def test_streams_are_signed_too(bedrock):
    bedrock.script(Reply(text="one two three", chunk_size=5))
    provider, dep = checked(bedrock, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    reply = call(provider, dep, stream=True)
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/vnd.amazon.eventstream"
    translator = provider.stream(dep, "acompletion")
    chunks = translator.feed(reply.content) + translator.end()
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")) == "one two three"
    assert bedrock.calls("converse-stream")[0].headers["accept"] == "application/vnd.amazon.eventstream"


def test_region_and_endpoint_resolution(aws_env, monkeypatch):
    provider = BedrockProvider()
    dep = deployment(aws_region_name="ap-northeast-1", aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    provider.check(dep)
    assert dep.api_base == dep.display_base == "https://bedrock-runtime.ap-northeast-1.amazonaws.com"
    req = provider.build_request(dep, "acompletion", dict(CHAT), True)
    assert req.url == ("https://bedrock-runtime.ap-northeast-1.amazonaws.com/model/"
                       "anthropic.claude-3-5-sonnet-20240620-v1:0/converse-stream")
    assert "/ap-northeast-1/bedrock/aws4_request" in req.headers["authorization"]
    # nothing named: LiteLLM's fallback region
    dep = deployment(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    provider.check(dep)
    assert dep.api_base == "https://bedrock-runtime.us-west-2.amazonaws.com"
    # AWS_REGION, and the ARN's region when nothing else names one
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    dep = deployment(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    provider.check(dep)
    assert dep.api_base.endswith(".eu-central-1.amazonaws.com")
    monkeypatch.delenv("AWS_REGION")
    arn = "arn:aws:bedrock:ca-central-1:123456789012:application-inference-profile/a1b2c3"
    dep = deployment(f"bedrock/{arn}", aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    provider.check(dep)
    assert dep.api_base.endswith(".ca-central-1.amazonaws.com")
    # a custom endpoint (VPC endpoint, proxy): its URL, the deployment's region for signing
    dep = deployment(aws_bedrock_runtime_endpoint="https://vpce-0abc.bedrock-runtime.eu-west-1.vpce.amazonaws.com/",
                     aws_region_name="eu-west-1", aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    provider.check(dep)
    req = provider.build_request(dep, "acompletion", dict(CHAT), False)
    assert req.url.startswith("https://vpce-0abc.bedrock-runtime.eu-west-1.vpce.amazonaws.com/model/")
    monkeypatch.setenv("AWS_BEDROCK_RUNTIME_ENDPOINT", "http://proxy.internal:8080")
    dep = deployment(aws_region_name="eu-west-1", aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    provider.check(dep)
    assert dep.api_base == "http://proxy.internal:8080"


def test_model_forms_as_litellm_accepts_them(aws_env):
    provider = BedrockProvider()
    keys = {"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY, "aws_region_name": "us-east-1"}
    for model, path in [
        (f"bedrock/converse/{MODEL}", f"/model/{aws.quote_model_id(MODEL)}/converse"),
        (f"bedrock/invoke/{MODEL}", f"/model/{aws.quote_model_id(MODEL)}/converse"),
        ("bedrock/us.anthropic.claude-3-5-sonnet-20241022-v2:0", "/model/us.anthropic.claude-3-5-sonnet-20241022-v2:0/converse"),
        ("bedrock/meta.llama3-1-70b-instruct-v1:0", "/model/meta.llama3-1-70b-instruct-v1:0/converse"),
        ("bedrock/mistral.mistral-large-2407-v1:0", "/model/mistral.mistral-large-2407-v1:0/converse"),
        ("bedrock/amazon.nova-pro-v1:0", "/model/amazon.nova-pro-v1:0/converse"),
    ]:
        dep = deployment(model, **keys)
        provider.check(dep)
        assert provider.build_request(dep, "acompletion", dict(CHAT), False).url.endswith(path), model
        assert not dep.upstream_model.startswith(("converse/", "invoke/"))  # priced as the model itself
    dep = deployment("bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0",
                     model_id="arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc", **keys)
    provider.check(dep)
    assert "/model/arn:aws:bedrock:us-east-1:123456789012:provisioned-model%2Fabc/converse" in \
        provider.build_request(dep, "acompletion", dict(CHAT), False).url
