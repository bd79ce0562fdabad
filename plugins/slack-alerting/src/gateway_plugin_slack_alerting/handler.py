"""The plugin: the `alert` hook hands each event to the sender and returns at once; `startup`
starts the sender task, `shutdown` delivers what is queued and stops it.

Switched on like the LiteLLM proxy's Slack alerting: `general_settings.alerting: ["slack"]` with
the `SLACK_WEBHOOK_URL` environment variable set. It can also be named in
`litellm_settings.callbacks` or in the native `plugins:` list.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from gateway import AlertEvent, Plugin, hookimpl

from gateway_plugin_slack_alerting.config import ENV_VAR, SlackAlertingConfig
from gateway_plugin_slack_alerting.sender import SlackSender

log = logging.getLogger("gateway.plugins.slack_alerting")


class SlackAlerting(Plugin):
    """Delivers the gateway's alerts (upstream failures, budgets crossed, size limits, ...) to a
    Slack incoming webhook, off the request path, rate limited, with identical alerts folded."""

    name = "slack_alerting"  # the entry-point name
    priority = 10  # observers band (0-99)
    Config = SlackAlertingConfig
    switched_on_by = ("alerting",)

    config: SlackAlertingConfig

    @classmethod
    def is_switched_on(cls, settings: Mapping[str, Any], environ: Mapping[str, str]) -> bool:
        """`alerting` lists "slack" (the seed's way) and SLACK_WEBHOOK_URL is set."""
        alerting = settings.get("alerting")
        if isinstance(alerting, str):
            alerting = [alerting]
        if not isinstance(alerting, list) or "slack" not in alerting:
            return False
        if environ.get(ENV_VAR, "").strip():
            return True
        log.warning("general_settings.alerting lists 'slack' but %s is not set: Slack alerting is off", ENV_VAR)
        return False

    def __init__(self, config: SlackAlertingConfig, gateway: Any) -> None:
        super().__init__(config, gateway)
        assert config.slack_webhook_url is not None  # the config refuses a missing URL
        self._url = config.slack_webhook_url.get_secret_value()
        self._kinds = config.wanted_kinds()
        self.sender = SlackSender(self._url, config)
        self._own_client: Any = None

    @hookimpl
    async def startup(self, gateway: Any) -> None:
        pooled = getattr(gateway, "http_client", None)
        if callable(pooled):
            client = pooled(self._url)  # the gateway's pooled client for the webhook's host; it closes it
        else:
            import httpx

            client = self._own_client = httpx.AsyncClient(timeout=None)
        self.sender.start(client)
        kinds = ", ".join(sorted(self._kinds)) if self._kinds is not None else "all"
        log.info("Slack alerting on: %s alerts to %s, at most %d messages per minute", kinds, self.sender.name,
                 self.config.slack_max_messages_per_minute)

    @hookimpl
    async def shutdown(self, gateway: Any) -> None:
        try:
            await self.sender.stop()
        finally:
            if self._own_client is not None:
                await self._own_client.aclose()
                self._own_client = None

    @hookimpl
    async def alert(self, event: AlertEvent) -> None:
        """Queue the event (or count it into an identical one's window) and return at once."""
        if self._kinds is None or event.kind in self._kinds:
            self.sender.submit(event)
