"""The cheap pre-filter: necessary conditions for each detector, checked with literals first.

Each detector gets one or more *conditions*; on a line where the detector can report a hit, at
least one of them holds. A condition is a few literal *gates* (one must occur; `str.find`, about
0.3 us per KiB) and/or a compiled regex, matched against the text as is (for the detectors whose
regexes are case-sensitive) or against `fold(text)`, the lower-cased text (for the others: a
case-insensitive regex is an order of magnitude slower in CPython's `re`).

Two uses:
- on the event loop, `Prefilter.may_contain(text)`: False means no detector can fire anywhere
  in the text, and it never reaches the scanner thread (clean text costs microseconds);
- in the scanner thread, `Prefilter.lines(...)`: which lines to scan, and with which detectors.

A detector without conditions here (one from a detect-secrets release newer than this plugin)
runs on every line of every text, so nothing is ever skipped unscanned. This module does not
import detect-secrets.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

#: Keywords of the assignment-style detectors (IBM Cloud IAM, Cloudant, Softlayer): `...key = VALUE`.
_KEY_WORDS = r"(?:key|pwd|pw|password|pass|token)"

#: (gates, regex, folded): the condition holds where one of the gates occurs (if any) and the
#: regex matches (if any), in the folded (lower-cased) text when `folded`, else in the text as is.
Cond = tuple[tuple[str, ...], "str | None", bool]

#: class name -> conditions. Each is implied by the detector's own regexes (same case rules);
#: tests/test_detectors.py checks every one against samples of its detector.
TRIGGERS: dict[str, list[Cond]] = {
    "AWSKeyDetector": [(("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
                        r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}", False),
                       (("aws",), None, True)],
    "ArtifactoryDetector": [(("AKC",), r"AKC[a-zA-Z0-9]{10}", False),
                            (("AP",), r"AP[\dABCDEF][a-zA-Z0-9]{8}", False)],
    "AzureStorageKeyDetector": [(("AccountKey=",), None, False)],
    # user:password@ never holds '@' or whitespace (RFC 3986 reserved characters are refused).
    "BasicAuthDetector": [(("://",), r"://[^\s@]+@", False)],
    "CloudantDetector": [(("cl",), r"cl(?:oudant|ou)?[-_]?(?:api)?" + _KEY_WORDS, True),
                         (("cloudant.com",), None, True)],
    "DiscordBotTokenDetector": [((), r"\.[a-zA-Z\d_-]{6}\.[a-zA-Z\d_-]{27}", False)],
    "GitHubTokenDetector": [(("gh",), r"gh[pousr]_", False)],
    "GitLabTokenDetector": [(("gl",), r"gl(?:pat|dt|ft|soat|rt|cbt|imt|ptt|agent|oas)-", False),
                            (("GR1348941",), None, False)],
    "IbmCloudIamDetector": [(("key", "pwd", "pass", "token"), r"[a-z0-9_-]{44}", True)],
    "IbmCosHmacDetector": [(("secret",), r"[a-f0-9]{48}", True)],
    "JwtTokenDetector": [(("eyJ",), None, False)],
    "MailchimpDetector": [(("-us",), r"-us[0-9]", False)],
    "NpmDetector": [((":_authToken=",), None, False)],
    "OpenAIDetector": [(("T3BlbkFJ",), None, False)],
    "PrivateKeyDetector": [(("PRIVATE KEY",), None, False), (("PuTTY-User-Key-File-2",), None, False)],
    "PypiTokenDetector": [(("pypi-AgE",), None, False)],
    "SendGridDetector": [(("SG.",), r"SG\.[a-zA-Z0-9_-]{22}\.", False)],
    "SlackDetector": [(("xox",), r"xox[abposr]-", True), (("hooks.slack.com",), None, True)],
    "SoftlayerDetector": [(("sl",), r"sl[-_]?(?:api)?" + _KEY_WORDS, True), (("softlayer",), None, True)],
    "SquareOAuthDetector": [(("sq0csp-",), None, False)],
    "StripeDetector": [(("k_live_",), None, False)],
    "TelegramBotTokenDetector": [((), r":[0-9A-Za-z_-]{35}", False)],
    "TwilioKeyDetector": [(("AC", "SK"), r"(?:AC|SK)[a-z0-9]{32}", False)],
    # this plugin's own additions (see engine.py)
    "GitHubFineGrainedTokenDetector": [(("github_pat_",), None, False)],
    "EncryptedPrivateKeyDetector": [(("ENCRYPTED PRIVATE KEY",), None, False)],
}


def fold(text: str) -> str:
    """`text.lower()` with the same length (U+0130 is the one character whose lower case is two)."""
    low = text.lower()
    if len(low) != len(text):
        low = text.replace("\u0130", "i").lower()
    return low


def entropy_condition(charset: str, limit: float) -> Cond:
    """A quoted run of the detector's charset long enough to exceed its entropy limit.

    Shannon entropy over n characters is at most log2(n), so a value above `limit` bits has more
    than 2**limit characters."""
    min_len = math.floor(2**limit) + 1
    chars = "".join(sorted(set(charset)))
    return ("'", '"'), r"""['"][%s]{%d,}['"]""" % (re.escape(chars).replace("]", r"\]"), min_len), False


def keyword_condition(denylist: tuple[str, ...] | list[str]) -> Cond:
    """KeywordDetector fires only where one of its keywords occurs (its rules ignore case). Each
    keyword contains one of the gates."""
    gates = ("key", "pass", "pwd", "secret", "contrase")
    for word in denylist:
        if not any(g in word.replace("_?", "") or g in word.replace("_?", "_") for g in gates):
            raise ValueError(f"KeywordDetector keyword {word!r} has no pre-filter gate")
    return gates, "|".join(denylist), True


@dataclass(frozen=True, slots=True)
class Condition:
    gates: tuple[str, ...]
    regex: re.Pattern[str] | None
    folded: bool

    def holds(self, text: str, low: str, seen: dict[tuple[str, bool], bool]) -> bool:
        """`seen` remembers the gates already looked for in this text (several share them)."""
        src = low if self.folded else text
        if self.gates:
            for g in self.gates:
                key = (g, self.folded)
                found = seen.get(key)
                if found is None:
                    found = seen[key] = g in src
                if found:
                    break
            else:
                return False
        return self.regex is None or self.regex.search(src) is not None

    def lines(self, text: str, low: str, start: int, end: int) -> list[tuple[int, int]]:
        """The lines of text[start:end] (clipped to it) on which the condition holds. Gates and
        regex must hold on the same line (every detector's match lies on one line), so the regex
        only runs on the lines that hold a gate."""
        src = low if self.folded else text
        if not self.gates:
            return self._matching_lines(text, src, start, end)
        candidates: set[tuple[int, int]] = set()
        for g in self.gates:
            candidates.update(_lines_of(text, start, end, lambda pos, g=g: src.find(g, pos, end)))
        if self.regex is None:
            return sorted(candidates)
        return sorted(line for line in candidates if self.regex.search(src, *line) is not None)

    def _matching_lines(self, text: str, src: str, start: int, end: int) -> list[tuple[int, int]]:
        regex = self.regex
        assert regex is not None

        def find(pos: int) -> int:
            m = regex.search(src, pos, end)
            return -1 if m is None else m.start()

        return _lines_of(text, start, end, find)


def _lines_of(text: str, start: int, end: int, find: Any) -> list[tuple[int, int]]:
    """The lines of text[start:end] (clipped to it) where `find(pos)` finds something."""
    out = []
    pos = start
    while pos < end:
        hit = find(pos)
        if hit == -1:
            break
        ls = max(text.rfind("\n", 0, hit) + 1, start)
        le = text.find("\n", hit, end)
        le = end if le == -1 else le
        out.append((ls, le))
        pos = le + 1
    return out


def _check_lower(pattern: str) -> str:
    if re.search(r"[A-Z]", re.sub(r"\\.", "", pattern)):
        raise ValueError(f"pre-filter pattern {pattern!r} must be lower-case (it runs on folded text)")
    return pattern


class Prefilter:
    """The enabled detectors' conditions. `conditions[i]` is None for a detector without any:
    it runs on every line."""

    def __init__(self, conditions: list[list[Cond] | None]) -> None:
        cache: dict[Cond, Condition] = {}

        def make(gates: tuple[str, ...], regex: str | None, folded: bool) -> Condition:
            key = (gates, regex, folded)
            if key not in cache:
                if folded:
                    for part in (*gates, regex or ""):
                        _check_lower(part)
                cache[key] = Condition(gates, re.compile(regex) if regex else None, folded)
            return cache[key]

        self.per_detector: list[list[Condition] | None] = [
            None if conds is None else [make(*c) for c in conds] for conds in conditions
        ]
        self.complete = all(c is not None for c in self.per_detector)
        # Cheapest first: gate-only conditions, then gated regexes, then bare regexes.
        unique = list(dict.fromkeys(c for conds in self.per_detector if conds for c in conds))
        self._ordered = sorted(unique, key=lambda c: (c.regex is not None, not c.gates))

    def may_contain(self, text: str, low: str | None = None) -> bool:
        """False when no detector can fire anywhere in `text` (on the event loop). `low` is
        `fold(text)`, computed if not given."""
        if not self.complete:
            return True
        if low is None:
            low = fold(text)
        seen: dict[tuple[str, bool], bool] = {}
        return any(c.holds(text, low, seen) for c in self._ordered)

    def lines(self, text: str, low: str, start: int, end: int) -> dict[tuple[int, int], set[int]]:
        """(line start, line end) -> indexes of the detectors to run there, for text[start:end]."""
        out: dict[tuple[int, int], set[int]] = {}
        everywhere = [i for i, conds in enumerate(self.per_detector) if conds is None]
        if everywhere:
            pos = start
            while pos < end:
                nl = text.find("\n", pos, end)
                stop = end if nl == -1 else nl
                if stop > pos:
                    out[(pos, stop)] = set(everywhere)
                pos = stop + 1
        found: dict[Condition, list[tuple[int, int]]] = {}
        for i, conds in enumerate(self.per_detector):
            for cond in conds or ():
                if cond not in found:
                    found[cond] = cond.lines(text, low, start, end)
                for line in found[cond]:
                    out.setdefault(line, set()).add(i)
        return out
