"""Measure and print the wall time of the operating commands on a converged rehearsal host:

    drift     lbstack drift (deploy/full.py prepared against the host + the full verification)
    status    lbstack status
    metrics   lbstack metrics
    test      lbstack test --requests 200

    python -m bench.operate_times [--host NAME] [--runs N]

With --host, an already converged rehearsal host is measured (e.g. the one ``./dev rehearse``
leaves running); otherwise a fresh nspawn host is booted, converged, measured and torn down.
Bounded: every command has a timeout. Prints a table and one JSON line (min/median/max seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from bench.common import converge

from lbstack import REPO_ROOT
from lbstack.rehearsal import down, up

COMMANDS = {
    "drift": ["drift", "inventories/rehearsal.py", "--json"],
    "status": ["status", "inventories/rehearsal.py", "--json"],
    "metrics": ["metrics", "inventories/rehearsal.py", "--json"],
    "test (200 requests)": ["test", "inventories/rehearsal.py", "--requests", "200", "--json"],
}
EXPECTED_RC = {"drift": 0}


def run(name: str, args: list[str]) -> float:
    exe = os.path.join(os.path.dirname(sys.executable), "lbstack")
    started = time.monotonic()
    proc = subprocess.run([exe, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "LBSTACK_REHEARSAL_HOSTS": name})
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"lbstack {' '.join(args)} exited {proc.returncode} on {name}:\n{proc.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="an already converged rehearsal host (default: boot one)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each command (default 3)")
    args = parser.parse_args()
    name = args.host or f"bench-op-{os.getpid()}"
    try:
        if not args.host:
            print(f"booting and converging {name} ...", flush=True)
            up(name)
            converge(name)
        results = {}
        print(f"{'command':<22} {'min':>7} {'median':>7} {'max':>7}  (seconds, {args.runs} runs, host {name})")
        for label, command in COMMANDS.items():
            times = [run(name, command) for _ in range(args.runs)]
            results[label] = {"min": round(min(times), 2), "median": round(statistics.median(times), 2),
                              "max": round(max(times), 2)}
            r = results[label]
            print(f"{label:<22} {r['min']:>7.2f} {r['median']:>7.2f} {r['max']:>7.2f}", flush=True)
        print(json.dumps({"bench": "operate_times", "host": name, "runs": args.runs, "seconds": results}))
    finally:
        if not args.host:
            down(name)


if __name__ == "__main__":
    main()
