"""What the three remote guards add to a call, alone and together (bench/README.md).

The guards: `llmguard_moderations` (LLM Guard API over HTTP), `llamaguard_moderations` (SageMaker
InvokeEndpoint through boto3) and `google_text_moderation` (moderateText through
google-cloud-language, REST). Each talks to its own tests' peer (plugins/*/tests/conftest.py,
imported from its path), answering after `--guard-ms` (5 ms) in a process of its own; the fake
OpenAI upstream (`gateway.testing.FakeUpstream`) has a process of its own too.

Real gateways (`gateway --config`, one process each), in front of that upstream, all with the same
environment and the guards enabled the seed's way (`litellm_settings.callbacks` and the plugins'
variables):

- `none`:          no guard; what the others are measured against
- (a) `llmguard`, `llamaguard`, `google`: one guard each
- (b) `all three`: the three together; their default priorities 750/740/730 are neighbours, so
      the core runs them as one concurrent step (`concurrent = True`, docs/hooks.md)
- (b') `all three, probes after`: as (b), plus the two non-concurrent probes of (c) placed after
      the guards (priority 720 and 710): shows what the probes themselves cost
- (c) `all three, split`: as (b), with `probe_slow` (`seconds: 0`) at priority 745 and
      `probe_guard_seq` (`seconds: 0`) at 735 between them (native `plugins:` entries; both from
      tests/dists/gateway-plugin-probe, not concurrent; two different probes, as a name can have
      only one `plugins:` entry): three steps, one guard each, in turn. Neither the plugins nor the
      core are changed. The steps each gateway really runs are read back from `GET /plugins`.

One sequential client calls every gateway once per round, in a shuffled order (so drift and
position hit all alike), `--warmup` rounds then N. For each configuration: the median client
latency and the median `x-gateway-overhead-ms`, what each adds over `none`, and the gateway
process's CPU time per call (/proc, all threads, warm-up included). Before that, each peer is called
directly N times with a bare HTTP client: the floor any 5 ms guard costs here. At the end each peer
reports how many calls it received, which must be exactly what the configs sent.

Goal: all three together add under 8 ms (the slowest guard's time, not the sum, 15+ ms). The exit
status is 1 when (b) misses it in either figure.

Run from the repository root:
    uv run --no-sync python bench/remote_guards.py [N] [--guard-ms 5] [--warmup 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"
MASTER_KEY = "sk-1234"
ENDPOINT = "llama-guard-bench"
REGION = "us-west-2"
GOAL_MS = 8.0
PROMPT = "Write a haiku about the sea, please."
GUARDS = {  # short name -> entry-point name
    "llmguard": "llmguard_moderations",
    "llamaguard": "llamaguard_moderations",
    "google": "google_text_moderation",
}
ALL = list(GUARDS.values())


# -- the peers, each in a child process (this script with --serve NAME) ------------------------------

def load(name: str, path: Path) -> Any:
    """A module from its path (the plugins' tests folders are not packages)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def serve(kind: str, delay_s: float) -> None:
    """Start one server, print its URL, serve until stdin closes, then print what it received."""
    tmp = tempfile.TemporaryDirectory()
    if kind == "upstream":
        from gateway.testing import FakeUpstream

        server = FakeUpstream(reply="ok").start()
        url = server.root
        report = lambda: {"calls": len(server.requests)}  # noqa: E731
    elif kind == "llmguard":
        peers = load("llmguard_test_peers", PLUGINS / "llmguard" / "tests" / "conftest.py")
        server = peers.FakeLLMGuard().start()
        server.delay = delay_s
        url = server.url
        report = lambda: {"calls": len(server.prompts()), "violations": server.violations[:5]}  # noqa: E731
    elif kind == "llamaguard":
        peers = load("llamaguard_test_peers", PLUGINS / "llamaguard" / "tests" / "conftest.py")
        server = peers.SageMakerPeer()  # no upstream: it answers `safe` itself
        server.delay = delay_s
        url = server.url
        report = lambda: {"calls": len(server.prompts())}  # noqa: E731
    elif kind == "google":
        peers = load("google_test_peers", PLUGINS / "google-moderation" / "tests" / "conftest.py")
        server = peers.FakeGoogle(Path(tmp.name))
        server.delay = delay_s
        url = server.url
        report = lambda: {"calls": len(server.texts)}  # noqa: E731
    else:
        raise SystemExit(f"unknown server {kind!r}")
    print(url, flush=True)
    sys.stdin.read()  # the parent closes our stdin to stop us
    print(json.dumps(report()), flush=True)
    server.stop()
    tmp.cleanup()


class Child:
    """A server in a process of its own: this script with `--serve KIND`."""

    def __init__(self, kind: str, delay_s: float) -> None:
        self.kind = kind
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--delay", str(delay_s)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.proc.kill()
            raise RuntimeError(f"{kind} server did not start")

    def stop(self) -> dict[str, Any]:
        """Stop it; what it reports (its call count), or {} if it could not say."""
        try:
            out, _ = self.proc.communicate(timeout=20)  # closes its stdin first
            return json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        except (subprocess.TimeoutExpired, ValueError):
            self.proc.kill()
            self.proc.wait()
            return {}


# -- the gateways -------------------------------------------------------------------------------------

@dataclass
class Config:
    key: str
    label: str
    guards: list[str]
    plugins: list[dict[str, Any]] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    url: str = ""
    steps: list[list[str]] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)
    overheads: list[float] = field(default_factory=list)


