"""`ruff check` finds nothing, with the rules pyproject.toml's `[tool.ruff.lint]` chooses (issue 19):
unused imports and variables, undefined or redefined names, likely bugs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: What is linted: every folder with Python code of ours.
FOLDERS = ("gateway", "plugins", "contrib", "tests", "bench")


def test_ruff_check_passes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", *FOLDERS],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, ("ruff check found problems (`ruff check --fix` mends the ones marked [*]):\n"
                                  f"{done.stdout}{done.stderr}")
