"""Settings: the environment (pydantic-settings) and the LiteLLM-style YAML config file.

The YAML keeps LiteLLM's shape (`model_list`, `litellm_settings`, `general_settings`,
`router_settings`, `environment_variables`) so that existing config files work unchanged; a native
`plugins:` list is accepted beside it. Any string `os.environ/NAME` is replaced by that variable.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.core.config_keys import IGNORED, TOP_LEVEL


class ConfigError(Exception):
    """One or more config problems, each one line naming the key path and what is wrong; `str()`
    gives them one per line, `problems` as a list."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class Environment(BaseSettings):
    """What the environment says, read once at start-up."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    config: str | None = Field(None, validation_alias=AliasChoices("GATEWAY_CONFIG", "CONFIG_FILE_PATH"))
    master_key: str | None = Field(
        None, validation_alias=AliasChoices("GATEWAY_MASTER_KEY", "LITELLM_MASTER_KEY")
    )
    database_url: str | None = Field(None, validation_alias="DATABASE_URL")
    redis_url: str | None = Field(None, validation_alias="REDIS_URL")
    redis_socket_timeout: float = Field(1.0, gt=0, validation_alias="REDIS_SOCKET_TIMEOUT")
    host: str = Field("0.0.0.0", validation_alias=AliasChoices("GATEWAY_HOST", "HOST"))
    port: int = Field(4000, validation_alias="PORT")
    num_workers: int = Field(1, validation_alias=AliasChoices("GATEWAY_NUM_WORKERS", "NUM_WORKERS"))
    server: Literal["uvicorn", "hypercorn"] = Field("uvicorn", validation_alias="GATEWAY_SERVER")
    detailed_debug: bool = Field(False, validation_alias="GATEWAY_DETAILED_DEBUG")
    http_transport: Literal["gateway", "aiohttp", "httpx-aiohttp", "httpx"] = Field(
        "gateway", validation_alias="GATEWAY_HTTP_TRANSPORT")
    # The API docs (LiteLLM's variables): branding, which routes are listed, where the pages live.
    docs_title: str | None = Field(None, validation_alias="DOCS_TITLE")
    docs_description: str | None = Field(None, validation_alias="DOCS_DESCRIPTION")
    docs_filtered: bool = Field(False, validation_alias="DOCS_FILTERED")
    no_docs: bool = Field(False, validation_alias="NO_DOCS")
    no_redoc: bool = Field(False, validation_alias="NO_REDOC")
    docs_url: str | None = Field(None, validation_alias="DOCS_URL")
    redoc_url: str | None = Field(None, validation_alias="REDOC_URL")


class LiteLLMParams(BaseModel):
    """Where and how to call one deployment."""

    model_config = ConfigDict(extra="allow")

    model: str
    api_base: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    timeout: float | None = Field(None, gt=0)
    stream_timeout: float | None = Field(None, gt=0)
    stream_total_timeout: float | None = Field(None, gt=0)
    rpm: int | None = Field(None, ge=0)
    tpm: int | None = Field(None, ge=0)
    weight: float | None = Field(None, ge=0)
    input_cost_per_token: float | None = Field(None, ge=0)
    output_cost_per_token: float | None = Field(None, ge=0)
    mock_response: str | None = None
    extra_headers: dict[str, str] | None = None


class ModelEntry(BaseModel):
    """One deployment of a model group; several entries may share a `model_name`."""

    model_config = ConfigDict(extra="allow")

    model_name: str
    litellm_params: LiteLLMParams
    model_info: dict[str, Any] = Field(default_factory=dict)


class PluginEntry(BaseModel):
    """A native plugin entry: its name plus the framework's four knobs and its own config."""

    model_config = ConfigDict(extra="forbid")

    name: str
    config: dict[str, Any] = Field(default_factory=dict)
    priority: int | None = None
    timeout_s: float | None = Field(None, gt=0)
    on_error: Literal["fail_closed", "fail_open"] = "fail_closed"
    mode: Literal["enforce", "monitor"] = "enforce"
    enabled: bool = True


GUARDRAIL_PHASES = ("pre_call", "during_call", "post_call", "logging_only")


