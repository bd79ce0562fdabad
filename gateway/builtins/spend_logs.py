"""The spend logger, as a built-in observer on `request_finished`.

Every LLM call (success, failure, block) becomes a spend row for the batch writer; its cost is
added at once to this worker's cached key, team, user and end-user spend, so budgets bite on the
next request without a database read. Then the call's budget reservation, if it took one, is
released: the real cost replaces the estimate, and no call in between sees neither.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from gateway import PluginConfig, hookimpl
from gateway.builtins import AlwaysOn, read_as
from gateway.core.keys import hash_key
from gateway.core.limits.budgets import settle
from gateway.core.spend.pricing import PriceTable
from gateway.core.spend.record import build_row
from gateway.core.spend.writer import SpendWriter


def _yes(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"))


class SpendLogsConfig(PluginConfig):
    """Settings of `spend_logs`: the flat keys in `general_settings`, read as they always were (an
    empty or 0 number means the default)."""

    store_prompts_in_spend_logs: Annotated[bool, read_as(_yes)] = Field(
        False, description="Keep each call's input and its reply in its spend row "
        "(true, or the text true/1/yes; anything else is false).")
    disable_spend_logs: Annotated[bool, read_as(bool)] = Field(
        False, description="Write no spend-log rows; spend counters and budgets keep working.")
    spend_batch_size: Annotated[int, read_as(lambda v: int(v or 500))] = Field(
        500, description="Spend rows per database write.")
    spend_flush_interval_s: Annotated[float, read_as(lambda v: float(v or 1.0))] = Field(
        1.0, description="Longest time, in seconds, a spend row waits in memory before it is written.")
    spend_max_queued: Annotated[int, read_as(lambda v: int(v or 100_000))] = Field(
        100_000, description="Spend rows held in memory while the database is unreachable; beyond this, rows "
        "are dropped, counted and logged.")


class SpendLogs(AlwaysOn):
    name = "spend_logs"
    priority = 50
    Config = SpendLogsConfig

    def __init__(self, config: SpendLogsConfig, gateway: Any) -> None:
        super().__init__(config, gateway)
        self.prices: PriceTable = gateway.prices
        self.master_hash = hash_key(gateway.master_key) if gateway.master_key else None
        self.store_prompts = config.store_prompts_in_spend_logs
        self.writer = SpendWriter(
            gateway.directory,
            ping=gateway.db.ping,
            dead_letters=gateway.dead_letters,
            write_logs=not config.disable_spend_logs,
            batch_size=config.spend_batch_size,
            interval=config.spend_flush_interval_s,
            max_queued=config.spend_max_queued,
        )
        gateway.spend_writer = self.writer

    @hookimpl
    async def startup(self, gateway: Any) -> None:
        self.writer.start()

    @hookimpl
    async def shutdown(self, gateway: Any) -> None:
        await self.writer.close()

    @hookimpl
    def request_finished(self, ctx: Any, outcome: Any) -> None:
        try:
            row = build_row(ctx, outcome, self.prices, self.master_hash, self.store_prompts)
            self.writer.submit(row)
            if row.spend:
                cache = self.gateway.directory.cache
                for kind, ident in (("key", row.api_key), ("team", row.team_id), ("user", row.user),
                                    ("end_user", row.end_user)):
                    record = cache.peek(kind, ident) if ident else None
                    if record is not None:
                        record.spend = float(record.spend or 0.0) + row.spend
        finally:
            settle(ctx)
