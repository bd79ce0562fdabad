"""The plugin: refuse an LLM call whose `user` is on `blocked_user_list`, before anything is sent
upstream.

The core owns the blocks made through `/customer/block` and refuses those itself, plugin or not;
this plugin adds the operator's list from the config. The list is read once, when the plugin is
built, into a frozenset: the check is one set look-up, with no I/O. The framework applies
`mode: monitor`, `on_error` and `timeout_s`; a key opts out with `permissions.blocked_user_check:
false`.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway import BadRequestError, Plugin, RequestContext, hookimpl
from gateway_plugin_blocked_users.config import BlockedUsersConfig, read_ids

# Under the `gateway` logger, so the server's log level and format apply to it.
log = logging.getLogger("gateway.plugins.blocked_user_check")

#: The LiteLLM proxy's message, the same as the core's for a block made through `/customer/block`.
MESSAGE = "User blocked from making LLM API Calls. User={}"

#: `permissions.blocked_user_check` values that switch the check off for a key.
OFF_VALUES = (False, "false", "False", "off", "no", "0")


class BlockedUserCheck(Plugin):
    """Refuses calls from the end users on `blocked_user_list` with 400 and the seed's message."""

    name = "blocked_user_check"  # the entry-point name, and the seed's callback name
    # Identity band (1000-1999), above the built-in virtual_keys (1500): a blocked person is refused
    # before the key's model access and budgets are looked at, as the core does for its own blocks.
    priority = 1600
    Config = BlockedUsersConfig

    config: BlockedUsersConfig

    def __init__(self, config: BlockedUsersConfig, gateway: Any) -> None:
        super().__init__(config, gateway)
        # Here rather than in `startup`: a missing file then stops the gateway before any worker starts.
        self.blocked, self.source = read_ids(config.blocked_user_list, gateway.settings.config_path)

    @hookimpl
    async def startup(self, gateway: Any) -> None:
        log.info("blocked_user_check: %d end user id(s) from %s", len(self.blocked), self.source)

    @hookimpl
    async def pre_request(self, ctx: RequestContext) -> None:
        user = ctx.end_user
        if not isinstance(user, str) or user not in self.blocked:
            return
        principal = ctx.principal
        # The plugin's name, not the instance's: a guardrail instance answers to its guardrail's name.
        if principal is not None and principal.permissions.get(type(self).name, True) in OFF_VALUES:
            log.debug("%s did not run: key %s has permissions.%s=false",
                      self.name, principal.display_name, type(self).name)
            return
        raise BadRequestError(MESSAGE.format(user), param="user")
