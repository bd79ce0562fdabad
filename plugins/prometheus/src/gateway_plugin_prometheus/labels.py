"""Label values, bounded and free of secrets.

Every series a label value opens lives until the process ends, so no value may come from a client
without a bound: a model name is a label only when the config defines it (or, for an alias or a
wildcard route's concrete name, up to `prometheus_label_value_limit` names per worker), user and
end-user ids only when the config asks, and keys never: `hashed_api_key` is a prefix of the key's
sha256. A deployment's `api_base` loses any userinfo and query string on its way to a label.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: What a value past its label's bound is counted under (LiteLLM uses the same word).
OTHER = "other"
#: Longest label value kept (aliases and model names are free text).
MAX_LABEL_CHARS = 200
#: Hex digits of the key's sha256 shown as `hashed_api_key`.
KEY_HASH_CHARS = 16


def clip(value: Any) -> str:
    """A label value: "" for None (Prometheus treats an empty label as absent), at most 200 chars."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return text[:MAX_LABEL_CHARS]


def safe_base(api_base: Any) -> str:
    """An api_base as a label: scheme, host, port and path only (no credentials, no query)."""
    if not isinstance(api_base, str) or not api_base:
        return ""
    try:
        parts = urlsplit(api_base)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
        return clip(urlunsplit((parts.scheme, netloc, parts.path, "", "")))
    except ValueError:
        return ""


class Bounded:
    """The distinct values one label has taken in this worker, at most `limit`; later newcomers
    are counted as `other`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self.seen or not value:
            return value
        if len(self.seen) >= self.limit:
            return OTHER
        self.seen.add(value)
        return value


@dataclass(frozen=True, slots=True)
class DeploymentLabels:
    """What names a deployment in labels."""

    model_group: str
    model_id: str
    provider: str
    upstream_model: str
    api_base: str


class LabelMaker:
    """Turns a call's context into label values, within the config's bounds."""

    def __init__(self, config: Any, gateway: Any) -> None:
        limit = config.prometheus_label_value_limit
        self.config = config
        self.gateway = gateway
        self.users = Bounded(limit)
        self.end_users = Bounded(limit)
        self.models = Bounded(limit)
        self.deployment_ids = Bounded(limit)
        master = getattr(gateway, "master_key", None)
        self.master_hash = hashlib.sha256(master.encode()).hexdigest() if isinstance(master, str) and master else None
        self._groups: Any = None
        self._by_id: dict[str, Any] = {}
        self._labels_by_id: dict[str, DeploymentLabels] = {}

    # -- who called ------------------------------------------------------------------------------
    def caller(self, ctx: Any) -> dict[str, str]:
        """LiteLLM's caller labels, every one present; those the config leaves out are ""."""
        p = ctx.principal
        cfg = self.config
        key_hash = ""
        if cfg.prometheus_include_key_hash and p is not None:
            full = p.api_key or (self.master_hash if p.is_admin else None)
            key_hash = full[:KEY_HASH_CHARS] if full else ""
        user = clip(p.user_id) if p is not None and cfg.prometheus_include_user else ""
        end_user = ""
        if cfg.enable_end_user_cost_tracking_prometheus_only and isinstance(ctx.end_user, str):
            end_user = clip(ctx.end_user)
        return {
            "api_key_alias": clip(p.key_alias) if p is not None else "",
            "team": clip(p.team_id) if p is not None else "",
            "team_alias": clip(p.team_alias) if p is not None else "",
            "hashed_api_key": key_hash,
            "user": self.users(user),
            "end_user": self.end_users(end_user),
        }

    def key_known(self, caller: dict[str, str]) -> bool:
        """Whether per-key values (remaining limits) can be told apart: an alias or a key hash."""
        return bool(caller["api_key_alias"] or caller["hashed_api_key"])

    # -- which model -----------------------------------------------------------------------------
    def model_group(self, ctx: Any, status: str) -> str:
        """The requested model group; a name the config does not define (an alias, a wildcard's
        concrete name) within the bound; a name that reached no deployment and failed (an unknown
        model, refused with 400) is `other`."""
        name = ctx.model if isinstance(ctx.model, str) else ""
        if name in self._groups_now():
            return clip(name)
        if ctx.deployment is None and status == "failure":
            return OTHER
        return self.models(clip(name))

    def _groups_now(self) -> dict[str, Any]:
        router = getattr(self.gateway, "router", None)
        groups = getattr(router, "groups", None)
        return groups if isinstance(groups, dict) else {}

    def deployment(self, ctx: Any, model_id: Any, group: Any = None) -> DeploymentLabels:
        """Labels of the deployment `model_id` (one of `ctx.attempts`): the configured deployment
        of that id, else the call's own deployment, else only its (bounded) id."""
        ident = str(model_id) if model_id is not None else ""
        known = self._configured(ident)
        if known is not None:
            return known
        dep = ctx.deployment if ctx.deployment is not None and str(ctx.deployment.id) == ident else None
        bounded_id = self.deployment_ids(clip(ident))
        if dep is None:
            return DeploymentLabels(self.models(clip(group)) if group else "", bounded_id, "", "", "")
        # A wildcard's concrete deployment: its names come from the request, so they are bounded.
        return DeploymentLabels(self.models(clip(dep.model_name)), bounded_id, clip(dep.provider),
                                self.models(clip(dep.upstream_model)), safe_base(dep.api_base))

    def _configured(self, ident: str) -> DeploymentLabels | None:
        """The labels of a deployment the config (or `/model/new`) defines, made once per id."""
        groups = self._groups_now()
        if groups is not self._groups:  # models added or removed at runtime: index again
            self._groups = groups
            self._by_id = {str(d.id): d for deps in groups.values() for d in deps}
            self._labels_by_id = {}
        made = self._labels_by_id.get(ident)
        if made is None:
            dep = self._by_id.get(ident)
            if dep is None:
                return None
            made = self._labels_by_id[ident] = DeploymentLabels(
                clip(dep.model_name), clip(dep.id), clip(dep.provider), clip(dep.upstream_model),
                safe_base(dep.api_base))
        return made

    def upstream_model(self, ctx: Any) -> str:
        """The model the upstream was asked for (LiteLLM's `model` label), else the group."""
        dep = ctx.deployment
        if dep is None:
            return ""
        if self._configured(str(dep.id)) is not None:
            return clip(dep.upstream_model)
        return self.models(clip(dep.upstream_model))
