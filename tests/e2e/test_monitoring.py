"""monitoring: true on a real host: a copy of the session's converged host, converged with the
exporters, lbstack-metrics and Prometheus. Prometheus' own API answers what the test asks: every
target up, the five FPM instances as series, every query of every dashboard in dashboards/
returning data, and the LbstackInstanceDown alert firing within its ``for:`` window once an
instance is stopped. The exporters are scanned from outside the host: none answers."""

from __future__ import annotations

import json
import shlex
import time
import urllib.parse

import pytest

import lbstack.rehearsal as rehearsal
from lbstack import REPO_ROOT
from lbstack.rehearsal import nspawn

from conftest import run, unique_name
from e2e_helpers import REHEARSAL_SETTINGS, TIMINGS, changed_ops, lbstack, pyinfra

FOR_S = 20
INTERVAL_S = 5
SETTINGS = {**REHEARSAL_SETTINGS, "monitoring": True, "monitoring_scrape_interval_s": INTERVAL_S,
            "alert_for_s": FOR_S, "tls": "self_signed"}
PORTS = (9090, 9100, 9104, 9113, 9121)
PROBE = (
    "import socket,sys\n"
    "for port in sys.argv[2:]:\n"
    " s=socket.socket(); s.settimeout(1)\n"
    " try:\n  s.connect((sys.argv[1], int(port))); print(port, 'open')\n"
    " except ConnectionRefusedError: print(port, 'refused')\n"
    " except OSError: print(port, 'filtered')\n"
)


def _api(site, path: str, **params) -> dict:
    url = f"http://127.0.0.1:9090/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    rc, out, err = run(site, f"curl -sf --max-time 10 {shlex.quote(url)}", timeout=30)
    assert rc == 0, f"{path}: {err}"
    answer = json.loads(out)
    assert answer["status"] == "success", answer
    return answer["data"]


