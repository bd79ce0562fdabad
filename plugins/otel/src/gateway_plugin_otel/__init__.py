"""gateway-plugin-otel: OpenTelemetry traces of every LLM call, after the GenAI semantic conventions.

The entry point `otel` names `OtelTracer`. Importing this module stays cheap: the OpenTelemetry
SDK and exporters are imported when serving starts.
"""

from gateway_plugin_otel.config import OtelConfig
from gateway_plugin_otel.handler import OtelTracer

__all__ = ["OtelConfig", "OtelTracer"]
