"""The `bedrock/` provider: chat over Bedrock's Converse and ConverseStream APIs, embeddings over InvokeModel.

Model names as LiteLLM reads them: `bedrock/<model id>` (`anthropic.claude-3-5-sonnet-20240620-v1:0`,
`meta.llama3-1-70b-instruct-v1:0`, `mistral.mistral-large-2407-v1:0`, `amazon.nova-pro-v1:0`), a
cross-region inference profile (`bedrock/us.anthropic.claude-3-5-sonnet-20241022-v2:0`), an ARN
(provisioned throughput, application inference profiles, imported models), and the explicit forms
`bedrock/converse/<id>` and `bedrock/invoke/<id>` (both served through Converse here). `model_id`
in `litellm_params` names the id to call when it differs from the model (LiteLLM's way of calling
a provisioned model while pricing it as its base model).

The provider does no I/O: `build_request` returns the signed request, the gateway sends it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from gateway import GatewayError, Provider, ProviderError, UpstreamRequest

from gateway_plugin_bedrock import aws, converse, embeddings

log = logging.getLogger("gateway.plugins.bedrock")

#: `bedrock/converse/<id>` and `bedrock/invoke/<id>`: LiteLLM's explicit routes (both are Converse here).
ROUTE_PREFIXES = ("converse/", "invoke/")
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 408: "timeout_error", 413: "request_too_large", 424: "api_error",
               429: "rate_limit_error", 500: "api_error", 503: "service_unavailable"}
#: Bedrock's exception names (a body's `__type`, when there is one) -> error types.
EXCEPTION_TYPES = {
    "ValidationException": "invalid_request_error", "AccessDeniedException": "permission_error",
    "UnrecognizedClientException": "authentication_error", "InvalidSignatureException": "authentication_error",
    "IncompleteSignatureException": "authentication_error", "ExpiredTokenException": "authentication_error",
    "MissingAuthenticationTokenException": "authentication_error", "ResourceNotFoundException": "not_found_error",
    "ThrottlingException": "rate_limit_error", "ServiceQuotaExceededException": "rate_limit_error",
    "ModelNotReadyException": "model_not_ready", "ModelTimeoutException": "timeout_error",
    "ModelErrorException": "api_error", "InternalServerException": "api_error",
    "ServiceUnavailableException": "service_unavailable",
}


@dataclass(slots=True)
class Target:
    """Where and how one deployment's calls go, worked out once per deployment."""

    dep: Any  # the deployment it was worked out for (a new config builds new deployments)
    model_id: str
    family: str
    region: str
    endpoint: str
    host: str
    chat_url: str
    stream_url: str
    invoke_url: str
    credentials: aws.Credentials | None  # None: a bearer token (Bedrock API key) is used instead
    bearer: str | None

    def __repr__(self) -> str:
        return f"Target({self.model_id!r} at {self.endpoint}, region {self.region})"


