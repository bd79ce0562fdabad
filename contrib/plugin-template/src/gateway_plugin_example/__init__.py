"""gateway-plugin-example: a template gateway plugin that requires request headers.

The entry point (`pyproject.toml`, group `gateway`) names `HeaderGuard`; keep this module cheap to
import, since the gateway imports it only when the plugin is enabled.
"""

from gateway_plugin_example.config import HeaderGuardConfig
from gateway_plugin_example.handler import HeaderGuard

__all__ = ["HeaderGuard", "HeaderGuardConfig"]
