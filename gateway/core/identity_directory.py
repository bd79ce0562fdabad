"""Cached look-ups of keys, teams, users, organizations, team members and end users (`Directory`),
with linked budgets applied to the cached copies, and change notification through the invalidator.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from gateway.context import AlertEvent

if TYPE_CHECKING:
    from gateway.core.identity import IdentityCache
    from gateway.core.identity_invalidator import Invalidator

log = logging.getLogger("gateway.identity")

MAX_EVICTIONS = 100  # end users evicted one by one after a budget change; more: drop every cached record


class Directory:
    """Cached look-ups of keys, teams, users and end users, and change notification.

    A look-up that misses the cache waits on the database at most `db.deadline_s` in all; a
    database that does not answer makes it raise a 503 (`ServiceUnavailableError`), which is what
    the caller gets: neither a 401 (the key may be fine) nor a 500."""

    def __init__(self, cache: IdentityCache, invalidator: Invalidator, db: Any = None) -> None:
        self.cache = cache
        self.invalidator = invalidator
        self.db = db
        # Where a soft budget alert goes (`Gateway.alert`); set when the budget routes are mounted.
        self.alert: Callable[[AlertEvent], None] | None = None

    async def _load(self, query: Awaitable[Any]) -> Any:
        if self.db is None:
            return await query
        try:
            return await self.db.bounded(query)
        except Exception as exc:
            # Nothing but the database is awaited here: a timeout is the database's.
            error = self.db.unavailable(exc, from_db=isinstance(exc, TimeoutError))
            if error is None:
                raise
            raise error from exc

    async def key(self, token: str) -> Any:
        return await self.cache.get("key", token, lambda: self._load(self._load_key(token)))

    async def _load_key(self, token: str) -> Any:
        """The key's row, with its linked budget's limits where the key sets none of its own
        (`max_budget`, `rpm_limit`, `tpm_limit`, `max_parallel_requests`); on a cache miss only."""
        from gateway.core.db.models import Budget, Key

        key = await Key.get_or_none(token=token)
        if key is not None and key.budget_id:
            budget = await Budget.get_or_none(budget_id=key.budget_id)
            if budget is not None:
                for name in ("max_budget", "rpm_limit", "tpm_limit", "max_parallel_requests"):
                    if getattr(key, name) is None:
                        setattr(key, name, getattr(budget, name))  # this cached copy only; never saved
        return key

    async def team(self, team_id: str) -> Any:
        from gateway.core.db.models import Team

        return await self.cache.get("team", team_id, lambda: self._load(Team.get_or_none(team_id=team_id)))

    async def user(self, user_id: str) -> Any:
        from gateway.core.db.models import User

        return await self.cache.get("user", user_id, lambda: self._load(User.get_or_none(user_id=user_id)))

    async def organization(self, organization_id: str) -> Any:
        """The organization's row, with its linked budget's limits where it sets none of its own
        (`max_budget`, `tpm_limit`, `rpm_limit`, and the budget's period); on a cache miss only."""
        return await self.cache.get("organization", organization_id,
                                    lambda: self._load(self._load_organization(organization_id)))

    async def _load_organization(self, organization_id: str) -> Any:
        from gateway.core.db.models import Budget, Organization

        org = await Organization.get_or_none(organization_id=organization_id)
        budget = await Budget.get_or_none(budget_id=org.budget_id) if org is not None and org.budget_id else None
        if budget is not None:
            for name in ("max_budget", "tpm_limit", "rpm_limit"):
                if getattr(org, name) is None:
                    setattr(org, name, getattr(budget, name))  # this cached copy only; never saved
            if org.budget_duration is None and budget.budget_duration is not None:
                org.budget_duration, org.budget_reset_at = budget.budget_duration, budget.budget_reset_at
        return org

    async def team_member(self, team_id: str, user_id: str) -> "TeamMemberRecord":
        """A user's membership of a team: in-team spend and budget (`max_budget_in_team`). A user
        with no membership row gets an empty record, cached like any other (no budget)."""
        from gateway.core.management.common import member_ident

        return await self.cache.get("team_member", member_ident(team_id, user_id),
                                    lambda: self._load(self._load_team_member(team_id, user_id)))

    async def _load_team_member(self, team_id: str, user_id: str) -> "TeamMemberRecord":
        from gateway.core.db.models import Budget, TeamMembership

        row = await TeamMembership.get_or_none(team_id=team_id, user_id=user_id)
        budget = await Budget.get_or_none(budget_id=row.budget_id) if row is not None and row.budget_id else None
        return TeamMemberRecord(team_id, user_id, row, budget)

    async def end_user(self, user_id: str) -> "EndUserRecord | None":
        """The end user with its linked budget applied (see `EndUserRecord`)."""
        return await self.cache.get("end_user", user_id, lambda: self._load(self._load_end_user(user_id)))

    async def _load_end_user(self, user_id: str) -> "EndUserRecord | None":
        """On a cache miss only: the row and its budget. A linked budget whose period ended starts
        its next one here (spend of its end users back to 0), and a soft budget just crossed
        raises its alert here: both at most once per period, across instances."""
        from gateway.core.db.models import Budget, EndUser

        row = await EndUser.get_or_none(user_id=user_id)
        if row is None:
            return None
        budget = await Budget.get_or_none(budget_id=row.budget_id) if row.budget_id else None
        now = datetime.now(timezone.utc)
        if budget is not None and budget.budget_duration and budget.budget_reset_at is not None \
                and budget.budget_reset_at <= now:
            await self.next_budget_period(budget)  # here or on another instance: read both again
            row = await EndUser.get_or_none(user_id=user_id)
            budget = await Budget.get_or_none(budget_id=budget.budget_id)
            if row is None:
                return None
        record = EndUserRecord(row, budget)
        if record.soft_budget is not None:
            await self._soft_budget_alert(record, row.soft_budget_alerted_at, now)
        return record

    async def next_budget_period(self, budget: Any) -> None:
        """Start the budget's next period: the conditional update lets one instance win."""
        from gateway.core.db.models import Budget, EndUser
        from gateway.core.management.common import next_reset

        won = await Budget.filter(budget_id=budget.budget_id, budget_reset_at=budget.budget_reset_at).update(
            budget_reset_at=next_reset(budget.budget_duration))
        if not won:
            return
        # End users with a budget_duration of their own keep their own period.
        linked = EndUser.filter(budget_id=budget.budget_id, budget_duration__isnull=True)
        ids = await linked.values_list("user_id", flat=True)
        await linked.update(spend=0.0, soft_budget_alerted_at=None)
        await self.end_users_changed(ids, wait=False)
        log.info("budget %s: period ended, spend of %d end user(s) reset to 0", budget.budget_id, len(ids))
        await self._budget_period_of_members(budget)

    async def _budget_period_of_members(self, budget: Any) -> None:
        """Organizations (without a period of their own) and team members linked to the budget
        start its new period at 0 spend too."""
        from gateway.core.db.models import Organization, TeamMembership
        from gateway.core.management.common import member_ident

        orgs = Organization.filter(budget_id=budget.budget_id, budget_duration__isnull=True)
        for org_id in await orgs.values_list("organization_id", flat=True):
            await Organization.filter(organization_id=org_id).update(spend=0.0)
            await self.changed("organization", org_id, wait=False)
        for team_id, user_id in await TeamMembership.filter(budget_id=budget.budget_id).values_list(
                "team_id", "user_id"):
            await TeamMembership.filter(team_id=team_id, user_id=user_id).update(spend=0.0)
            await self.changed("team_member", member_ident(team_id, user_id), wait=False)

    async def _soft_budget_alert(self, record: "EndUserRecord", alerted_at: datetime | None, now: datetime) -> None:
        """A `soft_budget_crossed` alert once the end user's spend in the period reached the soft budget."""
        from gateway.core.db.models import EndUser
        from gateway.core.management.common import parse_duration

        reset_at = record.budget_reset_at
        if reset_at is not None and reset_at <= now:
            return  # the period ended: its spend counts as 0
        if record.soft_budget is None or float(record.spend or 0.0) < record.soft_budget:
            return
        if alerted_at is not None:
            if reset_at is None or not record.budget_duration:
                return  # a budget that never resets alerts once
            if alerted_at >= reset_at - parse_duration(record.budget_duration, "budget_duration"):
                return  # already alerted in this period
        if not await EndUser.filter(user_id=record.user_id, soft_budget_alerted_at=alerted_at).update(
                soft_budget_alerted_at=now):
            return  # another worker or instance sent it
        if self.alert is not None:
            self.alert(AlertEvent(
                kind="soft_budget_crossed", level="warning",
                message=f"Soft budget crossed for end user {record.user_id}: current cost {record.spend}, "
                        f"soft budget {record.soft_budget} (budget {record.budget_id})",
                details={"entity": "end_user", "id": record.user_id, "budget_id": record.budget_id,
                         "spend": record.spend, "soft_budget": record.soft_budget,
                         "max_budget": record.max_budget},
            ))

    async def end_users_changed(self, user_ids: list[str], wait: bool = True) -> None:
        """Evict these end users everywhere; past `MAX_EVICTIONS`, every cached record at once."""
        if len(user_ids) > MAX_EVICTIONS:
            await self.invalidator.publish("*", "", wait)
            return
        for user_id in user_ids:
            await self.invalidator.publish("end_user", user_id, wait)

    async def changed(self, kind: str, ident: str, wait: bool = True) -> None:
        """Call after every write: evicts the record on every worker and instance. `wait=False`
        (the spend writer) never waits on Redis, not even the one timeout that opens its breaker."""
        await self.invalidator.publish(kind, ident, wait)


class EndUserRecord:
    """An end user as the request path sees it: its row with its linked budget applied.

    The end user's own `max_budget` and `budget_duration` win where set (an override); otherwise
    the budget's apply, and the budget's period (`budget_reset_at`) is the end user's. The budget's
    `soft_budget`, `rpm_limit`, `tpm_limit`, `max_parallel_requests` and `model_max_budget` are
    attributes here for the limiters. `spend` is the end user's own (the spend logger adds to it)."""

    def __init__(self, row: Any, budget: Any) -> None:
        self.user_id: str = row.user_id
        self.alias = row.alias
        self.blocked: bool = row.blocked
        self.metadata = row.metadata
        self.spend: float = row.spend
        self.budget_id = budget.budget_id if budget is not None else None
        self.max_budget = row.max_budget
        self.budget_duration = row.budget_duration
        self.budget_reset_at = row.budget_reset_at
        for name in ("soft_budget", "rpm_limit", "tpm_limit", "max_parallel_requests", "model_max_budget"):
            setattr(self, name, getattr(budget, name) if budget is not None else None)
        if budget is None:
            return
        if self.max_budget is None:
            self.max_budget = budget.max_budget
        if row.budget_duration is None and budget.budget_duration is not None:
            self.budget_duration = budget.budget_duration
            self.budget_reset_at = budget.budget_reset_at


class TeamMemberRecord:
    """A user in a team as the request path sees it: in-team `spend` (the spend writer adds to the
    row) and the linked budget's `max_budget` and period; no row: no budget."""

    def __init__(self, team_id: str, user_id: str, row: Any, budget: Any) -> None:
        self.team_id, self.user_id = team_id, user_id
        self.spend: float = row.spend if row is not None else 0.0
        self.budget_id = budget.budget_id if budget is not None else None
        self.max_budget = budget.max_budget if budget is not None else None
        self.budget_duration = budget.budget_duration if budget is not None else None
        self.budget_reset_at = budget.budget_reset_at if budget is not None else None