class BedrockProvider(Provider):
    name = "bedrock"
    display_name = "Bedrock"
    #: Filled in per deployment by `check` (the region is the deployment's): see `Target`.
    default_api_base = aws.ENDPOINT_TEMPLATE
    api_base_env = ("AWS_BEDROCK_RUNTIME_ENDPOINT",)
    #: A Bedrock API key, sent as a bearer token instead of signing (when no AWS credentials are named).
    api_key_env = ("AWS_BEARER_TOKEN_BEDROCK",)
    call_types = frozenset({"acompletion", "aembedding"})
    passthrough = False
    supported_params = {"acompletion": converse.CHAT_PARAMS,
                        "aembedding": frozenset({"dimensions", "input_type", "normalize"})}

    def __init__(self) -> None:
        self.credentials = aws.CredentialCache()
        self._targets: dict[int, Target] = {}

    # -- per deployment --------------------------------------------------------------------------
    def check(self, dep: Any) -> None:
        """Work out the deployment's model id, region, endpoint and credentials (start-up)."""
        target = self._target(dep)
        # The gateway writes dep.api_base / display_base in errors, logs and spend rows: make them
        # the endpoint really called (the template's `{region}` filled in).
        dep.api_base = target.endpoint
        dep.display_base = target.endpoint
        if target.credentials is not None:
            if not target.credentials.load():  # ValueError (an unknown profile) stops start-up
                log.warning("bedrock: deployment %s: %s; calls to it fail until credentials appear",
                            dep.model_name, target.credentials.why())

    def _target(self, dep: Any) -> Target:
        target = self._targets.get(id(dep))
        if target is not None and target.dep is dep:
            return target
        target = self._targets[id(dep)] = self._work_out(dep)
        return target

    def _work_out(self, dep: Any) -> Target:
        params = dep.params
        model = dep.upstream_model
        for prefix in ROUTE_PREFIXES:
            if model.startswith(prefix):
                model = model[len(prefix):]
                dep.upstream_model = model  # priced and reported as the model itself
                break
        if not model:
            raise ValueError(f"{dep.upstream_model!r} names no Bedrock model id")
        model_id = str(params.get("model_id") or model)
        region, _ = aws.region_of(params, model_id)
        if not all(c.isalnum() or c == "-" for c in region):
            raise ValueError(f"aws_region_name {region!r} is not an AWS region name")
        if params.get("api_base"):
            endpoint = dep.api_base  # as the gateway read it (userinfo taken out: refused below)
        elif params.get("aws_bedrock_runtime_endpoint"):
            endpoint = str(params["aws_bedrock_runtime_endpoint"])
        elif dep.api_base and dep.api_base != aws.ENDPOINT_TEMPLATE:
            endpoint = dep.api_base  # AWS_BEDROCK_RUNTIME_ENDPOINT
        else:
            endpoint = aws.ENDPOINT_TEMPLATE.format(region=region)
        endpoint = endpoint.rstrip("/")
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError("aws_bedrock_runtime_endpoint must start with http:// or https://")
        if dep.basic_auth or "@" in endpoint.split("/", 3)[2]:
            raise ValueError("a Bedrock endpoint must not carry credentials in its URL (Bedrock calls are signed "
                             "with AWS credentials)")
        quoted = aws.quote_model_id(model_id)
        named_creds = any(params.get(k) for k in aws.CREDENTIAL_PARAMS)
        bearer = dep.api_key if (params.get("api_key") or (dep.api_key and not named_creds)) else None
        credentials = None if bearer else self.credentials.get(aws.Source.of(params, region))
        return Target(dep=dep, model_id=model_id, family=converse.family_of(model_id), region=region,
                      endpoint=endpoint, host=aws.host_of(endpoint),
                      chat_url=f"{endpoint}/model/{quoted}/converse",
                      stream_url=f"{endpoint}/model/{quoted}/converse-stream",
                      invoke_url=f"{endpoint}/model/{quoted}/invoke",
                      credentials=credentials, bearer=bearer)

    # -- the contract ------------------------------------------------------------------------------
    async def prepare(self, dep: Any, call_type: str | None = None) -> None:
        """Before `build_request`: work that reading the credentials would otherwise do on the event
        loop (finding missing ones, refreshing temporary ones that near their expiry) is done here,
        in a worker thread. Usually there is none: a dict lookup and a time comparison."""
        creds = self._target(dep).credentials
        if creds is not None and creds.due():
            await asyncio.to_thread(creds.make_ready)

    def build_request(self, dep: Any, call_type: str, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        target = self._target(dep)
        if call_type == "aembedding":
            url = target.invoke_url
            payload = embeddings.translate_request(body, target.family, target.model_id)
            accept = "application/json"
        else:
            url = target.stream_url if stream else target.chat_url
            payload = converse.translate_request(body, target.family, dep.params)
            accept = "application/vnd.amazon.eventstream" if stream else "application/json"
        data = orjson.dumps(payload)
        headers = {"content-type": "application/json", "accept": accept}
        if dep.extra_headers:
            headers.update((k.lower(), str(v)) for k, v in dep.extra_headers.items())
        if target.bearer:
            headers["authorization"] = f"Bearer {target.bearer}"
        else:
            assert target.credentials is not None
            try:
                creds = target.credentials.current()
            except aws.CredentialsMissing as exc:
                raise GatewayError(f"{converse.PREFIX}deployment {dep.model_name}: {exc}", status=500,
                                   type="api_error") from None
            headers = aws.sign(url, target.host, headers, data, creds, target.region)
        return UpstreamRequest(url, headers, data)

    def parse_reply(self, dep: Any, call_type: str, data: bytes) -> dict[str, Any]:
        reply = orjson.loads(data)
        if call_type == "aembedding":
            return embeddings.translate_reply(reply, dep.upstream_model)
        return converse.translate_reply(reply, dep.upstream_model)

    def parse_error(self, dep: Any, status: int, data: bytes) -> ProviderError:
        """Bedrock's `{"message": ...}` (or `{"Message": ...}`). The exception's name travels in the
        `x-amzn-errortype` header, which this method is not given: the type comes from a body's
        `__type` when present, else from the status (403 told apart by its message)."""
        message: str | None = None
        name: str | None = None
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            for key in ("message", "Message", "errorMessage"):
                if isinstance(body.get(key), str) and body[key]:
                    message = body[key]
                    break
            raw_type = body.get("__type") or body.get("code")
            if isinstance(raw_type, str) and raw_type:
                name = raw_type.rsplit("#", 1)[-1].split(":", 1)[0]
        if message is None:
            message = data.decode(errors="replace").strip()[:500] or f"upstream returned HTTP {status}"
        kind = EXCEPTION_TYPES.get(name or "")
        if kind is None:
            kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
            if status == 403 and any(w in message.lower() for w in ("security token", "signature", "authentication token")):
                kind = "authentication_error"
        return ProviderError(self._redact(dep, message), kind)

    def stream(self, dep: Any, call_type: str) -> converse.ConverseStream:
        return converse.ConverseStream(dep.upstream_model)

    # -- helpers ---------------------------------------------------------------------------------
    def _redact(self, dep: Any, text: str) -> str:
        """Text from AWS with the deployment's credentials masked, should any be echoed."""
        params = dep.params
        for name in ("aws_secret_access_key", "aws_session_token", "aws_access_key_id", "api_key"):
            value = params.get(name)
            if isinstance(value, str) and len(value) >= 8 and value in text:
                text = text.replace(value, value[:4] + "*" * 12)
        target = self._targets.get(id(dep))
        if target is not None and target.bearer and target.bearer in text:
            text = text.replace(target.bearer, target.bearer[:4] + "*" * 12)
        return text
