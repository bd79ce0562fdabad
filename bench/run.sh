#!/usr/bin/env bash
# The gateway's benchmark: nginx as a fast local upstream, wrk as the client, one pinned gateway worker.
# Prints requests/s and p50/p99 for the direct call and through the gateway at concurrency 1 and 32,
# checks the targets, and writes the results as JSON to bench/results/. See bench/README.md.
#
#   bash bench/run.sh [--transport gateway|aiohttp|httpx-aiohttp|httpx] [--key sk-...] [--config FILE] [--log-level LEVEL]
#                     [--duration S] [--warmup S] [--runs N] [--profile [S]] [--quick] [--label NAME]
#   bash bench/run.sh --goals [goals.py options]   the speed goals against the floor (bench/goals.py --help)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench

transport=gateway
key=sk-1234
config=$BENCH/config.yaml
log_level=WARNING
duration=10
warmup=2
runs=3
profile=0
label=""
gateway_core=1
client_core=0
app=gateway
server=""
baseline_client=httpx-aiohttp
goals=0
goals_args=()

usage() {
    sed -n '2,/^set /p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
    cat <<'EOF'

Options:
  --transport T              the gateway's upstream client (GATEWAY_HTTP_TRANSPORT): gateway (default, its own
                             HTTP/1.1 client), aiohttp (aiohttp sessions), httpx-aiohttp (httpx's API on the aiohttp
                             transport), httpx (httpx's pool)
  --key KEY                  bearer key sent to the gateway (default sk-1234, the master key of bench/config.yaml)
  --config FILE              gateway config (default bench/config.yaml); may use os.environ/BENCH_API_BASE
  --log-level LEVEL          GATEWAY_LOG_LEVEL (default WARNING; INFO writes one access-log line per request)
  --duration S               seconds per measured run (default 10)
  --warmup S                 seconds of warm-up before each series (default 2)
  --runs N                   measured runs per series; the table shows medians (default 3)
  --profile [S]              afterwards, record the gateway with py-spy for S seconds (default 15) at c=32
  --quick                    --duration 3 --warmup 1 --runs 1 (a smoke test, not a measurement)
  --label NAME               added to the results file name
  --app gateway|baseline     serve the gateway (default) or bench/baseline_app.py, a bare Quart app that only
                             forwards (the floor); --baseline-client httpx-aiohttp|aiohttp|httpx picks its client
  --server hypercorn|uvicorn the ASGI server (default: the gateway CLI's own default; hypercorn for the baseline).
                             Passed to `gateway --server` when the CLI has it; otherwise uvicorn runs the app
                             directly with uvloop + httptools (uv run --with, the project env is not changed)
  --gateway-core N           CPU for the gateway (default 1); nginx, wrk and py-spy use --client-core (default 0)
  --goals [OPTIONS]          after installing the tools, run bench/goals.py with every option after --goals
                             (the speed goals, each against the floor measured in the same run)
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --transport) transport=${2:?}; shift 2 ;;
        --key) key=${2:?}; shift 2 ;;
        --config) config=$(cd "$(dirname "${2:?}")" && pwd)/$(basename "$2"); shift 2 ;;
        --log-level) log_level=${2:?}; shift 2 ;;
        --duration) duration=${2:?}; shift 2 ;;
        --warmup) warmup=${2:?}; shift 2 ;;
        --runs) runs=${2:?}; shift 2 ;;
        --profile)
            if [[ ${2:-} =~ ^[0-9]+$ ]]; then profile=$2; shift 2; else profile=15; shift; fi ;;
        --quick) duration=3; warmup=1; runs=1; shift ;;
        --label) label=${2:?}; shift 2 ;;
        --app) app=${2:?}; shift 2 ;;
        --server) server=${2:?}; shift 2 ;;
        --baseline-client) baseline_client=${2:?}; shift 2 ;;
        --gateway-core) gateway_core=${2:?}; shift 2 ;;
        --client-core) client_core=${2:?}; shift 2 ;;
        --goals) shift; goals=1; goals_args=("$@"); break ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$transport" in gateway|aiohttp|httpx-aiohttp|httpx) ;; *) echo "run.sh: --transport must be gateway, aiohttp, httpx-aiohttp or httpx" >&2; exit 2 ;; esac
case "$app" in gateway|baseline) ;; *) echo "run.sh: --app must be gateway or baseline" >&2; exit 2 ;; esac
case "$server" in ""|hypercorn|uvicorn) ;; *) echo "run.sh: --server must be hypercorn or uvicorn" >&2; exit 2 ;; esac
case "$baseline_client" in httpx-aiohttp|aiohttp|httpx) ;; *) echo "run.sh: bad --baseline-client" >&2; exit 2 ;; esac
[ -f "$config" ] || { echo "run.sh: config $config does not exist" >&2; exit 2; }
for n in "$duration" "$warmup" "$runs" "$gateway_core" "$client_core"; do
    [[ $n =~ ^[0-9]+$ ]] || { echo "run.sh: $n is not a whole number" >&2; exit 2; }
