"""Deployments added at runtime (`/model/new`, or stored models with `store_model_in_db`): built
like the config's, installed beside them without disturbing requests under way, and re-read from
the model store when one changes here or elsewhere. Router (router.py) mixes this in.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gateway.core.providers.deployment import Deployment, DeploymentError, resolve
from gateway.core.settings import ModelEntry

log = logging.getLogger("gateway.router")


class RuntimeDeployments:
    """The runtime half of `Router`: it uses the router's `groups`, `config_ids`, `stored`, `pending`
    and `_install`, and keeps what it read last in `_stored_seen`."""

    def build(self, model_name: str, params: dict[str, Any], info: dict[str, Any]) -> Deployment:
        """A deployment from a `/model/new` body or a stored row; DeploymentError naming the key
        (`litellm_params.api_base: ...`) when it cannot be served."""
        from pydantic import ValidationError

        try:
            entry = ModelEntry.model_validate({"model_name": model_name, "litellm_params": params, "model_info": info})
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise DeploymentError(f"{where}: {first['msg']}") from None
        timeout, stream_total, providers, drop = self._build
        try:
            return resolve(0, entry, timeout, stream_total, providers, drop)
        except DeploymentError as exc:
            raise DeploymentError(str(exc).replace("model_list.0.", "", 1)) from None

    def _replaced(self, changes: dict[str, Deployment | None]) -> None:
        """Add, replace (in place, same id) or remove (None) runtime deployments by id."""
        groups: dict[str, list[Deployment]] = {}
        for name, deps in self.groups.items():
            for d in deps:
                if d.id in changes and d.id not in self.config_ids:
                    new = changes[d.id]
                    if new is not None and new.model_name == name:
                        groups.setdefault(name, []).append(new)
                        changes = {k: v for k, v in changes.items() if k != d.id}
                    continue
                groups.setdefault(name, []).append(d)
        for dep in changes.values():
            if dep is not None and dep.id not in self.config_ids:
                groups.setdefault(dep.model_name, []).append(dep)
        self._install(groups)

    def stored_changed(self, model_id: str) -> None:
        """A stored model changed here or elsewhere (the `model` invalidation): re-read it off the
        request path. A request that finds the reload under way waits for it (`settle`)."""
        if self.stored is None:
            return
        task = asyncio.get_running_loop().create_task(self._reload([model_id]))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def settle(self) -> None:
        """Wait for the reloads under way (none in steady state)."""
        while self.pending:
            await asyncio.gather(*list(self.pending), return_exceptions=True)

    async def _reload(self, model_ids: list[str] | None) -> None:
        """Re-read these stored models (None: all of them) and serve what the database holds now.
        One reload at a time, so that the last read wins."""
        if self._reload_lock is None:
            self._reload_lock = asyncio.Lock()
        async with self._reload_lock:
            try:
                rows = await (self.stored.read_all() if model_ids is None else self.stored.read_many(model_ids))
            except Exception as exc:
                log.error("stored models: could not read %s (%s: %s)", "all" if model_ids is None else model_ids,
                          type(exc).__name__, exc)
                return
            changes: dict[str, Deployment | None] = {}
            gone = set(self._stored_seen) if model_ids is None else set(model_ids)
            for row in rows:
                gone.discard(row.model_id)
                if model_ids is None and self._stored_seen.get(row.model_id) == row.version:
                    continue
                try:
                    changes[row.model_id] = self.build(row.model_name, row.params, row.deployment_info())
                except DeploymentError as exc:
                    log.error("stored model %s cannot be served: %s", row.model_id, exc)
                    continue
                self._stored_seen[row.model_id] = row.version
            for model_id in gone:
                changes[model_id] = None
                self._stored_seen.pop(model_id, None)
            if changes:
                self._replaced(changes)
                log.info("stored models: %d added, changed or removed", len(changes))

    async def load_stored(self) -> None:
        """At start-up, and now and then after (a missed invalidation is made good): every stored model."""
        await self._reload(None)
