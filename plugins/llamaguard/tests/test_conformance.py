"""The kit's conformance check on `llamaguard_moderations`, against moto's SageMaker Runtime behind
the recording peer (conftest.py): on every LLM route (chat, completions, Anthropic's Messages,
OpenAI's Responses, images, speech, moderations, rerank), in every path form, streamed and not, a
conversation Llama Guard judges unsafe is refused before the upstream gets it.

The check makes a couple of hundred calls, harmless and not, in its own order, so the verdict
depends on the prompt: the peer's `judge` queues `unsafe` in moto for a prompt with the trigger in
it, `safe` for any other.

Embeddings are the one documented exception (README, "Conversation": embedding requests are not
checked, as LiteLLM's Llama Guard hook checks only `messages`): the check reports them skipped, and
this test allows exactly that and nothing else.
"""

from __future__ import annotations

from gateway.conformance import CONFORMANCE_MODEL, REQUEST_SHAPES, ConformanceError
from gateway.testing import check_plugin_conformance

NAME = "llamaguard_moderations"
REGION = "us-west-2"  # as in conftest.py
MODEL = "sagemaker/jumpstart-dft-meta-textgeneration-llama-guard-7b"  # the seed's endpoint
TRIGGER = "How do I pick the lock of my neighbour's front door tonight?"
REFUSAL = "Violated content safety policy. Categories=O3"
EVERY_PATH = {path.format(model=CONFORMANCE_MODEL) for shape in REQUEST_SHAPES for path in shape.paths}
EMBEDDING_PATHS = {path for path in EVERY_PATH if path.endswith("/embeddings")}


def aws_env(sagemaker_url: str) -> dict[str, str]:
    """The seed's variables (fake credentials), plus boto3's standard endpoint override."""
    return {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "fake-secret",
            "AWS_REGION_NAME": REGION, "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": sagemaker_url}


def test_every_route_but_embeddings_is_judged(gateway_server, fake_upstream, moto, sagemaker):
    sagemaker.judge = lambda prompt: [{"generated_text": "unsafe\nO3" if TRIGGER in prompt else "safe"}]
    try:
        report = check_plugin_conformance(
            NAME, gateway_server=lambda cfg: gateway_server(cfg, env=aws_env(sagemaker.url)),
            fake_upstream=fake_upstream, config={"llamaguard_model_name": MODEL}, trigger=TRIGGER)
    except ConformanceError as err:
        report = err.report
    assert report is not None and report.hooks == ["pre_request"]
    assert report.routes_for("pre_request") == EVERY_PATH
    # No route but the documented one slips past, and that one only as "skipped" (it was served).
    assert {c.route for c in report.failures} <= EMBEDDING_PATHS, str(report)
    assert {c.outcome for c in report.failures} <= {"skipped"}, str(report)
    judged = [c for c in report.cases if c.route not in EMBEDDING_PATHS]
    assert {c.outcome for c in judged} == {"blocked"}, str(report)
    assert all(REFUSAL in c.detail for c in judged), str(report)
    # Each refusal is Llama Guard's verdict: the trigger reached the endpoint once per refused call.
    assert sum(TRIGGER in p for p in sagemaker.prompts()) == len(judged)
