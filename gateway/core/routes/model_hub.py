"""The model hub: every model group with its provider, mode, limits, prices and features.

`GET /public/model_hub` is the JSON (LiteLLM's field names, so its users' scripts keep working, plus
prices per million tokens); `GET /model_hub` is a page people read, built from the same list. Both are
public with `general_settings.enable_public_model_hub: true` and admin only otherwise (`access.py`).
The page is one self-contained response (styles, script and data inline; nothing is fetched), so a
strict Content-Security-Policy can say so.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable

import orjson
from quart import Blueprint, Response, current_app

from gateway.core.route_groups import MODEL_HUB, declare

bp = declare(Blueprint("model_hub", __name__), MODEL_HUB)

FLAGS = ("supports_streaming", "supports_function_calling", "supports_vision")
STREAMING_MODES = ("chat", "completion")
PAGE_DIR = "hub_page"


def _mode(dep: Any, listed: Any) -> str | None:
    """model_info's `mode`, else the price table's, else a guess from the name."""
    if isinstance(dep.model_info.get("mode"), str):
        return dep.model_info["mode"]
    if listed is not None:
        return listed.mode
    if dep.provider in ("text-completion-openai", "azure_text"):
        return "completion"
    name = dep.upstream_model.lower()
    if "embed" in name:
        return "embedding"
    return "rerank" if "rerank" in name else "chat"


def _first(kind: type, *values: Any) -> Any:
    """The first value of that kind (a bool is not a count; a YAML 8192.0 is)."""
    for value in values:
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return int(value)
    return None


def _describe(gw: Any, dep: Any) -> dict[str, Any]:
    """What one deployment offers: model_info first, then the price table; None when unknown."""
    info = dep.model_info
    listed = gw.prices.lookup(dep.provider, dep.upstream_model)
    price = gw.prices.price_for(dep)  # what spend charges: the deployment's override, else the table
    mode = _mode(dep, listed)
    table = {k: getattr(listed, k, None) for k in ("max_input_tokens", "max_output_tokens", *FLAGS)}
    out: dict[str, Any] = {
        "provider": dep.provider,
        "mode": mode,
        "max_input_tokens": _first(int, info.get("max_input_tokens"), table["max_input_tokens"]),
        # LiteLLM's model_info `max_tokens` is the older name of max_output_tokens.
        "max_output_tokens": _first(int, info.get("max_output_tokens"), info.get("max_tokens"),
                                    table["max_output_tokens"]),
        "input_cost_per_token": price.input_cost_per_token if price else None,
        "output_cost_per_token": price.output_cost_per_token if price else None,
    }
    for flag in FLAGS:
        out[flag] = _first(bool, info.get(flag), table[flag])
    if out["supports_streaming"] is None and mode is not None:
        out["supports_streaming"] = mode in STREAMING_MODES  # the gateway streams every chat/completion call
    for key, value in info.items():  # other flags an operator wrote in model_info (supports_pdf_input ...)
        if key.startswith("supports_") and isinstance(value, bool):
            out.setdefault(key, value)
    return out


def _smallest(values: Iterable[Any]) -> Any:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def _largest(values: Iterable[Any]) -> Any:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _all_of(values: Iterable[bool | None]) -> bool | None:
    """True when every deployment is known to support it, False when one is known not to."""
    values = list(values)
    if False in values:
        return False
    return True if values and all(v is True for v in values) else None


def _per_million(cost: float | None) -> float | None:
    return None if cost is None else round(cost * 1_000_000, 6)


def hub_entries(gw: Any) -> list[dict[str, Any]]:
    """One entry per model group, in config order. A group of several deployments shows what holds
    wherever a request lands: the smallest limits, the highest prices, a feature only if all have it."""
    entries = []
    for name, deployments in gw.router.groups.items():
        parts = [_describe(gw, d) for d in deployments]
        entry: dict[str, Any] = {
            "model_group": name,
            "providers": list(dict.fromkeys(p["provider"] for p in parts)),
            "mode": next((p["mode"] for p in parts if p["mode"]), None),
            "max_input_tokens": _smallest(p["max_input_tokens"] for p in parts),
            "max_output_tokens": _smallest(p["max_output_tokens"] for p in parts),
            "input_cost_per_token": _largest(p["input_cost_per_token"] for p in parts),
            "output_cost_per_token": _largest(p["output_cost_per_token"] for p in parts),
        }
        entry["input_cost_per_million_tokens"] = _per_million(entry["input_cost_per_token"])
        entry["output_cost_per_million_tokens"] = _per_million(entry["output_cost_per_token"])
        flags = dict.fromkeys([*FLAGS, *(k for p in parts for k in p if k.startswith("supports_"))])
        for flag in flags:
            entry[flag] = _all_of(p.get(flag) for p in parts)
        entries.append(entry)
    return entries


def branding(env: Any) -> tuple[str, str]:
    """The gateway's name and tagline as the API docs show them (DOCS_TITLE, DOCS_DESCRIPTION)."""
    return env.docs_title or "gateway", env.docs_description or ""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@lru_cache(maxsize=1)
def _page_parts() -> tuple[str, str, str, str]:
    """The template, its style and script (package data), and the CSP that allows exactly those."""
    folder = resources.files("gateway.core.routes").joinpath(PAGE_DIR)
    template, style, script = (folder.joinpath(f).read_text(encoding="utf-8")
                               for f in ("index.html", "hub.css", "hub.js"))
    csp = (f"default-src 'none'; style-src {_csp_hash(style)}; script-src {_csp_hash(script)}; "
           "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return template, style, script, csp


def render_page(entries: list[dict[str, Any]], env: Any) -> tuple[str, str]:
    """The page's HTML and its Content-Security-Policy."""
    template, style, script, csp = _page_parts()
    title, description = branding(env)
    # JSON inside <script>: no "<" may survive, or "</script>" in a model name would end the block.
    data = orjson.dumps(entries).decode().replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    values = {"TITLE": html.escape(title), "DESCRIPTION": html.escape(description), "STYLE": style,
              "SCRIPT": script, "DATA": data}
    return re.sub(r"\{\{(TITLE|DESCRIPTION|STYLE|SCRIPT|DATA)\}\}", lambda m: values[m.group(1)], template), csp


@bp.get("/public/model_hub")
async def model_hub_json() -> Any:
    return hub_entries(current_app.gateway)


@bp.get("/model_hub")
async def model_hub_page() -> Any:
    gw = current_app.gateway
    page, csp = render_page(hub_entries(gw), gw.settings.env)
    return Response(page, content_type="text/html; charset=utf-8", headers={
        "content-security-policy": csp, "x-content-type-options": "nosniff", "referrer-policy": "no-referrer"})
