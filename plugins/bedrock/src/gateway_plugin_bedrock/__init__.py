"""gateway-plugin-bedrock: AWS Bedrock as the gateway's `bedrock/` provider.

Chat completions over Converse / ConverseStream (SigV4-signed with the standard AWS credential
chain, the binary event stream decoded), embeddings over InvokeModel. The entry points
(`pyproject.toml`, groups `gateway` and `gateway.providers`) name `Bedrock`; this module stays cheap
to import: botocore is imported when the provider is built.
"""

from gateway_plugin_bedrock.plugin import Bedrock, BedrockConfig

__all__ = ["Bedrock", "BedrockConfig"]
