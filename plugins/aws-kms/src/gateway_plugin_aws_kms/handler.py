"""The plugin: decrypt the secrets the gateway is about to read, before it reads its config.

`USE_AWS_KMS=True` switches it on (the seed's way; naming `aws_kms` in the config works too). Its
only hook is `prepare_environment`, which runs after the config file's `environment_variables`
are exported and before any `os.environ/NAME` reference, or the gateway's own environment
(`DATABASE_URL`, `GATEWAY_MASTER_KEY`, ...), is read. Everything is decrypted first and applied
only when every value succeeded: one bad value stops start-up and changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping, MutableMapping

from gateway import Plugin, PluginConfig, hookimpl

from gateway_plugin_aws_kms.kms import VALUE_PREFIX, DecryptError, Decryptor

log = logging.getLogger("gateway.plugins.aws_kms")

SWITCH = "USE_AWS_KMS"
#: `<PREFIX><NAME>` is exported as `<NAME>`; for one NAME the later prefix wins.
ENV_PREFIXES = ("LITELLM_SECRET_AWS_KMS_", "GATEWAY_SECRET_AWS_KMS_")

#: value -> plaintext. The hook runs more than once per process (the CLI checks the config, then
#: the server loads it again): each value costs one KMS call per process, not one per load.
_plaintexts: dict[str, str] = {}


def switch_is_on(value: Any) -> bool:
    """`True`, `true` (any case) or `1`; anything else is off. The seed writes "True"."""
    return isinstance(value, str) and value.strip().lower() in ("true", "1")


@dataclass(slots=True)
class Secret:
    """One encrypted value: where it is (named in errors and logs), and where its plaintext goes."""

    source: str
    value: str
    store: Callable[[str], None]
    shown_as: str


def _env_secrets(environ: MutableMapping[str, str]) -> list[Secret]:
    """`<PREFIX><NAME>` -> `<NAME>`; any other variable holding `aws_kms/...` -> itself."""
    by_target: dict[str, Secret] = {}

    def setter(name: str) -> Callable[[str], None]:
        return lambda plaintext: environ.__setitem__(name, plaintext)

    for var in sorted(environ):
        value = environ[var]
        if value.startswith(VALUE_PREFIX) and not var.upper().startswith(ENV_PREFIXES):
            by_target[var] = Secret(var, value, setter(var), var)
    for prefix in ENV_PREFIXES:
        for var in sorted(environ):
            name = var[len(prefix):]
            if var.upper().startswith(prefix) and name:
                by_target[name] = Secret(var, environ[var], setter(name), f"{name} (from {var})")
    return list(by_target.values())


def _config_secrets(node: Any, path: str = "") -> list[Secret]:
    """Every string value `aws_kms/...` at any depth of the raw config, decrypted in place."""
    found: list[Secret] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        where = f"{path}.{key}" if path else str(key)
        if isinstance(value, str) and value.startswith(VALUE_PREFIX):
            store = (lambda container, k: lambda plaintext: container.__setitem__(k, plaintext))(node, key)
            found.append(Secret(f"config key {where}", value, store, f"config key {where}"))
        elif isinstance(value, (dict, list)):
            found.extend(_config_secrets(value, where))
    return found


def decrypt_secrets(environ: MutableMapping[str, str], config: Mapping[str, Any]) -> list[str]:
    """Decrypt every secret in `environ` and `config` in place; returns what was decrypted (names)."""
    secrets = _env_secrets(environ) + _config_secrets(config)
    if not secrets:
        log.warning("%s is on, but there is nothing to decrypt: no %s<NAME> or %s<NAME> variable, "
                    "and no %s value in the environment or the config", SWITCH, *ENV_PREFIXES, VALUE_PREFIX)
        return []
    decryptor = Decryptor(environ)
    plaintexts: list[str] = []
    for secret in secrets:
        plaintext = _plaintexts.get(secret.value)
        if plaintext is None:
            try:
                plaintext = decryptor.decrypt(secret.value)
            except DecryptError as err:
                raise DecryptError(f"cannot decrypt {secret.source}: {err}") from None
            _plaintexts[secret.value] = plaintext
        plaintexts.append(plaintext)
    for secret, plaintext in zip(secrets, plaintexts):
        secret.store(plaintext)
    shown = [s.shown_as for s in secrets]
    log.info("AWS KMS: decrypted %d secret%s: %s", len(shown), "" if len(shown) == 1 else "s", ", ".join(shown))
    return shown


class AwsKmsConfig(PluginConfig):
    """Nothing to set in the config: the plugin works before the config is read, from the
    environment alone (`USE_AWS_KMS`, the AWS variables, `GATEWAY_AWS_KMS_TIMEOUT_S`)."""


class AwsKms(Plugin):
    """Decrypts `LITELLM_SECRET_AWS_KMS_<NAME>` / `GATEWAY_SECRET_AWS_KMS_<NAME>` into `<NAME>`,
    and `aws_kms/<base64>` values in place, with AWS KMS, before the config is read."""

    name = "aws_kms"
    # Its prepare_environment runs before other plugins', so theirs see decrypted values.
    # It has no request hooks: the priority orders nothing else.
    priority = 2000
    Config = AwsKmsConfig
    switched_on_by = (SWITCH,)

    @classmethod
    def is_switched_on(cls, settings: Mapping[str, Any], environ: Mapping[str, str]) -> bool:
        return switch_is_on(environ.get(SWITCH))

    @staticmethod
    @hookimpl
    def prepare_environment(environ: MutableMapping[str, str], config: dict[str, Any]) -> None:
        decrypt_secrets(environ, config)