done

say() { printf '%s\n' "$*" >&2; }

# --- 1. tools -------------------------------------------------------------------------------------
need_apt=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v taskset >/dev/null 2>&1 || need_apt+=(util-linux)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v pgrep >/dev/null 2>&1 || need_apt+=(procps)
if [ ${#need_apt[@]} -gt 0 ]; then
    say "installing ${need_apt[*]} with apt-get"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null 2>&1 \
        || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null; }
    # Debian starts the packaged nginx service on install; the benchmark never uses it.
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
if [ ! -x "$ROOT/.venv/bin/gateway" ]; then
    say "setting up the project environment (uv sync)"
    (cd "$ROOT" && uv sync --quiet --all-packages --locked)
fi
PY=$ROOT/.venv/bin/python
if [ "$goals" = 1 ]; then
    exec "$PY" "$BENCH/goals.py" ${goals_args[@]+"${goals_args[@]}"}
fi

ncpu=$(nproc)
if [ "$ncpu" -lt 2 ]; then
    say "warning: only $ncpu CPU; gateway and client share it, figures are not comparable"
    gateway_core=0; client_core=0
fi

# Other work on the machine skews every figure: measure how busy each CPU is for one second first.
cpu_busy() {  # prints "cpuN=P% ..." for every CPU over one second
    local a b
    a=$(grep '^cpu[0-9]' /proc/stat); sleep 1; b=$(grep '^cpu[0-9]' /proc/stat)
    paste <(echo "$a") <(echo "$b") | awk '{
        n = (NF - 2) / 2; t0 = t1 = 0
        for (i = 2; i <= n + 1; i++) { t0 += $i; t1 += $(i + n + 1) }
        idle0 = $5 + $6; idle1 = $(5 + n + 1) + $(6 + n + 1)
        dt = t1 - t0; pct = 0; if (dt > 0) pct = 100 * (1 - (idle1 - idle0) / dt); printf "%s=%d%% ", $1, pct }'
}
busy_before=$(cpu_busy)
if awk -v s="$busy_before" 'BEGIN { n = split(s, f, " "); for (i = 1; i <= n; i++) { split(f[i], kv, "="); if (kv[2] + 0 > 15) exit 0 } exit 1 }'; then
    say "WARNING: the machine is busy before the benchmark ($busy_before): other processes will skew the figures"
fi

# --- process bookkeeping: every long-running process is its own session, killed as a group -------
tmp=$(mktemp -d /tmp/gateway-bench.XXXXXX)
chmod 755 "$tmp"
pids=()

alive() {  # any non-zombie process left in session $1?
    local s
    for s in $(ps -o stat= --sid "$1" 2>/dev/null); do
        [[ $s == Z* ]] || return 0
    done
    return 1
}

