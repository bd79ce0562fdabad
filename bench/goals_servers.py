"""The machinery under bench/goals.py: processes, nginx, configs, keys, wrk and /proc readings.

Standard library (and pyyaml) only. Every long-running process starts in its own session so that it,
and whatever it spawns (uv -> gateway supervisor -> worker), can be stopped as one group.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
MASTER_KEY = "sk-1234"
STREAM_CHUNKS = 200
COMPLETION = (
    '{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench",'
    '"system_fingerprint":"fp_bench","choices":[{"index":0,"message":{"role":"assistant",'
    '"content":"Hello! How can I help you today?","refusal":null},"logprobs":null,"finish_reason":"stop"}],'
    '"usage":{"prompt_tokens":9,"completion_tokens":10,"total_tokens":19}}'
)
PRICES = {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}  # spend is computed, as in production
SIZES_KIB = (1, 100, 1024)
_WORDS = ("The", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "it", "rains")


# --- processes -------------------------------------------------------------------------------------
class Procs:
    """Long-running processes, each the leader of its own session, stopped as groups (newest first)."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen] = []

    def spawn(self, argv: list[str], log: Path, cwd: Path | None = None, env: dict | None = None) -> subprocess.Popen:
        with open(log, "wb") as out:
            p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 cwd=cwd, env={**os.environ, **(env or {})}, start_new_session=True)
        self.running.append(p)
        return p

    def stop(self, p: subprocess.Popen) -> None:
        """TERM the whole group, give it 10 s (the gateway flushes its spend logs), then KILL it."""
        for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and _group_alive(p):
                time.sleep(0.05)
            if not _group_alive(p):
                break
        if p in self.running:
            self.running.remove(p)

    def stop_all(self) -> None:
        for p in reversed(list(self.running)):
            self.stop(p)


def _group_alive(p: subprocess.Popen) -> bool:
    """Is any non-zombie process of p's session left? (The leader is reaped here.)"""
    p.poll()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == p.pid and fields[0] != "Z":  # session id, state
            return True
    return False


