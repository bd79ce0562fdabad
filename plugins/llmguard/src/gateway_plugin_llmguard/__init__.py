"""gateway-plugin-llmguard: content moderation through a deployed LLM Guard API.

The entry point (`pyproject.toml`, group `gateway`, name `llmguard_moderations`) names `LLMGuard`.
Importing this module is cheap: it needs only httpx, which the gateway core has already imported.
"""

from gateway_plugin_llmguard.config import LLMGuardConfig
from gateway_plugin_llmguard.handler import LLMGuard, LLMGuardUnavailable

__all__ = ["LLMGuard", "LLMGuardConfig", "LLMGuardUnavailable"]