class GuardrailParams(BaseModel):
    """A guardrail's `litellm_params`: which plugin, its phases, whether it is on by default, the
    framework's knobs; every other key is the plugin's own config."""

    model_config = ConfigDict(extra="allow")

    guardrail: str = Field(min_length=1)
    mode: str | list[str] = Field("pre_call", validate_default=True)
    default_on: bool = False
    priority: int | None = None
    timeout_s: float | None = Field(None, gt=0)
    on_error: Literal["fail_closed", "fail_open"] = "fail_closed"
    enforcement: Literal["enforce", "monitor"] = "enforce"

    @field_validator("mode")
    @classmethod
    def _phases(cls, value: str | list[str]) -> list[str]:
        phases = [value] if isinstance(value, str) else list(value)
        if not phases:
            raise ValueError("must name at least one of " + ", ".join(GUARDRAIL_PHASES))
        for phase in phases:
            if phase not in GUARDRAIL_PHASES:
                raise ValueError(f"unknown mode {phase!r}: use " + ", ".join(GUARDRAIL_PHASES) + " (or a list of them)")
        return list(dict.fromkeys(phases))


class GuardrailEntry(BaseModel):
    """One entry of the top-level `guardrails:` list (LiteLLM's current form)."""

    model_config = ConfigDict(extra="forbid")

    guardrail_name: str = Field(min_length=1, max_length=128, pattern=r"^[^,\s][^,]*$")
    litellm_params: GuardrailParams
    guardrail_info: dict[str, Any] = Field(default_factory=dict)


class RouterSettings(BaseModel):
    model_config = ConfigDict(extra="allow")

    num_retries: int | None = Field(None, ge=0)
    timeout: float | None = Field(None, gt=0)
    stream_total_timeout: float | None = Field(None, gt=0)
    cooldown_time: float | None = Field(None, ge=0)
    routing_strategy: str = "simple-shuffle"


class ConfigFile(BaseModel):
    """The YAML file. Sections keep unknown keys: plugins read their flat settings from them."""

    model_config = ConfigDict(extra="forbid")

    model_list: list[ModelEntry] = Field(default_factory=list)
    litellm_settings: dict[str, Any] = Field(default_factory=dict)
    general_settings: dict[str, Any] = Field(default_factory=dict)
    router_settings: RouterSettings = Field(default_factory=RouterSettings)
    environment_variables: dict[str, Any] = Field(default_factory=dict)
    plugins: list[PluginEntry] = Field(default_factory=list)
    guardrails: list[GuardrailEntry] = Field(default_factory=list)


class Settings(BaseModel):
    """Everything the app is built from: the environment plus the parsed config file."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    env: Environment
    file: ConfigFile
    config_path: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict)
    #: The installed plugins as `app.load` found them (`plugin_discovery.Installed`), so that building the
    #: app does not look them up again; None: `create_app` looks them up.
    installed: Any = None

    @property
    def master_key(self) -> str | None:
        return self.file.general_settings.get("master_key") or self.env.master_key

    @property
    def database_url(self) -> str | None:
        return self.env.database_url or self.file.general_settings.get("database_url")

    @property
    def flat_settings(self) -> dict[str, Any]:
        """`general_settings` overlaid by `litellm_settings`: where plugins' seed keys live."""
        return {**self.file.general_settings, **self.file.litellm_settings}

    @property
    def num_retries(self) -> int:
        value = self.file.router_settings.num_retries
        if value is None:
            value = self.file.litellm_settings.get("num_retries")
        return 2 if value is None else int(value)


def resolve_env_refs(value: Any, path: str, missing: list[str]) -> Any:
    """Replace every `os.environ/NAME` string (at any depth) with the variable's value; each unset
    one is added to `missing` (and left as written)."""
    if isinstance(value, str):
        if value.startswith("os.environ/"):
            name = value[len("os.environ/"):]
            if name not in os.environ:
                missing.append(f"{path}: environment variable {name} is not set")
                return value
            return os.environ[name]
        return value
    if isinstance(value, dict):
        return {k: resolve_env_refs(v, f"{path}.{k}" if path else str(k), missing) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_env_refs(v, f"{path}.{i}", missing) for i, v in enumerate(value)]
    return value


#: Models whose unknown keys get a "did you mean", by where they sit in the file.
_ENTRY_MODELS: dict[str, type[BaseModel]] = {"": ConfigFile, "plugins": PluginEntry, "guardrails": GuardrailEntry}


