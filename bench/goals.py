"""The gateway's speed goals, each measured against the floor in the same run. See bench/README.md.

One gateway worker pinned to CPU 1 with spend logs on and a virtual key; nginx (the upstream) and the
load (wrk, or the time-to-first-token client) on CPU 0. The floor is bench/baseline_app.py (Quart
forwarding with aiohttp, nothing else) under the same uvicorn (uvloop + httptools) on the same core.
Each goal is read as a ratio to, or a difference from, the floor or the plain gateway measured here,
so the figures travel between machines better than absolute ones.

    bash bench/run.sh --goals [--quick] [--soak S] [--only plain,latency,...] [--workers2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import goals_servers as gs
import goals_workers2

SCENARIOS = ("plain", "latency", "stream", "plugins", "sizes", "soak", "workers2")
SIZES_KIB = gs.SIZES_KIB


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10, help="seconds per measured run (default 10)")
    p.add_argument("--warmup", type=float, default=2, help="seconds of warm-up before each series (default 2)")
    p.add_argument("--runs", type=int, default=3, help="measured runs per series; medians are reported (default 3)")
    p.add_argument("--quick", action="store_true", help="1 run of 3 s, 1 s warm-up, soak skipped: a smoke test")
    p.add_argument("--only", default="", help=f"comma-separated scenarios out of {','.join(SCENARIOS)}")
    p.add_argument("--workers2", action="store_true", help="also run the two-worker scenario (4+ CPUs: unpinned; "
                   "fewer: both on CPU 1, the gain estimated from the cost of sharing it)")
    p.add_argument("--soak", type=float, default=None, help="soak seconds after the first 100k requests "
                   "(default 600; 0 skips the soak but still measures RSS after 100k requests)")
    p.add_argument("--ttft-requests", type=int, default=300, help="streamed calls per TTFT run (default 300)")
    p.add_argument("--json-out", default="", help="results file (default bench/results/goals-<UTC time>.json)")
    a = p.parse_args()
    if a.quick:
        a.duration, a.warmup, a.runs, a.ttft_requests = 3, 1, 1, 100
        a.soak = 0 if a.soak is None else a.soak
    a.soak = 600 if a.soak is None else a.soak
    a.only = [s for s in a.only.split(",") if s] or [s for s in SCENARIOS if s != "workers2" or a.workers2]
    unknown = set(a.only) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenario(s) {sorted(unknown)}; choose from {SCENARIOS}")
    return a


def say(msg: str) -> None:
    print(f"goals: {msg}", file=sys.stderr, flush=True)


class Bench:
    """The servers of one run and every measurement taken from them."""

    def __init__(self, a: argparse.Namespace, tmp: Path) -> None:
        self.a, self.tmp, self.procs = a, tmp, gs.Procs()
        self.bodies = gs.write_bodies(tmp)
        self.results: dict = {"series": {}, "checks": {}}
        self.upstream = ""

    # --- servers ---------------------------------------------------------------------------------------
    def start_nginx(self) -> None:
        port = gs.free_port()
        conf, ng = gs.write_nginx_conf(self.tmp, port), gs.nginx_binary()
        args = ["-p", str(self.tmp / "nginx"), "-e", str(self.tmp / "nginx-error.log"), "-c", str(conf)]
        proc = self.procs.spawn(["taskset", "-c", "0", ng, *args], self.tmp / "nginx.out")
        self.upstream = f"http://127.0.0.1:{port}"
        gs.wait_http(self.upstream + "/", proc, "nginx")

    def start_floor(self) -> dict:
        port = gs.free_port()
        argv = ["taskset", "-c", "1", "uv", "run", "--no-sync", "--project", str(gs.ROOT), "uvicorn",
                "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--loop", "uvloop", "--http",
                "httptools", "--timeout-keep-alive", "75", "--app-dir", str(gs.BENCH), "baseline_app:app"]
        env = {"BASELINE_CLIENT": "aiohttp", "BENCH_API_BASE": self.upstream + "/v1"}
        return self._started("floor", argv, port, env, key="sk-floor")

    def start_gateway(self, name: str, extra: dict | None = None, workers: int = 1, core: str | None = "1") -> dict:
        port, cfg = gs.free_port(), gs.gateway_config(self.tmp, name, self.upstream, extra)
        argv = ["uv", "run", "--no-sync", "--project", str(gs.ROOT), "gateway", "--config", str(cfg),
                "--host", "127.0.0.1", "--port", str(port), "--num_workers", str(workers)]
        argv = ["taskset", "-c", core, *argv] if core else argv
        server = self._started(name, argv, port, {"GATEWAY_LOG_LEVEL": "WARNING"}, workers=workers)
        server["key"], server["core"] = gs.make_virtual_key(server["url"]), core
        return server

    def _started(self, name: str, argv: list[str], port: int, env: dict, key: str = "", workers: int = 1) -> dict:
        proc = self.procs.spawn(argv, self.tmp / f"{name}.log", cwd=self.tmp, env=env)
        url = f"http://127.0.0.1:{port}"
        gs.wait_http(url + "/health/liveliness", proc, name)
        deadline = time.monotonic() + 30
        while len(pids := gs.server_pids(proc.pid)) < workers and time.monotonic() < deadline:
            time.sleep(0.2)
        say(f"{name} on {url}, serving pid(s) {pids}")
        return {"name": name, "url": url, "port": port, "proc": proc, "pids": pids, "key": key}

    def stop(self, server: dict) -> None:
        self.procs.stop(server["proc"])

    # --- checks before measuring -------------------------------------------------------------------------
    def check_relays(self, server: dict, bodies: tuple[str, ...]) -> None:
        """One request per body: 200 and the upstream's reply; streams must bring all 200 content chunks."""
        for name in bodies:
            body = json.loads(self.bodies[name].read_bytes())
            if name == "stream":
                status, _, count = gs.ttft(server["port"], server["key"], self.bodies[name].read_bytes(), 1, 0)[0]
                ok = status == 200 and count == gs.STREAM_CHUNKS
                detail = f"HTTP {status}, {count} content chunks"
            else:
                status, out = gs.http_json("POST", server["url"] + "/v1/chat/completions", server["key"], body)
                ok, detail = status == 200 and out.get("id") == "chatcmpl-bench", f"HTTP {status} {str(out)[:200]}"
            self.results["checks"][f"{server['name']}/{name}"] = detail
            if not ok:
                raise RuntimeError(f"{server['name']} did not relay body {name}: {detail}")

    # --- measurements ----------------------------------------------------------------------------------
    def series(self, servers: list[dict], body: str, conc: int) -> list[dict]:
        """A warm-up each, then `runs` wrk runs each, the servers taking turns (this machine's speed
        drifts by ±20% over minutes: turns expose them to the same drift); medians, plus each
        server's CPU seconds per request. Before a run, the others must be idle (a gateway's spend
        writer may still be catching up), so that no server's work lands in another's run."""
        a, log = self.a, self.tmp / "wrk.txt"
        for server in servers:
            gs.wrk(server["url"], conc, a.warmup, server["key"], self.bodies[body], "0", log)
        runs: dict[str, list[dict]] = {server["name"]: [] for server in servers}
        for _ in range(a.runs):
            for server in servers:
                gs.wait_idle([p for other in servers if other is not server for p in other["pids"]])
                cpu0 = sum(gs.cpu_seconds(p) for p in server["pids"])
                r = gs.wrk(server["url"], conc, a.duration, server["key"], self.bodies[body], "0", log)
                r["cpu_s"] = sum(gs.cpu_seconds(p) for p in server["pids"]) - cpu0
                runs[server["name"]].append(r)
                say(f"  {server['name']:<8} {body:<7} c={conc:<3} {r['rps']:9.1f} req/s  p50 {r['p50_us'] / 1000:7.3f} ms"
                    f"  p99 {r['p99_us'] / 1000:7.3f} ms" + (f"  ERRORS {r['errors']}" if r["error_count"] else ""))
        out = []
        for server in servers:
            mine = runs[server["name"]]
            med = {k: statistics.median(r[k] for r in mine) for k in ("rps", "p50_us", "p99_us")}
            med["cpu_us_per_request"] = statistics.median(r["cpu_s"] * 1e6 / max(1, r["requests"]) for r in mine)
            med["errors"] = sum(r["error_count"] for r in mine)
            med["runs"] = mine
            med["core"] = server.get("core")
            self.results["series"][f"{server['name']}/{body}/c{conc}"] = med
            out.append(med)
        return out

    def ttft(self, server: dict) -> dict:
        """Time to the first content event at concurrency 1, over `runs` x ttft_requests streamed calls."""
        samples: list[float] = []
        for _ in range(self.a.runs):
            out = gs.ttft(server["port"], server["key"], self.bodies["stream"].read_bytes(), self.a.ttft_requests)
            bad = [o for o in out if o[0] != 200 or o[2] != gs.STREAM_CHUNKS]
            if bad:
                raise RuntimeError(f"{server['name']}: {len(bad)} streamed calls went wrong, e.g. {bad[0]}")
            samples += [o[1] * 1000 for o in out]
        samples.sort()
        res = {"p50_ms": statistics.median(samples), "p99_ms": samples[int(0.99 * (len(samples) - 1))],
               "n": len(samples)}
        say(f"  {server['name']:<8} ttft    c=1   p50 {res['p50_ms']:.3f} ms  p99 {res['p99_ms']:.3f} ms (n={res['n']})")
        self.results["series"][f"{server['name']}/ttft"] = res
        return res

    def measure_common(self, servers: list[dict]) -> None:
        """The series the floor and the plain gateway share, for the scenarios asked for, in turns."""
        only = self.a.only
        if "plain" in only:
            self.series(servers, "hi", 32)
        if "latency" in only:
            self.series(servers, "hi", 1)
        if "stream" in only:
            self.series(servers, "stream", 32)
            for server in servers:
                gs.wait_idle([p for other in servers if other is not server for p in other["pids"]])
                self.ttft(server)
        if "sizes" in only:
            for kib in SIZES_KIB:
                self.series(servers, f"k{kib}", 1)

    def soak(self, server: dict) -> dict:
        """c=32 in slices of at most 10 s (plain, stream and 1 KiB calls in turn) until 100,000 requests,
        then for --soak seconds; RSS after every slice. Growth is the least-squares slope after 100k."""
        pid, kinds, slice_s = server["pids"][0], ("hi", "stream", "k1"), min(10.0, self.a.duration)
        out = {"rss_start_mib": gs.rss_mib(pid), "samples": []}
        total, i, t_100k = 0, 0, None
        while t_100k is None or time.monotonic() - t_100k < self.a.soak:
            r = gs.wrk(server["url"], 32, slice_s, server["key"], self.bodies[kinds[i % 3]], "0", self.tmp / "soak.txt")
            total, i = total + r["requests"], i + 1
            out["errors"] = out.get("errors", 0) + r["error_count"]
            if t_100k is None and total >= 100_000:
                t_100k, out["rss_100k_mib"], out["requests_at_100k"] = time.monotonic(), gs.rss_mib(pid), total
                say(f"  soak: RSS {out['rss_100k_mib']:.1f} MiB after {total} requests")
            if t_100k is not None:
                out["samples"].append((round(time.monotonic() - t_100k, 1), gs.rss_mib(pid)))
        out.update(rss_end_mib=gs.rss_mib(pid), requests=total, soak_s=self.a.soak)
        xs, ys = [s[0] for s in out["samples"]], [s[1] for s in out["samples"]]
        out["slope_mib_per_min"] = statistics.linear_regression(xs, ys).slope * 60 if len(set(xs)) > 1 else 0.0
        say(f"  soak: RSS start {out['rss_start_mib']:.1f}, after 100k {out['rss_100k_mib']:.1f}, end "
            f"{out['rss_end_mib']:.1f} MiB; slope {out['slope_mib_per_min']:+.3f} MiB/min over {self.a.soak:g} s")
        self.results["soak"] = out
        return out


