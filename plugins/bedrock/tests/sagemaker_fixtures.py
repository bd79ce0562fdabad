"""Fixtures for the SageMaker tests, kept out of conftest.py: the test modules load this file by
path (importlib mode) and import the fixtures by name.

- `sagemaker`: `SageMakerPeer` (tests/sagemaker_peer.py), one per test module, reset before each
  test, with conftest's `aws_env` (an AWS environment of the test's own).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest


def load(name: str) -> Any:
    """A helper module of tests/ by path, once (the tests run in importlib mode)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().with_name(f"{name}.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


SageMakerPeer = load("sagemaker_peer").SageMakerPeer


@pytest.fixture(scope="module")
def _sm_peer() -> Iterator[Any]:
    peer = SageMakerPeer()
    yield peer
    peer.close()


@pytest.fixture
def sagemaker(_sm_peer: Any, aws_env: Path) -> Iterator[Any]:
    _sm_peer.reset()
    yield _sm_peer
    _sm_peer.reset()
