"""The two-worker goal where two cores are not free (`bench/run.sh --goals --workers2` on 2-3 CPUs).

On this 2-CPU VM wrk and nginx need one CPU, so two workers can only share the other. Run that way
(both on CPU 1) they served ~11 % less than one worker alone; but two *independent* one-worker
gateways on that core, sharing nothing, lost the same (`--num_workers 2` served 0.98 of what they
did, 4 rounds): the loss is what time-sharing one core costs any two processes (each runs in the
other's cache), not what a second worker costs when it has a core of its own. So the gain a
second core would bring is put together from what can be measured here:

- `workers1 c32` and `workers1 c16`: one worker pinned to CPU 1 with wrk at -c32 and at -c16. With a
  core each, `--num_workers 2` gives each worker about half of wrk's 32 connections.
- `workers2` and `pair`: `--num_workers 2`, and two independent one-worker gateways (their own
  ports and databases), all on CPU 1, each driven by the same two wrk at -c16 at once (both at the
  one port, or one at each gateway). Their ratio is what the two workers cost each other through
  what they share: the listening socket, the database, the files that carry invalidations.

Estimated gain = 2 x R(workers1 c16) / R(workers1 c32) x R(workers2) / R(pair) - 1. The setups take
turns, round after round, as in every other series (the VM's speed drifts from minute to minute).
"""

from __future__ import annotations

import statistics
import sys
import threading
from typing import Any

import goals_servers as gs

SETUPS = ("workers1 c32", "workers1 c16", "workers2", "pair")


def measure(b: Any) -> None:
    """Start the four gateways, run the setups in turns, store each setup's medians as a series."""
    one = b.start_gateway("workers1")
    two = b.start_gateway("workers2", workers=2)
    pair = [b.start_gateway("pair-a"), b.start_gateway("pair-b")]
    loads = {"workers1 c32": [(one, 32)], "workers1 c16": [(one, 16)],
             "workers2": [(two, 16), (two, 16)], "pair": [(pair[0], 16), (pair[1], 16)]}
    servers = [one, two, *pair]
    try:
        for name in SETUPS:
            _at_once(b, loads[name], b.a.warmup)
        runs: dict[str, list[dict]] = {name: [] for name in SETUPS}
        for _ in range(b.a.runs):
            for name in SETUPS:
                mine = {id(s) for s, _ in loads[name]}
                gs.wait_idle([p for s in servers if id(s) not in mine for p in s["pids"]])
                r = _at_once(b, loads[name], b.a.duration)
                runs[name].append(r)
                _say(f"  {name:<13} hi      {r['rps']:9.1f} req/s" + (f"  ERRORS {r['errors']}" if r["errors"] else ""))
        for name in SETUPS:
            b.results["series"][f"{name}/hi"] = {
                "rps": statistics.median(r["rps"] for r in runs[name]), "errors": sum(r["errors"] for r in runs[name]),
                "runs": runs[name], "core": "1"}
    finally:
        for server in servers:
            b.stop(server)


def _say(msg: str) -> None:
    print(f"goals: {msg}", file=sys.stderr, flush=True)


def _at_once(b: Any, load: list[tuple[dict, int]], seconds: float) -> dict:
    """One wrk per (server, connections), all on CPU 0 at the same time; their req/s added up."""
    done: list[dict] = [{} for _ in load]

    def one(i: int) -> None:
        server, conc = load[i]
        done[i] = gs.wrk(server["url"], conc, seconds, server["key"], b.bodies["hi"], "0", b.tmp / f"wrk-w2-{i}.txt")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(load))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if any(not r for r in done):
        raise RuntimeError("a wrk run of the two-worker scenario failed (see the log above)")
    return {"rps": sum(r["rps"] for r in done), "errors": sum(r["error_count"] for r in done),
            "wrk": [{k: r[k] for k in ("requests", "duration_us", "p50_us", "p99_us")} for r in done]}


def evaluate(series: dict, cpus: int | None) -> tuple[str, bool, str, list[dict]] | None:
    """(measured, met, ratio, series) for `workers2_gain` from the four setups, or None if not run."""
    got = {name: series.get(f"{name}/hi") for name in SETUPS}
    if not all(got.values()):
        return None
    one32, one16, two, pair = (got[n]["rps"] for n in SETUPS)  # type: ignore[index]
    gain = 2 * (one16 / one32) * (two / pair) - 1
    measured = f"{two:.0f} req/s vs independent pair {pair:.0f} (shared CPU 1); 1 worker {one32:.0f} at c32, {one16:.0f} at c16"
    ratio = (f"estimated gain {gain:.3f} = 2 x {one16:.0f}/{one32:.0f} x {two:.0f}/{pair:.0f} - 1 (a core each; "
             f"{cpus} CPUs here, bench/goals_workers2.py)")
    return measured, gain >= 0.8, ratio, list(got.values())  # type: ignore[arg-type]