def plugins_extra(tmp: Path) -> dict:
    """hide_secrets, banned_keywords (1,000), size_limits and blocked users, the LiteLLM way."""
    return {"litellm_settings": {
                "callbacks": ["hide_secrets", "banned_keywords", "size_limits", "blocked_user_check"],
                "banned_keywords_list": str(gs.banned_keywords(tmp)),
                "blocked_user_list": [f"blocked-user-{i}" for i in range(1, 6)]},
            "general_settings": {"max_request_size_mb": 32, "max_response_size_mb": 100}}


def check_plugins(server: dict) -> None:
    """GET /plugins must list the four as enabled, and a blocked user must be refused."""
    status, out = gs.http_json("GET", server["url"] + "/plugins")
    enabled = {p["name"] for p in out.get("installed", []) if p.get("enabled")}
    want = {"hide_secrets", "banned_keywords", "size_limits", "blocked_user_check"}
    if status != 200 or not want <= enabled:
        raise RuntimeError(f"plugins not all enabled: HTTP {status}, enabled {sorted(enabled)}")
    body = {"model": "bench", "user": "blocked-user-3", "messages": [{"role": "user", "content": "hi"}]}
    status, out = gs.http_json("POST", server["url"] + "/v1/chat/completions", server["key"], body)
    if status != 400 or "User blocked" not in str(out):
        raise RuntimeError(f"a blocked user was not refused: HTTP {status} {out}")


