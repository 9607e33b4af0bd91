"""Rolling updates, rollback, self-healing and the deploy lock, on the session's converged
nspawn host (scaling under load: tests/e2e/test_split.py, one app host 2 -> 3 -> 2), with traffic flowing the whole time (bench.load: 200 keep-alive connections from
this machine to the host, every response recorded).

"Failed" is what bench.load counts: a 5xx or a socket error (a request resent once after an
idle keep-alive connection was closed by a graceful reload is not a failure: every mainstream
client does the same). The host ends every test converged with the rehearsal settings and the
bundled sample app, as the other modules expect.
"""

from __future__ import annotations

import json
import threading
import time


from bench import load
from lbstack import layout

from e2e_helpers import TIMINGS, REHEARSAL_SETTINGS, changed_ops, current, failed_ops, lbstack, pyinfra, remote, variant

CONNECTIONS = 200
PATHS = ["/api/questions/random", "/api/ujian/health"]
INVENTORY = "inventories/rehearsal.py"


def settings(**extra) -> dict:
    return {**REHEARSAL_SETTINGS, **extra}


def pointers(info) -> dict[str, str]:
    rc, out, _ = remote(info, f"for p in {layout.INSTANCES_DIR}/*; do echo ${{p##*/}}=$(readlink $p); done")
    assert rc == 0
    return {k: v.rsplit("/", 1)[-1] for k, v in (line.split("=", 1) for line in out.split())}


def under_load(info, seconds: float = 300):
    return load.running(f"http://{info.address}", duration_s=seconds, connections=CONNECTIONS, paths=PATHS,
                        timeout_s=15)


def settle(handle, seconds: float = 2.0) -> None:
    time.sleep(seconds)


def assert_no_failures(summary: dict, what: str) -> None:
    assert summary["requests"] > 0, what
    assert summary["failed"] == 0, (what, summary["failed_by_kind"], summary["status"])


def steps_in_order(output: str) -> list[str]:
    return [line.split("rolling: ", 1)[1] for line in output.splitlines() if "rolling: " in line]


def test_rolling_update_of_a_new_release_under_load_fails_no_request(host, tmp_path):
    """Also on a site file written before members were tagged (lbstack upgraded on a live host):
    the update finds each member by its address, drains it, and leaves the line tagged."""
    before_release = current(host)
    source = variant(tmp_path, "v2")
    site = layout.SITE_CONF
    rc, _, err = remote(host, f"sed -i 's/; # lbstack-member [^ ]*$/;/' {site} && ! grep -q lbstack-member {site} "
                              "&& systemctl reload nginx.service")
    assert rc == 0, err
    with under_load(host) as handle:
        settle(handle)
        handle.mark("deploy")
        run = lbstack(host.name, "deploy", "--rolling", INVENTORY, "--set", f"app_source={source}", settings=settings())
        handle.mark("deployed")
        settle(handle)
    result = handle.result()
    assert run["rc"] == 0, run["stderr"][-4000:] + run["stdout"][-4000:]
    during = result.summary(result.marks["deploy"], result.marks["deployed"])
    assert_no_failures(during, "during the rolling update")
    assert_no_failures(result.summary(), "whole run")
    TIMINGS[f"rolling update under {CONNECTIONS} connections ({during['requests']} requests served, 0 failed)"] = (
        result.marks["deployed"] - result.marks["deploy"])
    new = current(host)
    assert new != before_release and new.endswith(tuple(p for p in [new.rsplit("-", 1)[-1]]))
    # every instance on the new release, and every answer after the update came from it
    assert set(pointers(host).values()) == {new}
    after = result.summary(result.marks["deployed"])
    assert set(after["releases"]) == {new}, after["releases"]
    assert set(after["instances"]) == {f"app{i}" for i in range(1, 6)}
    # both releases served during the update: instances really switched one at a time
    assert {before_release, new} <= set(during["releases"]), during["releases"]
    # never more than one instance out: each drain is followed by its own return before the next
    out = run["stdout"] + run["stderr"]
    events = [s for s in steps_in_order(out) if s.endswith((": drained", ": back in rotation"))]
    assert len(events) == 10, events
    for i in range(0, 10, 2):
        name = events[i].split(":")[0]
        assert events[i] == f"{name}: drained" and events[i + 1] == f"{name}: back in rotation", events
    assert "Verify the host against the capacity plan" in out
    assert [s for s in steps_in_order(out) if s.endswith(": drained")] == [f"app{i}: drained" for i in range(1, 6)]
    rc, out, _ = remote(host, f"grep -c '; # lbstack-member app[1-5]$' {site}")
    assert out.strip() == "5"  # tagged again



