"""`/key/*`: virtual keys. The raw key is returned once, by generate and regenerate; only its
sha256 (`token`) and a short name are kept. Calls accept the raw key or the token. What a user may
do with their own keys (generate, delete, list) is key_self_service.py's."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, g, request
from quart_schema import document_querystring, document_request, document_response, tag_blueprint
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from gateway.core.db.models import Key
from gateway.core.keys import display_of, generate_key, hash_key, key_name, token_of
from gateway.core.management import budgets
from gateway.core.management.common import (
    check_guardrail_metadata,
    check_query,
    iso,
    next_reset,
    now,
    page_args,
    parse_duration,
    read_body,
    record_change,
    require_admin,
    with_guardrails,
    with_metadata_field,
)
from gateway.core.management.key_self_service import check_own_key, self_service
from gateway.core.route_groups import INFO, MANAGEMENT, declare
from gateway.errors import BadRequestError, NotFoundError, PermissionDeniedError

bp = declare(Blueprint("keys", __name__), MANAGEMENT, info=INFO)
bp.before_request(check_query)
tag_blueprint(bp, ["Keys"])

EDITABLE = ("key_alias", "models", "max_budget", "budget_duration", "user_id", "team_id", "metadata",
            "permissions", "tpm_limit", "rpm_limit", "max_parallel_requests", "tags", "blocked", "spend", "budget_id")


class KeyFields(BaseModel):
    model_config = ConfigDict(extra="ignore")

    key_alias: str | None = None
    duration: str | None = None
    models: list[str] | None = None
    max_budget: float | None = Field(None, ge=0)
    budget_duration: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    metadata: dict[str, Any] | None = None
    permissions: dict[str, Any] | None = None
    tpm_limit: int | None = Field(None, ge=0)
    rpm_limit: int | None = Field(None, ge=0)
    max_parallel_requests: int | None = Field(None, ge=0, le=2**31 - 1)  # an INTEGER column
    tags: list[str] | None = None
    blocked: bool | None = None
    guardrails: list[str] | None = Field(None, description="Guardrails switched on for this key's requests "
                                         "(kept in metadata.guardrails)")
    budget_id: str | None = Field(None, description="A budget (/budget/new) whose max_budget, rpm_limit, tpm_limit "
                                  "and max_parallel_requests apply where the key sets none of its own")
    aliases: dict[str, str] | None = Field(None, description="Model names this key's callers may use for model "
                                           "groups, e.g. {\"smart\": \"gpt-4o\"} (kept in metadata.aliases)")


class GenerateBody(KeyFields):
    key: str | None = Field(None, description="A key of your own (must start with sk-)")


class UpdateBody(KeyFields):
    key: str
    spend: float | None = Field(None, ge=0)


class KeyRef(BaseModel):
    key: str


class DeleteBody(BaseModel):
    keys: list[str] | None = None
    key_aliases: list[str] | None = None


class KeyInfo(BaseModel):
    """A key as management calls show it: never the raw key (`token` is its sha256)."""

    token: str
    key_name: str
    key_alias: str | None
    spend: float
    max_budget: float | None
    budget_duration: str | None
    budget_reset_at: str | None
    expires: str | None
    models: list[str]
    user_id: str | None
    team_id: str | None
    metadata: dict[str, Any]
    permissions: dict[str, Any]
    tags: list[str]
    tpm_limit: int | None
    rpm_limit: int | None
    max_parallel_requests: int | None
    blocked: bool
    guardrails: list[str] | dict[str, bool] | None = None
    aliases: dict[str, str] | None = None
    budget_id: str | None = None
    created_by: str | None
    created_at: str | None
    updated_at: str | None


class NewKey(KeyInfo):
    """The key's record plus the raw key, shown this once; `token_id` is the hash again (LiteLLM's name)."""

    key: str
    token_id: str | None = None
    duration: str | None = None


class KeyInfoReply(BaseModel):
    key: str
    info: KeyInfo


class KeyInfoQuery(BaseModel):
    key: str | None = Field(None, description="The raw key or its hash; default: the caller's own key")


class KeyListQuery(BaseModel):
    page: int | None = Field(None, ge=1)
    size: int | None = Field(None, ge=1, le=1000, description="Keys per page (default 100)")
    user_id: str | None = None
    team_id: str | None = None
    key_alias: str | None = None
    return_full_object: bool | None = Field(None, description="true: whole records instead of hashes")


class KeyList(BaseModel):
    keys: list[str | KeyInfo]
    total_count: int
    current_page: int
    total_pages: int


class DeletedKeys(BaseModel):
    deleted_keys: list[str]


def key_info(k: Key) -> dict[str, Any]:
    """A key as management calls show it: everything but the raw key, which is never stored."""
    return {
        "token": k.token, "key_name": k.key_name, "key_alias": k.key_alias, "spend": k.spend,
        "max_budget": k.max_budget, "budget_duration": k.budget_duration,
        "budget_reset_at": iso(k.budget_reset_at), "expires": iso(k.expires), "models": k.models,
        "user_id": k.user_id, "team_id": k.team_id, "metadata": k.metadata, "permissions": k.permissions,
        "tags": k.tags, "tpm_limit": k.tpm_limit, "rpm_limit": k.rpm_limit,
        "max_parallel_requests": k.max_parallel_requests, "blocked": k.blocked,
        "guardrails": (k.metadata or {}).get("guardrails"), "aliases": (k.metadata or {}).get("aliases"),
        "budget_id": k.budget_id,
        "created_by": k.created_by,
        "created_at": iso(k.created_at), "updated_at": iso(k.updated_at),
    }


async def find(ref: str) -> Key:
    k = await Key.get_or_none(token=token_of(ref))
    if k is None:
        raise NotFoundError(f"Key not found: {display_of(ref)}", param="key")
    return k


def _check_meta(body: KeyFields) -> None:
    meta = body.metadata or {}
    if "tags" in meta and not (isinstance(meta["tags"], list) and all(isinstance(t, str) for t in meta["tags"])):
        raise BadRequestError("metadata.tags must be a list of strings", param="metadata.tags")
    if "spend_logs_metadata" in meta and not isinstance(meta["spend_logs_metadata"], dict):
        raise BadRequestError("metadata.spend_logs_metadata must be an object", param="metadata.spend_logs_metadata")
    check_guardrail_metadata(body.metadata)


async def _alias_free(alias: str | None, token: str | None = None) -> None:
    if alias is None:
        return
    clash = await Key.get_or_none(key_alias=alias)
    if clash is not None and clash.token != token:
        raise BadRequestError(f"Key with alias '{alias}' already exists.", param="key_alias")


@bp.post("/key/generate")
@document_request(GenerateBody)
@document_response(NewKey)
async def generate() -> Any:
    """Create a virtual key (admin; an internal user for themselves). The raw key is in the reply
    once, and never again."""
    me = self_service("generate")
    body, sent = await read_body(GenerateBody)
    if me is not None:
        await check_own_key(body, sent, me)
    _check_meta(body)
    if body.key is not None and (not body.key.startswith("sk-") or len(body.key) < 12):
        raise BadRequestError("key must start with sk- and be at least 12 characters long", param="key")
    raw = body.key or generate_key()
    expires = now() + parse_duration(body.duration, "duration") if body.duration else None
    await _alias_free(body.key_alias)
    await budgets.linked(body.budget_id)
    fields = {f: getattr(body, f) for f in EDITABLE if f != "spend" and getattr(body, f, None) is not None}
    if body.guardrails is not None:
        fields["metadata"] = with_guardrails(body.metadata, body.guardrails)
    if body.aliases is not None:
        fields["metadata"] = with_metadata_field(fields.get("metadata", body.metadata), "aliases", body.aliases)
    try:
        k = await Key.create(token=hash_key(raw), key_name=key_name(raw), expires=expires,
                             budget_reset_at=next_reset(body.budget_duration), created_by=g.principal.user_id, **fields)
    except IntegrityError:
        raise BadRequestError("A key with this value already exists.", param="key") from None
    info = key_info(k)
    await record_change("key", "created", k.token, None, info)
    return {**info, "key": raw, "token_id": k.token, "duration": body.duration}


@bp.post("/key/update")
@document_request(UpdateBody)
@document_response(KeyInfo)
async def update() -> Any:
    """Change a key (admin): only the fields sent change; a null puts the default back."""
    require_admin()
    body, sent = await read_body(UpdateBody)
    _check_meta(body)
    k = await find(body.key)
    before = key_info(k)
    changes = {f: getattr(body, f) for f in EDITABLE if f in sent}
    if changes.get("budget_id") is not None:
        await budgets.linked(changes["budget_id"])
    if "key_alias" in changes:
        await _alias_free(changes["key_alias"], k.token)
    if "duration" in sent:
        changes["expires"] = now() + parse_duration(body.duration, "duration") if body.duration else None
    if "budget_duration" in sent:
        changes["budget_reset_at"] = next_reset(body.budget_duration)
    for f in ("models", "metadata", "permissions", "tags"):
        if f in changes and changes[f] is None:
            changes[f] = [] if f in ("models", "tags") else {}
    if "guardrails" in sent:
        changes["metadata"] = with_guardrails(changes["metadata"] if "metadata" in changes else k.metadata,
                                              body.guardrails)
    if "aliases" in sent:
        changes["metadata"] = with_metadata_field(changes["metadata"] if "metadata" in changes else k.metadata,
                                                  "aliases", body.aliases or None)
    if "spend" in changes and changes["spend"] is None:
        changes["spend"] = 0.0
    if "blocked" in changes and changes["blocked"] is None:
        changes["blocked"] = False
    k.update_from_dict(changes)
    await k.save()
    after = key_info(k)
    await record_change("key", "updated", k.token, before, {f: after[f] for f in changes if f in after})
    return after


async def _set_blocked(blocked: bool) -> Any:
    require_admin()
    body, _ = await read_body(KeyRef)
    k = await find(body.key)
    before = key_info(k)
    k.blocked = blocked
    await k.save(update_fields=["blocked", "updated_at"])
    await record_change("key", "blocked" if blocked else "unblocked", k.token, before, {"blocked": blocked})
    return key_info(k)


@bp.post("/key/block")
@document_request(KeyRef)
@document_response(KeyInfo)
async def block() -> Any:
    """Block a key (admin): its calls are refused at once."""
    return await _set_blocked(True)


@bp.post("/key/unblock")
@document_request(KeyRef)
@document_response(KeyInfo)
async def unblock() -> Any:
    """Unblock a key (admin)."""
    return await _set_blocked(False)


@bp.post("/key/delete")
@document_request(DeleteBody)
@document_response(DeletedKeys)
async def delete() -> Any:
    """Delete keys by raw key, hash or alias (admin; an internal user their own keys only)."""
    me = self_service("delete")
    body, _ = await read_body(DeleteBody)
    refs = list(body.keys or [])
    found: list[Key] = []
    for ref in refs:
        found.append(await find(ref))
    for alias in body.key_aliases or []:
        k = await Key.get_or_none(key_alias=alias)
        if k is None:
            raise NotFoundError(f"Key not found: alias {alias}", param="key_aliases")
        found.append(k)
        refs.append(alias)
    if not found:
        raise BadRequestError("Pass keys (raw keys or their hashes) or key_aliases to delete", param="keys")
    if me is not None and any(k.user_id != me for k in found):  # nothing is deleted then
        raise PermissionDeniedError("You can only delete your own keys", param="keys")
    for k in found:
        before = key_info(k)
        await k.delete()
        await record_change("key", "deleted", k.token, before, None)
    return {"deleted_keys": refs}


@bp.post("/key/regenerate")
@bp.post("/key/<path:ref>/regenerate")
@document_request(KeyRef)
@document_response(NewKey)
async def regenerate(ref: str | None = None) -> Any:
    """A new raw key for the same record; the old one fails at once."""
    require_admin()
    if ref is None:
        body, _ = await read_body(KeyRef)
        ref = body.key
    old = await find(ref)
    raw = generate_key()
    before = key_info(old)
    async with in_transaction():
        data = {f: getattr(old, f) for f in (*EDITABLE, "expires", "budget_reset_at", "created_by")}
        new = await Key.create(token=hash_key(raw), key_name=key_name(raw), **{**data, "key_alias": None})
        await Key.filter(token=old.token).delete()
        if old.key_alias:
            new.key_alias = old.key_alias
            await new.save(update_fields=["key_alias"])
    await record_change("key", "regenerated", old.token, before, {"token": new.token, "key_name": new.key_name})
    return {**key_info(new), "key": raw}


@bp.get("/key/info")
@document_querystring(KeyInfoQuery)
@document_response(KeyInfoReply)
async def info() -> Any:
    """A key's record; a non-admin key may read only itself."""
    ref = request.args.get("key")
    principal = g.principal
    if ref is None:
        if principal.api_key is None:
            raise BadRequestError("Pass ?key=<key or hash>", param="key")
        token = principal.api_key
        ref = token
    else:
        token = token_of(ref)
    k = await find(ref)  # an unknown key is a 404 whoever asks
    if not principal.is_admin and token != principal.api_key and not (principal.user_id and
                                                                     k.user_id == principal.user_id):
        raise PermissionDeniedError("You can only view information about your own key")
    return {"key": ref, "info": key_info(k)}


@bp.get("/key/list")
@document_querystring(KeyListQuery)
@document_response(KeyList)
async def list_keys() -> Any:
    """Keys, oldest first, paginated (admin): hashes, or whole records with return_full_object.
    An internal user sees their own keys only."""
    me = self_service("list")
    args = request.args
    page, size = page_args("size", 100)
    query = Key.all()
    if me is not None and g.principal.user_role != "proxy_admin_viewer":
        if args.get("user_id") and args["user_id"] != me:
            raise PermissionDeniedError("You can only list your own keys", param="user_id")
        query = query.filter(user_id=me)
    for f in ("user_id", "team_id", "key_alias"):
        if args.get(f):
            query = query.filter(**{f: args[f]})
    total = await query.count()
    rows = await query.order_by("created_at", "token").offset((page - 1) * size).limit(size)
    full = args.get("return_full_object", "false").lower() == "true"
    return {"keys": [key_info(k) if full else k.token for k in rows], "total_count": total,
            "current_page": page, "total_pages": max(1, math.ceil(total / size))}
