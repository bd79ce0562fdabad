"""The plugin: ask Llama Guard on a SageMaker endpoint about each request, in `pre_request`.

AWS: one boto3 `sagemaker-runtime` client, built at start-up from a session of its own, with the
standard credential chain (environment, profile, container or instance role). The region is the
seed's `AWS_REGION_NAME`, else `AWS_REGION`, else `AWS_DEFAULT_REGION`, else the profile's.
boto3 itself honours `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME` / `AWS_ENDPOINT_URL` (private endpoints,
tests). The client has a connect and read timeout and makes exactly one attempt: a slow or broken
endpoint is a guard failure for the framework's `on_error`, never minutes of retries.

Threading: boto3 blocks, so each call runs in a pool of this plugin's own threads (boto3 clients
are thread-safe), sized like the client's connection pool; the event loop only waits. The plugin
only reads the request (`concurrent = True`), so the gateway runs it together with the other
remote guards next to it in priority order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gateway import BadRequestError, Plugin, RequestContext, hookimpl, iter_request_text
from gateway_plugin_llamaguard.config import LlamaGuardConfig
from gateway_plugin_llamaguard.prompt import AGENT, DEFAULT_CATEGORIES, USER, build_prompt, reply_verdict

# Under the `gateway` logger, so the server's log level and format apply to it.
log = logging.getLogger("gateway.plugins.llamaguard_moderations")

#: Calls in flight at once per worker (threads and pooled connections); more wait their turn.
MAX_CALLS = 32
#: Where the region comes from, in order (AWS_REGION_NAME is the seed's / LiteLLM's name).
REGION_VARS = ("AWS_REGION_NAME", "AWS_REGION", "AWS_DEFAULT_REGION")
BLOCK_MESSAGE = "Violated content safety policy"


class LlamaGuardUnavailable(RuntimeError):
    """The endpoint could not give a verdict; the framework applies `on_error` (not a block)."""


def categories_path(value: str, gateway: Any) -> Path:
    """`value` as a path; a relative one is taken from the config file's folder (else the cwd)."""
    path = Path(value).expanduser()
    config_path = getattr(getattr(gateway, "settings", None), "config_path", None)
    if not path.is_absolute() and config_path:
        path = Path(config_path).resolve().parent / path
    return path


def read_categories(value: str | None, gateway: Any) -> str:
    """The categories block: the file's text, or the default O1-O6. Raises one line naming the path."""
    if value is None:
        return DEFAULT_CATEGORIES
    path = categories_path(value, gateway)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"llamaguard_unsafe_content_categories: {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ValueError(f"llamaguard_unsafe_content_categories: cannot read {path}: {exc.strerror or exc}") from None
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise ValueError(f"llamaguard_unsafe_content_categories: {path} is empty")
    return text


def conversation(body: dict[str, Any]) -> list[tuple[str, str]]:
    """The request as Llama Guard turns: assistant messages are `Agent`, every other message
    (user, system, tool) is `User`; any other request's text (a completion's or an image's
    `prompt`, a moderation's or speech's `input`, a rerank's query and documents) is `User`
    turns. Text is taken exactly as the core's `iter_request_text` takes it. Embedding inputs
    are not checked (the caller skips them: nobody reads an embedding)."""
    turns: list[tuple[str, str]] = []
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, dict):
                continue
            label = AGENT if message.get("role") == "assistant" else USER
            for text in iter_request_text({"messages": [message]}):
                if text.strip():
                    turns.append((label, text))
    else:
        turns = [(USER, t) for t in iter_request_text(body) if t.strip()]
    return turns


class LlamaGuard(Plugin):
    """Refuses (400 `Violated content safety policy. Categories=O3`) a chat or completion request
    that Llama Guard, served by a SageMaker endpoint, judges unsafe."""

    name = "llamaguard_moderations"  # the entry-point name, and the seed's callback name
    priority = 740  # remote guards band (700-799): after secret redaction, so no secret is sent to AWS
    concurrent = True  # reads the request only: runs together with the neighbouring remote guards
    Config = LlamaGuardConfig

    config: LlamaGuardConfig

    def __init__(self, config: LlamaGuardConfig, gateway: Any) -> None:
        super().__init__(config, gateway)
        # Read here, not in startup: a bad file then stops the config check, before serving.
        self.categories = read_categories(config.llamaguard_unsafe_content_categories, gateway)
        self.endpoint = config.endpoint_name
        self._client: Any = None
        self._executor: ThreadPoolExecutor | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    @hookimpl
    async def startup(self, gateway: Any) -> None:
        """Build the client in the plugin's thread pool (boto3 reads files; credentials may come
        from the network), and refuse to start without a region or credentials."""
        self._executor = ThreadPoolExecutor(max_workers=MAX_CALLS, thread_name_prefix="llamaguard")
        loop = asyncio.get_running_loop()
        try:
            self._client = await loop.run_in_executor(self._executor, self._make_client)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        log.info("LlamaGuard: checking requests with SageMaker endpoint %s in %s (%s)", self.endpoint,
                 self._client.meta.region_name, self._client.meta.endpoint_url)

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config

        region = next((os.environ[v] for v in REGION_VARS if os.environ.get(v)), None)
        session = boto3.session.Session(region_name=region)
        if not session.region_name:
            raise RuntimeError(f"no AWS region: set {REGION_VARS[0]} (or {' / '.join(REGION_VARS[1:])})")
        if session.get_credentials() is None:
            raise RuntimeError("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                               "AWS_PROFILE, or run with an IAM role")
        timeout = self.config.llamaguard_timeout_s
        return session.client("sagemaker-runtime", config=Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"mode": "standard", "total_max_attempts": 1},
            max_pool_connections=MAX_CALLS,
        ))

    @hookimpl
    async def shutdown(self, gateway: Any) -> None:
        """Stop the threads (a call in flight ends by its timeout) and close the connections."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- the request path ------------------------------------------------------------------------
    @hookimpl
    async def pre_request(self, ctx: RequestContext) -> None:
        """Block an unsafe conversation with 400; raise (a guard failure) when there is no verdict."""
        turns = conversation(ctx.body) if ctx.call_type != "aembedding" else []
        if not turns:
            return
        if self._executor is None or self._client is None:
            raise LlamaGuardUnavailable("LlamaGuard client is not running")
        prompt = build_prompt(self.categories, turns)
        started = time.perf_counter()
        raw = await asyncio.get_running_loop().run_in_executor(self._executor, self._invoke, prompt)
        verdict = reply_verdict(raw, prompt)
        took = (time.perf_counter() - started) * 1e3
        ctx.state_for(self.name).update(safe=verdict.safe, categories=list(verdict.categories), ms=round(took, 1))
        if verdict.safe:
            log.debug("LlamaGuard: request %s is safe (%.1f ms)", ctx.request_id, took)
            return
        shown = ",".join(verdict.categories)[:100]
        log.info("LlamaGuard: request %s is unsafe, categories %s (%.1f ms)", ctx.request_id, shown or "-", took)
        raise BadRequestError(f"{BLOCK_MESSAGE}. Categories={shown}" if shown else BLOCK_MESSAGE)

    def _invoke(self, prompt: str) -> bytes:
        """One InvokeEndpoint call (in a pool thread); the raw reply body."""
        body = json.dumps({"inputs": prompt, "parameters": self.config.llamaguard_parameters},
                          ensure_ascii=False).encode("utf-8")
        reply = self._client.invoke_endpoint(EndpointName=self.endpoint, Body=body,
                                             ContentType="application/json", Accept="application/json")
        with reply["Body"] as stream:
            return stream.read()