def test_a_release_failing_its_health_gate_is_rolled_back_under_load(host, tmp_path):
    good = current(host)
    source = variant(tmp_path, "broken", health_status=503)
    with under_load(host) as handle:
        settle(handle)
        handle.mark("deploy")
        run = lbstack(host.name, "deploy", "--rolling", INVENTORY, "--set", f"app_source={source}",
                      settings=settings(health_gate_timeout_s=5))
        handle.mark("deployed")
        settle(handle)
    result = handle.result()
    out = run["stdout"] + run["stderr"]
    assert run["rc"] != 0
    assert "gate 'health' failed on app1" in out, out[-3000:]
    assert "rolled back app1" in out.lower() or "Rolled back app1" in out, out[-3000:]
    assert_no_failures(result.summary(result.marks["deploy"], result.marks["deployed"]), "during the failed update")
    assert set(pointers(host).values()) == {good}
    assert current(host) == good
    after = result.summary(result.marks["deployed"])
    assert set(after["releases"]) == {good} and len(after["instances"]) == 5, after
    # the build is marked bad: deploying it again is refused before anything changes
    again = lbstack(host.name, "deploy", "--rolling", INVENTORY, "--set", f"app_source={source}", settings=settings())
    assert again["rc"] != 0
    assert "was rolled back as bad: gate 'health' failed on app1" in again["stderr"] + again["stdout"]
    assert set(pointers(host).values()) == {good}
    status = lbstack(host.name, "status", INVENTORY, "--json")
    assert status["rc"] == 0, status["stdout"][-2000:]


def test_a_killed_instance_restarts_and_rejoins_within_10_s_under_load(host, run):
    rc, out, _ = remote(host, "systemctl show -p NRestarts --value lbstack-fpm@2.service")
    restarts_before = int(out.strip())
    with under_load(host, seconds=60) as handle:
        settle(handle, 3)
        killed = handle.mark("kill")
        rc, _, err = remote(host, "kill -9 $(systemctl show -p MainPID --value lbstack-fpm@2.service)")
        assert rc == 0, err
        deadline = time.monotonic() + 20
        back = None
        while time.monotonic() < deadline and back is None:
            time.sleep(0.5)
            back = next((r.start for r in list(handle._generator.result.records)  # noqa: SLF001
                         if r.instance == "app2" and r.start > killed + 0.5 and r.status == 200), None)
        settle(handle, 2)
        handle.stop()
    result = handle.result()
    whole = result.summary()
    assert whole["requests"] > 1000
    assert whole["failed"] <= whole["requests"] * 0.001, (whole["failed_by_kind"], whole["requests"])
    assert back is not None, "app2 never served again"
    TIMINGS[f"kill -9 of app2's master ({whole['failed']} of {whole['requests']} requests failed): "
            "back in rotation after"] = back - killed
    assert back - killed <= 10, f"app2 back in rotation after {back - killed:.1f} s"
    rc, out, _ = remote(host, "systemctl show -p NRestarts --value lbstack-fpm@2.service")
    assert int(out.strip()) == restarts_before + 1


