"""gateway-plugin-blocked-users: `blocked_user_check` refuses LLM calls from listed end users.

The entry point (`pyproject.toml`, group `gateway`, name `blocked_user_check`) names
`BlockedUserCheck`; this module stays cheap to import.
"""

from gateway_plugin_blocked_users.config import BlockedUsersConfig
from gateway_plugin_blocked_users.handler import BlockedUserCheck

__all__ = ["BlockedUserCheck", "BlockedUsersConfig"]
