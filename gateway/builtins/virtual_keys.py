"""Virtual-key auth, as a built-in plugin on the `auth` hook (the core dogfoods its contract).

Recognises `sk-` keys issued by `/key/generate` from the in-memory directory (no database read in
steady state), and refuses blocked or expired keys with the reference's messages. Its
`pre_request` enforces, on LLM calls only and whatever key is used: a blocked end user (the
request's `user`, blocked through `/customer/block`), model access, the key, team, user and
end-user budgets, and their rate limits (rpm, tpm, parallel requests: `gateway.core.limits.rates`);
a refusal for budget raises a `budget_exceeded` alert (at most once a minute per entity). A call
admitted against any budget reserves its estimated cost on each until it ends
(`gateway.core.limits.budgets`), so that concurrent calls cannot all spend the same headroom; the
reservation and every rate limit are taken in one acquire (one Redis round trip), all or nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import Field

from gateway import (
    AlertEvent,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    PluginConfig,
    Principal,
    hookimpl,
)
from gateway.builtins import AlwaysOn, read_as
from gateway.core.keys import hash_key
from gateway.core.limits import Claim, LimitReached, Limits, LimitsUnavailable, rates
from gateway.core.limits.budgets import (DEFAULT_MAX_TOKENS, DEFAULT_TTL_S, Estimator, budget_exceeded, check_budget,
                                         effective_spend, positive_setting, remember)
from gateway.core.management.common import iso, member_ident
from gateway.core.model_access import model_allowed
from gateway.core.spend.record import build_row
from gateway.errors import ServiceUnavailableError

ADMIN_ROLES = ("proxy_admin",)
RESET_INTERVAL_S = 60.0
#: A refused call raises a `budget_exceeded` alert at most this often per key, team, user or end user.
BUDGET_ALERT_INTERVAL_S = 60.0
#: The LiteLLM proxy's refusal of a blocked end user (the `blocked_user_check` plugin says the same).
END_USER_BLOCKED = "User blocked from making LLM API Calls. User={}"
log = logging.getLogger("gateway.virtual_keys")


def identify(entity: str, record: Any) -> tuple[str, str]:
    """(id, display name) of a key, team, user, end user, organization or team member record."""
    if entity == "key":
        return record.token, record.key_alias or record.key_name
    if entity == "organization":
        return record.organization_id, record.organization_alias or record.organization_id
    if entity == "team_member":
        return member_ident(record.team_id, record.user_id), f"{record.user_id} in team {record.team_id}"
    ident = record.team_id if entity == "team" else record.user_id
    return ident, ident


async def reset_budgets(directory: Any) -> int:
    """Zero the spend of every key, team, user and end user whose budget period ended.

    The conditional update makes it safe when several instances run it at once."""
    from gateway.core.db.models import EndUser, Key, Organization, Team, User
    from gateway.core.management.common import next_reset

    now = datetime.now(timezone.utc)
    count = 0
    for model, kind in ((Key, "key"), (Team, "team"), (User, "user"), (EndUser, "end_user"),
                        (Organization, "organization")):
        pk = model._meta.pk_attr
        for row in await model.filter(budget_reset_at__lte=now, budget_duration__isnull=False):
            changed = await model.filter(**{pk: getattr(row, pk)}, budget_reset_at=row.budget_reset_at).update(
                spend=0.0, budget_reset_at=next_reset(row.budget_duration))
            if changed:
                count += 1
                await directory.changed(kind, getattr(row, pk))
    from gateway.core.db.models import Budget

    for budget in await Budget.filter(budget_reset_at__lte=now, budget_duration__isnull=False):
        await directory.next_budget_period(budget)  # its end users' spend starts again at 0
        count += 1
    return count


def _positive(key: str, default: float, cast: type = float) -> Any:
    """`general_settings.<key>` as `positive_setting` reads it (unset: `default`), then `cast`."""
    return read_as(lambda value: cast(positive_setting({key: value}, key, default)))


class VirtualKeysConfig(PluginConfig):
    """Settings of `virtual_keys`: the flat keys in `general_settings`, read as they always were."""

    budget_reservation_ttl_s: Annotated[float, _positive("budget_reservation_ttl_s", DEFAULT_TTL_S)] = Field(
        DEFAULT_TTL_S, description="The longest, in seconds (> 0), a budget reservation is held when its call "
        "never ends (its worker died). Keep it above your longest call.")
    budget_default_max_tokens: Annotated[int, _positive("budget_default_max_tokens", DEFAULT_MAX_TOKENS, int)] = Field(
        DEFAULT_MAX_TOKENS, description="Output tokens (> 0) a call is assumed to need when its cost is "
        "reserved against budgets, if it sends neither max_tokens nor max_completion_tokens.")
    rate_limit_redis_failure: Annotated[Literal["fail_open", "fail_closed"], read_as(
        lambda value: "fail_closed" if rates.fail_closed({rates.FAILURE_SETTING: value}) else "fail_open")] = Field(
        "fail_open", description="What rate limits do while REDIS_URL is set but Redis does not answer: "
        "fail_open counts them in each worker, fail_closed refuses every call that has a rate limit with 503.")
    budget_reset_interval_s: Annotated[float, read_as(lambda value: float(value or RESET_INTERVAL_S))] = Field(
        RESET_INTERVAL_S, description="How often, in seconds, each worker resets the spend of the records "
        "whose budget_duration period ended.")


class VirtualKeys(AlwaysOn):
    name = "virtual_keys"
    priority = 1500
    Config = VirtualKeysConfig

    def __init__(self, config: VirtualKeysConfig, gateway: Any) -> None:
        super().__init__(config, gateway)
        self._resetter: asyncio.Task[None] | None = None
        # Principals built from the cached records, rebuilt whenever any of those records is reloaded.
        self._principals: dict[str, tuple[Any, Any, Any, Principal]] = {}
        self._budget_alerted: dict[tuple[str, str], float] = {}  # (entity, id) -> monotonic time
        # Budget reservations: counted in Redis when REDIS_URL is set (shared by every worker and
        # instance), else in this process. `gateway.limits` is meant for rate limits too.
        gateway.limits = Limits(gateway.redis)  # the process's RedisGuard (timeouts, breaker), or None
        self.reservation_ttl = config.budget_reservation_ttl_s
        self.estimator = Estimator(gateway.router, gateway.prices, config.budget_default_max_tokens)
        self.rate_window = rates.window_s()
        self.rate_fail_closed = config.rate_limit_redis_failure == "fail_closed"
        self.reset_interval = config.budget_reset_interval_s
        gateway.key_principal = self.principal_for_token

    @hookimpl
    async def startup(self, gateway: Any) -> None:
        self._resetter = asyncio.get_running_loop().create_task(self._reset_loop(gateway))

    @hookimpl
    async def shutdown(self, gateway: Any) -> None:
        if self._resetter is not None:
            self._resetter.cancel()
            await asyncio.gather(self._resetter, return_exceptions=True)
        await gateway.limits.close()

    async def _reset_loop(self, gateway: Any) -> None:
        interval = self.reset_interval
        while True:
            try:
                reset = await reset_budgets(gateway.directory)
                if reset:
                    log.info("budget period ended for %d record(s): spend reset to 0", reset)
            except Exception as exc:  # the database may be away for a while; try again later
                log.warning("budget reset failed (%s: %s); retrying in %.0f s", type(exc).__name__, exc, interval)
            await asyncio.sleep(interval)

    @hookimpl
    def request_finished(self, ctx: Any, outcome: Any) -> None:
        """The call's real tokens count towards its tpm limits (its holds are released by
        `spend_logs`, once the call's cost is on the cached records)."""
        rates.count_tokens(self.gateway.limits, ctx, outcome)
        self._add_member_spend(ctx, outcome)

    def _add_member_spend(self, ctx: Any, outcome: Any) -> None:
        """The call's cost on this worker's cached organization and team-member records with a
        budget, before `spend_logs` releases the call's hold (this hook runs first: priority),
        as `spend_logs` does for keys, teams, users and end users."""
        extra = ctx.principal.extra if ctx.principal is not None else None
        org, member = (extra.get("organization"), extra.get("team_member")) if extra else (None, None)
        budgeted = [(kind, ident) for kind, record, ident in (
            ("organization", org, org.organization_id if org is not None else None),
            ("team_member", member, member_ident(member.team_id, member.user_id) if member is not None else None))
            if record is not None and record.max_budget is not None]
        if not budgeted:
            return
        spend = build_row(ctx, outcome, self.gateway.prices, None).spend
        if spend:
            for kind, ident in budgeted:
                record = self.gateway.directory.cache.peek(kind, ident)
                if record is not None:
                    record.spend = float(record.spend or 0.0) + spend

    @hookimpl
    async def auth(self, api_key: str, gateway: Any) -> Principal | None:  # no `request`: see fast_path.py
        return await self.principal_for_token(hash_key(api_key))

    async def principal_for_token(self, token: str) -> Principal | None:
        """The Principal of the key whose sha256 is `token`, checked as a call with the raw key is
        (blocked, expired, blocked team): for an admin UI session, which keeps only the hash."""
        directory = self.gateway.directory
        key = await directory.key(token)
        if key is None:
            return None
        if key.blocked:
            raise AuthenticationError("Authentication Error, Key is blocked.")
        now = datetime.now(timezone.utc)
        if key.expires is not None and key.expires <= now:
            raise AuthenticationError(
                f"Authentication Error - Expired Key. Key Expiry time {iso(key.expires)} and current time {iso(now)}",
                type="expired_key",
            )
        team = await directory.team(key.team_id) if key.team_id else None
        if team is not None and team.blocked:
            raise AuthenticationError(f"Authentication Error, Team={team.team_id} is blocked.")
        user = await directory.user(key.user_id) if key.user_id else None
        org = await directory.organization(team.organization_id) if team is not None and team.organization_id \
            else None
        member = await directory.team_member(key.team_id, key.user_id) if team is not None and key.user_id else None
        records = (key, team, user, org, member)
        cached = self._principals.get(key.token)
        if cached is not None and all(a is b for a, b in zip(cached[0], records)):
            return cached[1]  # the same records as last time: the same Principal (immutable, so shared safely)
        principal = self._principal(*records)
        if len(self._principals) > 100_000:
            self._principals.clear()
        self._principals[key.token] = (records, principal)
        return principal

    @staticmethod
    def _principal(key: Any, team: Any, user: Any, org: Any = None, member: Any = None) -> Principal:
        metadata = key.metadata or {}
        tags = list(dict.fromkeys([*(metadata.get("tags") or []), *(key.tags or [])]))
        role = user.user_role if user is not None else None
        return Principal(
            api_key=key.token, key_alias=key.key_alias, key_name=key.key_name, user_id=key.user_id,
            user_role=role, team_id=key.team_id, team_alias=team.team_alias if team else None,
            is_admin=role in ADMIN_ROLES, models=list(key.models or []),
            permissions=dict(key.permissions or {}), metadata=dict(metadata),
            team_metadata=dict(team.metadata or {}) if team else {}, tags=tags,
            extra={"team_models": list(team.models or []) if team else [], "records": (key, team, user),
                   "org_models": list(org.models or []) if org is not None else [],
                   "organization": org, "team_member": member},
        )

    @hookimpl
    async def pre_request(self, ctx: Any) -> None:
        """LLM calls only: a blocked end user, then model access (key, team, organization), then
        budgets (key, team, user, team member, organization, end user), each refused once its spend reached its budget; then a
        reservation against every budget and a claim on every rate limit at once. The end user's
        record comes from the directory's cache. No budget or rate limit set: no Redis call."""
        principal = ctx.principal
        end_user = None
        budgets: list[tuple[str, Any]] = []
        limited: list[tuple[str, str, Any]] = []  # (entity, id, record) whose rate limits apply
        if ctx.end_user:
            if not isinstance(ctx.end_user, str):
                raise BadRequestError("user must be a string", param="user")
            end_user = await self.gateway.directory.end_user(ctx.end_user)
            if end_user is not None and end_user.blocked:
                raise BadRequestError(END_USER_BLOCKED.format(ctx.end_user), param="user")
        now = datetime.now(timezone.utc)
        if principal.api_key is not None:
            names = self.gateway.router.names
            extra = principal.extra
            for allowed in (principal.models, extra.get("team_models") or [], extra.get("org_models") or []):
                if allowed and names.access_groups:
                    allowed = names.expand(allowed)  # a model access group stands for its members
                if not (model_allowed(allowed, ctx.model)
                        or model_allowed(allowed, names.resolve(ctx.model, principal)[0])):
                    raise AuthenticationError(
                        "Authentication Error, API Key not allowed to access model. "
                        f"This token can only access models={list(allowed)}. Tried to access {ctx.model}",
                        param="model",
                    )
            for entity, record in zip(("key", "team", "user"), principal.extra.get("records") or ()):
                if record is None:
                    continue
                if record.max_budget is not None:
                    self._check_budget(ctx, entity, record, now)
                    budgets.append((entity, record))
                limited.append((entity, identify(entity, record)[0], record))
            # In-team budget (`max_budget_in_team`), then the budget of the team's organization.
            for entity in ("team_member", "organization"):
                record = extra.get(entity)
                if record is not None and record.max_budget is not None:
                    self._check_budget(ctx, entity, record, now)
                    budgets.append((entity, record))
        if end_user is not None:
            if end_user.max_budget is not None:
                self._check_budget(ctx, "end_user", end_user, now)
                budgets.append(("end_user", end_user))
            limited.append(("end_user", ctx.end_user, end_user))
        limits = rates.claims_for(limited, self.rate_window, self.reservation_ttl) if limited else {}
        if budgets or limits:
            await self._reserve(ctx, budgets, limits, now)

    async def _reserve(self, ctx: Any, budgets: list[tuple[str, Any]],
                       limits: dict[str, tuple[Claim, rates.Limited]], now: datetime) -> None:
        """Hold the call's estimated cost against every budget and take every rate limit, or
        refuse: 429 `budget_exceeded` if it would cross a budget (a lone call is let through while
        its budget has headroom: see `limits.admits`), 429 `rate_limit_error` for a rate limit."""
        amount = self.estimator.cost(ctx) if budgets else 0.0
        claims, owners = [], {}
        if amount > 0:  # nothing to hold for a model with no known price
            for entity, record in budgets:
                spend = effective_spend(record, now)
                counter = f"budget:{entity}:{identify(entity, record)[0]}"
                claims.append(Claim(counter, amount, float(record.max_budget), spend, self.reservation_ttl))
                owners[counter] = (entity, record, spend)
        claims.extend(claim for claim, _ in limits.values())
        if not claims:
            return
        try:
            hold = await self.gateway.limits.acquire(
                claims, strict=self.rate_fail_closed and bool(limits),
                what="rate limit check" if limits else "budget reservation")
        except LimitReached as refused:
            if refused.claim.counter in limits:
                raise rates.refusal(limits[refused.claim.counter][1], refused) from None
            entity, record, spend = owners[refused.claim.counter]
            self._budget_alert(ctx, entity, record, now)
            # The cost so far includes what calls in flight hold against the budget.
            raise budget_exceeded(round(spend + refused.held, 10), record.max_budget) from None
        except LimitsUnavailable:
            raise ServiceUnavailableError("Rate limits cannot be checked: Redis is unavailable "
                                          "(general_settings.rate_limit_redis_failure is fail_closed)") from None
        if hold.counters:
            remember(ctx, hold)
        if limits:
            taken = [(limits[c.counter][1], level) for c, level in zip(claims, hold.levels) if c.counter in limits]
            ctx.response_headers.update(rates.headers(taken))  # the core's own x-ratelimit-* headers
            tpm = [c.counter for c in claims if c.counter in limits and limits[c.counter][1].kind == "tpm"]
            if tpm:
                rates.remember(ctx, tpm, self.rate_window, hold.shared)

    def _check_budget(self, ctx: Any, entity: str, record: Any, now: datetime) -> None:
        try:
            check_budget(record, now)
        except BudgetExceededError:
            self._budget_alert(ctx, entity, record, now)
            raise

    def _budget_alert(self, ctx: Any, entity: str, record: Any, now: datetime) -> None:
        """A `budget_exceeded` alert, at most once per entity per `BUDGET_ALERT_INTERVAL_S`."""
        ident, name = identify(entity, record)
        tick = time.monotonic()
        last = self._budget_alerted.get((entity, ident))
        if last is not None and tick - last < BUDGET_ALERT_INTERVAL_S:
            return
        if len(self._budget_alerted) >= 10_000:  # forget entities not refused within the interval
            self._budget_alerted = {k: t for k, t in self._budget_alerted.items() if tick - t < BUDGET_ALERT_INTERVAL_S}
        self._budget_alerted[(entity, ident)] = tick
        spend = effective_spend(record, now)
        label = entity.replace("_", " ")
        self.gateway.alert(AlertEvent(
            kind="budget_exceeded", request_id=ctx.request_id,
            message=f"Budget exceeded for {label} {name}: current cost {spend}, max budget {record.max_budget}",
            details={"entity": entity, "id": name, "spend": spend, "max_budget": record.max_budget,
                     "model": ctx.model},
        ))
