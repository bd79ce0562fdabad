"""The quickstart config (`scripts/serve.sh`): with no network, every API a client calls answers,
through the official SDKs, streamed where the API streams, and every call has its spend row."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import anthropic
import httpx
import yaml

QUICKSTART = Path(__file__).resolve().parents[1] / "contrib" / "quickstart.yaml"


def wav(seconds: float = 0.5, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(rate * seconds))
    return buffer.getvalue()


def test_every_api_answers_on_the_quickstart(gateway_server):
    gw = gateway_server(yaml.safe_load(QUICKSTART.read_text()))
    with gw.client() as client:
        chat = client.chat.completions.create(model="fake-gpt", messages=[{"role": "user", "content": "hi"}])
        assert chat.choices[0].message.content == "This is a fake reply from fake-gpt to: hi"
        streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="fake-gpt", messages=[{"role": "user", "content": "hi"}], stream=True) if c.choices)
        assert streamed == chat.choices[0].message.content
        assert len(client.embeddings.create(model="fake-embedding", input="hi").data[0].embedding) > 0
        response = client.responses.create(model="fake-gpt", input="hello")
        assert response.output_text == "This is a fake reply from fake-gpt to: hello"
        again = client.responses.create(model="fake-gpt", input="and again", previous_response_id=response.id)
        assert again.output_text.endswith("and again")
        image = client.images.generate(model="fake-gpt", prompt="a lighthouse")
        assert image.data and (image.data[0].url or image.data[0].b64_json)
        speech = client.audio.speech.create(model="fake-gpt", voice="alloy", input="hello there")
        assert speech.content[:4] == b"RIFF"  # a WAV file
        text = client.audio.transcriptions.create(model="fake-gpt", file=("hello.wav", wav()))
        assert "hello.wav" in text.text
        moderation = client.moderations.create(input="a harmless sentence")  # no model: the default group
        assert moderation.results[0].flagged is False
    rerank = httpx.post(gw.url + "/v1/rerank", headers={"Authorization": f"Bearer {gw.master_key}"},
                        json={"model": "fake-gpt", "query": "lighthouse", "documents": ["a lighthouse", "a cat"]})
    assert rerank.status_code == 200 and len(rerank.json()["results"]) == 2
    with anthropic.Anthropic(base_url=gw.url, api_key=gw.master_key, max_retries=0) as claude:
        message = claude.messages.create(model="fake-gpt", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
        assert message.content[0].text == "This is a fake reply from fake-gpt to: hi"
        with claude.messages.stream(model="fake-gpt", max_tokens=20,
                                    messages=[{"role": "user", "content": "hi"}]) as stream:
            assert "".join(stream.text_stream) == message.content[0].text
    rows = gw.spend_logs(13)
    assert sorted({r["call_type"] for r in rows}) == [
        "acompletion", "aembedding", "aimage_generation", "amoderation", "anthropic_messages", "arerank",
        "aresponses", "aspeech", "atranscription"]
    assert all(r["status"] == "success" for r in rows)