stop_group() {
    local pid=$1 i
    kill -TERM -- "-$pid" 2>/dev/null || true
    for i in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local i
    for ((i=${#pids[@]}-1; i>=0; i--)); do stop_group "${pids[$i]}"; done
    if [ "$rc" -ne 0 ]; then
        for f in "$tmp"/gateway.log "$tmp"/nginx-error.log; do
            [ -s "$f" ] && { say "--- last lines of $(basename "$f"):"; tail -n 30 "$f" >&2; }
        done
    fi
    if [ "${BENCH_KEEP_TMP:-0}" = 1 ]; then say "kept $tmp"; else rm -rf "$tmp"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

spawn() {  # spawn LOGFILE CMD...: start CMD in its own session, remember it; sets $spawned
    local logfile=$1; shift
    ( exec setsid "$@" ) >"$logfile" 2>&1 </dev/null &
    spawned=$!
    pids+=("$spawned")
}

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() {  # wait_http URL SECONDS WHAT PID: until URL answers at all
    local url=$1 deadline=$((SECONDS + $2)) what=$3 pid=$4
    until curl -s -o /dev/null --max-time 1 "$url"; do
        alive "$pid" || { say "$what exited during start-up"; return 1; }
        [ $SECONDS -lt $deadline ] || { say "$what did not answer $url within $2 s"; return 1; }
        sleep 0.1
    done
}

# --- 2. the upstream: nginx returning a fixed chat completion --------------------------------------
nginx_port=$(free_port)
mkdir -p "$tmp/nginx"
completion='{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench","system_fingerprint":"fp_bench","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":10,"total_tokens":19}}'
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_buffer_size 64k;
    server {
        listen 127.0.0.1:$nginx_port;
        # 'return' answers in the rewrite phase, so POST works (a static file would be 405).
        location = /v1/chat/completions {
            default_type application/json;
            return 200 '$completion';
        }
        location / { return 404; }
    }
}
EOF
"$NGINX" -t -q -p "$tmp/nginx" -e "$tmp/nginx-error.log" -c "$tmp/nginx/nginx.conf"
spawn "$tmp/nginx.out" taskset -c "$client_core" "$NGINX" -p "$tmp/nginx" -e "$tmp/nginx-error.log" -c "$tmp/nginx/nginx.conf"
nginx_pid=$spawned
upstream=http://127.0.0.1:$nginx_port
wait_http "$upstream/" 10 nginx "$nginx_pid"
body='{"model":"bench","messages":[{"role":"user","content":"hi"}]}'
check=$(curl -s -X POST -H 'content-type: application/json' -d "$body" "$upstream/v1/chat/completions")
[ "$check" = "$completion" ] || { say "nginx did not answer the POST with the completion: $check"; exit 1; }

# --- 3. the gateway: one worker, pinned -------------------------------------------------------------
gw_port=$(free_port)
export BENCH_API_BASE=$upstream/v1
uvicorn=(uv run --no-sync --project "$ROOT" --quiet --with "uvicorn[standard]" uvicorn --host 127.0.0.1
         --port "$gw_port" --no-access-log --loop uvloop --http httptools --timeout-keep-alive 75)
gw_env=(env -C "$tmp" GATEWAY_LOG_LEVEL="$log_level" GATEWAY_HTTP_TRANSPORT="$transport" BENCH_API_BASE="$BENCH_API_BASE")
if [ "$app" = gateway ]; then
    what=$transport
    gw_args=(gateway --config "$config" --host 127.0.0.1 --port "$gw_port" --num_workers 1)
    if [ -n "$server" ]; then
        if "$ROOT/.venv/bin/gateway" --help 2>/dev/null | grep -q -- '--server'; then
            gw_args+=(--server "$server")
        elif [ "$server" = uvicorn ]; then
            gw_args=()  # this CLI serves with hypercorn only: run its ASGI app under uvicorn directly
        fi
    fi
    if [ ${#gw_args[@]} -gt 0 ]; then
        spawn "$tmp/gateway.log" "${gw_env[@]}" taskset -c "$gateway_core" uv run --no-sync --project "$ROOT" "${gw_args[@]}"
    else
        spawn "$tmp/gateway.log" "${gw_env[@]}" GATEWAY_CONFIG="$config" \
            taskset -c "$gateway_core" "${uvicorn[@]}" gateway.core.asgi:app
    fi
else
    what=baseline-$baseline_client
    if [ "$server" = uvicorn ]; then
        spawn "$tmp/gateway.log" "${gw_env[@]}" BASELINE_CLIENT="$baseline_client" \
            taskset -c "$gateway_core" "${uvicorn[@]}" --app-dir "$BENCH" baseline_app:app
    else
        server=hypercorn
        spawn "$tmp/gateway.log" "${gw_env[@]}" BASELINE_CLIENT="$baseline_client" \
            taskset -c "$gateway_core" uv run --no-sync --project "$ROOT" \
            hypercorn --bind "127.0.0.1:$gw_port" --workers 0 --keep-alive 75 "$BENCH/baseline_app.py:app"
    fi
fi
gw_pid=$spawned
gateway=http://127.0.0.1:$gw_port
wait_http "$gateway/health/liveliness" 60 gateway "$gw_pid"
# uv runs the server as its child; the gateway's uvicorn runs under its supervisor, whose spawned
# worker (spawn_main) is the process that serves: that one is measured and profiled.
gw_py=$(pgrep -P "$gw_pid" | head -n 1 || true)
gw_py=${gw_py:-$gw_pid}
worker=$(pgrep -P "$gw_py" -f 'multiprocessing.spawn import spawn_main' | head -n 1 || true)
gw_py=${worker:-$gw_py}
code=$(curl -s -o "$tmp/check.json" -D "$tmp/check.headers" -w '%{http_code}' -X POST \
    -H 'content-type: application/json' -H "authorization: Bearer $key" -d "$body" "$gateway/v1/chat/completions")
if [ "$code" != 200 ] || ! grep -q '"chatcmpl-bench"' "$tmp/check.json"; then
    say "the gateway did not relay the completion (HTTP $code): $(head -c 500 "$tmp/check.json")"
    exit 1
fi
if [ -z "$server" ]; then  # the CLI's default: its start-up line names it; older CLIs had only hypercorn
    server=$(grep -o 'worker(s) ([a-z]*)' "$tmp/gateway.log" | head -n 1 | sed 's/.*(\(.*\))/\1/' || true)
    server=${server:-hypercorn}
fi
overhead_header=$(grep -i '^x-gateway-overhead-ms:' "$tmp/check.headers" | tr -d '\r' | awk '{print $2}' || true)

say "nginx $upstream (core $client_core), gateway $gateway pid $gw_py (core $gateway_core)," \
    "$what on $server, log=$log_level; ${runs} x ${duration} s per series after ${warmup} s warm-up"

# --- 4. measure -------------------------------------------------------------------------------------
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }  # utime + stime

export BENCH_KEY=$key BENCH_BODY=$body
wrk_run() {  # wrk_run URL CONC SECONDS -> the BENCH_JSON line
    local out
    out=$(taskset -c "$client_core" wrk -t1 -c"$2" -d"$3"s --timeout 5s --latency -s "$BENCH/post.lua" \
        "$1/v1/chat/completions") || { say "wrk failed: $out"; return 1; }
    printf '%s\n' "$out" >>"$tmp/wrk.txt"
    grep '^BENCH_JSON ' <<<"$out" | sed 's/^BENCH_JSON //'
}

: >"$tmp/runs.jsonl"
for target in direct gateway; do
    url=$upstream; [ $target = gateway ] && url=$gateway
    for conc in 1 32; do
        wrk_run "$url" "$conc" "$warmup" >/dev/null
        for run in $(seq 1 "$runs"); do
            before=$(cpu_ticks "$gw_py")
            json=$(wrk_run "$url" "$conc" "$duration")
            after=$(cpu_ticks "$gw_py")
            echo "{\"target\":\"$target\",\"concurrency\":$conc,\"run\":$run,\"gateway_cpu_ticks\":$((after - before)),\"wrk\":$json}" \
                >>"$tmp/runs.jsonl"
            "$PY" - "$json" "$target" "$conc" "$run" <<'EOF' >&2
import json, sys
r = json.loads(sys.argv[1]); rps = r["requests"] / (r["duration_us"] / 1e6)
errs = sum(r["errors"].values())
print(f"  {sys.argv[2]:<8} c={sys.argv[3]:<3} run {sys.argv[4]}: {rps:9.1f} req/s  p50 {r['p50_us']/1000:7.3f} ms"
      f"  p99 {r['p99_us']/1000:7.3f} ms" + (f"  ERRORS {r['errors']}" if errs else ""))
EOF
        done
    done
done

# The gateway's own figure (x-gateway-overhead-ms) over a short c=1 run; wrk pays a Lua call per reply.
sample=$(BENCH_SAMPLE_OVERHEAD=1 wrk_run "$gateway" 1 3)
rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$gw_py/status")
log_bytes=$(stat -c %s "$tmp/gateway.log")

# --- 5. profile (optional) --------------------------------------------------------------------------
profile_file=""
if [ "$profile" -gt 0 ]; then
    mkdir -p "$BENCH/results"
    profile_file=$BENCH/results/profile-$(date -u +%Y%m%dT%H%M%SZ)-$what-$server${label:+-$label}.speedscope.json
    say "profiling the gateway for $profile s under c=32 load (py-spy)"
    spawn "$tmp/wrk-profile.txt" taskset -c "$client_core" wrk -t1 -c32 -d$((profile + 4))s --timeout 5s \
        -s "$BENCH/post.lua" "$gateway/v1/chat/completions"
    load_pid=$spawned
    sleep 1
    if command -v py-spy >/dev/null 2>&1; then pyspy=(py-spy); else pyspy=(uvx --quiet --from py-spy py-spy); fi
    taskset -c "$client_core" "${pyspy[@]}" record --rate 200 --duration "$profile" \
        --pid "$gw_py" --format speedscope --output "$profile_file" >"$tmp/py-spy.txt" 2>&1 \
        || { say "py-spy failed:"; cat "$tmp/py-spy.txt" >&2; profile_file=""; }
    stop_group "$load_pid"
fi

# --- 6. report ---------------------------------------------------------------------------------------
mkdir -p "$BENCH/results"
"$PY" "$BENCH/report.py" --runs "$tmp/runs.jsonl" --sample "$sample" --results-dir "$BENCH/results" \
    --transport "$what" --server "$server" --log-level "$log_level" --key "$key" --config "$config" --label "$label" \
    --duration "$duration" --warmup "$warmup" --rss-kib "$rss_kib" --log-bytes "$log_bytes" \
    --check-overhead "${overhead_header:-}" --gateway-core "$gateway_core" --client-core "$client_core" \
    --root "$ROOT" --busy-before "$busy_before" --loadavg "$(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "$profile_file" ]; then
    "$PY" "$BENCH/profile_summary.py" "$profile_file" --root "$ROOT"
    say "profile: $profile_file (open it at https://www.speedscope.app)"
fi
