"""gateway-plugin-aws-kms: `USE_AWS_KMS=True` decrypts secrets with AWS KMS before the config is read.

The entry points (groups `gateway` and `gateway.switchable`) name `AwsKms`. Importing this module is
cheap: boto3 is imported only when there is something to decrypt.
"""

from gateway_plugin_aws_kms.handler import AwsKms, AwsKmsConfig

__all__ = ["AwsKms", "AwsKmsConfig"]