def run(b: Bench) -> None:
    """The floor and the plain gateway side by side, taking turns on CPU 1 (one loaded at a time); then
    the plugins gateway beside the plain one; then the soak and the two-worker runs."""
    only, common = b.a.only, {"plain", "latency", "stream", "sizes"} & set(b.a.only)
    b.start_nginx()
    relay_bodies = tuple(n for n, s in (("hi", "plain"), ("hi", "latency"), ("stream", "stream"), ("k1", "sizes"),
                                        ("k100", "sizes"), ("k1024", "sizes"), ("user1k", "plugins")) if s in only)
    servers = []
    if common:
        floor = b.start_floor()
        b.check_relays(floor, tuple(n for n in relay_bodies if n != "user1k"))
        servers.append(floor)
    if common or "plugins" in only:
        gw = b.start_gateway("gateway")
        b.check_relays(gw, relay_bodies)
        servers.append(gw)
        b.measure_common(servers)
        if "plugins" in only:
            pg = b.start_gateway("plugins", plugins_extra(b.tmp))
            check_plugins(pg)
            b.check_relays(pg, ("user1k",))
            b.series([gw, pg], "user1k", 32)
            b.stop(pg)
        for server in servers:
            b.stop(server)
    if "soak" in only:
        sk = b.start_gateway("soak")
        b.soak(sk)
        b.stop(sk)
    if "workers2" in only:
        if two_cores_free():
            for workers in (1, 2):
                w = b.start_gateway(f"workers{workers}", workers=workers, core=None)
                b.series([w], "hi", 32)
                b.stop(w)
        else:  # no core to spare: estimated from what can be measured on one (bench/goals_workers2.py)
            goals_workers2.measure(b)


