"""The plugin author's API type-checks under `mypy --strict`, and the object the core hands to
plugins as `gateway` satisfies `gateway.Gateway`."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The public modules: `gateway/__init__.py` re-exports them, plugins are typed against them.
PUBLIC = {"gateway/__init__.py", "gateway/context.py", "gateway/hookspecs.py", "gateway/plugin.py",
          "gateway/protocol.py"}

#: Checked with them: the core's gateway object is a `gateway.Gateway`, member by member.
CONFORMANCE = '''
from gateway import Gateway
from gateway.core.app import Gateway as CoreGateway


def handed_to_plugins(gateway: CoreGateway) -> Gateway:
    return gateway
'''


def test_the_public_modules_are_the_ones_mypy_checks() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert set(config["files"]) == PUBLIC
    assert config["strict"] is True and config["follow_imports"] == "silent"


def test_mypy_strict_passes_on_the_plugin_api(tmp_path: Path) -> None:
    conformance = tmp_path / "conformance.py"
    conformance.write_text(CONFORMANCE)
    # --strict and --follow-imports=silent again on the command line: the check does not depend
    # on the config being read. What the files import (gateway.core, quart, ...) is read for its
    # types, not checked.
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-error-summary",
         *sorted(PUBLIC), str(conformance)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, f"mypy --strict failed:\n{done.stdout}{done.stderr}"
