"""gateway-plugin-generic-api: send every finished LLM call, as LiteLLM's StandardLoggingPayload,
to any HTTP endpoint, in batches, off the request path.

The entry point names `GenericAPILogger`; this module stays cheap to import.
"""

from gateway_plugin_generic_api.config import GenericAPIConfig
from gateway_plugin_generic_api.handler import GenericAPILogger

__all__ = ["GenericAPIConfig", "GenericAPILogger"]