def two_cores_free() -> bool:
    """Two workers can each have a core of their own beside wrk and nginx (4+ CPUs)."""
    return (os.cpu_count() or 1) >= 4


# --- the goals --------------------------------------------------------------------------------------
TARGETS = {  # name: (target, scenario that measures it)
    "throughput_c32": (">= 80% of the floor's req/s", "plain"),
    "added_p50_c1": ("<= 0.4 ms", "latency"),
    "added_p99_c1": ("<= 2.0 ms", "latency"),
    "stream_cpu_per_chunk": ("<= 15 us", "stream"),
    "stream_added_ttft_c1": ("<= 1 ms", "stream"),
    "plugins_rps": (">= 60% of the plain gateway's req/s", "plugins"),
    "size_scaling": ("added(1 MiB)/added(100 KiB) <= 10.24", "sizes"),
    "rss_after_100k": ("<= 100 MiB", "soak"),
    "rss_soak_growth": ("<= 2 MiB (least-squares trend over the soak)", "soak"),
    "workers2_gain": ("second worker adds >= 80%", "workers2"),
}


def evaluate(b: Bench) -> list[dict]:
    """One entry per goal, in TARGETS' order: measured, met (None: not measured), the verdict (met, NOT MET,
    skipped) and the ratio behind it."""
    s, found = b.results["series"], {}

    def goal(name: str, measured: str, met: bool, ratio: str, *series: dict) -> None:
        errors = sum(x.get("errors", 0) for x in series)
        note = f"; {errors} wrk errors: figure not valid" if errors else ""
        met = met and not errors
        verdict = "met" if met else "NOT MET"
        found[name] = {"measured": measured, "met": met, "verdict": verdict, "ratio": ratio + note}

    def pair(key: str, ref: str = "floor", other: str = "gateway") -> tuple:
        """The reference's and the other server's figures for one series, or Nones."""
        f, g = s.get(f"{ref}/{key}"), s.get(f"{other}/{key}")
        return (f, g) if f and g else (None, None)

    f, g = pair("hi/c32")
    if f and g:
        r = g["rps"] / f["rps"]
        goal("throughput_c32", f"{g['rps']:.0f} req/s (floor {f['rps']:.0f})", r >= 0.8, f"gateway/floor {r:.3f}", f, g)
    f, g = pair("hi/c1")
    if f and g:
        for pct, limit in (("p50", 0.4), ("p99", 2.0)):
            gv, fv = g[f"{pct}_us"] / 1000, f[f"{pct}_us"] / 1000
            goal(f"added_{pct}_c1", f"{gv - fv:+.3f} ms ({gv:.3f} vs {fv:.3f})", gv - fv <= limit,
                 f"gateway/floor {gv / fv:.2f}", f, g)
    f, g = pair("stream/c32")
    if f and g:
        per, per_f = g["cpu_us_per_request"] / gs.STREAM_CHUNKS, f["cpu_us_per_request"] / gs.STREAM_CHUNKS
        goal("stream_cpu_per_chunk", f"{per:.2f} us (floor {per_f:.2f} us)", per <= 15,
             f"gateway/floor {per / per_f:.2f}", f, g)
    f, g = pair("ttft")
    if f and g:
        added = g["p50_ms"] - f["p50_ms"]
        goal("stream_added_ttft_c1", f"{added:+.3f} ms (p50 {g['p50_ms']:.3f} vs {f['p50_ms']:.3f}; p99 "
             f"{g['p99_ms']:.3f} vs {f['p99_ms']:.3f})", added <= 1, f"gateway/floor {g['p50_ms'] / f['p50_ms']:.2f}")
    f, g = pair("user1k/c32", "gateway", "plugins")
    if f and g:
        r = g["rps"] / f["rps"]
        goal("plugins_rps", f"{g['rps']:.0f} req/s (plain gateway {f['rps']:.0f})", r >= 0.6,
             f"plugins/plain {r:.3f}", f, g)
    sizes = {k: pair(f"k{k}/c1") for k in gs.SIZES_KIB}
    if all(f for f, _ in sizes.values()):
        size_scaling(goal, sizes)
    if soak := b.results.get("soak"):
        goal("rss_after_100k", f"{soak['rss_100k_mib']:.1f} MiB", soak["rss_100k_mib"] <= 100,
             f"start {soak['rss_start_mib']:.1f} MiB, after {soak['requests_at_100k']} requests", soak)
        if soak["soak_s"] > 0:
            grown = soak["slope_mib_per_min"] * soak["soak_s"] / 60
            goal("rss_soak_growth", f"{grown:+.2f} MiB over {soak['soak_s']:g} s (end {soak['rss_end_mib']:.1f} MiB)",
                 grown <= 2, f"slope {soak['slope_mib_per_min']:+.3f} MiB/min over {soak['requests']} requests", soak)
    w1, w2 = s.get("workers1/hi/c32"), s.get("workers2/hi/c32")
    if w1 and w2 and w1.get("core") is None:
        gain = w2["rps"] / w1["rps"] - 1
        goal("workers2_gain", f"{w2['rps']:.0f} req/s vs 1 worker {w1['rps']:.0f}", gain >= 0.8,
             f"gain {gain:.3f}", w1, w2)
    elif estimate := goals_workers2.evaluate(s, os.cpu_count()):
        goal("workers2_gain", estimate[0], estimate[1], estimate[2], *estimate[3])
    return [{"name": name, "target": target, **found.get(name, skipped(b.a, name, scenario))}
            for name, (target, scenario) in TARGETS.items()]


