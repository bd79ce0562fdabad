"""Every key of the config's sections checked against `config_keys`: a typo is an error with a
"did you mean", a LiteLLM key we do not implement goes into the one start-up warning.

The file is read as written (before validation), so that a key problem is reported beside the
file's other problems, not after they are fixed.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from gateway.core.config_keys import (FLAT_SECTIONS, IGNORED, IMPLEMENTED, REFUSED, REQUIRED_PLUGIN_KEYS, SECTIONS,
                                      TOP_LEVEL, known_keys, plugin_for_key)


@dataclass
class KeyReport:
    """What the keys of one file say: `errors` stop start-up, `ignored` go into the one warning."""

    errors: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def suggestion(key: str, section: str) -> str:
    """"; did you mean X?" from the section's known keys, or from another section's, or ""."""
    close = difflib.get_close_matches(key, sorted(known_keys(section)), n=1, cutoff=0.8)
    if close:
        return f"; did you mean {close[0]}?"
    for other in (TOP_LEVEL, *SECTIONS):
        if other != section and key in IMPLEMENTED[other]:
            return f"; it belongs in {key if other == TOP_LEVEL else other + '.' + key}"
    return ""


def check_keys(raw: Mapping[str, Any], enabled: Mapping[str, set[str]], installed: Mapping[str, str] | None,
               owners_of: Callable[[str], list[str]] | None = None) -> KeyReport:
    """Check every key of the file's sections.

    `enabled`: plugin name -> the flat keys it takes, for each enabled plugin (`plugins.flat_keys`).
    `installed`: installed plugin names (to word the hints); None when plugin discovery failed, in
    which case flat keys no table names are not judged (that failure is reported instead).
    `owners_of(key)`: the installed plugins that take `key` (asked only for keys nobody took).
    """
    report = KeyReport()
    taken = set().union(*enabled.values()) if enabled else set()
    for key in raw:
        _judge(report, TOP_LEVEL, str(key), taken, installed, owners_of)
    for section in SECTIONS:
        body = raw.get(section)
        if isinstance(body, dict):
            for key in body:
                _judge(report, section, str(key), taken if section in FLAT_SECTIONS else set(), installed, owners_of)
    return report


def _judge(report: KeyReport, section: str, key: str, taken: set[str], installed: Mapping[str, str] | None,
           owners_of: Callable[[str], list[str]] | None) -> None:
    where = key if section == TOP_LEVEL else f"{section}.{key}"
    if key in IMPLEMENTED[section] or key in taken:
        return
    if key in REFUSED[section]:
        report.errors.append(f"{where}: not supported: {REFUSED[section][key]}")
        return
    owner = plugin_for_key(key) if section in FLAT_SECTIONS else None
    if owner is not None:
        plugin, dist = owner
        if installed is not None and plugin not in installed and key in REQUIRED_PLUGIN_KEYS:
            report.errors.append(f"{where}: needs plugin {plugin!r}, which is not installed; "
                                 f"install it with: pip install {dist}")
        elif installed is not None and plugin not in installed:
            report.ignored.append(f"{where} (plugin {plugin!r} is not installed: pip install {dist})")
        else:
            report.ignored.append(f"{where} (plugin {plugin!r} is not on)")
        return
    if key in IGNORED[section]:
        report.ignored.append(where)
        return
    if section == TOP_LEVEL:
        return  # validating the file reports an unknown section (settings.py)
    if section in FLAT_SECTIONS and installed is None:
        return  # plugin discovery failed: this may be a key of a plugin that could not be loaded
    owners = owners_of(key) if owners_of is not None and section in FLAT_SECTIONS else []
    if owners:
        names = ", ".join(repr(o) for o in owners)
        report.errors.append(f"{where}: read by plugin {names}, which is not on; turn it on with "
                             f"litellm_settings.callbacks: [{owners[0]}]")
        return
    report.errors.append(f"{where}: unknown key{suggestion(key, section)}")


def warning_text(ignored: list[str]) -> str:
    """The one start-up warning naming every ignored key."""
    return ("LiteLLM settings that this gateway does not implement are ignored: " + ", ".join(ignored)
            + " (docs/configuration.md, \"LiteLLM settings: implemented, ignored, refused\")")
