"""`general_settings.enforced_params`: parameters every LLM request must carry.

`user` requires the key `user` in the body; `metadata.generation_name` requires `body["metadata"]`
to contain `generation_name`. The message is the LiteLLM proxy's, word for word.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import AuthenticationError


class EnforcedParamsError(ValueError):
    """The setting is not a list of dotted parameter names."""


def enforced_params(value: Any) -> list[tuple[str, ...]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip(".") for v in value):
        raise EnforcedParamsError("general_settings.enforced_params: must be a list of parameter names like "
                                  "user or metadata.generation_name")
    return [tuple(v.split(".")) for v in value]


def check(body: dict[str, Any], required: list[tuple[str, ...]]) -> None:
    for path in required:
        node: Any = body
        for part in path:
            if not isinstance(node, dict) or part not in node:
                name = path[0] if len(path) == 1 else "".join(f"[{p}]" for p in path)
                raise AuthenticationError(
                    f"Authentication Error, BadRequest please pass param={name} in request body. "
                    "This is a required param"
                )
            node = node[part]