def size_scaling(goal: Callable[..., None], sizes: dict) -> None:
    """Added p50 per prompt size; the per-KiB cost must not rise from 100 KiB to 1 MiB. The slopes of
    each server alone say which side moved when "added" is small or negative."""
    added = {k: (g["p50_us"] - f["p50_us"]) / 1000 for k, (f, g) in sizes.items()}
    (f1, g1), (f2, g2) = sizes[100], sizes[1024]

    def slope(small: dict, large: dict) -> float:  # us per KiB
        return (large["p50_us"] - small["p50_us"]) / (1024 - 100)

    if added[1024] <= 0:
        r, why = None, "ratio n/a: at 1 MiB the gateway is as fast as the floor or faster"
    elif added[100] <= 0:
        r, why = None, "ratio n/a: nothing added at 100 KiB, something at 1 MiB"
    else:
        r = added[1024] / added[100]
        why = f"ratio {r:.2f}"
    goal("size_scaling", ", ".join(f"{k} KiB {v:+.3f} ms" for k, v in added.items()),
         added[1024] <= 0 or (r is not None and r <= 1024 / 100), why
         + f"; from 100 KiB to 1 MiB the gateway's p50 grows {slope(g1, g2):.2f} us/KiB, the floor's "
         f"{slope(f1, f2):.2f} us/KiB", *(x for pr in sizes.values() for x in pr))


