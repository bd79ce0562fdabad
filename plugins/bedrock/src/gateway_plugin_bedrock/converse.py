"""OpenAI chat <-> Bedrock Converse / ConverseStream, as LiteLLM's Converse config translates them.

Requests (`translate_request`):
- `system` / `developer` messages -> top-level `system` text blocks;
- user content: text, images (`data:` URLs -> `image.source.bytes`, base64 in the JSON; `s3://` URLs ->
  `s3Location`), files (`file.file_data` data URLs -> `document` blocks);
- assistant `tool_calls` -> `toolUse` blocks, `thinking_blocks` -> `reasoningContent` blocks (first);
- `tool` messages -> `toolResult` blocks in a user turn; consecutive turns of one role are merged;
- `cache_control` on a message, part or tool -> a `cachePoint` block after it;
- `tools` -> `toolConfig.tools[].toolSpec` (`inputSchema.json`); `tool_choice` auto / required / a
  function -> `toolChoice` auto / any / tool; `none` -> no tools offered (unless the history holds
  tool blocks, which Bedrock only accepts with a `toolConfig`: then no `toolChoice`);
- `max_tokens` / `max_completion_tokens`, `temperature`, `top_p`, `stop` -> `inferenceConfig`;
- `reasoning_effort` / `thinking` -> `additionalModelRequestFields.thinking` for Anthropic models
  (`reasoningConfig` for Amazon Nova), `top_k` -> `additionalModelRequestFields` likewise;
- a JSON `response_format` -> one forced tool (`json_tool_call`) whose input is the reply's text;
- Converse's own fields given in the body (e.g. through `extra_body`) or the deployment's
  `litellm_params` pass as they are: `additionalModelRequestFields`, `guardrailConfig`,
  `performanceConfig`, `requestMetadata`, `promptVariables`, `additionalModelResponseFieldPaths`,
  `outputConfig`, `serviceTier`.

Replies become `chat.completion`s; the usage counts cache reads and writes in `prompt_tokens`
(`prompt_tokens_details.cached_tokens` = the reads), as LiteLLM counts them. Streams become
`chat.completion.chunk`s, then a finish chunk and a usage chunk (`choices: []`).

The messages are translated in converse_content.py, the rest of the request in converse_request.py,
replies and streams in converse_reply.py; this module names the model's family and what is taken.
"""

from __future__ import annotations

from gateway_plugin_bedrock.converse_content import PREFIX
from gateway_plugin_bedrock.converse_reply import ConverseStream, translate_reply
from gateway_plugin_bedrock.converse_request import NATIVE_FIELDS, translate_request

#: The provider and the tests use these from here.
__all__ = ["CHAT_PARAMS", "PREFIX", "ConverseStream", "family_of", "translate_reply", "translate_request"]

#: The chat request fields translated to Converse (and its own): the gateway refuses others with a
#: 400 naming them, or drops them with `drop_params`.
CHAT_PARAMS = frozenset({"max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "stop", "tools",
                         "tool_choice", "response_format", "reasoning_effort", "thinking", "service_tier",
                         "anthropic_beta", "n", "additionalModelRequestFields", *NATIVE_FIELDS})
#: Region prefixes of cross-region inference profiles (`us.anthropic.claude-...`).
PROFILE_PREFIXES = ("us.", "eu.", "apac.", "jp.", "au.", "ca.", "us-gov.", "global.")


def family_of(model_id: str) -> str:
    """The model's vendor as Bedrock names it (`anthropic`, `meta`, `mistral`, `amazon`, ...)."""
    model = model_id.lower()
    if model.startswith("arn:"):
        for vendor in ("anthropic", "amazon.nova", "meta", "mistral", "cohere", "deepseek", "openai"):
            if vendor in model:
                return vendor.split(".")[0]
        return ""
    for prefix in PROFILE_PREFIXES:
        if model.startswith(prefix):
            model = model[len(prefix):]
            break
    return model.split(".", 1)[0]
