"""The tables: keys (sha256 only, never the raw key), teams, users, end users, audit logs.

Column names follow the LiteLLM proxy's, so that what users read back keeps the names they know.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class Budgeted:
    """Spend and budget columns shared by keys, teams, users and end users."""

    max_budget = fields.FloatField(null=True)
    spend = fields.FloatField(default=0.0)
    budget_duration = fields.CharField(max_length=32, null=True)
    budget_reset_at = fields.DatetimeField(null=True)


class Key(Model, Budgeted):
    token = fields.CharField(primary_key=True, max_length=64, description="sha256 hex of the raw key")
    key_name = fields.CharField(max_length=32, description="sk-... plus the key's last 4 characters")
    key_alias = fields.CharField(max_length=255, null=True, unique=True)
    user_id = fields.CharField(max_length=255, null=True, db_index=True)
    team_id = fields.CharField(max_length=255, null=True, db_index=True)
    models = fields.JSONField(default=list)
    metadata = fields.JSONField(default=dict)
    permissions = fields.JSONField(default=dict)
    tags = fields.JSONField(default=list)
    tpm_limit = fields.BigIntField(null=True)
    rpm_limit = fields.BigIntField(null=True)
    max_parallel_requests = fields.IntField(null=True)
    blocked = fields.BooleanField(default=False)
    expires = fields.DatetimeField(null=True)
    created_by = fields.CharField(max_length=255, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    budget_id = fields.CharField(max_length=255, null=True)  # a budget from /budget/new

    class Meta:
        table = "keys"


class Team(Model, Budgeted):
    team_id = fields.CharField(primary_key=True, max_length=255)
    team_alias = fields.CharField(max_length=255, null=True)
    admins = fields.JSONField(default=list)
    members = fields.JSONField(default=list)
    members_with_roles = fields.JSONField(default=list)
    metadata = fields.JSONField(default=dict)
    models = fields.JSONField(default=list)
    tpm_limit = fields.BigIntField(null=True)
    rpm_limit = fields.BigIntField(null=True)
    blocked = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    organization_id = fields.CharField(max_length=255, null=True, db_index=True)

    class Meta:
        table = "teams"


class User(Model, Budgeted):
    user_id = fields.CharField(primary_key=True, max_length=255)
    user_alias = fields.CharField(max_length=255, null=True)
    user_email = fields.CharField(max_length=255, null=True)
    user_role = fields.CharField(max_length=32, default="internal_user")
    teams = fields.JSONField(default=list)
    models = fields.JSONField(default=list)
    metadata = fields.JSONField(default=dict)
    tpm_limit = fields.BigIntField(null=True)
    rpm_limit = fields.BigIntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "users"


class EndUser(Model, Budgeted):
    user_id = fields.CharField(primary_key=True, max_length=255)
    alias = fields.CharField(max_length=255, null=True)
    blocked = fields.BooleanField(default=False)
    metadata = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    budget_id = fields.CharField(max_length=255, null=True)  # a budget from /budget/new
    # When the linked budget's soft_budget alert went out (once per budget period, across instances).
    soft_budget_alerted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "end_users"
        indexes = (Index(fields=("budget_id",)),)


class Budget(Model):
    """A named budget (LiteLLM's `LiteLLM_BudgetTable`), shared by the end users (and keys) linked to
    it. It holds limits only: spend stays on each linked record."""

    budget_id = fields.CharField(primary_key=True, max_length=255)
    max_budget = fields.FloatField(null=True)
    soft_budget = fields.FloatField(null=True)
    max_parallel_requests = fields.IntField(null=True)
    tpm_limit = fields.BigIntField(null=True)
    rpm_limit = fields.BigIntField(null=True)
    model_max_budget = fields.JSONField(null=True)
    budget_duration = fields.CharField(max_length=32, null=True)
    budget_reset_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    created_by = fields.CharField(max_length=255, null=True)
    updated_at = fields.DatetimeField(auto_now=True)
    updated_by = fields.CharField(max_length=255, null=True)

    class Meta:
        table = "budgets"


class Organization(Model, Budgeted):
    """LiteLLM's `LiteLLM_OrganizationTable`: teams grouped under one budget and one list of models."""

    organization_id = fields.CharField(primary_key=True, max_length=255)
    organization_alias = fields.CharField(max_length=255, null=True)
    budget_id = fields.CharField(max_length=255, null=True)
    models = fields.JSONField(default=list)
    metadata = fields.JSONField(default=dict)
    tpm_limit = fields.BigIntField(null=True)
    rpm_limit = fields.BigIntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    created_by = fields.CharField(max_length=255, null=True)
    updated_at = fields.DatetimeField(auto_now=True)
    updated_by = fields.CharField(max_length=255, null=True)

    class Meta:
        table = "organizations"


class OrganizationMembership(Model):
    """A user in an organization, with a role (`org_admin`, `internal_user`, ...) and in-org spend."""

    id = fields.BigIntField(primary_key=True, generated=True)
    organization_id = fields.CharField(max_length=255, db_index=True)
    user_id = fields.CharField(max_length=255, db_index=True)
    user_role = fields.CharField(max_length=32, default="internal_user")
    spend = fields.FloatField(default=0.0)
    budget_id = fields.CharField(max_length=255, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "organization_memberships"
        unique_together = (("organization_id", "user_id"),)


class TeamMembership(Model):
    """A user in a team: their spend inside the team and their in-team budget (`max_budget_in_team`,
    held by a linked `Budget`), LiteLLM's `LiteLLM_TeamMembership`."""

    id = fields.BigIntField(primary_key=True, generated=True)
    team_id = fields.CharField(max_length=255, db_index=True)
    user_id = fields.CharField(max_length=255, db_index=True)
    spend = fields.FloatField(default=0.0)
    budget_id = fields.CharField(max_length=255, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "team_memberships"
        unique_together = (("team_id", "user_id"),)


class ProxyModel(Model):
    """A deployment added at runtime (`/model/new`, `store_model_in_db: true`), LiteLLM's
    `LiteLLM_ProxyModelTable`. `litellm_params` is JSON text whose credentials are encrypted."""

    model_id = fields.CharField(primary_key=True, max_length=255)
    model_name = fields.CharField(max_length=255, db_index=True)
    litellm_params = fields.TextField()
    model_info = fields.JSONField(default=dict)
    team_id = fields.CharField(max_length=255, null=True, db_index=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    created_by = fields.CharField(max_length=255, null=True)
    updated_at = fields.DatetimeField(auto_now=True)
    updated_by = fields.CharField(max_length=255, null=True)

    class Meta:
        table = "proxy_models"


class AuditLog(Model):
    """One administrative change. `hash` chains each row to the one before it."""

    seq = fields.BigIntField(primary_key=True, generated=True)
    id = fields.CharField(max_length=36, unique=True)
    updated_at = fields.DatetimeField(db_index=True)
    changed_by = fields.CharField(max_length=255, null=True, db_index=True)
    changed_by_api_key = fields.CharField(max_length=64, null=True)
    action = fields.CharField(max_length=16, db_index=True)
    table_name = fields.CharField(max_length=64, db_index=True)
    object_id = fields.CharField(max_length=255, db_index=True)
    before_value = fields.JSONField(null=True)
    updated_values = fields.JSONField(null=True)
    prev_hash = fields.CharField(max_length=64)
    hash = fields.CharField(max_length=64)

    class Meta:
        table = "audit_logs"


class SpendLog(Model):
    # One LLM call: success, failure or block. Read by /spend/logs; never holds a raw key.
    # (A comment, not a docstring: tortoise copies docstrings into SQL table comments.)

    id = fields.BigIntField(primary_key=True, generated=True)
    request_id = fields.CharField(max_length=255, db_index=True)
    call_type = fields.CharField(max_length=32)
    api_key = fields.CharField(max_length=64, null=True)
    spend = fields.FloatField(default=0.0)
    prompt_tokens = fields.IntField(default=0)
    completion_tokens = fields.IntField(default=0)
    total_tokens = fields.IntField(default=0)
    start_time = fields.DatetimeField(db_index=True)
    end_time = fields.DatetimeField()
    model = fields.CharField(max_length=255)
    model_group = fields.CharField(max_length=255, null=True)
    api_base = fields.CharField(max_length=512, null=True)
    user = fields.CharField(max_length=255, null=True)
    end_user = fields.CharField(max_length=255, null=True)
    team_id = fields.CharField(max_length=255, null=True)
    request_tags = fields.JSONField(default=list)
    metadata = fields.JSONField(default=dict)
    status = fields.CharField(max_length=16)
    http_status = fields.IntField(default=200)
    blocked_by = fields.CharField(max_length=255, null=True)
    usage_estimated = fields.BooleanField(default=False)
    # The request's input and the reply, with general_settings.store_prompts_in_spend_logs.
    messages = fields.JSONField(null=True)
    response = fields.JSONField(null=True)

    class Meta:
        table = "spend_logs"
        # The logs page filters on one of these and pages newest first: each filter walks its own
        # index in order (and serves any lookup by the column alone), a page costs the same at any depth (keyset paging) and any table size.
        indexes = tuple(Index(fields=(column, "start_time", "id")) for column in (
            "api_key", "user", "team_id", "end_user", "model_group", "status", "blocked_by"))


class SpendLogTag(Model):
    # One row per tag of a spend log, written with it, so that the logs page filters on a tag
    # through an index instead of reading every row's JSON.

    id = fields.BigIntField(primary_key=True, generated=True)
    log_id = fields.BigIntField()
    tag = fields.CharField(max_length=255)
    start_time = fields.DatetimeField()
    api_key = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "spend_log_tags"
        indexes = (Index(fields=("tag", "start_time", "log_id")), Index(fields=("api_key", "tag", "start_time", "log_id")))


class SpendTagDaily(Model):
    # Per-day, per-tag totals kept by the spend writer, so that /spend/tags never scans the logs.

    id = fields.BigIntField(primary_key=True, generated=True)
    day = fields.DateField()
    tag = fields.CharField(max_length=255)
    log_count = fields.BigIntField(default=0)
    total_spend = fields.FloatField(default=0.0)

    class Meta:
        table = "spend_tag_daily"
        unique_together = (("day", "tag"),)


class SpendKeyTagDaily(Model):
    # Per-day, per-key, per-tag totals, so that a key's own /spend/tags never scans the logs either.

    id = fields.BigIntField(primary_key=True, generated=True)
    day = fields.DateField()
    api_key = fields.CharField(max_length=64)
    tag = fields.CharField(max_length=255)
    log_count = fields.BigIntField(default=0)
    total_spend = fields.FloatField(default=0.0)

    class Meta:
        table = "spend_key_tag_daily"
        unique_together = (("day", "api_key", "tag"),)
        indexes = (Index(fields=("api_key", "day")),)  # a key's own totals, over a date range


class SpendDaily(Model):
    # Per-day totals by key, model and user, kept by the spend writer, so that /spend/logs with a
    # date range reads a few rows per day instead of every call. Missing key or user is "".
    id = fields.BigIntField(primary_key=True, generated=True)
    day = fields.DateField()
    api_key = fields.CharField(max_length=64, default="")
    model = fields.CharField(max_length=255)
    user = fields.CharField(max_length=255, default="")
    log_count = fields.BigIntField(default=0)
    total_spend = fields.FloatField(default=0.0)

    class Meta:
        table = "spend_daily"
        unique_together = (("day", "api_key", "model", "user"),)


class DeadLetter(Model):
    # What a background writer could not store (a spend row, an audit row), kept for an operator:
    # which writer, what it was (`ref`: request id or audit row id), why, and the value as JSON
    # text made safe (no raw key, cut to a bounded size). The table is kept to a bounded size.
    id = fields.BigIntField(primary_key=True, generated=True)
    created_at = fields.DatetimeField(db_index=True)
    source = fields.CharField(max_length=16, db_index=True)
    ref = fields.CharField(max_length=255, null=True)
    outcome = fields.CharField(max_length=16)
    reason = fields.TextField()
    payload = fields.TextField()

    class Meta:
        table = "dead_letters"


class StoredResponse(Model):
    # A Responses API reply kept (request `store` not false) for `previous_response_id`, retrieval,
    # deletion and its input items: the owner (sha256 of the virtual key; null when an admin made
    # it), the input items that led to it (earlier turns included, oldest first), the chat messages
    # to continue from, and the response object as the client got it. Rows past the retention
    # (`general_settings.responses_store_days`) are not served and are purged by `created_at`.
    id = fields.CharField(primary_key=True, max_length=64)
    api_key = fields.CharField(max_length=64, null=True, db_index=True)
    model = fields.CharField(max_length=255)
    created_at = fields.DatetimeField(db_index=True)
    status = fields.CharField(max_length=16)
    input_items = fields.JSONField(default=list)
    conversation = fields.JSONField(default=list)
    response = fields.JSONField(default=dict)

    class Meta:
        table = "stored_responses"


class UISession(Model):
    # An admin UI login (gateway/core/ui/sessions.py). `id` is an HMAC of the session cookie under
    # the master key: the cookie alone is not stored, and a new master key ends every session.
    # `token` is the sha256 of the virtual key that logged in (null: the master key or UI_PASSWORD).
    id = fields.CharField(primary_key=True, max_length=64)
    token = fields.CharField(max_length=64, null=True, db_index=True)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "ui_sessions"