def skipped(a: argparse.Namespace, name: str, scenario: str) -> dict:
    why = "--soak 0" if name == "rss_soak_growth" and scenario in a.only else f"scenario {scenario} not run"
    return {"measured": f"not measured ({why})", "met": None, "verdict": "skipped", "ratio": ""}


def note(g: dict) -> str:
    return f" ({g['ratio']})" if g["ratio"] else ""


def report(a: argparse.Namespace, goals: list[dict], context: dict) -> str:
    """The parameters, the GOAL lines, then a markdown table for bench/README.md."""
    params = (f"{a.runs} x {a.duration:g} s per series after {a.warmup:g} s warm-up, TTFT {a.runs} x "
              f"{a.ttft_requests} calls, soak {a.soak:g} s; commit {context['git']['commit'][:10]}"
              f"{' (gateway/plugins modified)' if context['git']['dirty'] else ''}; {context['cpus']} CPUs, "
              f"busy before {context['busy']}")
    lines = [f"parameters: {params}"]
    lines += [f"GOAL {g['name']}: {g['measured']} vs {g['target']} -> {g['verdict']}{note(g)}" for g in goals]
    lines += ["", f"{params}:", "", "| goal | measured | target | result |", "|---|---|---|---|"]
    lines += [f"| {g['name']} | {g['measured']} | {g['target']} | "
              f"{'**NOT MET**' if g['verdict'] == 'NOT MET' else g['verdict']}{note(g)} |" for g in goals]
    return "\n".join(lines)


def main() -> int:
    a = parse_args()
    busy = gs.cpu_busy()
    if max(busy.values()) > 15:
        say(f"WARNING: the machine is busy before the benchmark ({busy}): other processes will skew the figures")
    tmp = Path(tempfile.mkdtemp(prefix="gateway-goals."))
    b = Bench(a, tmp)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    say(f"scenarios {','.join(a.only)}; {a.runs} x {a.duration:g} s per series; temp dir {tmp}")
    try:
        run(b)
    except BaseException:
        for log in sorted(tmp.glob("*.log")):
            say(f"--- last lines of {log.name}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
        raise
    finally:
        b.procs.stop_all()
        if os.environ.get("BENCH_KEEP_TMP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
    goals, git = evaluate(b), gs.git_info()
    print(report(a, goals, {"git": git, "cpus": os.cpu_count(), "busy": busy}))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = Path(a.json_out) if a.json_out else gs.BENCH / "results" / f"goals-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "time_utc": stamp, "parameters": vars(a), "git": git, "goals": goals,
        "machine": {"cpu": gs.cpu_model(), "cpus": os.cpu_count(), "busy_before_pct": busy,
                    "loadavg_after": os.getloadavg()}, **b.results}, indent=1) + "\n")
    print(f"results: {out}")
    return 1 if any(g["verdict"] == "NOT MET" for g in goals) else 0


if __name__ == "__main__":
    sys.exit(main())
