"""gateway-plugin-llamaguard: check LLM requests with Llama Guard on a SageMaker endpoint.

The entry point (`pyproject.toml`, group `gateway`, name `llamaguard_moderations`) names
`LlamaGuard`. Importing this module is cheap: boto3 is imported at start-up.
"""

from gateway_plugin_llamaguard.config import LlamaGuardConfig
from gateway_plugin_llamaguard.handler import LlamaGuard

__all__ = ["LlamaGuard", "LlamaGuardConfig"]
