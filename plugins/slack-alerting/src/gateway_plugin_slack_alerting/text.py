"""What an alert looks like in Slack: the `text` of an incoming-webhook post (Slack mrkdwn).

```
:red_circle: *upstream_failure* · error · gateway alert
Model group gpt-4o: 3 attempt(s) failed. Last error: OpenAIException - Connection error ...
• request id: `4b1c...`
• model_group: gpt-4o
• attempts: 3
• time: 2026-11-26 15:57:44 UTC
```

Only the event's kind, level, message, request id and a few details are shown; a detail whose
name suggests a secret (`api_key`, `token`, ...) is shown as `(hidden)`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from gateway import AlertEvent

ICONS = {"critical": ":rotating_light:", "error": ":red_circle:", "warning": ":warning:", "info": ":information_source:"}
SECRET_WORDS = ("key", "token", "secret", "password", "passwd", "authorization", "credential", "webhook", "cookie")
MAX_DETAILS = 8
MAX_VALUE_CHARS = 200
MAX_MESSAGE_CHARS = 1000
#: One post stays well under Slack's limits (its docs advise under 4,000 characters).
MAX_POST_CHARS = 3500


def escape(text: str) -> str:
    """Slack's three control characters, escaped as its docs require."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _value(value: Any) -> str:
    if isinstance(value, (list, tuple, set)):
        text = ", ".join(str(v) for v in value)
    elif isinstance(value, dict):
        text = json.dumps(value, default=str, separators=(",", ":"))
    else:
        text = str(value)
    return escape(_clip(text, MAX_VALUE_CHARS))


def _is_secret(name: str) -> bool:
    name = name.lower()
    return any(word in name for word in SECRET_WORDS)


def format_alert(event: AlertEvent, repeats: int = 0, seconds: float = 0.0) -> str:
    """One alert. With `repeats`, the follow-up that counts identical alerts folded into it."""
    icon = ICONS.get(event.level, ":bell:")
    head = f"{icon} *{escape(event.kind)}* · {escape(event.level)} · gateway alert"
    if repeats:
        head += f" · *repeated {repeats} more time{'s' if repeats != 1 else ''}* in the last {seconds:.0f} s"
    lines = [head, escape(_clip(event.message, MAX_MESSAGE_CHARS))]
    if event.request_id:
        label = "last request id" if repeats else "request id"
        lines.append(f"• {label}: `{escape(_clip(event.request_id, 128))}`")
    shown = 0
    for name, value in event.details.items():
        if value is None or value == "" or shown >= MAX_DETAILS:
            continue
        shown += 1
        lines.append(f"• {escape(_clip(str(name), 64))}: {'(hidden)' if _is_secret(str(name)) else _value(value)}")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(event.time))
    lines.append(f"• {'last ' if repeats else ''}time: {stamp}")
    return "\n".join(lines)


def compose(alerts: list[str], dropped: int = 0, grouped_because: str = "") -> str:
    """The text of one post: a single alert, or several grouped under one heading."""
    if len(alerts) == 1:
        text = alerts[0]
    else:
        intro = f":bell: *{len(alerts)} gateway alerts*" + (f" (grouped: {grouped_because})" if grouped_because else "")
        text = intro + "\n\n" + "\n\n".join(alerts)
    if dropped:
        text += f"\n_{dropped} more alert{'s were' if dropped != 1 else ' was'} dropped: the Slack queue was full._"
    return text
