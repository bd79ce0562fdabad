"""Models added at runtime (`/model/new`), kept in the `proxy_models` table.

A row's `litellm_params` is JSON text in which every provider credential (`api_key`,
`aws_secret_access_key`, `vertex_credentials`, `azure_ad_token`, `client_secret`, any `*_key`,
`*secret*`, `*token*` parameter, and an `api_base` that carries userinfo or secret query values)
is encrypted: Fernet, with a key derived by HKDF-SHA256 from `GATEWAY_SALT_KEY` /
`LITELLM_SALT_KEY`, else the master key. So a copy of the database alone gives no provider key,
and no route, log line or audit row ever shows one (`public_params` is what may be shown).
"""

from __future__ import annotations

import base64
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from gateway.core.providers.urls import MASK, safe_url

#: What marks an encrypted value in the stored JSON (the version names the derivation below).
PREFIX = "gateway-enc:v1:"
SECRET_NAMES = frozenset({"api_key", "aws_secret_access_key", "aws_access_key_id", "aws_session_token",
                          "vertex_credentials", "azure_ad_token", "client_secret", "password"})
SECRET_HEADER_WORDS = ("authorization", "key", "token", "secret", "cookie", "password")

log = logging.getLogger("gateway.models")


class ModelStoreError(ValueError):
    """A stored model that cannot be read back (wrong salt key, damaged row); never holds a secret."""


def enabled(settings: Any) -> bool:
    """`general_settings.store_model_in_db: true`, or LiteLLM's `STORE_MODEL_IN_DB=True` env var."""
    value = settings.file.general_settings.get("store_model_in_db")
    if value is None:
        value = os.environ.get("STORE_MODEL_IN_DB")
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"))


def is_secret(name: str) -> bool:
    """A `litellm_params` key that holds a credential (`max_tokens` and `*_per_token` prices do not)."""
    n = name.lower()
    if n in SECRET_NAMES or n.endswith(("_key", "_key_id")) or n == "key":
        return True
    if any(word in n for word in ("secret", "credential", "password")):
        return True
    return "token" in n and "tokens" not in n and "per_token" not in n


def _base_has_credentials(value: Any) -> bool:
    return isinstance(value, str) and safe_url(value) != value


