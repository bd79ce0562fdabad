"""gateway-plugin-slack-alerting: deliver the gateway's alerts to a Slack incoming webhook.

The entry point names `SlackAlerting`; this module stays cheap to import, since the gateway
imports it at start-up to ask whether `general_settings.alerting` switches it on.
"""

from gateway_plugin_slack_alerting.config import SlackAlertingConfig
from gateway_plugin_slack_alerting.handler import SlackAlerting

__all__ = ["SlackAlerting", "SlackAlertingConfig"]
