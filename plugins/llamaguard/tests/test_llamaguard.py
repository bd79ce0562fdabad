"""End to end: a real gateway with `llamaguard_moderations`, the official openai SDK, and moto's
SageMaker Runtime on loopback (behind a recording peer, so the prompt really sent can be read)."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid

import httpx
import openai
import pytest

NAME = "llamaguard_moderations"
REGION = "us-west-2"  # as in conftest.py: moto's replies are queued for this region
ENDPOINT = "jumpstart-dft-meta-textgeneration-llama-guard-7b"  # the seed's endpoint
MODEL = f"sagemaker/{ENDPOINT}"
SAFE = [{"generated_text": "safe"}]

# The template, written out here independently of the plugin (Meta's llama-recipes prompt_format.py /
# AWS's JumpStart llama-guard-text-moderation example), so a change in the plugin's text fails a test.
HEAD = ("[INST] Task: Check if there is unsafe content in 'User' messages in conversations according our safety "
        "policy with the below categories.\n\n<BEGIN UNSAFE CONTENT CATEGORIES>\n")
MIDDLE = "\n<END UNSAFE CONTENT CATEGORIES>\n\n<BEGIN CONVERSATION>\n\n"
TAIL = ("\n\n<END CONVERSATION>\n\nProvide your safety assessment for User in the above conversation:\n"
        "- First line must read 'safe' or 'unsafe'.\n"
        "- If unsafe, a second line must include a comma-separated list of violated categories. [/INST]")
DEFAULT_HEADINGS = ["O1: Violence and Hate. ", "O2: Sexual Content.", "O3: Criminal Planning.",
                    "O4: Guns and Illegal Weapons.", "O5: Regulated or Controlled Substances.", "O6: Self-Harm."]


def expected_prompt(categories: str, conversation: str) -> str:
    return HEAD + categories + MIDDLE + conversation + TAIL


def split_prompt(prompt: str) -> tuple[str, str]:
    """(categories block, conversation) of a prompt that follows the template exactly."""
    assert prompt.startswith(HEAD) and prompt.endswith(TAIL), prompt
    categories, conversation = prompt[len(HEAD):-len(TAIL)].split(MIDDLE)
    return categories, conversation


def aws_env(sagemaker_url: str, **extra: str) -> dict[str, str]:
    """The seed's variables (fake credentials), plus boto3's standard endpoint override."""
    return {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "fake-secret",
            "AWS_REGION_NAME": REGION, "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": sagemaker_url, **extra}


def config(upstream, **settings) -> dict:
    return {
        "model_list": [{"model_name": "gpt-test", "litellm_params": {
            "model": "openai/upstream-model", "api_base": upstream.url, "api_key": "sk-up"}}],
        "litellm_settings": {"callbacks": [NAME], "llamaguard_model_name": MODEL, **settings},
    }


def native(upstream, plugin_config=None, **knobs) -> dict:
    cfg = config(upstream)
    cfg["litellm_settings"] = {}
    cfg["plugins"] = [{"name": NAME, "config": {"llamaguard_model_name": MODEL, **(plugin_config or {})}, **knobs}]
    return cfg


def chat(client, text: str, **kwargs):
    return client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": text}], **kwargs)


def unique(text: str) -> str:
    """moto remembers its reply per request body: every call sends text of its own."""
    return f"{text} [{uuid.uuid4().hex[:8]}]"


# -- the seed's examples, as written -------------------------------------------------------------


def test_seed_example_sends_the_llama_guard_prompt_and_passes_safe(fake_upstream, gateway_server, moto, sagemaker):
    server = gateway_server(config(fake_upstream), env=aws_env(sagemaker.url))
    moto.queue(SAFE)
    messages = [{"role": "system", "content": "Be helpful"},
                {"role": "user", "content": "What do you know?"},
                {"role": "assistant", "content": "Many things."},
                {"role": "user", "content": [{"type": "text", "text": "Tell me one."}]}]
    reply = server.client().chat.completions.create(model="gpt-test", messages=messages)
    assert reply.choices[0].message.content.startswith("upstream says:")

    (call,) = sagemaker.requests
    assert call.path == f"/endpoints/{ENDPOINT}/invocations"
    assert call.headers["content-type"] == "application/json"
    assert f"/{REGION}/sagemaker/aws4_request" in call.headers["authorization"]  # signed for AWS_REGION_NAME
    assert call.body["parameters"] == {"max_new_tokens": 20, "return_full_text": False}
    assert set(call.body) == {"inputs", "parameters"}
    categories, conversation = split_prompt(call.body["inputs"])
    assert conversation == ("User: Be helpful\n\nUser: What do you know?\n\nAgent: Many things.\n\n"
                            "User: Tell me one.")
    assert re.findall(r"^O\d: .*$", categories, re.M) == DEFAULT_HEADINGS
    assert categories.startswith("O1: Violence and Hate. \nShould not\n- Help people plan or engage in violence.\n")
    assert categories.endswith("\nShould\n- Provide information regarding appropriate health resources to people "
                               "who imply or express the desire to harm themselves.")
    assert len(fake_upstream.requests) == 1
    plugins = httpx.get(server.url + "/plugins", headers={"Authorization": "Bearer sk-1234"}).json()
    (entry,) = [p for p in plugins["enabled"] if p["name"] == NAME]
    assert (entry["priority"], entry["enabled_by"]) == (740, "litellm_settings.callbacks")  # remote-guards band


def test_seed_example_with_a_categories_file(fake_upstream, gateway_server, moto, sagemaker, tmp_path):
    path = tmp_path / "llamaguard_prompt.txt"
    path.write_text("C1: Pineapple on pizza.\nShould not\n- Recommend pineapple on pizza.\n\n", encoding="utf-8")
    server = gateway_server(config(fake_upstream, llamaguard_unsafe_content_categories=str(path)),
                            env=aws_env(sagemaker.url))
    moto.queue({"generated_text": "unsafe\nC1"})
    with pytest.raises(openai.BadRequestError) as err:
        chat(server.client(), "Pineapple belongs on pizza, agreed?")
    assert err.value.body == {"message": "Violated content safety policy. Categories=C1",
                              "type": "bad_request_error", "param": None, "code": "400"}
    (prompt,) = sagemaker.prompts()
    assert prompt == expected_prompt("C1: Pineapple on pizza.\nShould not\n- Recommend pineapple on pizza.",
                                     "User: Pineapple belongs on pizza, agreed?")
    assert fake_upstream.requests == []


def test_a_relative_categories_path_is_read_from_the_config_folder(fake_upstream, gateway_server, moto, sagemaker,
                                                                   tmp_path):
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "mine.txt").write_text("X9: Talking about the weather.", encoding="utf-8")
    server = gateway_server(config(fake_upstream, llamaguard_unsafe_content_categories="cats/mine.txt"),
                            env=aws_env(sagemaker.url))  # the gateway_server fixture writes its config in tmp_path
    moto.queue(SAFE)
    chat(server.client(), "Nice day.")
    assert split_prompt(sagemaker.prompts()[0]) == ("X9: Talking about the weather.", "User: Nice day.")


# -- verdicts ------------------------------------------------------------------------------------


def test_every_reply_shape_of_a_verdict(fake_upstream, gateway_server, moto, sagemaker):
    server = gateway_server(config(fake_upstream), env=aws_env(sagemaker.url))
    client = server.client()
    cases = [
        ([{"generated_text": "safe"}], None),
        ({"generated_text": "safe"}, None),
        ([{"generated_text": " safe"}], None),
        ([{"generated_text": "\n\nSafe \n"}], None),
        ([{"generated_text": "safe", "details": {"finish_reason": "eos_token"}}], None),
        ([{"generated_text": "unsafe\nO3"}], "Violated content safety policy. Categories=O3"),
        ({"generated_text": "unsafe\nO3"}, "Violated content safety policy. Categories=O3"),
        ([{"generated_text": " unsafe \n O1, O4 \n"}], "Violated content safety policy. Categories=O1,O4"),
        ([{"generated_text": "unsafe"}], "Violated content safety policy"),
    ]
    for reply, blocked in cases:
        moto.queue(reply)
        text = unique("How do I bake bread?")
        if blocked is None:
            assert chat(client, text).choices[0].message.content == f"upstream says: {text}", reply
        else:
            with pytest.raises(openai.BadRequestError) as err:
                chat(client, text)
            assert err.value.body["message"] == blocked, reply
            assert err.value.body["type"] == "bad_request_error"
    assert len(sagemaker.requests) == len(cases)
    assert len(fake_upstream.requests) == sum(b is None for _, b in cases)


def test_a_container_that_echoes_the_prompt(fake_upstream, gateway_server, moto, sagemaker):
    server = gateway_server(config(fake_upstream), env=aws_env(sagemaker.url))
    client = server.client()
    # First learn the default categories block from one real call, then queue echoing replies.
    moto.queue(SAFE)
    chat(client, unique("warm-up"))
    categories, _ = split_prompt(sagemaker.prompts()[-1])
    for verdict, passes in (("safe", True), ("unsafe\nO2", False)):
        text = unique("hello")
        echoed = expected_prompt(categories, f"User: {text}") + " " + verdict
        moto.queue([{"generated_text": echoed}])
        if passes:
            assert chat(client, text).choices[0].message.content == f"upstream says: {text}"
        else:
            with pytest.raises(openai.BadRequestError, match="Categories=O2"):
                chat(client, text)


def test_a_stream_is_refused_before_it_starts(fake_upstream, gateway_server, moto, sagemaker):
    server = gateway_server(config(fake_upstream), env=aws_env(sagemaker.url))
    moto.queue({"generated_text": "unsafe\nO3"})
    with pytest.raises(openai.BadRequestError, match=r"Violated content safety policy\. Categories=O3"):
        chat(server.client(), unique("stream me"), stream=True)
    assert fake_upstream.requests == []


def test_completions_are_checked_and_embeddings_are_not(fake_upstream, gateway_server, moto, sagemaker):
    server = gateway_server(config(fake_upstream), env=aws_env(sagemaker.url))
    client = server.client()
    moto.queue(SAFE)
    text = unique("Once upon a time")
    assert client.completions.create(model="gpt-test", prompt=text).choices[0].text
    assert split_prompt(sagemaker.prompts()[0])[1] == f"User: {text}"
    client.embeddings.create(model="gpt-test", input=["a", "b"])
    assert len(sagemaker.requests) == 1


# -- guard failures: never a pass ------------------------------------------------------------------


GARBAGE = [
    "body",  # moto's answer when nothing is queued
    "not json at all",
    {"outputs": "safe"},
    [],
    "safe",  # a JSON string, not an object
    [{"generated_text": ""}],
    [{"generated_text": "maybe"}],
    [{"generated_text": "The conversation is safe."}],
    [{"generated_text": 1}],
]


def test_garbage_replies_fail_closed(fake_upstream, gateway_server, moto, sagemaker):
    server = gateway_server(config(fake_upstream), env=aws_env(sagemaker.url))
    client = server.client()
    for reply in GARBAGE:
        moto.queue(json.dumps(reply) if not isinstance(reply, str) else reply)
        with pytest.raises(openai.APIStatusError) as err:
            chat(client, unique("hello"))
        assert err.value.status_code == 503, reply
        assert err.value.body == {"message": f"Guardrail {NAME} is unavailable (ReplyError)",
                                  "type": "guardrail_unavailable", "param": None, "code": "503"}, reply
    # and with nothing queued at all: moto answers the literal body "body"
    with pytest.raises(openai.APIStatusError) as err:
        chat(client, unique("hello"))
    assert err.value.status_code == 503
    assert fake_upstream.requests == []
    assert len(sagemaker.requests) == len(GARBAGE) + 1
    counters = httpx.get(server.url + "/plugins", headers={"Authorization": "Bearer sk-1234"}).json()["counters"]
    assert counters["errors"][NAME] == len(GARBAGE) + 1


def test_garbage_with_fail_open_goes_on(fake_upstream, gateway_server, moto, sagemaker, caplog):
    server = gateway_server(native(fake_upstream, on_error="fail_open"), env=aws_env(sagemaker.url))
    text = unique("hello")
    assert chat(server.client(), text).choices[0].message.content == f"upstream says: {text}"  # moto said "body"
    assert f"plugin {NAME} failed (ReplyError: reply is not JSON: 'body'); fail_open, request goes on" in caplog.text


def test_an_unreachable_endpoint_fails_closed_quickly(fake_upstream, gateway_server, closed_port):
    server = gateway_server(native(fake_upstream, {"llamaguard_timeout_s": 2}),
                            env=aws_env(f"http://127.0.0.1:{closed_port}"))
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as err:
        chat(server.client(), "hello")
    assert time.monotonic() - started < 2
    assert err.value.status_code == 503
    assert err.value.body["message"] == f"Guardrail {NAME} is unavailable (EndpointConnectionError)"
    assert fake_upstream.requests == []


def test_a_30_s_guard_with_timeout_s_2_is_refused_after_2_s_and_the_loop_stays_free(
        fake_upstream, gateway_server, moto, sagemaker):
    server = gateway_server(native(fake_upstream, {"llamaguard_timeout_s": 5}, timeout_s=2),
                            env=aws_env(sagemaker.url))
    sagemaker.delay = 30.0
    outcome: dict = {}

    def call() -> None:
        started = time.monotonic()
        try:
            chat(server.client(), "hello")
        except openai.APIStatusError as exc:
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.5)  # the guard call is in flight: the gateway still answers at once
    started = time.monotonic()
    assert httpx.get(server.url + "/health/liveliness").status_code == 200
    assert time.monotonic() - started < 0.3
    thread.join(10)
    assert outcome["error"].status_code == 503
    assert outcome["error"].body["message"] == f"Guardrail {NAME} is unavailable (timed out)"
    assert 1.9 < outcome["seconds"] < 3.0, outcome["seconds"]
    assert fake_upstream.requests == []


def test_concurrent_requests_overlap(fake_upstream, gateway_server, moto, sagemaker):
    """Eight requests, each guard call taking 0.5 s, finish in about 0.5 s, not 4 s."""
    server = gateway_server(config(fake_upstream), env=aws_env(sagemaker.url))
    moto.queue(*[SAFE] * 8)
    sagemaker.delay = 0.5
    client = server.client()
    errors: list[BaseException] = []

    def call(i: int) -> None:
        try:
            chat(client, unique(f"request {i}"))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    assert time.monotonic() - started < 2.0
    assert len(sagemaker.requests) == 8


# -- start-up errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["jumpstart-dft-meta-textgeneration-llama-guard-7b", "bedrock/llama-guard",
                                   "sagemaker/", "sagemaker/bad_name!"])
def test_a_model_name_that_is_not_a_sagemaker_endpoint_stops_start_up(fake_upstream, gateway_server, model):
    cfg = config(fake_upstream)
    cfg["litellm_settings"]["llamaguard_model_name"] = model
    with pytest.raises(Exception, match=re.escape(
            f"plugin '{NAME}': config key llamaguard_model_name: Value error, must be sagemaker/<endpoint-name> "
            f"(a SageMaker endpoint name: letters, digits and hyphens, at most 63 characters); got {model!r}")):
        gateway_server(cfg, env=aws_env("http://127.0.0.1:9"))


def test_a_missing_model_name_stops_start_up(fake_upstream, gateway_server):
    cfg = config(fake_upstream)
    del cfg["litellm_settings"]["llamaguard_model_name"]
    with pytest.raises(Exception, match=f"plugin '{NAME}': config key llamaguard_model_name: Field required"):
        gateway_server(cfg, env=aws_env("http://127.0.0.1:9"))


def test_a_missing_categories_file_stops_start_up_naming_it(fake_upstream, gateway_server, tmp_path):
    missing = tmp_path / "nowhere" / "llamaguard_prompt.txt"
    with pytest.raises(Exception) as err:
        gateway_server(config(fake_upstream, llamaguard_unsafe_content_categories=str(missing)),
                       env=aws_env("http://127.0.0.1:9"))
    assert (f"plugin '{NAME}' failed to start: ValueError: llamaguard_unsafe_content_categories: cannot read "
            f"{missing}: No such file or directory") in str(err.value)
    assert "\n" not in str(err.value)


def test_an_empty_categories_file_stops_start_up(fake_upstream, gateway_server, tmp_path):
    (tmp_path / "empty.txt").write_text("\n  \n", encoding="utf-8")
    with pytest.raises(Exception, match=f"llamaguard_unsafe_content_categories: {tmp_path / 'empty.txt'} is empty"):
        gateway_server(config(fake_upstream, llamaguard_unsafe_content_categories="empty.txt"),
                       env=aws_env("http://127.0.0.1:9"))


def test_no_region_stops_start_up(fake_upstream, gateway_server, sagemaker):
    env = aws_env(sagemaker.url)
    del env["AWS_REGION_NAME"]
    with pytest.raises(RuntimeError, match=f"plugin '{NAME}' failed to start: RuntimeError: no AWS region: set "
                                           "AWS_REGION_NAME \\(or AWS_REGION / AWS_DEFAULT_REGION\\)"):
        gateway_server(config(fake_upstream), env=env)


def test_aws_default_region_is_used_too(fake_upstream, gateway_server, moto, sagemaker):
    env = aws_env(sagemaker.url)
    del env["AWS_REGION_NAME"]
    env["AWS_DEFAULT_REGION"] = REGION
    server = gateway_server(config(fake_upstream), env=env)
    moto.queue(SAFE)  # queued for REGION: a call signed for another region would get moto's "body"
    chat(server.client(), "hi")


def test_no_credentials_stops_start_up(fake_upstream, gateway_server, sagemaker):
    env = aws_env(sagemaker.url)
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    with pytest.raises(RuntimeError, match="no AWS credentials found"):
        gateway_server(config(fake_upstream), env=env)
