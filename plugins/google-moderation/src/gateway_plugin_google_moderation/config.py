"""The settings of `google_text_moderation`: validated once at start-up, every field described.

The threshold keys are the LiteLLM proxy's own flat `litellm_settings` names, so its configs work
unchanged: `google_moderation_confidence_threshold` (the default for every category) and one key per
category. The seed spells the per-category keys two ways (`toxic_confidence_threshold`, but
`violent_threshold`); both spellings are accepted for every category.

Flat keys that this model does not declare never reach it, so a misspelled threshold would be
silently ignored: `misspelled_threshold_keys` finds those in the flat settings, and the plugin
refuses to start when one is there.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Mapping

from pydantic import Field, create_model, model_validator

from gateway import PluginConfig

#: Google's category names (`moderationCategories[].name`) and the key each has in the settings and
#: in the block message. Google may add categories: an unknown name gets a key made the same way
#: (`category_key`) and the default threshold.
CATEGORIES: dict[str, str] = {
    "Toxic": "toxic",
    "Insult": "insult",
    "Profanity": "profanity",
    "Derogatory": "derogatory",
    "Sexual": "sexual",
    "Death, Harm & Tragedy": "death_harm_and_tragedy",
    "Violent": "violent",
    "Firearms & Weapons": "firearms_and_weapons",
    "Public Safety": "public_safety",
    "Health": "health",
    "Religion & Belief": "religion_and_belief",
    "Illicit Drugs": "illicit_drugs",
    "War & Conflict": "war_and_conflict",
    "Politics": "politics",
    "Finance": "finance",
    "Legal": "legal",
}

DEFAULT_KEY = "google_moderation_confidence_threshold"
DEFAULT_THRESHOLD = 0.8


def category_key(name: str) -> str:
    """`Death, Harm & Tragedy` -> `death_harm_and_tragedy` (the seed's naming)."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower().replace("&", " and ")).strip("_")


def _threshold(key: str, spelling: str) -> Any:
    return (float | None, Field(
        None, ge=0, le=1,
        description=f"Block when Google's confidence for `{key}` is above this (0-1); {spelling}. "
        f"Unset: `{DEFAULT_KEY}`.",
    ))


# Two optional fields per category: `<key>_confidence_threshold` and `<key>_threshold`.
_CATEGORY_FIELDS: dict[str, Any] = {}
for _key in CATEGORIES.values():
    _CATEGORY_FIELDS[f"{_key}_confidence_threshold"] = _threshold(_key, f"also spelled `{_key}_threshold`")
    _CATEGORY_FIELDS[f"{_key}_threshold"] = _threshold(_key, f"also spelled `{_key}_confidence_threshold`")

_CategoryThresholds = create_model("_CategoryThresholds", __base__=PluginConfig, **_CATEGORY_FIELDS)


class GoogleModerationConfig(_CategoryThresholds):  # type: ignore[misc,valid-type]
    """Settings of `google_text_moderation` (plus the 32 per-category thresholds declared above)."""

    google_moderation_confidence_threshold: float = Field(
        DEFAULT_THRESHOLD, ge=0, le=1,
        description="Block when Google's confidence for any category is above this (0-1), unless the "
        "category has its own threshold.",
    )
    google_moderation_timeout_s: float = Field(
        10.0, gt=0, le=600,
        description="Seconds one moderateText call may take (connect, and each read) before it counts "
        "as a guard failure. The plugin's `timeout_s`, when smaller, is used instead. There are no "
        "client retries.",
    )
    google_moderation_max_concurrent_calls: int = Field(
        16, ge=1, le=512,
        description="moderateText calls in flight at once per gateway worker (the client library blocks, "
        "so each call holds a thread and a pooled connection). Further requests wait their turn.",
    )

    @model_validator(mode="after")
    def _one_spelling(self) -> "GoogleModerationConfig":
        for key in CATEGORIES.values():
            a, b = getattr(self, f"{key}_confidence_threshold"), getattr(self, f"{key}_threshold")
            if a is not None and b is not None and a != b:
                raise ValueError(f"{key}_confidence_threshold={a} and {key}_threshold={b} disagree: set one of them")
        return self

    def thresholds(self) -> dict[str, float]:
        """The threshold of every known category, by key."""
        out = {}
        for key in CATEGORIES.values():
            own = getattr(self, f"{key}_confidence_threshold")
            if own is None:
                own = getattr(self, f"{key}_threshold")
            out[key] = self.google_moderation_confidence_threshold if own is None else own
        return out


def misspelled_threshold_keys(flat: Mapping[str, Any]) -> list[str]:
    """Flat settings that look like one of our thresholds but are not one, each with a hint.

    A key looks like ours when it ends in `_confidence_threshold` (only this plugin uses that
    ending), or ends in `_threshold` and its stem is a misspelling of a category (`violence`,
    `toxicity`), part of one (`drugs`, `weapons`), or starts with `google_moderation`. Other
    `*_threshold` settings (another plugin's) are left alone.
    """
    known = set(GoogleModerationConfig.model_fields)
    keys = list(CATEGORIES.values())
    words = {k: set(k.split("_")) - {"and"} for k in keys}
    found = []
    for name in flat:
        if not isinstance(name, str) or name in known or not name.endswith("_threshold"):
            continue
        stem = name.removesuffix("_threshold").removesuffix("_confidence")
        tokens = set(stem.split("_")) - {"and", ""}
        close = difflib.get_close_matches(stem, keys, n=1, cutoff=0.75)
        part = [k for k in keys if tokens and tokens <= words[k]]
        if name.endswith("_confidence_threshold") or close or part or stem.startswith("google_moderation"):
            guess = (close or part or [None])[0]
            hint = f" (did you mean {guess}_confidence_threshold?)" if guess else ""
            found.append(f"{name}{hint}")
    return found
