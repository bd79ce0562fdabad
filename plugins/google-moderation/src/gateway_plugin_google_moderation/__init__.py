"""gateway-plugin-google-moderation: Google Cloud Natural Language `moderateText` as a request guard.

The entry point (group `gateway`) names `GoogleTextModeration`. This module stays cheap to import:
the Google client library is imported in `startup`.
"""

from gateway_plugin_google_moderation.config import CATEGORIES, GoogleModerationConfig
from gateway_plugin_google_moderation.handler import GoogleTextModeration

__all__ = ["CATEGORIES", "GoogleModerationConfig", "GoogleTextModeration"]