def _wait(what, check, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(2)


INSTANCES_STATE = ("systemctl show -p Id,NRestarts,ExecMainPID,ActiveEnterTimestampMonotonic "
                   "lbstack-fpm@1 lbstack-fpm@2 lbstack-fpm@3 lbstack-fpm@4 lbstack-fpm@5")


def _instances(info) -> str:
    rc, out, err = run(info, INSTANCES_STATE, timeout=30)
    assert rc == 0, err
    return out


@pytest.fixture(scope="module")
def monitored(host, tmp_path_factory):
    copy = tmp_path_factory.mktemp("monitoring") / "rootfs"
    with rehearsal.owned_hosts():
        before = _instances(host)
        started = time.monotonic()
        nspawn.snapshot(host.name, copy)
        TIMINGS["snapshot of the converged host"] = time.monotonic() - started
        site = rehearsal.up(unique_name("mon"), rootfs=copy)
        SNAPSHOT_SOURCE.update(before=before, after=_instances(host))  # read 10 s and more after the thaw
        first = pyinfra(site.name, settings=SETTINGS)
        TIMINGS["monitoring converge (copy of the converged host)"] = first["seconds"]
        assert first["rc"] == 0, first["stderr"][-5000:]
        # traffic for the request counters and histograms, and a drift run for its textfile
        run(site, "for i in $(seq 60); do curl -s -o /dev/null http://127.0.0.1/api/ujian/health; "
                  "curl -s -o /dev/null http://127.0.0.1/api/questions/random; sleep 0.3; done", timeout=120)
        drift = lbstack(site.name, "drift", "inventories/rehearsal.py", "--json", settings=SETTINGS)
        if drift["rc"] != 0:  # what the services said, for the failure's message
            drift["stderr"] += run(site, "systemctl --no-pager status 'prometheus*' | tail -n 60; journalctl "
                                         "--no-pager -n 60 -u prometheus", timeout=60)[1]
        yield site, first, drift


SNAPSHOT_SOURCE: dict[str, str] = {}


def test_the_snapshot_left_the_host_it_copied_serving(monitored):
    """The session host was frozen only while the difference since the bulk copy was copied: no
    FPM master's watchdog (8 s) ran out, so none was killed and restarted (a 15 s freeze did that)."""
    assert SNAPSHOT_SOURCE["before"].count("NRestarts=") == 5
    assert SNAPSHOT_SOURCE["after"] == SNAPSHOT_SOURCE["before"]


def test_monitoring_converges_and_a_second_run_changes_nothing(monitored):
    site, first, drift = monitored
    assert f"Verification of {site.name}: all checks passed" in first["stderr"]
    assert drift["rc"] == 0, drift["stdout"][-2000:] + drift["stderr"][-6000:]
    again = pyinfra(site.name, settings=SETTINGS)
    assert again["rc"] == 0, again["stderr"][-3000:]
    assert changed_ops(again) == []
    # every exporter and Prometheus run in the monitoring slice
    rc, out, _ = run(site, "for u in prometheus prometheus-node-exporter prometheus-nginx-exporter "
                           "prometheus-mysqld-exporter prometheus-redis-exporter; do systemctl show -p Slice --value $u; done")
    assert out.split() == ["lbstack-monitoring.slice"] * 5, out


def test_every_target_is_up_and_the_five_instances_are_series(monitored):
    """... and each exporter reads its server: MariaDB and Redis answer their exporters' users."""
    site, _, _ = monitored

    def targets():
        active = _api(site, "targets")["activeTargets"]
        return active if active and all(t["health"] == "up" for t in active) else None

    active = _wait("targets up", targets, 60)
    assert active, _api(site, "targets")["activeTargets"]
    jobs = sorted({t["labels"]["job"] for t in active})
    assert jobs == ["lbstack-fpm", "lbstack-mysqld", "lbstack-nginx", "lbstack-node", "lbstack-prometheus",
                    "lbstack-redis"], jobs
    series = _api(site, "query", query="phpfpm_active_processes")["result"]
    assert sorted(s["metric"]["instance"] for s in series) == [f"app{i}" for i in range(1, 6)]
    for query in ("mysql_up", "redis_up", "nginx_up"):
        (sample,) = _api(site, "query", query=query)["result"]
        assert sample["value"][1] == "1", (query, sample)


def test_every_dashboard_query_returns_data(monitored):
    site, _, _ = monitored
    empty = {}
    count = 0
    for board in sorted((REPO_ROOT / "dashboards").glob("*.json")):
        for panel in json.loads(board.read_text())["panels"]:
            for target in panel["targets"]:
                count += 1
                result = _wait(target["expr"], lambda: _api(site, "query", query=target["expr"])["result"], 40)
                if not result:
                    empty.setdefault(board.name, []).append(target["expr"])
    assert count >= 30 and empty == {}, empty


def test_stopping_an_instance_fires_instance_down_within_its_for_window(monitored):
    site, _, _ = monitored
    rc, _, err = run(site, "systemctl stop lbstack-fpm@3.service")
    assert rc == 0, err
    stopped = time.monotonic()
    try:
        def firing():
            return [a for a in _api(site, "alerts")["alerts"] if a["labels"]["alertname"] == "LbstackInstanceDown"
                    and a["state"] == "firing"]

        alerts = _wait("LbstackInstanceDown firing", firing, FOR_S + 6 * INTERVAL_S)
        TIMINGS["monitoring: LbstackInstanceDown firing after the stop"] = time.monotonic() - stopped
        assert [a["labels"]["instance"] for a in alerts] == ["app3"], _api(site, "alerts")
    finally:
        run(site, "systemctl start lbstack-fpm@3.service")


def test_no_exporter_answers_from_outside_the_host(monitored):
    site, _, _ = monitored
    rc, out, _ = run(site, "ss -Hltn")
    listening = [line.split()[3] for line in out.splitlines()]
    for port in PORTS:
        bound = [a for a in listening if a.endswith(f":{port}")]
        assert bound == [f"127.0.0.1:{port}"], (port, bound)
    # from this machine (another network namespace), to the host's address
    import subprocess
    import sys
    probe = subprocess.run([sys.executable, "-c", PROBE, site.address, *map(str, PORTS)], capture_output=True,
                           text=True, timeout=60)
    states = dict(line.split() for line in probe.stdout.splitlines())
    assert set(states) == {str(p) for p in PORTS} and "open" not in states.values(), states
