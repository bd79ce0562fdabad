"""gateway-plugin-size-limits: `max_request_size_mb` and `max_response_size_mb`."""

from gateway_plugin_size_limits.config import SizeLimitsConfig
from gateway_plugin_size_limits.handler import SizeLimits

__all__ = ["SizeLimits", "SizeLimitsConfig"]
