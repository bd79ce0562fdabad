#!/usr/bin/env bash
# Set up everything and run every test: the whole suite on SQLite, then the database tests again
# on PostgreSQL in a separate process (one process must not switch backends).
# PostgreSQL: $GATEWAY_TEST_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/test.
# Extra arguments go to both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
# --inexact: a plugin installed with `gateway plugins dev` (not in uv.lock) stays installed.
uv sync --quiet --all-packages --all-groups --locked --inexact
# The browser tests drive Debian's chromium with Playwright (never `playwright install`, which
# downloads browsers from outside). CI runs as root on Debian; elsewhere install it yourself.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    echo "warning: /usr/bin/chromium is missing: run 'apt-get install chromium' as root; browser tests skip" \
         "(and fail when CI is set)" >&2
  fi
fi
# --durations: the slowest tests, in every CI log, so that a suite growing past its budget shows where.
uv run --no-sync pytest --durations=25 "$@"
echo "== database tests on PostgreSQL =="
GATEWAY_TEST_DATABASE_URL="${GATEWAY_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test}" \
GATEWAY_TEST_REQUIRE_DATABASE="${GATEWAY_TEST_REQUIRE_DATABASE:-1}" \
  uv run --no-sync pytest -m db "$@"
