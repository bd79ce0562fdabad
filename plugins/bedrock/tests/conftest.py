"""Fixtures: the fake Bedrock runtime on loopback, and an AWS environment of the test's own.

- `bedrock`: `BedrockPeer` (tests/bedrock_peer.py), one per test module, reset before each test.
- `sagemaker`: `SageMakerPeer` (tests/sagemaker_peer.py), the same way.
- `aws_env`: every AWS_* variable of the machine removed, the shared config and credentials
  files pointed at empty files in tmp_path, and the EC2 metadata service disabled, so that the
  credential chain sees only what the test gives it (and never a developer's ~/.aws).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

_here = Path(__file__).resolve().parent
for _name in ("bedrock_peer", "sagemaker_peer"):  # importlib mode: load the helper modules by path, once
    if _name not in sys.modules:
        spec = importlib.util.spec_from_file_location(_name, _here / f"{_name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[_name] = module
        spec.loader.exec_module(module)

from bedrock_peer import BedrockPeer  # noqa: E402
from sagemaker_peer import SageMakerPeer  # noqa: E402


@pytest.fixture(scope="module")
def _peer() -> Iterator[BedrockPeer]:
    peer = BedrockPeer()
    yield peer
    peer.close()


@pytest.fixture
def bedrock(_peer: BedrockPeer, aws_env: Path) -> Iterator[BedrockPeer]:
    _peer.reset()
    yield _peer
    _peer.reset()


@pytest.fixture(scope="module")
def _sm_peer() -> Iterator[SageMakerPeer]:
    peer = SageMakerPeer()
    yield peer
    peer.close()


@pytest.fixture
def sagemaker(_sm_peer: SageMakerPeer, aws_env: Path) -> Iterator[SageMakerPeer]:
    _sm_peer.reset()
    yield _sm_peer
    _sm_peer.reset()


@pytest.fixture
def aws_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty AWS environment; returns the folder of its (empty) config and credentials files."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    folder = tmp_path / "aws"
    folder.mkdir()
    (folder / "config").write_text("")
    (folder / "credentials").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(folder / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(folder / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return folder