def test_with_four_of_five_instances_stopped_the_site_still_answers_200(host):
    try:
        rc, _, err = remote(host, "systemctl stop lbstack-fpm@1 lbstack-fpm@2 lbstack-fpm@3 lbstack-fpm@4")
        assert rc == 0, err
        result = load.run(f"http://{host.address}", duration_s=8, connections=CONNECTIONS, paths=PATHS, timeout_s=15)
        whole = result.summary()
        assert whole["requests"] > 200
        assert whole["status"] == {"200": whole["requests"]}, (whole["status"], whole["failed_by_kind"])
        assert set(whole["instances"]) == {"app5"}
    finally:
        remote(host, "systemctl start lbstack-fpm@1 lbstack-fpm@2 lbstack-fpm@3 lbstack-fpm@4")


def test_a_second_concurrent_deploy_refuses_naming_the_lock_holder(host, tmp_path):
    source = variant(tmp_path, "v3")
    first: dict = {}

    def deploy_first():
        first.update(lbstack(host.name, "deploy", "--rolling", INVENTORY, "--set", f"app_source={source}", settings=settings()))

    thread = threading.Thread(target=deploy_first)
    thread.start()
    try:
        # the first deploy holds the lock once it starts working on the release
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rc, out, _ = remote(host, f"cat {layout.DEPLOY_LOCK} 2>/dev/null")
            if out.strip():
                break
            time.sleep(0.2)
        holder = json.loads(out)
        second = lbstack(host.name, "deploy", "--rolling", INVENTORY, "--set", f"app_source={source}", settings=settings())
    finally:
        thread.join(600)
    assert first["rc"] == 0, first["stderr"][-3000:] + first["stdout"][-3000:]
    text = second["stdout"] + second["stderr"]
    assert second["rc"] != 0
    assert "another deploy holds the lock" in text, text[-3000:]
    assert f"(pid {holder['pid']})" in text and holder["user"] in text and holder["since"] in text
    rc, out, _ = remote(host, f"test -e {layout.DEPLOY_LOCK} && echo held || echo free")
    assert out.strip() == "free"  # released by the deploy that held it


def test_a_mariadb_restart_answers_maintenance_503_with_retry_after_not_errors(host):
    """A setting only a restart applies (here: edited by hand, so the converge repairs it) makes
    the converge back up the database and restart MariaDB behind the maintenance flag."""
    cnf = "/etc/mysql/mariadb.conf.d/90-lbstack.cnf"
    rc, _, err = remote(host, f"sed -i 's/^long_query_time = 1$/long_query_time = 2/' {cnf} "
                              f"&& grep -q '^long_query_time = 2$' {cnf}")
    assert rc == 0, err
    with under_load(host) as handle:
        settle(handle)
        handle.mark("deploy")
        run = pyinfra(host.name)
        handle.mark("deployed")
        settle(handle, 3)
    result = handle.result()
    assert run["rc"] == 0, run["stderr"][-3000:]
    assert any("Restart MariaDB" in name for name in changed_ops(run))
    during = result.window(result.marks["deploy"], result.marks["deployed"])
    others = [r for r in during if r.status != 200]
    assert others, "no maintenance answer seen while MariaDB restarted"
    assert all(r.status == 503 and r.retry_after == "30" for r in others), \
        sorted({(r.status, r.error, r.retry_after) for r in others}, key=str)
    after = result.summary(result.marks["deployed"])
    assert after["status"] == {"200": after["requests"]} and after["requests"] > 0
    rc, out, _ = remote(host, f"test -e {layout.MAINTENANCE_FLAG} && echo on || echo off; "
                              "/usr/local/sbin/lbstack-backup list | tail -n1")
    assert out.splitlines()[0] == "off"
    assert json.loads(out.splitlines()[1])["reason"] == "before a MariaDB restart (config changed)"


def test_back_to_the_sample_app(host):
    """Leave the host as the other modules expect it: the rehearsal settings and the sample app."""
    run = pyinfra(host.name)
    assert run["rc"] == 0, run["stderr"][-3000:]
    rc, out, _ = remote(host, f"cat {layout.RELEASES_DIR}/{current(host)}/.lbstack-release")
    assert "source=sample" in out