def descendants(pid: int) -> list[int]:
    """pid's children, grandchildren, ... in breadth-first order (from /proc; no psutil here)."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
    out, queue = [], [pid]
    while queue:
        head = queue.pop(0)
        kids = sorted(c for c, pp in parent.items() if pp == head)
        out += kids
        queue += kids
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def server_pids(launcher: int) -> list[int]:
    """The processes that serve: uv runs python as its child; the gateway's supervisor spawns its workers
    (multiprocessing's spawn_main). Without workers, the python child itself serves."""
    kids = descendants(launcher)
    workers = [k for k in kids if "spawn_main" in cmdline(k)]
    return workers or [k for k in kids if "python" in cmdline(k) or "uvicorn" in cmdline(k)][:1] or [launcher]


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pids: list[int], busy_pct: float = 5.0, timeout: float = 5.0) -> None:
    """Until the processes together use less than `busy_pct` of a CPU over 0.1 s (or `timeout`)."""
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        before = sum(cpu_seconds(p) for p in pids)
        time.sleep(0.1)
        if (sum(cpu_seconds(p) for p in pids) - before) * 1000 < busy_pct:
            return


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_busy(seconds: float = 1.0) -> dict[str, int]:
    """How busy each CPU is over `seconds`, in percent: other work on the machine skews every figure."""
    def snap() -> dict[str, list[int]]:
        return {ln.split()[0]: [int(x) for x in ln.split()[1:]]
                for ln in Path("/proc/stat").read_text().splitlines() if ln.startswith("cpu") and ln[3].isdigit()}
    a = snap()
    time.sleep(seconds)
    b = snap()
    out = {}
    for cpu, after in b.items():
        d = [y - x for x, y in zip(a[cpu], after)]
        total, idle = sum(d), d[3] + d[4]
        out[cpu] = round(100 * (1 - idle / total)) if total else 0
    return out


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    """Until url answers at all (any status); fail early when the process died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited during start-up (status {proc.returncode})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s")
        time.sleep(0.1)


def http_json(method: str, url: str, key: str = MASTER_KEY, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={
        "authorization": f"Bearer {key}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, {"raw": e.read().decode(errors="replace")[:500]}


# --- the upstream: nginx ---------------------------------------------------------------------------
def stream_body() -> str:
    """The SSE stream the upstream sends: 200 small content chunks, a finish chunk with usage, [DONE]."""
    def chunk(delta: str, finish: str = "null", usage: str = "") -> str:
        return ('data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
                f'"model":"bench","system_fingerprint":"fp_bench","choices":[{{"index":0,"delta":{delta},'
                f'"logprobs":null,"finish_reason":{finish}}}]{usage}}}\n\n')
    events = [chunk(f'{{"role":"assistant","content":"{_WORDS[0]}"}}' if i == 0
                    else f'{{"content":" {_WORDS[i % len(_WORDS)][:2]}"}}') for i in range(STREAM_CHUNKS)]
    events.append(chunk("{}", '"stop"', ',"usage":{"prompt_tokens":9,"completion_tokens":200,"total_tokens":209}'))
    return "".join(events) + "data: [DONE]\n\n"


def write_nginx_conf(tmp: Path, port: int) -> Path:
    """One worker; bodies up to 8 MiB are accepted. The completion is a `return 200` (it answers POSTs in
    the rewrite phase). The stream is too long for a config string (4 KiB), so it is a static file:
    the static module refuses POST with 405, and `error_page 405 =200 $uri` serves the file instead
    (nginx turns the internal redirect into a GET)."""
    tmp.chmod(0o755)  # nginx's worker (not root) reads the stream file
    d = tmp / "nginx"
    static = d / "static/stream/v1/chat"
    static.mkdir(parents=True, exist_ok=True)
    (static / "completions").write_text(stream_body())
    conf = f"""worker_processes 1;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_buffer_size 64k;
    client_max_body_size 8m;
    server {{
        listen 127.0.0.1:{port};
        location = /v1/chat/completions {{ default_type application/json; return 200 '{COMPLETION}'; }}
        location = /stream/v1/chat/completions {{
            root {d}/static; default_type text/event-stream; error_page 405 =200 $uri;
        }}
        location / {{ return 404; }}
    }}
}}
"""
    path = d / "nginx.conf"
    path.write_text(conf)
    return path


def nginx_binary() -> str:
    for c in ("/usr/sbin/nginx", "/usr/bin/nginx"):
        if os.access(c, os.X_OK):
            return c
    return "nginx"


# --- gateway configs and keys ----------------------------------------------------------------------
def gateway_config(tmp: Path, name: str, upstream: str, extra: dict | None = None) -> Path:
    """A config with the two model groups (bench, bench-stream), a master key and a fresh SQLite database,
    so spend logs are written and virtual keys work; `extra` is merged section by section."""
    cfg: dict = {
        "model_list": [
            {"model_name": "bench", "litellm_params": {
                "model": "openai/bench", "api_base": f"{upstream}/v1", "api_key": "sk-upstream", **PRICES}},
            {"model_name": "bench-stream", "litellm_params": {
                "model": "openai/bench", "api_base": f"{upstream}/stream/v1", "api_key": "sk-upstream", **PRICES}},
        ],
        "general_settings": {"master_key": MASTER_KEY, "database_url": f"sqlite:///{tmp}/{name}.db"},
    }
    for section, values in (extra or {}).items():
        cfg.setdefault(section, {}).update(values)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def make_virtual_key(base: str) -> str:
    status, out = http_json("POST", f"{base}/key/generate",
                            body={"key_alias": "bench", "models": ["bench", "bench-stream"]})
    if status != 200 or not str(out.get("key", "")).startswith("sk-"):
        raise RuntimeError(f"/key/generate answered {status}: {out}")
    return out["key"]


# --- load: wrk -------------------------------------------------------------------------------------
def wrk(url: str, conc: int, seconds: float, key: str, body_file: Path, core: str, log: Path) -> dict:
    """One wrk run (bench/post.lua); returns its BENCH_JSON figures plus req/s."""
    argv = ["taskset", "-c", core, "wrk", "-t1", f"-c{conc}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
            "--latency", "-s", str(BENCH / "post.lua"), f"{url}/v1/chat/completions"]
    env = {**os.environ, "BENCH_KEY": key, "BENCH_BODY_FILE": str(body_file)}
    p = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    with open(log, "a") as f:
        f.write(f"$ {' '.join(argv)}  # body {body_file.name}\n{p.stdout}{p.stderr}\n")
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if p.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({p.returncode}): {p.stderr.strip()[-500:]}")
    r = json.loads(line.split(" ", 1)[1])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["error_count"] = sum(r["errors"].values())
    return r


def git_info() -> dict:
    def git(*args: str) -> str:
        p = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False)
        return p.stdout.strip()
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--", "gateway", "plugins"))}


# --- time to first token: a small HTTP/1.1 client on one keep-alive connection ----------------------
_CONTENT = re.compile(rb'"content":"[^"]')


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    """Yield the body's pieces as they arrive, chunked or with a content-length."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                return
            yield data[:-2]
    left = int(headers.get("content-length", "0"))
    while left > 0:
        data = await reader.read(min(left, 65536))
        if not data:
            raise ConnectionError("connection closed mid-body")
        left -= len(data)
        yield data


