"""The settings of `llamaguard_moderations`: validated once at start-up, every field described.

`llamaguard_model_name` and `llamaguard_unsafe_content_categories` are the seed's (LiteLLM's) own
flat keys; the others carry the `llamaguard_` prefix because, when the plugin is enabled through
`litellm_settings.callbacks`, they share the flat `litellm_settings` / `general_settings`
namespace with every other plugin. AWS credentials and the region are not settings here: they come
from the standard AWS environment (see handler.py).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from gateway import PluginConfig

#: SageMaker's own rule for an endpoint name (CreateEndpoint's EndpointName pattern, max 63).
_ENDPOINT_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")

#: What is sent as `parameters` unless configured: Llama Guard answers in a few tokens; the
#: prompt is not echoed back (`return_full_text` is false by default on TGI, true on some older
#: Hugging Face containers). No temperature: the containers decode greedily by default, which is
#: what a classifier wants, and TGI refuses `temperature: 0`.
DEFAULT_PARAMETERS: dict[str, Any] = {"max_new_tokens": 20, "return_full_text": False}


class LlamaGuardConfig(PluginConfig):
    """Settings of `llamaguard_moderations`."""

    llamaguard_model_name: str = Field(
        description="The Llama Guard deployment, as `sagemaker/<endpoint-name>` (the seed's form, e.g. "
        "`sagemaker/jumpstart-dft-meta-textgeneration-llama-guard-7b`). Only SageMaker endpoints are "
        "supported.",
    )
    llamaguard_unsafe_content_categories: str | None = Field(
        None,
        description="Path of a text file whose content replaces the unsafe-content categories of the "
        "prompt (default: Llama Guard's own O1-O6). Relative paths are taken from the config file's "
        "folder. A missing, unreadable or empty file stops start-up.",
    )
    llamaguard_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Connect timeout and read timeout, in seconds, of one InvokeEndpoint call. There "
        "are no retries: a call that fails or times out is a guard failure (503 unless the plugin's "
        "`on_error` is fail_open). Keep it at or below the plugin's `timeout_s`, if set.",
    )
    llamaguard_parameters: dict[str, Any] = Field(
        default_factory=lambda: dict(DEFAULT_PARAMETERS),
        description="The `parameters` object sent beside `inputs` (generation settings of the "
        f"model container). Replaces the default, {DEFAULT_PARAMETERS}, as a whole.",
    )

    @field_validator("llamaguard_model_name")
    @classmethod
    def _sagemaker_endpoint(cls, value: str) -> str:
        value = value.strip()
        provider, _, endpoint = value.partition("/")
        if provider != "sagemaker" or not _ENDPOINT_NAME.fullmatch(endpoint):
            raise ValueError(
                f"must be sagemaker/<endpoint-name> (a SageMaker endpoint name: letters, digits and "
                f"hyphens, at most 63 characters); got {value!r}"
            )
        return value

    @field_validator("llamaguard_unsafe_content_categories")
    @classmethod
    def _non_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must be the path of a file, or left out for the default categories")
        return value

    @property
    def endpoint_name(self) -> str:
        """The SageMaker endpoint name, without the `sagemaker/` prefix."""
        return self.llamaguard_model_name.partition("/")[2]
