"""Turn bench/run.sh's raw wrk runs into the table, the target checks and a results JSON file.

Standard library only. Called by run.sh; not meant to be run by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_ADDED_P50_MS = 1.0  # at concurrency 1
TARGET_RPS_C32 = 1800.0


def load_runs(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def summarise(runs: list[dict], ticks_per_s: int) -> dict:
    """Medians per (target, concurrency)."""
    out: dict = {}
    for r in runs:
        w = r["wrk"]
        key = (r["target"], r["concurrency"])
        rps = w["requests"] / (w["duration_us"] / 1e6)
        cpu_ms = r["gateway_cpu_ticks"] / ticks_per_s * 1000 / max(1, w["requests"])
        out.setdefault(key, []).append({
            "rps": rps, "p50_ms": w["p50_us"] / 1000, "p90_ms": w["p90_us"] / 1000, "p99_ms": w["p99_us"] / 1000,
            "errors": sum(w["errors"].values()), "gateway_cpu_ms_per_request": cpu_ms,
        })
    summary: dict = {}
    for (target, conc), rows in out.items():
        med = {k: statistics.median(row[k] for row in rows) for k in rows[0] if k != "errors"}
        med["errors"] = sum(row["errors"] for row in rows)
        med["runs"] = len(rows)
        if target == "direct":
            med.pop("gateway_cpu_ms_per_request")
        summary.setdefault(target, {})[f"c{conc}"] = med
    return summary


def git_info(root: str) -> dict:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--", "gateway", "plugins"))}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("gateway", "quart", "hypercorn", "httpx", "httpx-aiohttp", "aiohttp", "werkzeug", "h11", "orjson"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    for tool, args in (("nginx", ["-v"]), ("wrk", ["-v"])):
        try:
            p = subprocess.run([tool, *args], capture_output=True, text=True, timeout=10)
            found[tool] = (p.stdout + p.stderr).splitlines()[0].strip()
        except (OSError, subprocess.SubprocessError, IndexError):
            pass
    found["python"] = platform.python_version()
    return found


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", required=True)
    p.add_argument("--sample", default="")
    p.add_argument("--results-dir", required=True)
    p.add_argument("--transport", required=True)
    p.add_argument("--server", default="hypercorn")
    p.add_argument("--log-level", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--label", default="")
    p.add_argument("--duration", type=int, required=True)
    p.add_argument("--warmup", type=int, required=True)
    p.add_argument("--rss-kib", type=int, default=0)
    p.add_argument("--log-bytes", type=int, default=0)
    p.add_argument("--check-overhead", default="")
    p.add_argument("--gateway-core", default="")
    p.add_argument("--client-core", default="")
    p.add_argument("--root", required=True)
    p.add_argument("--busy-before", default="")
    p.add_argument("--loadavg", default="")
    a = p.parse_args()

    ticks = os.sysconf("SC_CLK_TCK")
    runs = load_runs(a.runs)
    s = summarise(runs, ticks)
    d1, d32 = s["direct"]["c1"], s["direct"]["c32"]
    g1, g32 = s["gateway"]["c1"], s["gateway"]["c32"]
    sample = json.loads(a.sample) if a.sample.strip() else {}
    n_runs = d1["runs"]

    added = {
        c: {"p50_ms": s["gateway"][c]["p50_ms"] - s["direct"][c]["p50_ms"],
            "p99_ms": s["gateway"][c]["p99_ms"] - s["direct"][c]["p99_ms"]}
        for c in ("c1", "c32")
    }
    ratio = {c: s["gateway"][c]["rps"] / s["direct"][c]["rps"] for c in ("c1", "c32")}
    targets = {
        "added_p50_c1_ms_max": {"limit": TARGET_ADDED_P50_MS, "value": added["c1"]["p50_ms"],
                                "pass": added["c1"]["p50_ms"] <= TARGET_ADDED_P50_MS},
        "rps_c32_min": {"limit": TARGET_RPS_C32, "value": g32["rps"], "pass": g32["rps"] >= TARGET_RPS_C32},
    }
    key_shown = a.key[:6] + "..." if len(a.key) > 8 else a.key

    w = sys.stdout.write
    w("\n")
    w(f"gateway benchmark: {a.transport} on {a.server}, log={a.log_level} key={key_shown} "
      f"config={os.path.relpath(a.config, a.root)}; medians of {n_runs} x {a.duration} s\n")
    w(f"{'':<22}{'--------- c=1 ---------':>30}   {'--------- c=32 --------':>30}\n")
    w(f"{'':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}   {'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}\n")
    for name, r1, r32 in (("direct (nginx)", d1, d32), ("gateway", g1, g32)):
        w(f"{name:<22}{r1['rps']:>10.0f}{r1['p50_ms']:>10.3f}{r1['p99_ms']:>10.3f}   "
          f"{r32['rps']:>10.0f}{r32['p50_ms']:>10.3f}{r32['p99_ms']:>10.3f}\n")
    w(f"{'added by gateway':<22}{'':>10}{added['c1']['p50_ms']:>+10.3f}{added['c1']['p99_ms']:>+10.3f}   "
      f"{'':>10}{added['c32']['p50_ms']:>+10.3f}{added['c32']['p99_ms']:>+10.3f}\n")
    w(f"{'gateway/direct rps':<22}{ratio['c1']:>10.3f}{'':>20}   {ratio['c32']:>10.3f}\n")
    w(f"gateway CPU per request: {g1['gateway_cpu_ms_per_request']:.3f} ms at c=1, "
      f"{g32['gateway_cpu_ms_per_request']:.3f} ms at c=32; RSS {a.rss_kib / 1024:.0f} MiB; "
      f"log written {a.log_bytes / 1024:.0f} KiB\n")
    if sample.get("overhead_samples"):
        w(f"x-gateway-overhead-ms (the gateway's own figure), p50 over {sample['overhead_samples']} "
          f"c=1 requests: {sample['overhead_p50_ms']:.3f} ms\n")
    w(f"machine: {cpu_model()}, {os.cpu_count()} CPUs; busy before: {a.busy_before.strip()}; "
      f"load average after: {a.loadavg}\n")
    errors = sum(r["errors"] for t in s.values() for r in t.values())
    if errors:
        w(f"WARNING: {errors} wrk errors (connect/read/write/timeout/non-2xx) across the runs; see results JSON\n")
    for name, t, unit, op in (("added p50 at c=1", targets["added_p50_c1_ms_max"], "ms", "<="),
                              ("gateway req/s at c=32", targets["rps_c32_min"], "req/s", ">=")):
        value = f"{t['value']:.3f}" if unit == "ms" else f"{t['value']:.0f}"
        w(f"target {name} {op} {t['limit']:g} {unit}: {value} {unit}  {'PASS' if t['pass'] else 'FAIL'}\n")

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name = f"{stamp}-{a.transport}-{a.server}-{a.log_level.lower()}{'-' + a.label if a.label else ''}.json"
    result = {
        "time_utc": stamp,
        "parameters": {"transport": a.transport, "server": a.server, "log_level": a.log_level, "key": key_shown,
                       "config": os.path.relpath(a.config, a.root), "duration_s": a.duration, "warmup_s": a.warmup,
                       "runs": n_runs, "concurrency": [1, 32], "wrk_threads": 1,
                       "gateway_core": a.gateway_core, "client_core": a.client_core, "label": a.label},
        "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "kernel": platform.release(),
                    "busy_before": a.busy_before.strip(), "loadavg_after": a.loadavg},
        "git": git_info(a.root),
        "versions": versions(),
        "summary": s,
        "added": added,
        "rps_ratio_gateway_over_direct": ratio,
        "targets": targets,
        "gateway_rss_mib": round(a.rss_kib / 1024, 1),
        "gateway_log_bytes": a.log_bytes,
        "overhead_header_sample": sample,
        "runs": runs,
    }
    out = Path(a.results_dir) / name
    out.write_text(json.dumps(result, indent=2) + "\n")
    w(f"results: {os.path.relpath(out, a.root)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