async def _ttft_once(reader, writer, request: bytes) -> tuple[int, float, int]:  # type: ignore[no-untyped-def]
    """Send one streamed chat call; return (status, seconds until the piece holding the first content event
    arrived, content events). The clock stops at the arrival, not after parsing: a relay that sends the
    whole stream as one piece must not pay for the client splitting it."""
    t0 = time.perf_counter()
    writer.write(request)
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in head[1:] if ln)}
    first, count, buf = -1.0, 0, b""
    async for piece in _read_body(reader, headers):
        arrived = time.perf_counter() - t0
        buf = (buf + piece).replace(b"\r\n", b"\n")
        *events, buf = buf.split(b"\n\n")
        for event in events:
            if _CONTENT.search(event):
                count += 1
                first = arrived if first < 0 else first
    return status, first, count


async def _ttft_series(port: int, key: str, body: bytes, n: int, warmup: int) -> list[tuple[int, float, int]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
               f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    try:
        out = [await _ttft_once(reader, writer, request) for _ in range(warmup + n)]
    finally:
        writer.close()
    return out[warmup:]


def ttft(port: int, key: str, body: bytes, n: int, warmup: int = 20) -> list[tuple[int, float, int]]:
    """n sequential streamed calls (concurrency 1) after `warmup` unmeasured ones."""
    return asyncio.run(_ttft_series(port, key, body, n, warmup))


# --- inputs: request bodies and banned keywords ------------------------------------------------------
_VOCAB_TEXT = ("the a of and to in is was for on with as by at from that this it be are were have has had not "
               "but or can will would could should may might about after before between during through over under "
               "people time year day way man woman child world life hand part place case week company system "
               "program question work government number night point home water room mother area money story fact "
               "month lot right study book eye job word business issue side kind head house service friend father "
               "power hour game line end member law car city community name president team minute idea kid body "
               "information back parent face others level office door health person art war history party result "
               "change morning reason research girl guy moment air teacher force education river garden window")
VOCAB = _VOCAB_TEXT.split()


def prompt(n_bytes: int, seed: int) -> str:
    """Ordinary English-like words, exactly n_bytes long: no secrets, none of the banned keywords."""
    rnd, words, size = random.Random(seed), [], 0
    while size < n_bytes:
        words.append(rnd.choice(VOCAB))
        size += len(words[-1]) + 1
    return " ".join(words)[:n_bytes]


def write_bodies(tmp: Path) -> dict[str, Path]:
    """Every request body, one file each (wrk reads it with BENCH_BODY_FILE; 1 MiB is too big for env)."""
    def chat(content: str, **kw: str) -> dict:
        return {"model": "bench", **kw, "messages": [{"role": "user", "content": content}]}

    bodies = {"hi": chat("hi"), "user1k": chat(prompt(1024, 1), user="bench-user-7")}
    bodies["stream"] = {"stream": True, "model": "bench-stream", "messages": [{"role": "user", "content": "hi"}]}
    for kib in SIZES_KIB:
        bodies[f"k{kib}"] = chat(prompt(kib * 1024, kib))
    out = {}
    for name, body in bodies.items():  # "stream" first: the floor only looks at the head (baseline_app.py)
        out[name] = tmp / f"body-{name}.json"
        out[name].write_text(json.dumps(body, separators=(",", ":")))
    return out


def banned_keywords(tmp: Path, n: int = 1000) -> Path:
    """n made-up lowercase words (6-12 letters) that no prompt contains, one per line."""
    rnd, text, words = random.Random(42), prompt(1024, 1).lower(), set()
    while len(words) < n:
        w = "".join(rnd.choice("bcdfghjklmnprstvz") + rnd.choice("aeiou") for _ in range(rnd.randint(3, 6)))
        if w not in text:
            words.add(w)
    path = tmp / "banned.txt"
    path.write_text("\n".join(sorted(words)) + "\n")
    return path
