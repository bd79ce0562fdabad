#!/usr/bin/env bash
# Set up and run the gateway on its embedded defaults (fake model, SQLite, master key sk-1234).
# Extra arguments go to `gateway` (e.g. --port 4001, --detailed_debug, --config my.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
# >>> uv bootstrap (the same lines in serve.sh and test.sh; tests/test_deployment.py runs them)
# uv from PATH, else from a venv of its own in .tools/: Debian's and Ubuntu's python3 refuse
# `pip install` outside a venv ("externally-managed-environment").
if ! command -v uv >/dev/null 2>&1; then
  tools="${GATEWAY_TOOLS_DIR:-$PWD/.tools}"
  mkdir -p "$tools/bin" && tools=$(cd "$tools" && pwd)
  if [ ! -x "$tools/bin/uv" ]; then
    if python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
      echo "installing uv into $tools/venv" >&2
      python3 -m venv "$tools/venv"
      "$tools/venv/bin/python" -m pip install --quiet --disable-pip-version-check uv
      ln -sf "$tools/venv/bin/uv" "$tools/bin/uv"
    else
      sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo "
      echo "python3 cannot create a venv here; fix it with: ${sudo}apt-get install python3-venv" >&2
      echo "meanwhile, as a last resort: pip install --user --break-system-packages uv" >&2
      python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages uv \
        || { echo "could not install uv: run '${sudo}apt-get install python3-venv', then this script again" >&2; exit 1; }
      ln -sf "$(python3 -m site --user-base)/bin/uv" "$tools/bin/uv"
    fi
  fi
  export PATH="$tools/bin:$PATH"
fi
# <<< uv bootstrap
config=contrib/quickstart.yaml
for arg in "$@"; do [ "$arg" = "--config" ] && config=""; done
exec uv run --quiet --no-dev --all-packages gateway ${config:+--config "$config"} "$@"