def configs() -> list[Config]:
    sep = [{"name": "probe_slow", "priority": 745, "config": {"seconds": 0}},
           {"name": "probe_guard_seq", "priority": 735, "config": {"seconds": 0}}]
    after = [{**sep[0], "priority": 720}, {**sep[1], "priority": 710}]
    return [
        Config("none", "no guard", []),
        Config("llmguard", "(a) llmguard alone", [GUARDS["llmguard"]]),
        Config("llamaguard", "(a) llamaguard alone", [GUARDS["llamaguard"]]),
        Config("google", "(a) google alone", [GUARDS["google"]]),
        Config("all", "(b) all three together", ALL),
        Config("all+after", "(b') all three, probes after", ALL, after),
        Config("split", "(c) all three, split by probes", ALL, sep),
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(cfg: Config, upstream: str, env: dict[str, str], tmp: Path) -> None:
    """Write the config and start `gateway --config` for it (not waiting for it to be up)."""
    import yaml

    doc: dict[str, Any] = {
        "model_list": [{"model_name": "gpt-test", "litellm_params": {
            "model": "openai/upstream-model", "api_base": upstream + "/v1", "api_key": "sk-upstream"}}],
        "general_settings": {"master_key": MASTER_KEY},
    }
    if cfg.guards:
        doc["litellm_settings"] = {"callbacks": cfg.guards}
        if GUARDS["llamaguard"] in cfg.guards:
            doc["litellm_settings"]["llamaguard_model_name"] = f"sagemaker/{ENDPOINT}"
    if cfg.plugins:
        doc["plugins"] = cfg.plugins
    name = cfg.key.replace("+", "-")
    path = tmp / f"gw-{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    port = free_port()
    gateway = Path(sys.executable).with_name("gateway")
    log = open(tmp / f"gw-{name}.log", "wb")
    cfg.proc = subprocess.Popen(
        [str(gateway), "--config", str(path), "--host", "127.0.0.1", "--port", str(port)],
        env={**env, "DATABASE_URL": f"sqlite://{tmp / f'db-{name}.sqlite3'}"}, cwd=tmp,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    cfg.url = f"http://127.0.0.1:{port}"


def wait_up(cfg: Config, tmp: Path) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if cfg.proc.poll() is not None:
            break
        try:
            if httpx.get(cfg.url + "/health/liveliness", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    log = (tmp / f"gw-{cfg.key.replace('+', '-')}.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"gateway {cfg.key!r} did not start:\n{log}")


def pre_request_steps(cfg: Config) -> list[list[str]]:
    """The pre_request order from `GET /plugins`, cut into steps as the core does (neighbouring
    `concurrent` plugins form one step; builtins are not concurrent)."""
    import httpx

    order = httpx.get(cfg.url + "/plugins", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                      timeout=10).json()["order"]["pre_request"]
    eps = {ep.name: ep for ep in entry_points(group="gateway")}
    steps: list[list[str]] = []
    last_concurrent = False
    for name in order:
        concurrent = name in eps and bool(getattr(eps[name].load(), "concurrent", False))
        if concurrent and last_concurrent:
            steps[-1].append(name)
        else:
            steps.append([name])
        last_concurrent = concurrent
    return steps


# -- measuring ----------------------------------------------------------------------------------------

def floor(peers: dict[str, Child], n: int, warmup: int) -> dict[str, float]:
    """Each peer asked directly by a bare pooled HTTP client: the median round trip, ms."""
    import httpx

    calls = {
        "llmguard": ("/analyze/prompt", {"prompt": PROMPT}),
        "llamaguard": (f"/endpoints/{ENDPOINT}/invocations", {"inputs": PROMPT}),
        "google": ("/v2/documents:moderateText", {"document": {"type": "PLAIN_TEXT", "content": PROMPT}}),
    }
    out = {}
    for kind, (path, body) in calls.items():
        times = []
        with httpx.Client(base_url=peers[kind].url, timeout=30) as client:
            for i in range(n + warmup):
                t0 = time.perf_counter()
                client.post(path, json=body).raise_for_status()
                if i >= warmup:
                    times.append((time.perf_counter() - t0) * 1e3)
        out[kind] = statistics.median(times)
    return out


def measure(cfgs: list[Config], n: int, warmup: int, seed: int) -> None:
    import httpx

    rng = random.Random(seed)
    clients = {c.key: httpx.Client(base_url=c.url, timeout=60, headers={"Authorization": f"Bearer {MASTER_KEY}"})
               for c in cfgs}
    try:
        for i in range(warmup + n):
            body = {"model": "gpt-test", "messages": [{"role": "user", "content": f"{PROMPT} ({i})"}]}
            order = cfgs[:]
            rng.shuffle(order)
            for cfg in order:
                t0 = time.perf_counter()
                r = clients[cfg.key].post("/v1/chat/completions", json=body)
                wall = (time.perf_counter() - t0) * 1e3
                if r.status_code != 200:
                    raise RuntimeError(f"{cfg.key}: HTTP {r.status_code}: {r.text[:500]}")
                if i >= warmup:
                    cfg.walls.append(wall)
                    cfg.overheads.append(float(r.headers["x-gateway-overhead-ms"]))
    finally:
        for client in clients.values():
            client.close()


def cpu_ms(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used so far, ms; NaN where unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1e3 / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def cpu_busy(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over `seconds` (from /proc/stat), in %, or -1 where unreadable."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle

    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
        return 100.0 * (1 - (i1 - i0) / max(1, t1 - t0))
    except OSError:
        return -1.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", nargs="?", type=int, default=300, help="measured calls per configuration (300)")
    ap.add_argument("--guard-ms", type=float, default=5.0, help="each peer answers after this (5)")
    ap.add_argument("--warmup", type=int, default=20, help="unmeasured rounds first (20)")
    ap.add_argument("--seed", type=int, default=1, help="of the shuffled call order (1)")
    ap.add_argument("--json", type=Path, help="also write parameters and every sample here")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--delay", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.delay)
        return 0

    n, warmup = args.n, args.warmup
    busy = cpu_busy()
    load_before = os.getloadavg()
    children: dict[str, Child] = {}
    cfgs = configs()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-remote-guards-") as d:
        tmp = Path(d)
        try:
            children["upstream"] = Child("upstream", 0.0)
            for kind in GUARDS:
                children[kind] = Child(kind, args.guard_ms / 1e3)
            env = {
                **os.environ,
                "GATEWAY_LOG_LEVEL": "ERROR",
                # llmguard_moderations
                "LLM_GUARD_API_BASE": children["llmguard"].url,
                # llamaguard_moderations: fake credentials, nothing from this machine's AWS setup
                "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "fake-secret",
                "AWS_REGION_NAME": REGION, "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": children["llamaguard"].url,
                # google_text_moderation: an http:// endpoint needs no credentials
                "GOOGLE_MODERATION_API_ENDPOINT": children["google"].url,
            }
            for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                         "GOOGLE_APPLICATION_CREDENTIALS", "DATABASE_URL", "REDIS_URL"):
                env.pop(name, None)
            for cfg in cfgs:
                launch(cfg, children["upstream"].url, env, tmp)
            for cfg in cfgs:
                wait_up(cfg, tmp)
                cfg.steps = pre_request_steps(cfg)
            floors = floor(children, n, warmup)
            pids = {c.key: c.proc.pid for c in cfgs} | {k: ch.proc.pid for k, ch in children.items()}
            cpu0 = {k: cpu_ms(pid) for k, pid in pids.items()}
            measure(cfgs, n, warmup, args.seed)
            cpu = {k: cpu_ms(pid) - cpu0[k] for k, pid in pids.items()}  # over warm-up + measured rounds
        finally:
            for cfg in cfgs:
                if cfg.proc is not None and cfg.proc.poll() is None:
                    cfg.proc.terminate()
            for cfg in cfgs:
                if cfg.proc is not None:
                    try:
                        cfg.proc.wait(30)
                    except subprocess.TimeoutExpired:
                        cfg.proc.kill()
            received = {kind: child.stop() for kind, child in children.items()}
    load_after = os.getloadavg()
    elapsed = time.monotonic() - started

    # Every guarded call reached its guard once, and the warm-up and floor calls are counted too.
    rounds = warmup + n
    problems = []
    for kind, ep in GUARDS.items():
        expected = rounds * sum(ep in c.guards for c in cfgs) + rounds  # + the floor's direct calls
        got = received.get(kind, {})
        if got.get("calls") != expected:
            problems.append(f"{kind} peer received {got.get('calls')} calls, expected {expected}")
        if got.get("violations"):
            problems.append(f"{kind} peer saw calls off LLM Guard's contract: {got['violations']}")
    if received.get("upstream", {}).get("calls") != rounds * len(cfgs):
        problems.append(f"upstream received {received.get('upstream')}, expected {rounds * len(cfgs)} calls")

    med = statistics.median
    base = cfgs[0]
    w0, o0 = med(base.walls), med(base.overheads)
    print(f"remote guards: each peer answers after {args.guard_ms:g} ms in its own process; one sequential "
          f"client; median of {n} calls per configuration ({warmup} warm-up rounds), ms")
    print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; CPU busy before start "
          f"{busy:.0f} %; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; {elapsed:.0f} s")
    peer_cpu = {k: cpu[k] / (rounds * sum(GUARDS[k] in c.guards for c in cfgs)) for k in GUARDS}
    print("peers asked directly by a bare httpx client (round trip): " +
          ", ".join(f"{k} {v:.2f}" for k, v in floors.items()) +
          "; their CPU per call behind the gateways: " + ", ".join(f"{k} {v:.2f}" for k, v in peer_cpu.items()))
    print()
    width = max(len(c.label) for c in cfgs)
    print(f"| {'configuration':<{width}} | client | added | x-gateway-overhead-ms | added | gateway CPU/call "
          f"| pre_request steps (guards, probes) |")
    print(f"|{'-' * (width + 2)}|-------:|------:|----------------------:|------:|-----------------:|---|")
    for c in cfgs:
        w, o = med(c.walls), med(c.overheads)
        steps = " → ".join("[" + " + ".join(s) + "]" for s in c.steps
                           if any(x in ALL or x.startswith("probe_") for x in s)) or "-"
        added_w = "" if c is base else f"{w - w0:+.2f}"
        added_o = "" if c is base else f"{o - o0:+.2f}"
        print(f"| {c.label:<{width}} | {w:6.2f} | {added_w:>5} | {o:21.2f} | {added_o:>5} "
              f"| {cpu[c.key] / rounds:16.2f} | {steps} |")
    by = {c.key: c for c in cfgs}
    alone_o = [med(by[k].overheads) - o0 for k in GUARDS]
    alone_w = [med(by[k].walls) - w0 for k in GUARDS]
    all_o, all_w = med(by["all"].overheads) - o0, med(by["all"].walls) - w0
    print()
    print(f"alone, added overhead: slowest {max(alone_o):+.2f}, sum {sum(alone_o):+.2f}; together "
          f"{all_o:+.2f}, {all_o - max(alone_o):+.2f} over the slowest (client: slowest {max(alone_w):+.2f}, "
          f"sum {sum(alone_w):+.2f}, together {all_w:+.2f})")
    met = all_o < GOAL_MS and all_w < GOAL_MS
    print(f"goal, all three together under {GOAL_MS:g} ms added: overhead {all_o:+.2f}, client {all_w:+.2f}: "
          f"{'met' if met else 'MISSED'}")
    split_o = med(by["split"].overheads) - o0
    print(f"split into three steps instead: overhead {split_o:+.2f} ({split_o - all_o:+.2f} vs together)")
    for p in problems:
        print("PROBLEM:", p)

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "n": n, "warmup": warmup, "guard_ms": args.guard_ms, "seed": args.seed,
            "cpu_busy_before_pct": busy, "loadavg_before": load_before, "loadavg_after": load_after,
            "floors_ms": floors, "received": received, "problems": problems,
            "cpu_ms_per_call": {c.key: cpu[c.key] / rounds for c in cfgs} | peer_cpu,
            "configs": [{"key": c.key, "label": c.label, "guards": c.guards, "plugins": c.plugins, "steps": c.steps,
                         "client_ms": c.walls, "overhead_ms": c.overheads} for c in cfgs],
        }, indent=1))
    return 0 if met and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
