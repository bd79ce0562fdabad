#!/usr/bin/env bash
# Create the database that bench/virtual-key.yaml names, holding the virtual key sk-bench-virtual-key-0001.
# Then: bash bench/run.sh --config bench/virtual-key.yaml --key sk-bench-virtual-key-0001 --label vkey
set -euo pipefail
cd "$(dirname "$0")/.."
rm -f /tmp/gateway-bench-vkey.db /tmp/gateway-bench-vkey.db.invalidations
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BENCH_API_BASE=http://127.0.0.1:9/v1 uv run --no-sync gateway --config bench/virtual-key.yaml --port "$port" \
    --host 127.0.0.1 >/tmp/gateway-bench-vkey.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health/liveliness" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$port/key/generate" -H 'Authorization: Bearer sk-1234' \
    -d '{"key": "sk-bench-virtual-key-0001", "key_alias": "bench", "models": ["bench"]}' >/dev/null
echo "virtual key sk-bench-virtual-key-0001 is in /tmp/gateway-bench-vkey.db"
