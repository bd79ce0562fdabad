"""gateway-plugin-langfuse: send every finished LLM call to Langfuse (a trace and a generation)
through its public ingestion API, in batches, off the request path. No Langfuse SDK.

The entry point names `LangfuseLogger`; this module stays cheap to import.
"""

from gateway_plugin_langfuse.config import LangfuseConfig
from gateway_plugin_langfuse.handler import LangfuseLogger

__all__ = ["LangfuseConfig", "LangfuseLogger"]
