#!/usr/bin/env bash
# Set up everything and run every test. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
uv sync --quiet --all-packages --locked
exec uv run --no-sync pytest "$@"
