"""A bounded soak of the converged stack: steady load for ``--minutes`` (default 60) with a fault
every ``--fault-every`` seconds (default 300), in turn:

    kill -9 of an instance's FPM master   SIGSTOP of an instance for 20 s   MariaDB restart
    Redis restart                         a rolling update (a new release to every instance)

    python -m bench.soak [--minutes 60] [--fault-every 300] [--connections 50] [--host NAME]

Reads (``/api/questions/random``, ``/api/ujian/health``) come from bench.load over keep-alive
connections; a writer posts exam results (``POST /api/exam-results``, 4 a second) and keeps the id
of every one answered 202. Prints availability over the run, the failed requests and the longest
answer in the minute after each fault, the longest request of the run, and the data check: every
acknowledged result stored and scored, and the rows that existed before the soak unchanged
(count and SHA-256 of the table's rows before and after). One JSON line at the end.

Load goes only to the rehearsal host, bounded in time; with ``--host`` an already converged host
is used (it ends on a new release: converge again to go back), otherwise a fresh nspawn host is
booted, converged and torn down.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from bench import load
from bench.common import converge
from bench.rolling_update import new_build
from lbstack import REPO_ROOT
from lbstack.rehearsal import converge as rehearsal_converge, down, get_host, owned_hosts, ssh_run, up

PATHS = ["/api/questions/random", "/api/ujian/health"]
FAULTS = ("kill -9 of an instance", "SIGSTOP of an instance for 20 s", "MariaDB restart", "Redis restart",
          "rolling update")
WRITES_PER_S = 4
# a checksum of the exam results the soak did not write (they must not change)
CHECKSUM_SQL = ("SET SESSION group_concat_max_len = 1073741824; "
                "SELECT COUNT(*), SHA2(COALESCE(GROUP_CONCAT(CONCAT_WS(':', id, COALESCE(session_id, ''), total, score, "
                "COALESCE(processed_at, ''), runs) ORDER BY id SEPARATOR ','), ''), 256) FROM exam_results "
                "WHERE session_id IS NULL OR session_id NOT LIKE 'soak-%'")


def remote(name: str, command: str, timeout_s: float = 120) -> str:
    rc, out, err = ssh_run(get_host(name), command, timeout_s=timeout_s)
    if rc != 0:
        raise RuntimeError(f"{command[:80]}: exit {rc}: {err[-500:]}")
    return out


def sql(name: str, query: str) -> str:
    return remote(name, f"mariadb -N -B lbstack -e {shlex.quote(query)}").strip()


class Writer(threading.Thread):
    """POSTs exam results at a steady rate until stopped; keeps the acknowledged ids."""

    def __init__(self, base: str) -> None:
        super().__init__(name="soak-writer", daemon=True)
        self.base = base
        self.stop_event = threading.Event()
        self.acknowledged: dict[int, str] = {}
        self.refused = 0
        self.sent = 0

    def run(self) -> None:
        n = 0
        while not self.stop_event.is_set():
            n += 1
            session = f"soak-{os.getpid()}-{n}"
            body = json.dumps({"answers": {str(random.randint(1, 200)): random.randint(0, 3) for _ in range(5)},
                               "session_id": session}).encode()
            request = urllib.request.Request(f"{self.base}/api/exam-results", data=body, method="POST",
                                             headers={"Content-Type": "application/json", "Accept": "application/json"})
            self.sent += 1
            try:
                with urllib.request.urlopen(request, timeout=15) as response:
                    if response.status == 202:
                        self.acknowledged[json.loads(response.read())["id"]] = session
                    else:
                        self.refused += 1
            except (urllib.error.URLError, OSError, ValueError):
                self.refused += 1  # not acknowledged: the client knows it must send it again
            self.stop_event.wait(1 / WRITES_PER_S)


def fault(kind: str, name: str, tmp: str, n: int) -> str:
    """Cause fault ``kind`` on host ``name``; returns what was done."""
    instance = random.randint(1, 5)
    if kind == FAULTS[0]:
        remote(name, f"kill -9 $(systemctl show -p MainPID --value lbstack-fpm@{instance}.service)")
        return f"kill -9 of app{instance}'s master"
    if kind == FAULTS[1]:
        remote(name, f"systemctl kill -s STOP lbstack-fpm@{instance}.service; sleep 20; "
                     f"systemctl kill -s CONT lbstack-fpm@{instance}.service", timeout_s=60)
        return f"SIGSTOP of app{instance} (master and workers) for 20 s"
    if kind == FAULTS[2]:
        remote(name, "systemctl restart mariadb.service", timeout_s=300)
        return "systemctl restart mariadb"
    if kind == FAULTS[3]:
        remote(name, "systemctl restart redis-server.service", timeout_s=120)
        return "systemctl restart redis-server"
    exe = os.path.join(os.path.dirname(sys.executable), "lbstack")
    proc = subprocess.run([exe, "deploy", "--rolling", "inventories/rehearsal.py", "--set",
                           f"app_source={new_build(tmp, n)}"], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=1200, env={**os.environ, "LBSTACK_REHEARSAL_HOSTS": name})
    if proc.returncode != 0:
        raise RuntimeError(f"lbstack deploy --rolling failed:\n{proc.stderr[-3000:]}")
    return "rolling update to a new release"


def soak(name: str, minutes: float, every_s: float, connections: int) -> dict:
    address = get_host(name).address
    base = f"http://{address}"
    before = sql(name, CHECKSUM_SQL).split("\t")
    writer = Writer(base)
    duration_s = minutes * 60
    events = []
    with tempfile.TemporaryDirectory(prefix="lbstack-soak-") as tmp, \
            load.running(base, duration_s=duration_s + 5, connections=connections, paths=PATHS,
                         timeout_s=30) as handle:
        writer.start()
        n = 0
        while True:
            next_at = (n + 1) * every_s
            if next_at > duration_s - 30:  # no fault the run cannot watch the minute after
                break
            if handle.elapsed() > duration_s - 30:  # a fault that ran long: no time left to watch another
                break
            time.sleep(max(0.0, next_at - handle.elapsed()))
            kind = FAULTS[n % len(FAULTS)]
            started = handle.mark(f"fault {n + 1}")
            what = fault(kind, name, tmp, n)
            events.append({"kind": kind, "what": what, "at_s": round(started, 1),
                           "took_s": round(handle.elapsed() - started, 1)})
            print(f"{started / 60:5.1f} min  {what} ({events[-1]['took_s']} s)", flush=True)
            n += 1
        time.sleep(max(0.0, duration_s - handle.elapsed()))
        handle.stop()
    writer.stop_event.set()
    writer.join(30)
    result = handle.result()
    total = result.summary()
    for i, event in enumerate(events):
        end = events[i + 1]["at_s"] if i + 1 < len(events) else None
        window = result.summary(event["at_s"], min(event["at_s"] + event["took_s"] + 60, end or 1e12))
        event.update(requests=window["requests"], failed=window["failed"], failed_by_kind=window["failed_by_kind"],
                     longest_ms=window["latency_ms"]["max"])
    # the queue scores every stored result; wait for it, then check what is stored
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and sql(name, "SELECT COUNT(*) FROM exam_results WHERE session_id LIKE "
                                                    "'soak-%' AND processed_at IS NULL") != "0":
        time.sleep(5)
    ids = sorted(writer.acknowledged)
    stored = set()
    for chunk in range(0, len(ids), 500):
        part = ",".join(str(i) for i in ids[chunk:chunk + 500])
        stored |= {int(x) for x in sql(name, f"SELECT id FROM exam_results WHERE id IN ({part}) "
                                             "AND processed_at IS NOT NULL").split()}
    after = sql(name, CHECKSUM_SQL).split("\t")
    # the stack as the code says after every fault: lbstack's own verification (changes nothing)
    verify = rehearsal_converge.pyinfra(name, "deploy/verify.py", timeout_s=900)
    longest = max((r.latency for r in result.records if r.status is not None), default=0.0)
    return {
        "minutes": minutes, "fault_every_s": every_s, "connections": connections,
        "requests": total["requests"], "failed": total["failed"], "failed_by_kind": total["failed_by_kind"],
        "availability_pct": round(100 * (1 - total["failed"] / total["requests"]), 4) if total["requests"] else None,
        "longest_request_s": round(longest, 2), "p95_ms": total["latency_ms"]["p95"],
        "faults": events,
        "writes": {"sent": writer.sent, "acknowledged": len(ids), "not_acknowledged": writer.refused,
                   "acknowledged_missing_or_unscored": len(set(ids) - stored)},
        "untouched_rows": {"before": before, "after": after, "same": before == after},
        "verified_after": verify.ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--fault-every", type=float, default=300.0, help="seconds between faults")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--host", help="an already converged rehearsal host (default: boot one)")
    args = parser.parse_args()
    name = args.host or f"bench-soak-{os.getpid()}"
    with owned_hosts():
        try:
            if not args.host:
                print(f"booting and converging {name} ...", flush=True)
                up(name)
                converge(name)
            r = soak(name, args.minutes, args.fault_every, args.connections)
        finally:
            if not args.host:
                down(name)
    print(f"availability {r['availability_pct']} % of {r['requests']} requests ({r['failed']} failed: "
          f"{r['failed_by_kind']}), longest request {r['longest_request_s']} s, p95 {r['p95_ms']} ms")
    for e in r["faults"]:
        print(f"  {e['what']}: {e['failed']} failed of {e['requests']} in the minute after, longest "
              f"{e['longest_ms']} ms")
    w, u = r["writes"], r["untouched_rows"]
    print(f"writes: {w['acknowledged']} acknowledged of {w['sent']}, {w['acknowledged_missing_or_unscored']} of "
          f"them missing or unscored; rows from before the soak: {u['before'][0]} -> {u['after'][0]}, "
          f"checksum {'unchanged' if u['same'] else 'CHANGED'}")
    print(f"verification after the soak (deploy/verify.py): {'all checks passed' if r['verified_after'] else 'FAILED'}")
    print(json.dumps({"bench": "soak", **r}))


if __name__ == "__main__":
    main()
