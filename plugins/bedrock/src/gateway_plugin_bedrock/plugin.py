"""The plugin: it offers the `bedrock/`, `sagemaker/` and `sagemaker_chat/` providers, and keeps
temporary AWS credentials fresh for all three (they share one credential cache).

Switched on by a `bedrock/`, `sagemaker/` or `sagemaker_chat/` model in `model_list` alone
(entry-point group `gateway.providers`);
naming it in `callbacks` or `plugins:` also works. Everything about a deployment is in its
`litellm_params` (see README.md); the plugin's one setting tunes the background credential check.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic import Field

from gateway import Plugin, PluginConfig, hookimpl

log = logging.getLogger("gateway.plugins.bedrock")

class BedrockConfig(PluginConfig):
    """Settings of `bedrock`. Everything about a deployment (region, credentials, endpoint) is in its
    own `litellm_params`; this only tunes the background credential check."""

    bedrock_credentials_check_s: float = Field(
        60.0, gt=0, le=3600,
        description="How often, in seconds, a worker thread looks again for AWS credentials that were "
        "missing and offers temporary ones (assumed roles, SSO, container and instance roles) a refresh "
        "before they are due, so that neither happens on the request path.",
    )


class Bedrock(Plugin):
    """AWS Bedrock (Converse, ConverseStream, InvokeModel for embeddings) for `bedrock/` models, and
    SageMaker endpoints (InvokeEndpoint, InvokeEndpointWithResponseStream) for `sagemaker/` and
    `sagemaker_chat/` models."""

    name = "bedrock"
    priority = 0
    Config = BedrockConfig

    def __init__(self, config: PluginConfig, gateway: Any) -> None:
        super().__init__(config, gateway)
        self._provider: Any = None
        self._sagemaker: list[Any] = []
        self._refresher: asyncio.Task[None] | None = None

    @hookimpl
    def providers(self, gateway: Any) -> list[Any]:
        from gateway_plugin_bedrock.provider import BedrockProvider
        from gateway_plugin_bedrock.sagemaker import SageMakerChatProvider, SageMakerProvider

        if self._provider is None:
            self._provider = BedrockProvider()
            shared = self._provider.credentials  # one cache: the refresher below covers every provider
            self._sagemaker = [SageMakerProvider(shared), SageMakerChatProvider(shared)]
        return [self._provider, *self._sagemaker]

    @hookimpl
    async def startup(self, gateway: Any) -> None:
        if self._provider is not None and self._refresher is None:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop(), name="bedrock-credentials")

    @hookimpl
    async def shutdown(self, gateway: Any) -> None:
        task, self._refresher = self._refresher, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _refresh_loop(self) -> None:
        every = self.config.bedrock_credentials_check_s  # type: ignore[attr-defined]
        while True:
            await asyncio.sleep(every)
            for creds in self._provider.credentials.all():
                if creds.due():
                    await asyncio.to_thread(creds.make_ready)
