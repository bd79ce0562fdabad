"""gateway-plugin-prometheus: Prometheus metrics on GET /metrics, under gateway_* names and LiteLLM's.

The entry point (`pyproject.toml`, group `gateway`, name `prometheus`) names `Prometheus`; this
module stays cheap to import (prometheus_client is imported when serving starts).
"""

from gateway_plugin_prometheus.config import PrometheusConfig
from gateway_plugin_prometheus.handler import Prometheus

__all__ = ["Prometheus", "PrometheusConfig"]
