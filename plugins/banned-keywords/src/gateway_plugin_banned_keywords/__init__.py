"""gateway-plugin-banned-keywords: refuse requests and replies that contain a banned keyword.

The entry point (`pyproject.toml`, group `gateway`, name `banned_keywords`) names `BannedKeywords`.
"""

from gateway_plugin_banned_keywords.config import BannedKeywordsConfig
from gateway_plugin_banned_keywords.handler import BannedKeywords
from gateway_plugin_banned_keywords.keywords import Matcher

__all__ = ["BannedKeywords", "BannedKeywordsConfig", "Matcher"]
