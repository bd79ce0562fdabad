"""Summarise a py-spy speedscope profile of the gateway: where its CPU goes, by package and function.

    python bench/profile_summary.py PROFILE.speedscope.json [--root REPO] [--top 25]

py-spy only records samples of threads that are running (not idle in epoll), so the shares are
shares of the gateway's CPU time. "attributed" charges each sample to the innermost frame that
belongs to a package (ours, quart, hypercorn, httpx, ...), looking through standard-library frames,
so e.g. asyncio.StreamWriter.write called by hypercorn counts for hypercorn. Only frames inside the
callback the event loop is running count; the loop's own work (selecting, scheduling) is "asyncio
event loop".
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter

SITE = re.compile(r"[/\\](?:site|dist)-packages[/\\]([^/\\]+)")
STDLIB = re.compile(r"[/\\]lib[/\\]python3\.\d+[/\\]([^/\\]+)")


def classify(file: str, root: str) -> tuple[str, bool]:
    """(package, is_stdlib) for a frame's file."""
    m = SITE.search(file)
    if m:
        name = m.group(1)
        name = name.removesuffix(".py")
        if name.startswith("_") and name.endswith("_editable"):
            return "gateway (ours)", False
        return name, False
    if root and file.startswith(root):
        return "gateway (ours)", False
    m = STDLIB.search(file)
    if m:
        return "stdlib: " + m.group(1).removesuffix(".py"), True
    if file.startswith("<"):
        return "stdlib: " + file, True
    return "other: " + file, False


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("profile")
    p.add_argument("--root", default="")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--all-threads", action="store_true", help="include every thread, not only MainThread")
    a = p.parse_args()
    root = a.root.rstrip("/") + "/" if a.root else ""

    doc = json.load(open(a.profile))
    frames = doc["shared"]["frames"]
    info = []
    for f in frames:
        file = f.get("file") or ""
        pkg, is_std = classify(file, root)
        short = file
        if root and short.startswith(root):
            short = short[len(root):]
        else:
            m = SITE.search(short) or STDLIB.search(short)
            if m:
                short = short[m.start(1):]
        info.append((pkg, is_std, f"{f['name']} ({short})"))

    # Handle._run runs one callback (a task step); _run_once is the loop's own work; under uvloop the
    # loop is C code, so callbacks sit right under Runner.run.
    loop_frame = [f["name"] in ("Handle._run", "BaseEventLoop._run_once", "Runner.run") and "asyncio" in (f.get("file") or "")
                  for f in frames]
    total = 0.0
    nsamples = 0
    per_thread: Counter[str] = Counter()
    self_pkg: Counter[str] = Counter()
    attributed: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    incl_fn: Counter[str] = Counter()
    profiles = doc["profiles"]
    for prof in profiles:
        samples = prof.get("samples", [])
        weights = prof.get("weights") or [1] * len(samples)
        per_thread[prof.get("name", "?")] += sum(w for st, w in zip(samples, weights) if st)
    main_only = not a.all_threads and any("MainThread" in p.get("name", "") for p in profiles)
    if main_only:
        profiles = [p for p in profiles if "MainThread" in p.get("name", "")]
    for prof in profiles:
        samples = prof.get("samples", [])
        weights = prof.get("weights") or [1] * len(samples)
        for stack, weight in zip(samples, weights):
            if not stack:
                continue
            total += weight
            nsamples += 1
            leaf = stack[-1]  # speedscope stacks are root first
            self_pkg[info[leaf][0]] += weight
            self_fn[info[leaf][2]] += weight
            # Only frames inside the callback the event loop is running count as owners: the loop
            # itself sits under hypercorn's and our start-up frames, which must not be charged for it.
            start = 0
            for pos in range(len(stack) - 1, -1, -1):
                if loop_frame[stack[pos]]:
                    start = pos + 1
                    break
            owner = None
            for idx in reversed(stack[start:]):
                if not info[idx][1]:
                    owner = info[idx][0]
                    break
            if owner is None:
                owner = "asyncio event loop" if start else info[leaf][0]
            attributed[owner] += weight
            for label in {info[idx][2] for idx in stack}:
                incl_fn[label] += weight
    if not total:
        print("profile has no samples")
        return 1

    def table(title: str, counts: Counter[str], n: int) -> None:  # shares of the selected samples
        print(f"\n{title}")
        for name, w in counts.most_common(n):
            print(f"  {100 * w / total:5.1f}%  {name}")

    threads_total = sum(per_thread.values())
    print(f"\npy-spy profile {a.profile}")
    print("sampled time by thread (py-spy's blocking mode can count a thread waiting on a queue as busy):")
    for name, w in per_thread.most_common(5):
        print(f"  {100 * w / threads_total:5.1f}%  {name}")
    print(f"the tables below: {'the event-loop thread (MainThread) only; --all-threads for all' if main_only else 'all threads'}, "
          f"{nsamples} samples")
    table("CPU by package (attributed to the innermost non-stdlib caller):", attributed, 15)
    table("CPU by package (self time, where the sample landed):", self_pkg, 15)
    table(f"top {a.top} functions by self time:", self_fn, a.top)
    table(f"top {a.top} functions by inclusive time:", incl_fn, a.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