def _cipher(salt_key: str) -> Any:
    # cryptography costs a worker 10 MB of memory: imported once a credential is stored or read.
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"gateway proxy_models",
                   info=b"litellm_params credentials").derive(salt_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def salt_key(settings: Any) -> str | None:
    """The secret model credentials are encrypted with: the salt key, else the master key."""
    return os.environ.get("GATEWAY_SALT_KEY") or os.environ.get("LITELLM_SALT_KEY") or settings.master_key


class Vault:
    """Encrypts and decrypts the credentials of one gateway's stored models."""

    def __init__(self, key: str | None) -> None:
        self._key = key
        self._cipher: Any = None

    @property
    def _fernet(self) -> Any:
        """The cipher, made on first use (None without a key)."""
        if self._cipher is None and self._key:
            self._cipher = _cipher(self._key)
        return self._cipher

    def _needs(self, name: str, value: Any) -> bool:
        return value is not None and (is_secret(name) or (name == "api_base" and _base_has_credentials(value)))

    def encode(self, params: dict[str, Any]) -> str:
        """`litellm_params` as stored: JSON text with each credential encrypted."""
        out: dict[str, Any] = {}
        for name, value in params.items():
            if self._needs(name, value):
                if self._fernet is None:
                    raise ModelStoreError(f"litellm_params.{name}: set GATEWAY_SALT_KEY (or LITELLM_SALT_KEY) or a "
                                          "master key, so that model credentials can be stored encrypted")
                value = PREFIX + self._fernet.encrypt(orjson.dumps(value)).decode()
            out[name] = value
        return orjson.dumps(out).decode()

    def decode(self, text: str, model_id: str) -> dict[str, Any]:
        """The stored text back to `litellm_params`, credentials decrypted."""
        try:
            params = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise ModelStoreError(f"model {model_id}: litellm_params is not JSON") from None
        if not isinstance(params, dict):
            raise ModelStoreError(f"model {model_id}: litellm_params is not a JSON object")
        for name, value in params.items():
            if isinstance(value, str) and value.startswith(PREFIX):
                if self._fernet is None:
                    raise ModelStoreError(f"model {model_id}: litellm_params.{name} is encrypted and no salt or "
                                          "master key is set")
                from cryptography.fernet import InvalidToken

                try:
                    params[name] = orjson.loads(self._fernet.decrypt(value[len(PREFIX):].encode()))
                except (InvalidToken, orjson.JSONDecodeError):
                    raise ModelStoreError(f"model {model_id}: litellm_params.{name} cannot be decrypted (was the "
                                          "salt key or master key changed?)") from None
        return params


def public_params(params: dict[str, Any]) -> dict[str, Any]:
    """`litellm_params` as any route, log or audit row may show them: credentials out, `api_base`
    without userinfo or secret query values, secret-looking `extra_headers` masked."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        if is_secret(name):
            continue
        if name == "api_base" and isinstance(value, str):
            value = safe_url(value)
        elif name == "extra_headers" and isinstance(value, dict):
            value = {k: MASK if any(w in k.lower() for w in SECRET_HEADER_WORDS) else v for k, v in value.items()}
        out[name] = value
    return out


def audit_params(params: dict[str, Any]) -> dict[str, Any]:
    """`litellm_params` for an audit row: each credential shown as `***` (so a reader sees it was set)."""
    out = public_params(params)
    for name, value in params.items():
        if is_secret(name) and value is not None:
            out[name] = MASK
    return out


@dataclass
class StoredModel:
    """One row of `proxy_models`, its credentials decrypted (hold it in memory only)."""

    model_id: str
    model_name: str
    params: dict[str, Any]
    model_info: dict[str, Any]
    team_id: str | None
    created_at: datetime | None
    created_by: str | None
    updated_at: datetime | None
    updated_by: str | None

    @property
    def version(self) -> str:
        return self.updated_at.isoformat() if self.updated_at is not None else ""

    def deployment_info(self) -> dict[str, Any]:
        """`model_info` as the router serves it: the stored one, with its id, `db_model: true`
        (LiteLLM's mark of a model from the database), its team and who made it when."""
        info = {**self.model_info, "id": self.model_id, "db_model": True}
        if self.team_id:
            info["team_id"] = self.team_id
        for name in ("created_by", "updated_by"):
            info[name] = getattr(self, name)
        for name in ("created_at", "updated_at"):
            value = getattr(self, name)
            info[name] = value.isoformat() if value is not None else None
        return info


class Store:
    """Reads stored models for the router (off the request path: start-up and invalidations)."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    def row(self, row: Any) -> StoredModel:
        return StoredModel(model_id=row.model_id, model_name=row.model_name,
                           params=self.vault.decode(row.litellm_params, row.model_id),
                           model_info=dict(row.model_info or {}), team_id=row.team_id, created_at=row.created_at,
                           created_by=row.created_by, updated_at=row.updated_at, updated_by=row.updated_by)

    def _rows(self, rows: list[Any]) -> list[StoredModel]:
        out = []
        for row in rows:
            try:
                out.append(self.row(row))
            except ModelStoreError as exc:  # one unreadable row never stops the others
                log.error("stored model not served: %s", exc)
        return out

    async def read_many(self, model_ids: list[str]) -> list[StoredModel]:
        from gateway.core.db.models import ProxyModel

        return self._rows(list(await ProxyModel.filter(model_id__in=model_ids)))

    async def read_all(self) -> list[StoredModel]:
        from gateway.core.db.models import ProxyModel

        return self._rows(list(await ProxyModel.all().order_by("created_at", "model_id")))
