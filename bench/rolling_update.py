"""Measure a rolling update of the app under load on a rehearsal host, and print:

    duration         wall time of `lbstack deploy --rolling` (a new release to every instance)
    served           requests answered while it ran, and how many failed (5xx or socket errors)
    p95 before       p95 latency over the same window length just before the update
    p95 during       p95 latency while it ran

    python -m bench.rolling_update [--host NAME] [--connections 200] [--before 20] [--runs 1]

The release is the bundled sample app with one extra file (a new build each run). Load comes from
bench.load on this machine, only to the rehearsal host, bounded in time. With --host an already
converged host is used (and left on the new release: converge it again to go back); otherwise a
fresh nspawn host is booted, converged, measured and torn down. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from bench.common import converge

from bench import load
from lbstack import REPO_ROOT
from lbstack.rehearsal import down, get_host, up
from lbstack.release import SAMPLE_APP_DIR

PATHS = ["/api/questions/random", "/api/ujian/health"]


def new_build(root: str, run: int) -> str:
    path = os.path.join(root, f"app-{run}")
    shutil.copytree(SAMPLE_APP_DIR, path, ignore=shutil.ignore_patterns("storage"))
    with open(os.path.join(path, "public", "build.txt"), "w") as handle:
        handle.write(f"bench {time.time()} {run}\n")
    return path


def measure(name: str, address: str, source: str, connections: int, before_s: float) -> dict:
    exe = os.path.join(os.path.dirname(sys.executable), "lbstack")
    with load.running(f"http://{address}", duration_s=600, connections=connections, paths=PATHS,
                      timeout_s=15) as handle:
        time.sleep(2)  # connections open and warm
        handle.mark("before")
        time.sleep(before_s)
        started = handle.mark("deploy")
        proc = subprocess.run([exe, "deploy", "--rolling", "inventories/rehearsal.py", "--set", f"app_source={source}"],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
                              env={**os.environ, "LBSTACK_REHEARSAL_HOSTS": name})
        ended = handle.mark("deployed")
    result = handle.result()
    if proc.returncode != 0:
        raise SystemExit(f"lbstack deploy --rolling failed on {name}:\n{proc.stderr[-3000:]}")
    before = result.summary(result.marks["deploy"] - before_s, result.marks["deploy"])
    during = result.summary(started, ended)
    return {"duration_s": round(ended - started, 1), "served": during["requests"], "failed": during["failed"],
            "failed_by_kind": during["failed_by_kind"], "retried": during["retried"],
            "rps_before": before["rps"], "rps_during": during["rps"],
            "p95_before_ms": before["latency_ms"]["p95"], "p95_during_ms": during["latency_ms"]["p95"],
            "releases_during": during["releases"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="an already converged rehearsal host (default: boot one)")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--before", type=float, default=20.0, help="seconds of load measured before the update")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    name = args.host or f"bench-roll-{os.getpid()}"
    results = []
    try:
        if not args.host:
            print(f"booting and converging {name} ...", flush=True)
            up(name)
            converge(name)
        address = get_host(name).address
        with tempfile.TemporaryDirectory(prefix="lbstack-bench-") as tmp:
            for run in range(args.runs):
                r = measure(name, address, new_build(tmp, run), args.connections, args.before)
                results.append(r)
                print(f"run {run + 1}: rolling update of 5 instances under {args.connections} connections: "
                      f"{r['duration_s']} s, {r['served']} requests served, {r['failed']} failed "
                      f"({r['retried']} resent after a keep-alive close), p95 {r['p95_before_ms']} ms before "
                      f"-> {r['p95_during_ms']} ms during, {r['rps_before']} -> {r['rps_during']} req/s", flush=True)
        print(json.dumps({"bench": "rolling_update", "host": name, "connections": args.connections,
                          "runs": results}))
    finally:
        if not args.host:
            down(name)


if __name__ == "__main__":
    main()
