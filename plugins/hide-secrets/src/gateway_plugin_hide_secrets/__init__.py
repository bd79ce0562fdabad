"""gateway-plugin-hide-secrets: redact secrets from LLM requests before they leave the gateway.

The entry point (`pyproject.toml`, group `gateway`, name `hide_secrets`) names `HideSecrets`.
Importing this module is cheap: detect-secrets is imported at start-up, in the scanner thread.
"""

from gateway_plugin_hide_secrets.config import HideSecretsConfig
from gateway_plugin_hide_secrets.handler import HideSecrets

__all__ = ["HideSecrets", "HideSecretsConfig"]
