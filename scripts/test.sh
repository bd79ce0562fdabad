#!/usr/bin/env bash
# Set up everything and run every test: the whole suite on SQLite, and the database tests again on
# PostgreSQL in a separate process (one process must not switch backends).
# PostgreSQL: $GATEWAY_TEST_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/test.
#
# With no arguments (CI), three runs go side by side, because most of a test's time is spent
# waiting on servers, not computing: three fifths of the suite on SQLite (its output streams here);
# each plugin installed alone in a fresh venv (tests/test_isolated_installs.py), then the other
# two fifths on SQLite (Redis database 2); and the database tests on PostgreSQL (with Redis
# database 1, so the runs share no keys). The others print when done.
# With arguments (`bash scripts/test.sh tests/test_x.py -x`), the SQLite run and then the
# PostgreSQL run take them, one after the other.
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
# --inexact: a plugin installed with `gateway plugins dev` (not in uv.lock) stays installed.
uv sync --quiet --all-packages --all-groups --locked --inexact
# The browser tests drive Debian's chromium with Playwright (never `playwright install`, which
# downloads browsers from outside); the compose file's load balancer config runs in Debian's nginx
# (tests/test_deployment.py). CI runs as root on Debian; elsewhere install them yourself.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/sbin/nginx ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq chromium nginx-light >/dev/null
  else
    echo "warning: run 'apt-get install chromium nginx-light' as root: browser tests skip" \
         "(and fail when CI is set), and so does the load balancer test" >&2
  fi
fi
export GATEWAY_TEST_DATABASE_URL_PG="${GATEWAY_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test}"
postgres() {
  GATEWAY_TEST_DATABASE_URL="$GATEWAY_TEST_DATABASE_URL_PG" \
  GATEWAY_TEST_REQUIRE_DATABASE="${GATEWAY_TEST_REQUIRE_DATABASE:-1}" \
    uv run --no-sync pytest -m db "$@"
}

if [ "$#" -gt 0 ]; then
  uv run --no-sync pytest "$@"
  echo "== database tests on PostgreSQL =="
  postgres "$@"
  exit
fi

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
started=$SECONDS
# The SQLite suite runs as two processes (tests/conftest.py deals the test files into 5 buckets):
# 3 buckets here, the other 2 once the isolated installs are done, with Redis database 2.
sqlite_suite() {
  uv run --no-sync pytest --durations=25 --ignore=tests/test_isolated_installs.py "$@"
}
(
  uv run --no-sync pytest tests/test_isolated_installs.py >"$logs/isolated.log" 2>&1 && echo 0 >"$logs/isolated.rc" \
    || echo 1 >"$logs/isolated.rc"
  echo "== each plugin installed alone (tests/test_isolated_installs.py): done after $((SECONDS - started)) s ==" \
    >>"$logs/isolated.log"
  GATEWAY_TEST_BUCKETS=3,4/5 GATEWAY_TEST_REDIS_URL="${GATEWAY_TEST_REDIS_URL_SECOND:-redis://127.0.0.1:6379/2}" \
    sqlite_suite >"$logs/second.log" 2>&1
) &
background=$!
GATEWAY_TEST_REDIS_URL="${GATEWAY_TEST_REDIS_URL_PG:-redis://127.0.0.1:6379/1}" postgres >"$logs/postgres.log" 2>&1 &
pg=$!
status=0
# --durations: the slowest tests, in every CI log, so that a suite growing past its budget shows where.
GATEWAY_TEST_BUCKETS=0,1,2/5 sqlite_suite || status=1
echo "== the suite on SQLite, first part: done after $((SECONDS - started)) s =="
wait "$background" || status=1
cat "$logs/isolated.log"
[ "$(cat "$logs/isolated.rc" 2>/dev/null)" = 0 ] || status=1
echo "== the suite on SQLite, second part: done after $((SECONDS - started)) s =="
cat "$logs/second.log"
wait "$pg" || status=1
echo "== database tests on PostgreSQL: done after $((SECONDS - started)) s =="
cat "$logs/postgres.log"
exit "$status"
