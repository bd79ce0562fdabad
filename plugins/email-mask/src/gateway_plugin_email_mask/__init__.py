"""gateway-plugin-email-mask: masks e-mail addresses in requests, replies and streams.

The entry point (`pyproject.toml`, group `gateway`) names `EmailMask`; keep this module cheap to
import, since the gateway imports it only when the plugin is enabled.
"""

from gateway_plugin_email_mask.config import EmailMaskConfig
from gateway_plugin_email_mask.handler import EmailMask

__all__ = ["EmailMask", "EmailMaskConfig"]
