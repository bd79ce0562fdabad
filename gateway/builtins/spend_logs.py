"""The spend logger, as a built-in observer on `request_finished`.

Every LLM call (success, failure, block) becomes a spend row for the batch writer; its cost is
added at once to this worker's cached key, team, user and end-user spend, so budgets bite on the
next request without a database read. Then the call's budget reservation, if it took one, is
released: the real cost replaces the estimate, and no call in between sees neither.
"""

from __future__ import annotations

from typing import Any

from gateway import Plugin, hookimpl
from gateway.core.keys import hash_key
from gateway.core.limits.budgets import settle
from gateway.core.spend.pricing import PriceTable
from gateway.core.spend.record import build_row
from gateway.core.spend.writer import SpendWriter


class SpendLogs(Plugin):
    name = "spend_logs"
    priority = 50

    def __init__(self, config: Any, gateway: Any) -> None:
        super().__init__(config, gateway)
        general = gateway.settings.file.general_settings
        self.prices: PriceTable = gateway.prices
        self.master_hash = hash_key(gateway.master_key) if gateway.master_key else None
        store = general.get("store_prompts_in_spend_logs")
        self.store_prompts = store is True or (isinstance(store, str) and store.strip().lower() in ("true", "1", "yes"))
        self.writer = SpendWriter(
            gateway.directory,
            ping=gateway.db.ping,
            dead_letters=gateway.dead_letters,
            write_logs=not bool(general.get("disable_spend_logs")),
            batch_size=int(general.get("spend_batch_size") or 500),
            interval=float(general.get("spend_flush_interval_s") or 1.0),
            max_queued=int(general.get("spend_max_queued") or 100_000),
        )
        gateway.spend_writer = self.writer

    @hookimpl
    async def startup(self, gateway: Any) -> None:
        self.writer.start()

    @hookimpl
    async def shutdown(self, gateway: Any) -> None:
        await self.writer.close()

    @hookimpl
    async def request_finished(self, ctx: Any, outcome: Any) -> None:
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
