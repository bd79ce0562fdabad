"""Which keys of the config's sections the gateway implements, ignores (with a warning) or refuses.

A LiteLLM config must start here unchanged, yet a misspelt key must never be ignored silently. So
each key of `general_settings`, `litellm_settings`, `router_settings` (and each top-level section)
is one of:

- implemented by the core (`IMPLEMENTED`);
- taken by a plugin: the flat keys an enabled plugin's `Config` declares (found at start-up, see
  `plugins.flat_keys`), plus LiteLLM's keys that our first-party plugins serve (`PLUGIN_KEYS`),
  which are known even when that plugin is off;
- a LiteLLM key we know and do not implement (`IGNORED`): start-up goes on, and one WARNING per
  start lists every such key of the file;
- a LiteLLM key we refuse on purpose (`REFUSED`): ignoring it would leave the gateway more open,
  or more expensive, than the file says;
- anything else is an error, with a "did you mean" from the section's known keys.

`docs/configuration.md` shows this table; `python -m gateway.core.config_keys --write` regenerates
that part of the page, and a test fails when the two disagree.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SECTIONS = ("general_settings", "litellm_settings", "router_settings")
#: The sections whose keys plugins may take (`Settings.flat_settings`).
FLAT_SECTIONS = ("general_settings", "litellm_settings")
TOP_LEVEL = "(top level)"

_ROUTING = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks", "default_fallbacks",
            "model_group_alias", "cooldown_time", "allowed_fails", "retry_after")

#: Keys the core reads (docs/configuration.md describes each one).
IMPLEMENTED: dict[str, frozenset[str]] = {
    TOP_LEVEL: frozenset({"model_list", "litellm_settings", "general_settings", "router_settings",
                          "environment_variables", "plugins", "guardrails"}),
    "general_settings": frozenset({
        "master_key", "database_url", "database_connection_timeout", "database_query_timeout_s",
        "database_connection_pool_limit", "default_user_id", "user_api_key_cache_ttl", "budget_reset_interval_s",
        "budget_default_max_tokens", "budget_reservation_ttl_s", "rate_limit_redis_failure", "enforced_params",
        "public_routes", "admin_only_routes", "allowed_routes", "enable_public_model_hub", "disable_spend_logs",
        "store_prompts_in_spend_logs", "spend_batch_size", "spend_flush_interval_s", "spend_max_queued",
        "dead_letters_keep", "responses_store_days", "pass_through_endpoints", "pass_through_request_timeout",
        "store_model_in_db", "health_check_timeout", "health_check_details", "background_health_checks",
        "health_check_interval", "health_check_concurrency", "access_log", "log_levels",
        "disable_admin_ui", "ui_path",
    }),
    "litellm_settings": frozenset({
        "callbacks", "success_callback", "failure_callback", "num_retries", "request_timeout", "guardrails", "drop_params", "cache", "cache_params",
        "store_audit_logs", "json_logs", *_ROUTING,
    }),
    "router_settings": frozenset({
        "num_retries", "timeout", "stream_total_timeout", "routing_strategy", "routing_strategy_args",
        "lowest_latency_buffer", *_ROUTING,
    }),
}

#: LiteLLM's flat keys that a first-party plugin serves: key -> (plugin, distribution). They are
#: implemented while that plugin is on; otherwise they are ignored with the warning, which names
#: the plugin. `REQUIRED_PLUGIN_KEYS` stop start-up instead when the plugin is not installed: a
#: size limit the file asks for must not silently vanish (as `USE_AWS_KMS` without its plugin).
PLUGIN_KEYS: dict[str, tuple[str, str]] = {
    "banned_keywords_list": ("banned_keywords", "gateway-plugin-banned-keywords"),
    "blocked_user_list": ("blocked_user_check", "gateway-plugin-blocked-users"),
    "llm_guard_mode": ("llmguard_moderations", "gateway-plugin-llmguard"),
    "llamaguard_model_name": ("llamaguard_moderations", "gateway-plugin-llamaguard"),
    "llamaguard_unsafe_content_categories": ("llamaguard_moderations", "gateway-plugin-llamaguard"),
    "google_moderation_confidence_threshold": ("google_text_moderation", "gateway-plugin-google-moderation"),
    "max_request_size_mb": ("size_limits", "gateway-plugin-size-limits"),
    "max_response_size_mb": ("size_limits", "gateway-plugin-size-limits"),
    "alerting": ("slack_alerting", "gateway-plugin-slack-alerting"),
    "alert_types": ("slack_alerting", "gateway-plugin-slack-alerting"),
    "require_auth_for_metrics_endpoint": ("prometheus", "gateway-plugin-prometheus"),
    "prometheus_latency_buckets": ("prometheus", "gateway-plugin-prometheus"),
    "enable_end_user_cost_tracking_prometheus_only": ("prometheus", "gateway-plugin-prometheus"),
    "generic_logger_endpoint": ("generic_api", "gateway-plugin-generic-api"),
    "generic_logger_headers": ("generic_api", "gateway-plugin-generic-api"),
}
#: Google moderation's per-category thresholds (`toxic_confidence_threshold`, `violent_threshold`...).
PLUGIN_KEY_PATTERNS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"^[a-z_]+_confidence_threshold$"), "google_text_moderation", "gateway-plugin-google-moderation"),
)
REQUIRED_PLUGIN_KEYS = frozenset({"max_request_size_mb", "max_response_size_mb"})

#: LiteLLM keys we know and do not implement: start-up goes on, with one WARNING naming them.
IGNORED: dict[str, frozenset[str]] = {
    TOP_LEVEL: frozenset({"callback_settings", "credential_list", "mcp_servers", "mcp_tools", "assistant_settings",
                          "files_settings", "finetune_settings", "vector_store_registry", "search_tools", "prompts"}),
    "general_settings": frozenset({
        "completion_model", "disable_spend_updates", "disable_master_key_return",
        "disable_retry_on_max_parallel_request_limit_error", "disable_reset_budget",
        "disable_adding_master_key_hash_to_db", "disable_responses_id_security", "enable_jwt_auth",
        "key_management_system", "key_management_settings", "maximum_spend_logs_retention_period",
        "maximum_spend_logs_retention_interval", "user_mcp_management_mode", "allow_requests_on_db_unavailable",
        "max_parallel_requests", "global_max_parallel_requests", "infer_model_from_keys", "alerting_threshold",
        "alerting_args", "alert_to_webhook_url", "spend_report_frequency", "use_client_credentials_pass_through_routes",
        "enable_oauth2_auth", "enable_oauth2_proxy_auth", "oauth2_config_mappings", "use_x_forwarded_for",
        "service_account_settings", "image_generation_model", "embedding_model", "moderation_model",
        "supported_db_objects", "proxy_budget_rescheduler_min_time", "proxy_budget_rescheduler_max_time",
        "proxy_batch_write_at", "proxy_batch_polling_interval", "custom_key_generate", "custom_sso",
        "default_team_disabled", "allow_user_auth", "disable_prisma_schema_update", "litellm_key_header_name",
        "allow_client_side_credentials", "use_azure_key_vault", "use_google_kms", "ui_access_mode",
        "litellm_jwtauth", "litellm_license", "forward_openai_org_id", "forward_client_headers_to_llm_api",
    }),
    "litellm_settings": frozenset({
        "service_callbacks", "service_callback", "turn_off_message_logging",
        "redact_user_api_key_info", "langfuse_default_tags", "modify_params", "enable_preview_features",
        "set_verbose", "force_ipv4", "mcp_aliases", "disable_end_user_cost_tracking",
        "disable_end_user_cost_tracking_prometheus_only", "key_generation_settings", "prometheus_initialize_budget_metrics",
        "custom_prometheus_metadata_labels", "prometheus_metrics_config",
        "disable_add_transform_inline_image_block", "use_chat_completions_url_for_anthropic_messages",
        "disable_hf_tokenizer_download", "enable_json_schema_validation", "enable_key_alias_format_validation",
        "disable_copilot_system_to_assistant", "budget_duration", "default_key_generate_params",
        "default_internal_user_params", "default_team_settings", "public_model_groups", "public_model_groups_links",
        "return_response_headers", "log_raw_request_response", "ssl_verify", "num_retries_per_request",
        "global_disable_no_log_param", "internal_user_budget_duration",
    }),
    "router_settings": frozenset({
        "redis_host", "redis_port", "redis_password", "redis_db", "redis_url", "enable_pre_call_check",
        "enable_pre_call_checks", "enable_tag_filtering", "tag_filtering_match_any", "disable_cooldowns",
        "retry_policy", "allowed_fails_policy", "default_max_parallel_requests", "default_priority",
        "polling_interval", "max_fallbacks", "default_litellm_params", "stream_timeout", "debug_level", "client_ttl",
        "cache_kwargs", "caching_groups", "cache_responses", "alerting_config", "assistants_config", "set_verbose",
        "model_group_retry_policy", "router_general_settings", "optional_pre_call_checks",
        "deployment_affinity_ttl_seconds", "ignore_invalid_deployments", "search_tools", "guardrail_list",
    }),
}

#: LiteLLM keys refused on purpose, with why: each asks for a restriction or a spending cap that
#: the gateway would not enforce, so ignoring it would leave the gateway more open than the file says.
REFUSED: dict[str, dict[str, str]] = {
    TOP_LEVEL: {},
    "general_settings": {
        "allowed_ips": "an IP allow-list the gateway does not enforce; filter addresses in front of it "
                       "(firewall, ingress)",
        "enforce_user_param": "not enforced under this name; use enforced_params: [user]",
        "custom_auth": "a Python auth hook the gateway cannot load; write a plugin with the `auth` hook",
        "reject_clientside_metadata_tags": "clients' metadata.tags would still be accepted, letting callers "
                                           "choose the tags their spend is reported under",
    },
    "litellm_settings": {
        "max_budget": "a proxy-wide spending cap the gateway does not enforce; set max_budget on keys, "
                      "teams, users or organizations",
        "max_end_user_budget": "a default end-user budget the gateway does not apply; set budgets with /customer/new",
        "max_internal_user_budget": "a default user budget the gateway does not apply; set max_budget with /user/new",
        "upperbound_key_generate_params": "limits on /key/generate the gateway does not enforce",
    },
    "router_settings": {
        "provider_budget_config": "per-provider spending caps the gateway does not enforce; set budgets on "
                                  "keys, teams or organizations",
    },
}


def plugin_for_key(key: str) -> tuple[str, str] | None:
    """(plugin, distribution) of a LiteLLM key one of our plugins serves, else None."""
    if key in PLUGIN_KEYS:
        return PLUGIN_KEYS[key]
    for pattern, plugin, dist in PLUGIN_KEY_PATTERNS:
        if pattern.match(key):
            return plugin, dist
    return None


def known_keys(section: str) -> set[str]:
    """Every key the table names for `section` (for "did you mean")."""
    keys = set(IMPLEMENTED[section]) | set(IGNORED[section]) | set(REFUSED[section])
    if section in FLAT_SECTIONS:
        keys |= set(PLUGIN_KEYS)
    return keys


def _code(keys: object) -> str:
    return ", ".join(f"`{k}`" for k in sorted(keys))  # type: ignore[call-overload]


def render() -> str:
    """The generated part of docs/configuration.md: the table as markdown."""
    out = []
    for section in (TOP_LEVEL, *SECTIONS):
        implemented, ignored, refused = IMPLEMENTED[section], IGNORED[section], REFUSED[section]
        out.append(f"#### {section if section == TOP_LEVEL else '`' + section + '`'}\n")
        out.append(f"- **Implemented** ({len(implemented)}): {_code(implemented)}.")
        if section in FLAT_SECTIONS:
            by_plugin: dict[tuple[str, str], list[str]] = {}
            for key, owner in PLUGIN_KEYS.items():
                by_plugin.setdefault(owner, []).append(key)
            for _, plugin, dist in PLUGIN_KEY_PATTERNS:
                by_plugin.setdefault((plugin, dist), []).append("<category>_confidence_threshold")
            listed = "; ".join(f"{_code(keys)} ({plugin}, `{dist}`)" for (plugin, dist), keys in sorted(by_plugin.items()))
            out.append(f"- **Implemented by a plugin, while it is on** ({sum(map(len, by_plugin.values()))}): {listed}. "
                       "Any other flat key an enabled plugin's `Config` declares is implemented too.")
        out.append(f"- **Ignored, with a warning** ({len(ignored)}): {_code(ignored) or 'none'}.")
        if refused:
            out.append(f"- **Refused** ({len(refused)}):")
            out.extend(f"  - `{key}`: {why}." for key, why in sorted(refused.items()))
        else:
            out.append("- **Refused**: none.")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def counts() -> dict[str, int]:
    """Sizes of the table, all sections together."""
    every = (TOP_LEVEL, *SECTIONS)
    return {"implemented": sum(len(IMPLEMENTED[s]) for s in every),
            "plugin": len(PLUGIN_KEYS) + len(PLUGIN_KEY_PATTERNS),
            "ignored": sum(len(IGNORED[s]) for s in every),
            "refused": sum(len(REFUSED[s]) for s in every)}


DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
START = "<!-- config-keys: generated by `python -m gateway.core.config_keys --write`; do not edit by hand -->"
END = "<!-- config-keys: end -->"


def documented(text: str) -> str | None:
    """The generated part of a page's text (between the markers), or None when it has none."""
    if START not in text or END not in text:
        return None
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def write(path: Path = DOC) -> None:
    text = path.read_text()
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    path.write_text(f"{head}{START}\n\n{render()}\n{END}{tail}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
    else:
        sys.stdout.write(render())
