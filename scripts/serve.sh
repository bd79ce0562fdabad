#!/usr/bin/env bash
# Set up and run the gateway on its embedded defaults (fake model, SQLite, master key sk-1234).
# Extra arguments go to `gateway` (e.g. --port 4001, --detailed_debug, --config my.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
config=contrib/quickstart.yaml
for arg in "$@"; do [ "$arg" = "--config" ] && config=""; done
exec uv run --quiet --no-dev --all-packages gateway ${config:+--config "$config"} "$@"
