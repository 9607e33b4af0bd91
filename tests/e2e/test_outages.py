"""MariaDB and Redis restarting under load, on the session's converged nspawn host, with the real
app: what users see.

A restart (by hand, by a package upgrade) or a crash (SIGKILL, restarted by systemd) takes about
a second. The bundled app's connections wait out that second (``sample-app/app/Backends``: each
connection attempt or command that finds the server down is retried every 50 ms for up to 3 s),
so no request fails; an outage longer than that is answered 503 with Retry-After, never 500.
Load: 100 keep-alive connections of ``bench.load`` over the seed's four kinds of request (the
cached API, the session, the health check and the Blade page).
"""

from __future__ import annotations

import time

import pytest

from bench import load

from e2e_helpers import TIMINGS, remote

PATHS = ["/api/questions/random", "/api/session", "/api/ujian/health", "/exam"]
RETRY_AFTER = "5"  # App\Exceptions\Handler::RETRY_AFTER_S


def main_pid(info, unit: str) -> str:
    rc, out, _ = remote(info, f"systemctl show -p MainPID --value {unit}")
    return out.strip()


def under_load(info, command: str, after_s: float = 6.0):
    """Run ``command`` on the host under load; the requests from just before it to ``after_s``
    after it returned."""
    with load.running(f"http://{info.address}", duration_s=120, connections=100, paths=PATHS, timeout_s=15) as handle:
        time.sleep(3)
        handle.mark("start")
        rc, out, err = remote(info, command, timeout=120)
        handle.mark("done")
        time.sleep(after_s)
        handle.mark("after")
    assert rc == 0, err
    result = handle.result()
    return result, result.window(result.marks["start"] - 0.5, result.marks["after"])


@pytest.mark.parametrize("unit, command", [
    ("redis-server.service", "systemctl restart redis-server"),
    ("mariadb.service", "systemctl restart mariadb"),
    ("redis-server.service", "systemctl kill -s KILL redis-server && sleep 3"),
    ("mariadb.service", "systemctl kill -s KILL mariadb && sleep 3"),
], ids=["redis-restart", "mariadb-restart", "redis-killed", "mariadb-killed"])
def test_a_backend_restart_or_crash_fails_no_request(host, unit, command):
    before = main_pid(host, unit)
    result, window = under_load(host, command)
    assert main_pid(host, unit) not in ("", "0", before), "the server did not restart"
    assert len({r.path for r in window}) == len(PATHS) and len(window) > 100
    bad = sorted({(r.path, r.status, r.error) for r in window if r.status != 200}, key=str)
    assert bad == [], bad
    slowest = max(r.latency for r in window)
    TIMINGS[f"{command.split(' &&')[0]} under 100 connections: 0 failed of {len(window)}, slowest answer"] = slowest


def test_an_outage_longer_than_the_wait_is_answered_503_with_retry_after_then_recovers(host):
    result, window = under_load(host, "systemctl stop redis-server && sleep 8 && systemctl start redis-server",
                                after_s=8.0)
    # (Redis takes a few seconds to stop: it writes its data first)
    kinds = {(r.status, r.retry_after or "") for r in window}
    assert (503, RETRY_AFTER) in kinds, kinds  # the pages that need Redis are told to come back
    assert kinds <= {(200, ""), (503, RETRY_AFTER)}, kinds  # never a 500, a 503 without Retry-After or an error
    after = [r for r in window if r.start >= result.marks["done"] + 4]
    assert after and all(r.status == 200 for r in after), sorted({(r.path, r.status) for r in after if r.status != 200})
