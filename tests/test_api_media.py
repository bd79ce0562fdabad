"""Images, audio, moderations and rerank through the gateway, end to end: the official `openai` SDK
(httpx, and Cohere's own SDK, for rerank) talks to a real gateway, which calls the fake OpenAI
upstream (`openai/...` and `hosted_vllm/...` deployments), the fake Cohere API v2
(tests/peers/cohere_api.py) or the built-in `fake/` provider.

Each call is checked three ways: what the upstream received, what the client parsed, and the spend
row (call type, and the price the table or the deployment gives: per image, second, character,
search unit).
"""

from __future__ import annotations

import importlib.util
import io
import logging
import math
import struct
import sys
import wave
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cohere as cohere_sdk
import httpx
import openai
import pytest

from gateway.core.spend.pricing import PriceTable
from gateway.testing import MASTER_KEY

PEERS = Path(__file__).parent / "peers"
_spec = importlib.util.spec_from_file_location("cohere_api", PEERS / "cohere_api.py")
cohere_api = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
sys.modules.setdefault("cohere_api", cohere_api)
_spec.loader.exec_module(cohere_api)  # type: ignore[union-attr]

UPSTREAM_KEY = "sk-upstream-media-0123456789"
COHERE_KEY = "co-media-key-0123456789"
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
DOCUMENTS = ["Paris is the capital of France", {"text": "Bananas are yellow"}, "France borders Spain"]
QUERY = "What is the capital of France"


