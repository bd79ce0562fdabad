"""Every provider has its page, and every config on those pages starts a gateway as written: a
provider page whose copy-paste config does not start, or a provider with no page, fails here.

The environment variables the configs read (`os.environ/NAME`) are set to placeholders, a
service-account file is made for `vertex_credentials`, and the AWS profiles they name exist; no
call goes anywhere (the models are listed, not called)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.builtins.providers import BuiltinProviders
from gateway.core.plugin_discovery import PROVIDERS_GROUP

REPO = Path(__file__).resolve().parents[1]
PAGES = REPO / "docs" / "providers"
ADMIN = {"Authorization": "Bearer sk-1234"}
YAML_BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)
#: Prefixes documented on another provider's page (the same provider under a second name).
PAGE_OF = {"text-completion-openai": "openai", "custom_openai": "openai_like", "vllm": "hosted_vllm",
           "azure_text": "azure", "ollama_chat": "ollama", "cohere_chat": "cohere", "mistralai": "mistral",
           "vertex_ai_beta": "vertex_ai", "sagemaker_chat": "sagemaker"}


def provider_prefixes() -> set[str]:
    from importlib.metadata import entry_points

    names: set[str] = {"fake"}
    for provider in BuiltinProviders(None, None).providers(gateway=None):  # type: ignore[arg-type]
        names |= {provider.name, *provider.aliases}
    return names | {ep.name for ep in entry_points(group=PROVIDERS_GROUP)}


def test_every_provider_has_a_page_and_every_page_a_provider():
    prefixes = provider_prefixes()
    wanted = {PAGE_OF.get(p, p) for p in prefixes}
    pages = {p.stem for p in PAGES.glob("*.md")}
    assert sorted(wanted - pages) == [], "providers without a page in docs/providers/"
    assert sorted(pages - wanted) == [], "pages in docs/providers/ for no installed provider"
    for page in pages:
        text = (PAGES / f"{page}.md").read_text()
        assert "```yaml" in text and "litellm_params" in text, f"{page}.md has no copy-paste config"


def page_configs() -> list[Any]:
    out = []
    for page in sorted(PAGES.glob("*.md")):
        for i, block in enumerate(YAML_BLOCK.findall(page.read_text())):
            if "model_list:" in block:
                out.append(pytest.param(page.name, block, id=f"{page.stem}-{i}"))
    return out


def service_account_file(folder: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path = folder / "sa.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "my-project-id", "private_key_id": "k1", "private_key": pem,
        "client_email": "gateway@my-project-id.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": "http://127.0.0.1:9/token"}))
    return path


@pytest.mark.parametrize("page,block", page_configs())
def test_each_pages_config_starts_as_written(page, block, gateway_server, tmp_path, monkeypatch):
    config = yaml.safe_load(block)
    sa = service_account_file(tmp_path)
    for name in set(re.findall(r"os\.environ/([A-Z0-9_]+)", block)):
        monkeypatch.setenv(name, str(sa) if "FILE" in name or "CREDENTIALS" in name else "placeholder-" + name.lower())
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(sa))
    profiles = set(re.findall(r"aws_profile_name:\s*([\w.-]+)", block))
    aws_config = tmp_path / "aws_config"
    aws_config.write_text("".join(f"[profile {p}]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = x\n"
                                  for p in profiles))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws_config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "placeholder")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    config.setdefault("general_settings", {})["master_key"] = "sk-1234"
    server = gateway_server(config)
    listed = httpx.get(server.url + "/v1/models", headers=ADMIN, timeout=10).json()["data"]
    assert {m["id"] for m in listed} == {e["model_name"] for e in config["model_list"]}, page
