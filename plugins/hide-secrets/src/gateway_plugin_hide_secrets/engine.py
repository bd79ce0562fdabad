"""The scanner: detect-secrets' built-in detectors, made to give whole-token spans.

An `Engine` is built *in the scanner thread* and only ever used there (see handler.py): detect-secrets
keeps process-global settings and caches and is not thread-safe. The engine stays clear of that
state as far as it can: it instantiates the detector classes itself instead of configuring the
global settings, and calls each detector's non-eager matching logic (`analyze_string`, the
keyword rules, the quoted high-entropy regex with its entropy limit) instead of `scan_line`,
whose ad-hoc "eager" mode flags plain words. It never calls `analyze_line` or `verify`, so no
verification request can ever leave the process, whatever the global settings say.

detect-secrets reports secret *values*, without offsets, and sometimes only part of a secret
(GitHub's regex yields `ghp`, the JWT regex stops before the signature, the private-key detector
flags only the BEGIN line). The engine therefore runs the detectors' own regexes (their `denylist`,
KeywordDetector's rule tables, the entropy plugins' quoted-string regex) to get offsets, keeps a
match only when the detector itself accepts it (e.g. the JWT detector's base64/JSON check) and
detect-secrets' heuristic filters do not drop it, and widens each hit:
- to the whole token (`[A-Za-z0-9_+/-]` leftwards, also `=.~` rightwards, without a final `.`),
- for a keyword assignment, to the whole quoted value, or to the first whitespace-separated word
  of an unquoted value,
- for a basic-auth URL, to the password only (`https://user:[REDACTED]@host`),
- for a private key, to the whole block from `-----BEGIN` to the matching `-----END ...-----`
  (PuTTY: to the `Private-MAC:` line); without an END line, to the end of the base64 body.

Only the lines the pre-filter picks are scanned, each with only the detectors whose conditions
hold there (prefilter.py). Spans are offsets into the scanned text; the caller adds the other
occurrences of each secret (`echoes`), merges and applies them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from gateway_plugin_hide_secrets.prefilter import (
    TRIGGERS,
    Cond,
    Prefilter,
    entropy_condition,
    fold,
    keyword_condition,
)

REDACTED = "[REDACTED]"

#: Not a credential; detect-secrets' own default filters drop all of its hits anyway (no letters).
ALWAYS_OFF = frozenset({"IPPublicDetector"})

_LEFT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+/-")
_RIGHT = _LEFT | frozenset("=.~")
_QUOTES = "'\"`"
#: A whole-match hit that starts with a label (`AccountKey=...`): the label stays readable.
_LABEL = re.compile(r"[A-Za-z][A-Za-z_]*=")
#: An unquoted keyword value that is a plain word or identifier (`swordfish`, `YOUR_API_KEY`,
#: `confirm_password`, `settings.secret`) is prose or a reference, not a credential.
_PLAIN_VALUE = re.compile(r"[A-Za-z_.]+[:;,.)\]]*")
#: The key of a `key = "value"` / `"key": "value"` pair, read backwards from the value's quote.
_KEY_BEFORE = re.compile(r"""["'\[]?([\w.\-]+)["'\]]?\s*(?:=>|:=|==|!=|[=:])\s*$""")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
_PUTTY_END = re.compile(r"Private-MAC:[^\n]*")
#: A line inside a PEM body (base64 or an RFC 1421 header such as `Proc-Type: 4,ENCRYPTED`).
_PEM_BODY_LINE = re.compile(r"[ \t]*(?:[A-Za-z0-9+/=]+|[A-Za-z-]+: ?[^\n]*)?[ \t\r]*")


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    type: str


def _supplementary_detectors(RegexBasedDetector: type) -> list[type]:
    """Formats that detect-secrets 1.5 does not know, as detectors of the same kind."""

    class GitHubFineGrainedTokenDetector(RegexBasedDetector):  # type: ignore[misc, valid-type]
        """GitHub fine-grained personal access tokens (`github_pat_...`)."""

        secret_type = "GitHub Token"
        denylist = (re.compile(r"github_pat_[A-Za-z0-9_]{22,}"),)

    class EncryptedPrivateKeyDetector(RegexBasedDetector):  # type: ignore[misc, valid-type]
        """PKCS#8 encrypted private keys, which PrivateKeyDetector's list lacks."""

        secret_type = "Private Key"
        denylist = (re.compile(r"BEGIN ENCRYPTED PRIVATE KEY"),)

    return [GitHubFineGrainedTokenDetector, EncryptedPrivateKeyDetector]


def _detector_classes() -> list[type]:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    return [*get_mapping_from_secret_type_to_class().values(), *_supplementary_detectors(RegexBasedDetector)]


def check_detector_names(disabled: Iterable[str]) -> list[type]:
    """The detector classes, after checking that every name in `disabled` is one of them."""
    classes = _detector_classes()
    names = {c.__name__.lower() for c in classes} | {c.secret_type.lower() for c in classes}
    unknown = [n for n in disabled if n.lower() not in names]
    if unknown:
        known = sorted({c.__name__ for c in classes} - ALWAYS_OFF)
        raise ValueError(f"hide_secrets_disabled_detectors: unknown detector {unknown[0]!r}; known: {', '.join(known)}")
    return classes


class Engine:
    """The enabled detectors and how to turn their hits into spans. Use from one thread only."""

    def __init__(self, disabled: Iterable[str] = (), unquoted_keywords: bool = True) -> None:
        from detect_secrets.filters import heuristic
        from detect_secrets.plugins import keyword
        from detect_secrets.plugins.base import RegexBasedDetector
        from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin

        classes = check_detector_names(disabled)
        off = {n.lower() for n in disabled}
        enabled = [c for c in classes if c.__name__ not in ALWAYS_OFF
                   and c.__name__.lower() not in off and c.secret_type.lower() not in off]
        enabled.sort(key=lambda c: c.__name__)
        self.enabled = [c.__name__ for c in enabled]

        # KeywordDetector's rules, as it picks them by file type: quotes required for unknown
        # types, config-file rules (unquoted values) for .yaml/.ini/.toml/... The case-insensitive
        # ones also come compiled case-sensitively, to run on the lower-cased line (10x faster).
        rules = [(r, g, True) for r, g in keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP.items()]
        if unquoted_keywords:
            rules += [(r, g, False) for r, g in keyword.CONFIG_DENYLIST_REGEX_TO_GROUP.items()]
        self._keyword_rules = [(r, _folded_twin(r), g, q) for r, g, q in rules]
        self._h = heuristic
        #: (kind, detector) per enabled detector, aligned with `conditions`
        self.detectors: list[tuple[str, Any]] = []
        #: pre-filter conditions per detector (see prefilter.py); None: run it on every line
        self.conditions: list[list[Cond] | None] = []
        for cls in enabled:
            detector = cls()
            if isinstance(detector, keyword.KeywordDetector):
                kind, conds = "keyword", [keyword_condition(keyword.DENYLIST)]
            elif isinstance(detector, HighEntropyStringsPlugin):
                kind, conds = "entropy", [entropy_condition(detector.charset, detector.entropy_limit)]
            elif isinstance(detector, RegexBasedDetector):
                kind, conds = "regex", TRIGGERS.get(cls.__name__)
            else:  # a detector kind this plugin does not know: values only, every line
                kind, conds = "other", None
            self.detectors.append((kind, detector))
            self.conditions.append(conds)
        self.prefilter = Prefilter(self.conditions)

    # -- filters (detect-secrets' heuristics, applied to the assignment a hit came from) -------------
    def _false_positive(self, value: str, window: str, detector: Any, indirect_window: str | None = None) -> bool:
        h = self._h
        if (h.is_sequential_string(value) or h.is_potential_uuid(value) or h.is_templated_secret(value)
                or h.is_prefixed_with_dollar_sign(value) or h.is_not_alphanumeric_string(value)):
            return True
        # detect-secrets passes the whole line; a chat line is long, so only the assignment the
        # value belongs to is passed: one `user_id` elsewhere on the line must not hide a password.
        if h.is_likely_id_string(value, window, detector):
            return True
        return indirect_window is not None and h.is_indirect_reference(indirect_window)

    # -- per line ------------------------------------------------------------------------------------
    def scan_line(self, text: str, low: str, ls: int, le: int, which: Iterable[int] | None = None) -> list[Span]:
        """Spans of the secrets on text[ls:le] (one line, or a slice of a very long one), found by
        the detectors `which` (indexes into `detectors`; default all). `low` is `fold(text)`.
        Offsets are into `text`; a private-key block may end beyond `le`."""
        line = text[ls:le]
        spans: list[Span] = []
        for i in sorted(range(len(self.detectors)) if which is None else which):
            kind, det = self.detectors[i]
            if kind == "keyword":
                spans += self._keywords(det, line, low[ls:le], ls)
            elif kind == "entropy":
                spans += self._high_entropy(det, line, ls)
            elif kind == "regex":
                spans += self._regex(det, text, line, ls)
            else:
                for value in det.analyze_string(line):
                    if value and not self._false_positive(value, line, det):
                        spans += self._occurrences(line, value, ls, det.secret_type)
        return spans

    def _keywords(self, det: Any, line: str, low: str, base: int) -> list[Span]:
        out = []
        for regex, folded, group, quotes_required in self._keyword_rules:
            rx, src = (folded, low) if folded is not None else (regex, line)
            pos = 0
            while (m := rx.search(src, pos)) is not None:
                s, e = m.span(group)
                # An unquoted value is cut to its first word below: search on from there, so
                # `password=a1 and api_key=b2` finds both.
                pos = m.end()
                if e <= s:
                    continue
                quoted = s > 0 and e < len(line) and line[s - 1] in _QUOTES and line[e] == line[s - 1]
                if not quoted:
                    if quotes_required:
                        continue
                    # config-file rules read to the end of the line: in chat text the value is
                    # the first word, and it must look like a credential, not a word or a name.
                    word = line[s:e].split(None, 1)[0].rstrip(",'\"`")
                    e = s + len(word)
                    pos = max(e, m.start() + 1)
                    if _PLAIN_VALUE.fullmatch(word):
                        continue
                value = line[s:e]
                key_start = min(m.start(), s)
                while key_start > 0 and (line[key_start - 1].isalnum() or line[key_start - 1] == "_"):
                    key_start -= 1
                window = line[key_start:max(m.end(), e)]
                # `secret = get_secret()`: detect-secrets' indirect-reference heuristic, on the
                # assignment only (the heuristic's regex is quadratic on long lines).
                indirect = None if quoted or e - key_start > 200 else line[key_start:e + 200]
                if self._false_positive(value, window, det, indirect_window=indirect):
                    continue
                out.append(Span(base + s, base + e, det.secret_type))
        return out

    def _high_entropy(self, det: Any, line: str, base: int) -> list[Span]:
        out = []
        for m in det.regex.finditer(line):  # the non-eager regex: quoted strings only
            s, e = m.span(2)
            value = m.group(2)
            if det.calculate_shannon_entropy(value) <= det.entropy_limit:
                continue
            key = _KEY_BEFORE.search(line, max(0, m.start(1) - 128), m.start(1))
            window = line[key.start(1) if key else s:e]
            if self._false_positive(value, window, det):
                continue
            out.append(Span(base + s, base + e, det.secret_type))
        return out

    def _regex(self, det: Any, text: str, line: str, base: int) -> list[Span]:
        out = []
        for regex in det.denylist:
            for m in regex.finditer(line):
                # the detector's own logic decides (e.g. the JWT detector's base64/JSON check)
                values = [v for v in det.analyze_string(m.group(0)) if v]
                if not values or all(self._false_positive(v, m.group(0), det) for v in values):
                    continue
                s, e = self._value_span(m, line)
                if det.secret_type == "Private Key":
                    out.append(self._private_key_block(text, base + s, base + e))
                    continue
                if det.secret_type != "Basic Auth Credentials":
                    s, e = _widen(line, s, e)
                if e > s:
                    out.append(Span(base + s, base + e, det.secret_type))
        return out

    @staticmethod
    def _value_span(m: re.Match[str], line: str) -> tuple[int, int]:
        """The secret inside a match: a capturing group that ends the match (`key = "VALUE"`,
        `user:PASSWORD@`), else the whole match without surrounding delimiters and label."""
        groups = [m.span(i) for i in range(1, (m.re.groups or 0) + 1) if m.start(i) != -1 and m.end(i) > m.start(i)]
        if groups:
            s, e = max(groups, key=lambda g: (g[1], g[1] - g[0]))
            if not line[e:m.end()].strip(_QUOTES + "@"):
                return s, e
        s, e = m.span()
        while s < e and line[s] not in _LEFT:
            s += 1
        while e > s and line[e - 1] not in _RIGHT:
            e -= 1
        label = _LABEL.match(line, s, e)
        if label and e - label.end() >= 16:
            s = label.end()
        return s, e

    @staticmethod
    def _private_key_block(text: str, s: int, e: int) -> Span:
        """From the `-----BEGIN` before the marker to the end of the block."""
        while s > 0 and text[s - 1] == "-":
            s -= 1
        if text.startswith("PuTTY-User-Key-File", s):
            end = _PUTTY_END.search(text, e)
        else:
            end = _PEM_END.search(text, e)
        if end:
            return Span(s, end.end(), "Private Key")
        # No END line: the BEGIN line and every following line that looks like PEM body.
        e = text.find("\n", e)
        while e != -1:
            nxt = text.find("\n", e + 1)
            body_line = text[e + 1:] if nxt == -1 else text[e + 1:nxt]
            if not body_line.strip() or not _PEM_BODY_LINE.fullmatch(body_line):
                break
            e = nxt
        return Span(s, len(text) if e == -1 else e, "Private Key")

    @staticmethod
    def _occurrences(line: str, value: str, base: int, secret_type: str) -> list[Span]:
        """Every occurrence of `value` in the line that is a whole token by itself."""
        out = []
        i = line.find(value)
        while i != -1:
            j = i + len(value)
            if (i == 0 or line[i - 1] not in _LEFT) and (j == len(line) or line[j] not in _RIGHT):
                out.append(Span(base + i, base + j, secret_type))
            i = line.find(value, j)
        return out


def _widen(line: str, s: int, e: int) -> tuple[int, int]:
    """Grow [s, e) to the whole token around it."""
    while s > 0 and line[s - 1] in _LEFT:
        s -= 1
    while e < len(line) and line[e] in _RIGHT:
        e += 1
    while e > s and line[e - 1] == ".":
        e -= 1
    return s, e


#: Shorter secrets are not looked for elsewhere (a 4-letter password would hit ordinary words).
ECHO_MIN_CHARS = 6


def echoes(texts: list[str], spans: list[list[Span]]) -> list[list[Span]]:
    """Add a span wherever a secret already found occurs again, as a whole token, in any of the
    texts (a password quoted once and repeated bare, a key echoed in an earlier assistant turn)."""
    secrets: dict[str, str] = {}
    for text, sp in zip(texts, spans, strict=True):
        for s in sp:
            if s.end - s.start >= ECHO_MIN_CHARS:
                secrets.setdefault(text[s.start:s.end], s.type)
    out = []
    for text, sp in zip(texts, spans, strict=True):
        more = list(sp)
        for value, secret_type in secrets.items():
            more += Engine._occurrences(text, value, 0, secret_type)
        out.append(more)
    return out


def merge(spans: Iterable[Span]) -> list[tuple[int, int, set[str]]]:
    """Overlapping or touching spans become one."""
    out: list[tuple[int, int, set[str]]] = []
    for sp in sorted(spans, key=lambda x: (x.start, x.end)):
        if out and sp.start <= out[-1][1]:
            s, e, types = out[-1]
            types.add(sp.type)
            out[-1] = (s, max(e, sp.end), types)
        else:
            out.append((sp.start, sp.end, {sp.type}))
    return out


def apply(text: str, merged: list[tuple[int, int, set[str]]]) -> str:
    parts = []
    pos = 0
    for s, e, _ in merged:
        parts.append(text[pos:s])
        parts.append(REDACTED)
        pos = e
    parts.append(text[pos:])
    return "".join(parts)


def _folded_twin(regex: re.Pattern[str]) -> re.Pattern[str] | None:
    """The case-insensitive `regex` compiled case-sensitively, for lower-cased text; None when it
    is case-sensitive or has an upper-case literal (then it runs as is on the original text)."""
    if not regex.flags & re.IGNORECASE or re.search(r"[A-Z]", re.sub(r"\\.", "", regex.pattern)):
        return None
    return re.compile(regex.pattern, regex.flags & ~re.IGNORECASE)


def scan_text(engine: Engine, text: str, start: int, end: int, low: str | None = None) -> list[Span]:
    """All spans found in text[start:end]: only the lines the pre-filter picks, each with only
    the detectors whose conditions hold there. `low` is `fold(text)` (computed if not given)."""
    if low is None:
        low = fold(text)
    spans: list[Span] = []
    for (ls, le), which in engine.prefilter.lines(text, low, start, end).items():
        spans += engine.scan_line(text, low, ls, le, which)
    return spans