def wav_bytes(seconds: float, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(struct.pack("<h", 0) * int(rate * seconds))
    return buffer.getvalue()


def upstream(name: str, base: str, model: str, **params: Any) -> dict[str, Any]:
    return {"model_name": name, "litellm_params": {"model": model, "api_base": base, "api_key": UPSTREAM_KEY, **params}}


def fake(name: str, model: str) -> dict[str, Any]:
    return {"model_name": name, "litellm_params": {"model": model}}


def config(*models: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model_list": list(models), "router_settings": {"num_retries": 0, **extra.pop("router", {})},
            "general_settings": {"spend_flush_interval_s": 0.05}, **extra}


@pytest.fixture
def cohere():
    with cohere_api.FakeCohere(api_key=COHERE_KEY) as peer:
        yield peer


@pytest.fixture
def gw(gateway_server, fake_upstream, cohere):
    base = fake_upstream.url
    return gateway_server(config(
        upstream("dall-e-3", base, "openai/dall-e-3"),
        upstream("gpt-image", base, "openai/gpt-image-1"),
        upstream("whisper", base, "openai/whisper-1"),
        upstream("tts", base, "openai/tts-1"),
        upstream("omni-moderation-latest", base, "openai/omni-moderation-latest"),
        upstream("vllm-rerank", base, "hosted_vllm/BAAI/bge-reranker-v2-m3", input_cost_per_query=0.001),
        upstream("chat", base, "openai/gpt-4o-mini"),
        {"model_name": "cohere-rerank", "litellm_params": {"model": "cohere/rerank-v3.5", "api_base": cohere.url,
                                                           "api_key": COHERE_KEY}},
        {"model_name": "command-r", "litellm_params": {"model": "cohere/command-r", "api_base": cohere.url,
                                                       "api_key": COHERE_KEY}},
        fake("fake-image", "fake/dall-e-3"),
        router={"fallbacks": [{"dall-e-3": ["fake-image"]}]},
    ))


@pytest.fixture
def client(gw):
    return gw.client()


def row_of(gw: Any, call_type: str, count: int = 1) -> dict[str, Any]:
    rows = [r for r in gw.spend_logs(count) if r["call_type"] == call_type]
    assert rows, f"no spend row for {call_type}"
    return rows[0]


def billed(row: dict[str, Any]) -> dict[str, Any]:
    return row["metadata"]["annotations"]["spend_logs"]["billed"]


# -- images ------------------------------------------------------------------------------------------
def test_image_generation_is_routed_and_priced_per_image_by_size_and_quality(gw, client, fake_upstream):
    reply = client.images.generate(model="dall-e-3", prompt="a lighthouse at dusk", size="1024x1792",
                                   quality="hd", n=2)
    assert [d.revised_prompt for d in reply.data] == ["upstream drew: a lighthouse at dusk"] * 2
    assert reply.data[0].url.startswith(fake_upstream.root + "/images/")
    sent = fake_upstream.requests[-1]
    assert sent.path == "/v1/images/generations"
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent.json == {"model": "dall-e-3", "prompt": "a lighthouse at dusk", "size": "1024x1792",
                         "quality": "hd", "n": 2}
    row = row_of(gw, "aimage_generation")
    assert (row["model"], row["model_group"], row["status"]) == ("dall-e-3", "dall-e-3", "success")
    # LiteLLM's hd/1024-x-1792/dall-e-3 row: 6.539e-08 a pixel, two images.
    assert row["spend"] == pytest.approx(2 * 1024 * 1792 * 6.539e-08)
    assert billed(row)["unit"] == "image" and billed(row)["quantity"] == 2
    assert UPSTREAM_KEY not in str(row)


def test_gpt_image_bills_the_tokens_its_reply_reports(gw, client, fake_upstream):
    fake_upstream.script(usage={"input_tokens": 40, "output_tokens": 1056, "total_tokens": 1096,
                                "input_tokens_details": {"text_tokens": 40, "image_tokens": 0}})
    reply = client.images.generate(model="gpt-image", prompt="a red cube", response_format="b64_json")
    assert reply.data[0].b64_json and reply.usage.output_tokens == 1056
    row = row_of(gw, "aimage_generation")
    assert row["spend"] == pytest.approx(40 * 5e-06 + 1056 * 4e-05)  # text in, image tokens out
    assert billed(row)["unit"] == "token"


def test_a_failing_image_model_falls_back_to_the_next_group(gw, client, fake_upstream):
    fake_upstream.fail_next(503)
    raw = client.images.with_raw_response.generate(model="dall-e-3", prompt="a boat")
    assert raw.headers["x-gateway-attempted-fallbacks"] == "1"
    reply = raw.parse()
    assert reply.data[0].url.startswith("data:image/png;base64,")  # the built-in fake answered
    row = row_of(gw, "aimage_generation")
    assert row["model"] == "dall-e-3" and row["spend"] == pytest.approx(0.02)  # fake/*'s demo price, n=1
    assert [a["model_group"] for a in row["metadata"]["attempts"]] == ["dall-e-3", "fake-image"]


def test_streaming_is_refused_on_media_routes(gw):
    r = httpx.post(gw.url + "/v1/images/generations", headers=AUTH,
                   json={"model": "dall-e-3", "prompt": "x", "stream": True})
    assert r.status_code == 400 and r.json()["error"]["param"] == "stream"
    r = httpx.post(gw.url + "/images/generations", headers=AUTH, json={"model": "dall-e-3", "prompt": "x", "n": 0})
    assert r.status_code == 400 and r.json()["error"]["param"] == "n"


# -- speech ------------------------------------------------------------------------------------------
def test_speech_relays_the_audio_and_bills_characters(gw, client, fake_upstream):
    audio = client.audio.speech.create(model="tts", voice="alloy", input="Hello there, world", response_format="wav")
    assert audio.content.startswith(b"RIFF") and audio.response.headers["content-type"] == "audio/wav"
    assert fake_upstream.requests[-1].path == "/v1/audio/speech"
    assert fake_upstream.requests[-1].json == {"model": "tts-1", "voice": "alloy", "input": "Hello there, world",
                                               "response_format": "wav"}
    mp3 = httpx.post(gw.url + "/audio/speech", headers=AUTH, json={"model": "tts", "voice": "nova", "input": "Hi"})
    assert mp3.status_code == 200 and mp3.headers["content-type"] == "audio/mpeg" and len(mp3.content) == 1600
    rows = [r for r in gw.spend_logs(2) if r["call_type"] == "aspeech"]
    assert sorted(r["spend"] for r in rows) == pytest.approx([2 * 1.5e-05, 18 * 1.5e-05])  # tts-1: per character


# -- transcriptions ----------------------------------------------------------------------------------
def test_transcription_sends_the_audio_as_multipart_and_bills_seconds(gw, client, fake_upstream):
    audio = wav_bytes(2.0)
    result = client.audio.transcriptions.create(
        model="whisper", file=("clip.wav", audio, "audio/wav"), prompt="Names: Ada", language="en",
        response_format="verbose_json", temperature=0.2, timestamp_granularities=["segment"])
    assert result.text == "upstream heard clip.wav" and result.duration == pytest.approx(2.0)
    sent = fake_upstream.requests[-1]
    assert sent.path == "/v1/audio/transcriptions" and sent.headers["content-type"].startswith("multipart/form-data")
    assert sent.files["file"] == {"filename": "clip.wav", "content_type": "audio/wav", "content": audio}
    assert sent.json == {"model": "whisper-1", "prompt": "Names: Ada", "language": "en",
                         "response_format": "verbose_json", "temperature": "0.2",
                         "timestamp_granularities": ["segment"]}
    row = row_of(gw, "atranscription")
    assert row["spend"] == pytest.approx(2 * 0.0001)  # whisper-1: $0.006 a minute
    assert billed(row) == {"unit": "second", "quantity": 2.0, "source": "the reply's usage.seconds",
                           "unit_price": 0.0001}


@pytest.mark.parametrize(("audio", "quantity", "source"), [
    (wav_bytes(3.5), 3.5, "the audio file's WAV header"),
    (b"ID3\x04\x00fake mp3 frames", 0.0, "unknown: the reply gives no duration and the audio is not a WAV file"),
])
def test_transcription_without_a_duration_is_timed_from_the_wav_header(gw, client, fake_upstream, audio, quantity,
                                                                        source):
    fake_upstream.script(usage=False)
    result = client.audio.transcriptions.create(model="whisper", file=("a.audio", audio))
    assert result.text == "upstream heard a.audio"
    row = row_of(gw, "atranscription")
    assert row["spend"] == pytest.approx(quantity * 0.0001)
    assert (billed(row)["quantity"], billed(row)["source"]) == (quantity, source)


def test_transcription_text_formats_are_relayed_as_text(gw, client, fake_upstream):
    plain = client.audio.transcriptions.create(model="whisper", file=("a.wav", wav_bytes(1.2)), response_format="text")
    assert plain == "upstream heard a.wav\n"  # the SDK returns the text as it came
    srt = client.audio.transcriptions.create(model="whisper", file=("a.wav", wav_bytes(1.2)), response_format="srt")
    assert srt == "1\n00:00:00,000 --> 00:00:02,000\nupstream heard a.wav\n\n"
    vtt = client.audio.transcriptions.create(model="whisper", file=("a.wav", wav_bytes(1.2)), response_format="vtt")
    assert vtt.startswith("WEBVTT\n") and "upstream heard a.wav" in vtt
    row = row_of(gw, "atranscription")
    assert row["status"] == "success" and row["spend"] > 0  # billed on the WAV header's duration


def test_a_reply_guard_sees_a_plain_text_transcription(gateway_server, fake_upstream):
    fake_upstream.reply = "the forbidden words"
    gw = gateway_server({"model_list": [{"model_name": "whisper", "litellm_params": {
        "model": "openai/whisper-1", "api_base": fake_upstream.url, "api_key": "sk-up"}}],
        "litellm_settings": {"callbacks": ["banned_keywords"], "banned_keywords_list": ["forbidden"]}})
    for fmt in ("text", "json"):
        with pytest.raises(openai.BadRequestError, match="Keyword banned. Keyword=forbidden"):
            gw.client().audio.transcriptions.create(model="whisper", file=("a.wav", wav_bytes(0.1)),
                                                    response_format=fmt)


def test_transcription_missing_files_are_400(gw, client):
    r = httpx.post(gw.url + "/v1/audio/transcriptions", headers=AUTH, data={"model": "whisper"},
                   files={"other": ("x.wav", b"123")})
    assert r.status_code == 400 and r.json()["error"]["param"] == "file"
    r = httpx.post(gw.url + "/v1/audio/transcriptions", headers=AUTH, json={"model": "whisper", "file": "x"})
    assert r.status_code == 400 and "multipart/form-data" in r.json()["error"]["message"]


# -- moderations -------------------------------------------------------------------------------------
def test_moderation_without_a_model_goes_to_the_default_moderation_group(gw, client, fake_upstream):
    result = client.moderations.create(input=["I will hurt you", "have a nice day"])
    assert [r.flagged for r in result.results] == [True, False]
    assert result.results[0].categories.violence is True
    assert fake_upstream.requests[-1].path == "/v1/moderations"
    assert fake_upstream.requests[-1].json == {"input": ["I will hurt you", "have a nice day"],
                                               "model": "omni-moderation-latest"}
    row = row_of(gw, "amoderation")
    assert (row["model_group"], row["spend"], row["status"]) == ("omni-moderation-latest", 0, "success")


def test_moderation_with_no_moderation_model_configured_is_a_clear_400(gateway_server, fake_upstream):
    gw = gateway_server(config(upstream("chat", fake_upstream.url, "openai/gpt-4o-mini")))
    with pytest.raises(openai.BadRequestError) as err:
        gw.client().moderations.create(input="hello")
    assert "no moderation model is configured" in err.value.message
    assert fake_upstream.requests == []


# -- rerank ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/rerank", "/v1/rerank", "/v2/rerank"])
def test_rerank_on_an_openai_compatible_server(gw, fake_upstream, path):
    r = httpx.post(gw.url + path, headers=AUTH, json={"model": "vllm-rerank", "query": QUERY, "documents": DOCUMENTS,
                                                      "top_n": 2, "return_documents": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["index"] for x in body["results"]] == [0, 2]
    assert body["results"][0]["document"] == {"text": "Paris is the capital of France"}
    assert body["meta"]["billed_units"] == {"search_units": 1}
    sent = fake_upstream.requests[-1]
    assert sent.path == "/v1/rerank"
    assert sent.json["documents"] == ["Paris is the capital of France", "Bananas are yellow", "France borders Spain"]
    assert (sent.json["model"], sent.json["top_n"]) == ("BAAI/bge-reranker-v2-m3", 2)
    row = row_of(gw, "arerank")
    assert row["spend"] == pytest.approx(0.001)  # the deployment's own input_cost_per_query
    assert billed(row)["source"] == "the reply's meta.billed_units.search_units"


def test_rerank_on_cohere_translates_to_v2_and_puts_documents_back(gw, cohere):
    cohere.script(search_units=3)
    r = httpx.post(gw.url + "/v2/rerank", headers=AUTH, json={
        "model": "cohere-rerank", "query": QUERY, "documents": DOCUMENTS, "top_n": 2, "return_documents": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["index"] for x in body["results"]] == [0, 2]
    assert body["results"][1]["document"] == {"text": "France borders Spain"}
    assert body["meta"]["billed_units"]["search_units"] == 3
    sent = cohere.requests[-1]
    assert sent.path == "/v2/rerank" and sent.headers["authorization"] == f"Bearer {COHERE_KEY}"
    assert sent.json == {"model": "rerank-v3.5", "query": QUERY, "top_n": 2,
                         "documents": ["Paris is the capital of France", "Bananas are yellow", "France borders Spain"]}
    row = row_of(gw, "arerank")
    assert row["spend"] == pytest.approx(3 * 0.002)  # Cohere: $2 a thousand search units
    assert COHERE_KEY not in str(row)


def test_cohere_sdk_reranks_through_the_gateway(gw, cohere):
    with httpx.Client(timeout=30) as http:  # closed here: the SDK leaves its own client open
        client = cohere_sdk.ClientV2(api_key=MASTER_KEY, base_url=gw.url, httpx_client=http, max_retries=0)
        reply = client.rerank(model="cohere-rerank", query=QUERY, documents=["Bananas", "Paris is the capital of France"])
        assert [r.index for r in reply.results] == [1, 0] and reply.meta.billed_units.search_units == 1
        reply = client.rerank(model="vllm-rerank", query=QUERY, documents=["Bananas", "Paris is the capital of France"],
                              top_n=1)
        assert [r.index for r in reply.results] == [1]


def test_rerank_checks_its_body(gw):
    for body, param in (({"model": "vllm-rerank", "query": "q", "documents": []}, "documents"),
                        ({"model": "vllm-rerank", "query": "q", "documents": ["a"], "top_n": 0}, "top_n"),
                        ({"model": "vllm-rerank", "query": 3, "documents": ["a"]}, "query")):
        r = httpx.post(gw.url + "/rerank", headers=AUTH, json=body)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


# -- what a model cannot do --------------------------------------------------------------------------
def test_a_model_that_does_not_serve_the_call_type_is_a_400(gw, client, fake_upstream, cohere):
    r = httpx.post(gw.url + "/rerank", headers=AUTH, json={"model": "chat", "query": "q", "documents": ["a"]})
    assert r.status_code == 400 and r.json()["error"]["message"].endswith("openai does not serve rerank (deployment chat)")
    with pytest.raises(openai.BadRequestError) as err:
        client.images.generate(model="command-r", prompt="a cat")
    assert "cohere does not serve image generations" in err.value.message
    assert fake_upstream.requests == [] and cohere.requests == []


def test_azure_serves_images_and_audio_at_its_deployment_paths(gateway_server, fake_upstream):
    params = {"api_base": fake_upstream.root, "api_key": UPSTREAM_KEY, "api_version": "2024-10-21"}
    gw = gateway_server(config({"model_name": "azure-image", "litellm_params": {"model": "azure/dall-e-3", **params}},
                               {"model_name": "azure-whisper", "litellm_params": {"model": "azure/whisper-1", **params}},
                               {"model_name": "azure-chat", "litellm_params": {"model": "azure/gpt-4o", **params}}))
    client = gw.client()
    assert client.images.generate(model="azure-image", prompt="a fox").data[0].url
    sent = fake_upstream.requests[-1]
    assert sent.path == "/openai/deployments/dall-e-3/images/generations"
    assert sent.query == {"api-version": "2024-10-21"} and sent.headers["api-key"] == UPSTREAM_KEY
    assert client.audio.transcriptions.create(model="azure-whisper", file=("a.wav", wav_bytes(1.0))).text
    assert fake_upstream.requests[-1].path == "/openai/deployments/whisper-1/audio/transcriptions"
    rows = {r["call_type"]: r for r in gw.spend_logs(2)}
    assert rows["aimage_generation"]["spend"] == pytest.approx(1024 * 1024 * 3.81469e-08)  # azure/standard/...
    assert rows["atranscription"]["spend"] == pytest.approx(0.0001)  # azure/whisper-1, one second
    r = httpx.post(gw.url + "/v1/moderations", headers=AUTH, json={"model": "azure-chat", "input": "x"})
    assert r.status_code == 400 and "azure does not serve moderations" in r.json()["error"]["message"]


def test_key_model_access_applies_and_spend_lands_on_the_key(gw, fake_upstream):
    key = httpx.post(gw.url + "/key/generate", headers=AUTH, json={"models": ["tts"]}).json()["key"]
    client = gw.client(api_key=key)
    with pytest.raises(openai.AuthenticationError):
        client.images.generate(model="dall-e-3", prompt="a cat")
    with pytest.raises(openai.BadRequestError) as err:  # the default moderation model is not this key's
        client.moderations.create(input="hello")
    assert "no moderation model is configured" in err.value.message
    client.audio.speech.create(model="tts", voice="alloy", input="Hello")
    assert [r.path for r in fake_upstream.requests] == ["/v1/audio/speech"]
    rows = {r["call_type"]: r for r in gw.spend_logs(2)}  # rows are written after the reply: wait for them
    assert (rows["aimage_generation"]["status"], rows["aimage_generation"]["spend"]) == ("blocked", 0)
    assert rows["aspeech"]["spend"] == pytest.approx(5 * 1.5e-05)
    info = httpx.get(gw.url + "/key/info", headers={"Authorization": f"Bearer {key}"}).json()
    assert info["info"]["spend"] == pytest.approx(5 * 1.5e-05)


def test_debug_logs_describe_the_audio_never_its_bytes(gateway_server, fake_upstream, caplog):
    caplog.set_level(logging.DEBUG, logger="gateway")
    gw = gateway_server(config(upstream("whisper", fake_upstream.url, "openai/whisper-1"),
                               fake("fake-whisper", "fake/whisper-1")))
    audio = wav_bytes(0.5)
    for model in ("whisper", "fake-whisper"):
        assert gw.client().audio.transcriptions.create(model=model, file=("note.wav", audio, "audio/wav")).text
    upstream_line = next(r.getMessage() for r in caplog.records if r.name == "gateway.upstream"
                         and "audio/transcriptions" in r.getMessage())
    assert f"<multipart/form-data, {len(fake_upstream.requests[-1].body)} bytes>" in upstream_line
    fake_line = next(r.getMessage() for r in caplog.records if r.name == "gateway.router" and "fake/" in r.getMessage())
    assert '"file":{"filename":"note.wav","content_type":"audio/wav","bytes":%d,"duration_s":0.5}' % len(audio) \
        in fake_line
    assert "RIFF" not in caplog.text and UPSTREAM_KEY not in caplog.text


def test_the_openapi_document_lists_the_media_routes(gw):
    spec = httpx.get(gw.url + "/openapi.json", headers=AUTH).json()
    paths = spec["paths"]
    for path in ("/v1/images/generations", "/images/generations", "/v1/audio/speech", "/v1/audio/transcriptions",
                 "/v1/moderations", "/moderations", "/rerank", "/v1/rerank", "/v2/rerank"):
        assert "post" in paths[path], path
    form = paths["/v1/audio/transcriptions"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in form
    rerank = paths["/v2/rerank"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"model", "query", "documents"} <= set(rerank["required"]) and rerank["additionalProperties"] is True


# -- the built-in fake provider -------------------------------------------------------------------------
def test_the_fake_provider_answers_every_call_type(gateway_server):
    gw = gateway_server(config(fake("image", "fake/dall-e-3"), fake("tts", "fake/tts-1"),
                               fake("whisper", "fake/whisper-1"), fake("omni-moderation-latest", "fake/omni-mod"),
                               fake("rerank", "fake/rerank-1")))
    client = gw.client()
    image = client.images.generate(model="image", prompt="a lighthouse")
    assert image.data[0].url.startswith("data:image/png;base64,iVBORw0KGgo")
    assert client.images.generate(model="image", prompt="a lighthouse").data[0].url == image.data[0].url
    speech = client.audio.speech.create(model="tts", voice="alloy", input="Hello")
    assert speech.content[:4] == b"RIFF" and speech.response.headers["content-type"] == "audio/wav"
    text = client.audio.transcriptions.create(model="whisper", file=("hello.wav", speech.content))
    assert text.text == "This is a fake transcription of hello.wav."
    moderation = client.moderations.create(input="I will attack them")
    assert moderation.results[0].flagged and moderation.results[0].categories.violence
    ranked = httpx.post(gw.url + "/rerank", headers=AUTH, json={"model": "rerank", "query": QUERY,
                                                                "documents": DOCUMENTS, "return_documents": True})
    assert [r["index"] for r in ranked.json()["results"]] == [0, 2, 1]
    assert ranked.json()["results"][2]["document"] == {"text": "Bananas are yellow"}
    rows = {r["call_type"]: r for r in gw.spend_logs(6)}
    seconds = 0.1 + 0.01 * len("Hello")  # the fake's WAV is this long
    assert rows["aimage_generation"]["spend"] == pytest.approx(0.02)
    assert rows["aspeech"]["spend"] == pytest.approx(5 * 1.5e-05)
    assert rows["atranscription"]["spend"] == pytest.approx(math.ceil(seconds) * 0.0001)
    assert rows["amoderation"]["spend"] == 0
    assert rows["arerank"]["spend"] == pytest.approx(0.002)


# -- hooks ---------------------------------------------------------------------------------------------


@pytest.fixture
def guarded(gateway_server, fake_upstream):
    base = fake_upstream.url
    return gateway_server(config(
        upstream("dall-e-3", base, "openai/dall-e-3"), upstream("tts", base, "openai/tts-1"),
        upstream("whisper", base, "openai/whisper-1"), upstream("mod", base, "openai/omni-moderation-latest"),
        upstream("rerank", base, "hosted_vllm/bge-reranker"),
        litellm_settings={"callbacks": ["banned_keywords"], "banned_keywords_list": ["forbidden"]}))


@pytest.mark.parametrize("call", [
    pytest.param(lambda c, url: c.images.generate(model="dall-e-3", prompt="a FORBIDDEN castle"), id="image prompt"),
    pytest.param(lambda c, url: c.audio.speech.create(model="tts", voice="alloy", input="say forbidden"),
                 id="speech input"),
    pytest.param(lambda c, url: c.moderations.create(model="mod", input=["fine", "forbidden words"]),
                 id="moderation input"),
    pytest.param(lambda c, url: c.audio.transcriptions.create(model="whisper", file=("a.wav", wav_bytes(0.1)),
                                                              prompt="a forbidden name"), id="transcription prompt"),
    pytest.param(lambda c, url: _raise(httpx.post(url + "/rerank", headers=AUTH, json={
        "model": "rerank", "query": "forbidden", "documents": ["a"]})), id="rerank query"),
])
def test_a_plugin_blocks_media_requests(guarded, fake_upstream, call):
    with pytest.raises(openai.BadRequestError) as err:
        call(guarded.client(), guarded.url)
    assert err.value.status_code == 400 and err.value.body["message"] == "Keyword banned. Keyword=forbidden"
    assert fake_upstream.requests == []
    (row,) = guarded.spend_logs(1)
    assert (row["status"], row["spend"]) == ("blocked", 0)


def _raise(resp: httpx.Response) -> None:
    """A plain HTTP reply as the SDK would raise it."""
    if resp.status_code == 400:
        raise openai.BadRequestError(resp.json()["error"]["message"], response=resp, body=resp.json()["error"])


def test_a_clean_media_request_passes_the_plugin(guarded, fake_upstream):
    reply = guarded.client().images.generate(model="dall-e-3", prompt="a castle")
    assert reply.data and fake_upstream.requests[-1].json["prompt"] == "a castle"


# -- pricing, without a server ---------------------------------------------------------------------------
def _cost(call_type: str, model: str, body: dict[str, Any], response: Any = None, usage: Any = None,
          provider: str = "openai", **params: Any) -> float:
    dep = SimpleNamespace(id=f"{provider}/{model}", provider=provider, upstream_model=model, params=params,
                          input_cost_per_token=None, output_cost_per_token=None)
    ctx = SimpleNamespace(call_type=call_type, body=body)
    outcome = SimpleNamespace(status="success", response=response, usage=usage)
    return PriceTable().call_cost(ctx, dep, None, outcome)


def test_prices_follow_litellms_names_and_the_deployments_own():
    one = {"data": [{}]}
    assert _cost("aimage_generation", "dall-e-3", {}, one) == pytest.approx(1024 * 1024 * 3.81469e-08)  # standard
    assert _cost("aimage_generation", "dall-e-2", {"size": "512x512"}, {"data": [{}, {}]}) == \
        pytest.approx(2 * 512 * 512 * 6.86e-08)
    assert _cost("aimage_generation", "dall-e-3", {"size": "1792x1024", "quality": "hd"}, one, provider="azure") == \
        pytest.approx(1792 * 1024 * 6.539e-08)
    assert _cost("aimage_generation", "gpt-image-1", {"quality": "low", "size": "1536x1024"}, one) == \
        pytest.approx(0.016)
    assert _cost("aimage_generation", "my-diffusion", {}, one, provider="hosted_vllm", input_cost_per_image=0.5) == 0.5
    assert _cost("aspeech", "tts-1-hd", {"input": "x" * 100}) == pytest.approx(100 * 3e-05)
    assert _cost("aspeech", "gpt-4o-mini-tts", {"input": "x" * 100}) == pytest.approx(25 * 2.5e-06)
    assert _cost("atranscription", "whisper-1", {}, {"text": "", "duration": 61.0}) == pytest.approx(61 * 0.0001)
    tokens = {"type": "tokens", "input_tokens": 14, "output_tokens": 45, "total_tokens": 59,
              "input_token_details": {"text_tokens": 4, "audio_tokens": 10}}
    assert _cost("atranscription", "gpt-4o-transcribe", {}, {"text": ""}, tokens) == \
        pytest.approx(4 * 2.5e-06 + 10 * 2.5e-06 + 45 * 1e-05)
    assert _cost("arerank", "rerank-english-v3.0", {}, {"results": []}, provider="cohere") == pytest.approx(0.002)
    assert _cost("amoderation", "omni-moderation-latest", {}, {"results": []}) == 0
    failed = SimpleNamespace(status="failure", response=None, usage=None)
    dep = SimpleNamespace(id="d", provider="openai", upstream_model="tts-1", params={}, input_cost_per_token=None,
                          output_cost_per_token=None)
    assert PriceTable().call_cost(SimpleNamespace(call_type="aspeech", body={"input": "abc"}), dep, None, failed) == 0


def test_media_rows_count_no_tokens_they_did_not_use(gw, client):
    client.images.generate(model="dall-e-3", prompt="a lighthouse at dusk with many words in the prompt")
    row = row_of(gw, "aimage_generation")
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (0, 0, 0)