def _is_union_tag(part: Any) -> bool:
    """pydantic's name for a branch of a union (`str`, `list[str]`), which is no key of the file."""
    return isinstance(part, str) and ("[" in part or part in ("str", "int", "float", "bool", "none"))


def _validation_problems(err: ValidationError) -> list[str]:
    """Every error of a validation, one line each, the first one per key path (a union's branches
    all fail on one value)."""
    out: dict[tuple[Any, ...], str] = {}
    for item in err.errors():
        loc = tuple(p for p in item["loc"] if not _is_union_tag(p))
        if loc in out:
            continue
        where = ".".join(str(p) for p in loc) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            parent = "" if len(loc) == 1 else str(loc[0]) if len(loc) == 3 and isinstance(loc[1], int) else None
            model = _ENTRY_MODELS.get(parent) if parent is not None else None
            if model is not None:
                message = "unknown section" if parent == "" else "unknown key"
                close = difflib.get_close_matches(str(loc[-1]), sorted(model.model_fields), n=1, cutoff=0.75)
                message += f"; did you mean {close[0]}?" if close else f"; use one of: {', '.join(model.model_fields)}"
        out[loc] = f"{where}: {message}"
    return list(out.values())


def read_config_file(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Load the YAML (or return an empty config) and export its `environment_variables`."""
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"config file {str(p)!r} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {str(p)!r}: the top level must be a mapping")
    for section in ("litellm_settings", "general_settings", "router_settings", "environment_variables", "guardrails"):
        if raw.get(section) is None and section in raw:
            raw[section] = [] if section == "guardrails" else {}
    env_vars = raw.get("environment_variables") or {}
    if not isinstance(env_vars, dict):
        raise ConfigError("environment_variables: must be a mapping of NAME: value")
    for name, value in env_vars.items():
        if value is not None:
            os.environ[str(name)] = str(value)
    return raw


@dataclass
class SettingsRead:
    """What reading the settings gave: the settings when nothing is wrong, the file as written (for
    the key checks, even when it does not validate), and every problem found."""

    settings: Settings | None
    raw: dict[str, Any]
    problems: list[str]
    env: Environment | None = None
    path: str | None = None


def read_settings(config_path: str | None = None,
                  prepare: Callable[[dict[str, Any]], None] | None = None) -> SettingsRead:
    """Read the environment and the config file, collecting every problem instead of stopping at
    the first. `prepare(raw)` runs after `environment_variables` are exported and before any
    `os.environ/` reference is resolved: the plugins' `prepare_environment` (e.g. KMS decryption)."""
    problems: list[str] = []
    env: Environment | None = None
    try:
        env = Environment()
    except ValidationError as err:
        problems.extend(f"environment: {p}" for p in _validation_problems(err))
    path = config_path or (env.config if env is not None else
                           os.environ.get("GATEWAY_CONFIG") or os.environ.get("CONFIG_FILE_PATH"))
    try:
        raw = read_config_file(path)
    except ConfigError as exc:
        return SettingsRead(None, {}, problems + exc.problems, env)
    if prepare is not None:
        prepare(raw)
        try:
            env = Environment()  # prepare may have changed the environment (decrypted secrets)
        except ValidationError as err:
            problems.extend(p for p in (f"environment: {q}" for q in _validation_problems(err)) if p not in problems)
            env = None
    missing: list[str] = []
    resolved = resolve_env_refs(raw, "", missing)
    problems.extend(missing)
    for section in IGNORED[TOP_LEVEL]:
        resolved.pop(section, None)  # LiteLLM's sections we do not implement: named by the warning
    try:
        file = ConfigFile.model_validate(resolved)
    except ValidationError as err:
        unset = {m.split(": ", 1)[0] for m in missing}  # a reference left as written fails again: said once
        problems.extend(p for p in _validation_problems(err) if p.split(": ", 1)[0] not in unset)
        file = None
    if problems or env is None or file is None:
        return SettingsRead(None, raw, problems, env, str(path) if path else None)
    settings = Settings(env=env, file=file, config_path=str(path) if path else None, raw=raw)
    return SettingsRead(settings, raw, [], env, settings.config_path)


def load_settings(config_path: str | None = None, prepare: Callable[[dict[str, Any]], None] | None = None) -> Settings:
    """Read the environment and the config file; raise ConfigError naming every problem, one a line."""
    result = read_settings(config_path, prepare)
    if result.settings is None:
        raise ConfigError(*result.problems)
    return result.settings
