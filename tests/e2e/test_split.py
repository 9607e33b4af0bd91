"""The split topology on real hosts of one rehearsal network: two load balancers sharing a
floating address (keepalived), two app hosts (each with its own FPM instances, on TCP), a data
host (db + cache), converged from bare in one run, and a client host on the same network that is
not part of the stack.

Proves what one VPS cannot: the balancer's upstream spanning every instance of both app hosts over
their private addresses, the app reaching MariaDB and Redis on another host, with secrets nobody
supplied (each made on one host, sent sealed to the others that use it), every server listening
on the private address only, and the firewall admitting each port only from the hosts that use it.
"""

from __future__ import annotations

import collections
import json
import os
import shlex
import subprocess
import sys
import time

import pytest
import yaml

import lbstack.rehearsal as rehearsal
from bench import clientload
from bench.clientload import ClientLoad
from lbstack import REPO_ROOT
from lbstack.rehearsal import converge, network

from conftest import RUN_ID, run, unique_name
from e2e_helpers import TIMINGS, variant

NET = f"s{RUN_ID}"[:15]
INVENTORY = "inventories/rehearsal_split.py"
INSTANCES = 2  # per app host: 4 upstream members
HEALTH = "/api/ujian/health"  # the sample app's (settings.health_path)
SETTINGS = {"capacity_cpus": 8, "capacity_memory_mib": 16384, "ntp_servers": ["127.0.0.1"], "instances": INSTANCES}
STACK = ("lb1", "lb2", "app1", "app2", "data")
PROBE = (  # a dropped SYN waits the timeout: 1 s on this network of veths
    "import socket,sys\n"
    "s=socket.socket(); s.settimeout(1)\n"
    "try:\n s.connect((sys.argv[1], int(sys.argv[2]))); print('open')\n"
    "except ConnectionRefusedError: print('refused')\n"
    "except OSError: print('filtered')\n"
)
FETCH = (
    "import sys,urllib.request\n"
    "for _ in range(int(sys.argv[2])):\n"
    " print(urllib.request.urlopen(sys.argv[1], timeout=10).status)\n"
)


def groups_of(hosts) -> str:
    return (f"lb={hosts['lb1'].name},{hosts['lb2'].name} app={hosts['app1'].name},{hosts['app2'].name} "
            f"db={hosts['data'].name} cache={hosts['data'].name}")


def lbstack_cli(hosts, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``lbstack ARGS`` (this checkout's) against the split rehearsal inventory of ``hosts``."""
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), "lbstack"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO_ROOT,
                          env={**os.environ, "LBSTACK_REHEARSAL_GROUPS": groups_of(hosts),
                               "LBSTACK_SETTINGS": hosts["settings"]})


def converge_status(hosts) -> dict:
    proc = lbstack_cli(hosts, "status", INVENTORY, "--json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _probe(info, address: str, port: int) -> str:
    rc, out, err = run(info, f"python3 -c {shlex.quote(PROBE)} {address} {port}", timeout=30)
    assert rc == 0, err
    return out.strip()


def _digests(info) -> dict[str, str]:
    rc, out, err = run(info, "/usr/local/sbin/lbstack-secrets digests")
    assert rc == 0, err
    return dict(line.split() for line in out.splitlines())


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """lb, app1, app2, data and client on one network; the stack converged from bare."""
    settings = tmp_path_factory.mktemp("split") / "settings.yaml"
    with rehearsal.owned_hosts():
        hosts = {tag: rehearsal.up(unique_name(tag), net=NET) for tag in (*STACK, "client")}
        # the floating address: a free one on the network (host addresses are the hosts' indexes)
        floating = network.get_net(NET).address(250)
        settings.write_text(yaml.safe_dump({**SETTINGS, "lb_floating_address": floating}))
        hosts["floating"] = floating
        hosts["settings"] = str(settings)
        groups = groups_of(hosts)
        stack = [hosts[t].name for t in STACK]

        def converged() -> converge.PyinfraRun:
            return converge.pyinfra(stack, inventory=INVENTORY, as_json=True, settings_file=settings,
                                    env={"LBSTACK_REHEARSAL_GROUPS": groups}, timeout_s=2400)

        first = converged()
        TIMINGS["split converge from bare (5 hosts)"] = first.seconds
        assert first.rc == 0, first.stderr[-6000:]
        yield hosts, first, converged


def test_the_split_stack_converges_verifies_on_every_host_and_a_second_run_changes_nothing(split):
    hosts, first, converged = split
    for tag in STACK:  # each host verified (a failed row fails the run)
        assert f"Verification of {hosts[tag].name}" in first.stderr, tag
    again = converged()
    TIMINGS["split no-op converge (5 hosts)"] = again.seconds
    assert again.rc == 0, again.stderr[-4000:]
    changed = [op["name"] for op in again.results["operations"] if op["success"]]
    assert again.results["operations"] and not changed, changed


def test_the_upstream_spans_every_instance_of_both_app_hosts(split):
    hosts, _, _ = split
    lb, client = hosts["lb1"], hosts["client"]
    rc, conf, _ = run(lb, "grep -h 'server ' /etc/nginx/conf.d/*.conf | grep -o '10\\.214\\.[0-9.]*:[0-9]*' | sort -u")
    wanted = sorted(f"{hosts[t].private_address}:{9000 + i}" for t in ("app1", "app2") for i in range(1, INSTANCES + 1))
    assert conf.split() == wanted, conf
    # through the balancer, from the client: the health endpoint (MariaDB and Redis on the data host)
    rc, out, err = run(client, f"python3 -c {shlex.quote(FETCH)} http://{lb.private_address}{HEALTH} 40", timeout=120)
    assert rc == 0, err
    assert collections.Counter(out.split()) == {"200": 40}, out
    # which member served each (nginx's JSON access log, flushed every second): all four
    rc, log, _ = run(lb, f"sleep 1.5; grep -F '{HEALTH}' /var/log/nginx/access.log | tail -n 40")
    served = collections.Counter(json.loads(line)["upstream"] for line in log.splitlines())
    assert sorted(served) == wanted and sum(served.values()) == 40, served
    # each app host's FPM listens on its private address only, on INSTANCES ports
    for tag in ("app1", "app2"):
        rc, out, _ = run(hosts[tag], "ss -Hltn '( sport >= :9001 and sport <= :9099 )'")
        listening = sorted(line.split()[3] for line in out.splitlines())
        assert listening == [f"{hosts[tag].private_address}:{9000 + i}" for i in range(1, INSTANCES + 1)], listening


def test_the_app_uses_mariadb_and_redis_on_the_data_host_which_listen_privately(split):
    hosts, _, _ = split
    data = hosts["data"]
    for tag in ("app1", "app2"):
        rc, env, _ = run(hosts[tag], "grep -E '^(DB_HOST|REDIS_HOST)=' /srv/lbstack/app/shared/.env")
        assert sorted(env.split()) == [f"DB_HOST={data.private_address}", f"REDIS_HOST={data.private_address}"]
    rc, out, _ = run(data, "ss -Hltn '( sport = :3306 or sport = :6379 )'")
    listening = sorted({line.split()[3] for line in out.splitlines()})
    # loopback for the data host's own tools, the private address for the app hosts; no wildcard
    assert {f"{data.private_address}:3306", f"{data.private_address}:6379", "127.0.0.1:3306",
            "127.0.0.1:6379"} <= set(listening), listening
    assert not [a for a in listening if a.startswith(("0.0.0.0:", "*:", "[::]:"))], listening


def test_secrets_nobody_supplied_are_held_only_where_they_are_used_and_agree(split):
    hosts, first, _ = split
    held = {tag: _digests(hosts[tag]) for tag in STACK}
    assert held["lb1"] == held["lb2"] == {}  # the balancers hold none
    assert sorted(held["data"]) == ["db_password", "redis_admin_password", "redis_password"]
    for tag in ("app1", "app2"):
        assert sorted(held[tag]) == ["app_key", "db_password", "redis_password"]  # not Redis' admin password
        for name in ("db_password", "redis_password"):
            assert held[tag][name] == held["data"][name], (tag, name)
    assert held["app1"]["app_key"] == held["app2"]["app_key"]
    values = []
    for tag in ("app1", "data"):
        rc, out, _ = run(hosts[tag], "for f in /etc/lbstack/secrets/*; do cat $f; echo; done")
        values += [v for v in out.splitlines() if v]
    assert len(values) == 6
    for value in values:
        assert value not in first.stdout + first.stderr, "a secret is in pyinfra's output"


def test_each_port_answers_only_the_hosts_that_use_it(split):
    hosts, _, _ = split
    data, client, lb = hosts["data"], hosts["client"], hosts["lb2"]
    for port in (3306, 6379):
        assert _probe(hosts["app1"], data.private_address, port) == "open", port
        assert _probe(client, data.private_address, port) == "filtered", port
        assert _probe(lb, data.private_address, port) == "filtered", port  # the balancer uses neither
    assert _probe(lb, hosts["app2"].private_address, 9001) == "open"
    assert _probe(client, hosts["app2"].private_address, 9001) == "filtered"
    assert _probe(hosts["app1"], hosts["app2"].private_address, 9001) == "filtered"  # app hosts do not call each other
    for port in (80, 443):
        assert _probe(client, data.private_address, port) == "filtered", port  # no web port off the balancer
    assert _probe(client, lb.private_address, 80) == "open"
    assert _probe(client, data.private_address, 22) == "open"
    assert network.get_net(NET) is not None


def _holder(hosts) -> list[str]:
    found = []
    for tag in ("lb1", "lb2"):
        rc, out, _ = run(hosts[tag], "ip -o -4 addr show")
        if f" {hosts['floating']}/" in out:
            found.append(tag)
    return found


def _wait_holder(hosts, wanted: str, timeout_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if _holder(hosts) == [wanted]:
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"the floating address is on {_holder(hosts)}, not {wanted}, after {timeout_s:.0f} s")


def test_the_floating_address_moves_to_the_other_balancer_when_nginx_stops_and_stays(split):
    hosts, _, _ = split
    client, floating = hosts["client"], hosts["floating"]
    (first,) = _holder(hosts)  # exactly one balancer holds it
    other = "lb2" if first == "lb1" else "lb1"
    assert first == "lb1"  # the first balancer of the inventory has the higher priority
    rc, out, err = run(client, f"python3 -c {shlex.quote(FETCH)} http://{floating}{HEALTH} 5", timeout=60)
    assert rc == 0 and out.split() == ["200"] * 5, (out, err)
    # status names it, from every balancer
    status = converge_status(hosts)
    floats = {h["host"]: h["floating"] for h in status["hosts"] if "floating" in h}
    assert {n: f["held"] for n, f in floats.items()} == {hosts["lb1"].name: True, hosts["lb2"].name: False}
    run(hosts[first], "systemctl stop nginx.service")
    try:
        moved_s = _wait_holder(hosts, other, 30)
        TIMINGS["floating address moved after nginx stopped"] = moved_s
        rc, out, err = run(client, f"python3 -c {shlex.quote(FETCH)} http://{floating}{HEALTH} 5", timeout=60)
        assert rc == 0 and out.split() == ["200"] * 5, (out, err)
    finally:
        run(hosts[first], "systemctl start nginx.service")
    time.sleep(5)  # keepalived on the first balancer sees nginx healthy again ...
    assert _holder(hosts) == [other]  # ... and does not take the address back (no preemption)


def test_status_test_metrics_drift_and_backup_cover_every_host_of_the_stack(split):
    """The operating commands on the split inventory: every host read, each for its own components."""
    hosts, _, _ = split
    names = {hosts[t].name for t in STACK}
    status = converge_status(hosts)
    assert {h["host"] for h in status["hosts"]} == names and status["healthy"], status["problems"]
    proc = lbstack_cli(hosts, "test", INVENTORY, "--requests", "40", "--json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(proc.stdout)["results"]
    assert {r["host"] for r in results} == {hosts["lb1"].name, hosts["lb2"].name}  # through each balancer
    proc = lbstack_cli(hosts, "monitor", INVENTORY, "--count", "2", "--interval", "1", "--json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]  # every instance, through each balancer
    # per balancer: its 3 health paths and the 4 members of both app hosts
    assert json.loads(proc.stdout)["targets"] == 2 * (3 + 2 * INSTANCES), proc.stdout[-2000:]
    proc = lbstack_cli(hosts, "metrics", INVENTORY, "--json", "--window", "30")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {h["host"] for h in json.loads(proc.stdout)["hosts"]} == names
    proc = lbstack_cli(hosts, "drift", INVENTORY, "--json", timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]  # 0: no drift on any host
    proc = lbstack_cli(hosts, "backup", INVENTORY, "--json", "--reason", "split test", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    made = json.loads(proc.stdout)["backups"]
    assert [b["host"] for b in made] == [hosts["data"].name] and made[0]["sha256"], made  # the db host only


# -- operations across hosts, under load from the client -------------------------------------------

PATHS = ("/api/questions/random", HEALTH)


def _instances_of(info) -> dict[str, str]:
    rc, out, _ = run(info, "for p in /srv/lbstack/app/instances/*; do echo ${p##*/}=$(readlink $p); done")
    return dict(line.split("=", 1) for line in out.split())


def _upstream_members(lb) -> list[str]:
    rc, out, _ = run(lb, "grep -ho 'lbstack-member [^ ]*' /etc/nginx/conf.d/*.conf | cut -d' ' -f2 | sort")
    return out.split()


def test_one_app_host_scales_through_the_rolling_path_under_load(split):
    """app2 alone goes from 2 to 3 instances and back (its own settings), under 200 connections
    through the floating address: 0 failed; both balancers' upstreams follow each app host's count."""
    hosts, _, _ = split
    clientload.install(hosts["client"])
    stack = [hosts[t].name for t in STACK]
    app1, app2 = hosts["app1"].name, hosts["app2"].name

    def scaled(count: int) -> converge.PyinfraRun:
        env = {"LBSTACK_REHEARSAL_GROUPS": groups_of(hosts),
               "LBSTACK_REHEARSAL_HOST_SETTINGS": json.dumps({app2: {"instances": count}})}
        return converge.pyinfra(stack, inventory=INVENTORY, settings_file=hosts["settings"], env=env, timeout_s=1200,
                                as_json=True)

    for count in (3, INSTANCES):
        load = ClientLoad(hosts["client"], f"http://{hosts['floating']}", 200, PATHS)
        time.sleep(3)
        started = time.monotonic()
        run_ = scaled(count)
        TIMINGS[f"split: app2 scaled to {count} instances under 200 connections"] = time.monotonic() - started
        time.sleep(2)
        summary = load.stop()["summary"]
        assert run_.rc == 0, run_.stderr[-5000:]
        assert summary["requests"] > 500 and summary["failed"] == 0, (count, summary["failed_by_kind"], summary["status"])
        wanted = sorted([f"{app1}-app{i}" for i in range(1, INSTANCES + 1)] + [f"{app2}-app{i}" for i in range(1, count + 1)])
        for lb in ("lb1", "lb2"):
            assert _upstream_members(hosts[lb]) == wanted, lb
        rc, out, _ = run(hosts["app2"], "systemctl list-units --plain --no-legend --state=active 'lbstack-fpm@*'")
        assert len(out.splitlines()) == count, out
        # MariaDB and Redis (on the data host) took their new sizing without a restart
        restarted = [op["name"] for op in run_.results["operations"]
                     if op["success"] and ("Restart MariaDB" in op["name"] or "Restart Redis" in op["name"])]
        assert restarted == [], restarted
        if count > INSTANCES:  # the new instance was gated before the balancers sent it traffic
            assert "app3: gate passed" in run_.stderr, run_.stderr[-3000:]
        else:
            assert "app3: retired (scaled down)" in run_.stderr, run_.stderr[-3000:]


def test_a_rolling_update_through_both_balancers_goes_one_instance_at_a_time_across_the_stack(split, tmp_path):
    """200 connections through the floating address and 50 straight to the other balancer, from the
    client: 0 failed; the four instances of both app hosts drained and back one at a time, app1's
    host before app2's; one lock for the stack, on the first app host."""
    hosts, _, _ = split
    client = hosts["client"]
    clientload.install(client)
    before = {tag: _instances_of(hosts[tag]) for tag in ("app1", "app2")}
    (holder,) = _holder(hosts)
    other = "lb2" if holder == "lb1" else "lb1"
    loads = [ClientLoad(client, f"http://{hosts['floating']}", 200, PATHS),
             ClientLoad(client, f"http://{hosts[other].private_address}", 50, PATHS)]
    time.sleep(5)
    started = time.monotonic()
    deploy = lbstack_cli(hosts, "deploy", "--rolling", INVENTORY, "--set", f"app_source={variant(tmp_path, 'split-v2')}",
                         timeout=900)
    TIMINGS["split rolling update under 250 connections"] = time.monotonic() - started
    time.sleep(3)
    summaries = [load.stop()["summary"] for load in loads]
    out = deploy.stdout + deploy.stderr
    assert deploy.returncode == 0, out[-5000:]
    for summary, via in zip(summaries, ("the floating address", f"{other} directly")):
        assert summary["requests"] > 1000, (via, summary)
        assert summary["failed"] == 0, (via, summary["failed_by_kind"], summary["status"])
    # every member of both app hosts answered, on both releases
    members = {f"{hosts[t].name}-app{i}" for t in ("app1", "app2") for i in range(1, INSTANCES + 1)}
    assert set(summaries[0]["instances"]) == members, summaries[0]["instances"]
    after = {tag: _instances_of(hosts[tag]) for tag in ("app1", "app2")}
    new = set(after["app1"].values())
    assert len(new) == 1 and new == set(after["app2"].values()) and new.isdisjoint(before["app1"].values())
    assert len(set(summaries[0]["releases"])) == 2, summaries[0]["releases"]
    # one instance out at a time across the stack: drained, back, next; the first app host first
    names = (hosts["app1"].name, hosts["app2"].name)
    events = [(next(n for n in names if n in line.split("rolling: ", 1)[0]), line.split("rolling: ", 1)[1].rstrip())
              for line in out.splitlines()
              if "rolling: " in line and line.rstrip().endswith((": drained", ": back in rotation"))]
    order = [(h, e.split(":")[0]) for h, e in events]
    assert [h for h, _ in order[::2]] == [hosts["app1"].name] * INSTANCES + [hosts["app2"].name] * INSTANCES, events
    for i in range(0, len(events), 2):
        assert events[i][1].endswith("drained") and events[i + 1][1].endswith("back in rotation"), events
        assert order[i] == order[i + 1], events
    for tag in ("app1", "app2"):  # released at the end
        rc, lock, _ = run(hosts[tag], "test -e /var/lib/lbstack/deploy.lock && echo held || echo free")
        assert lock.strip() == "free", tag


def test_a_deploy_lock_on_the_first_app_host_stops_the_whole_stacks_deploy(split, tmp_path):
    """Another machine's deploy holds the stack's lock (on app1): a deploy refuses on every app
    host, naming the holder, and app2 (which holds no lock of its own) is left as it was."""
    hosts, _, _ = split
    held = json.dumps({"machine": "ci-runner", "pid": 4242, "user": "deployer", "command": "lbstack deploy",
                       "since": "now", "since_epoch": int(time.time())})
    rc, _, err = run(hosts["app1"], f"printf '%s\\n' {shlex.quote(held)} > /var/lib/lbstack/deploy.lock")
    assert rc == 0, err
    before = _instances_of(hosts["app2"])
    try:
        deploy = lbstack_cli(hosts, "deploy", "--rolling", INVENTORY, "--set",
                             f"app_source={variant(tmp_path, 'split-v3')}", timeout=900)
    finally:
        run(hosts["app1"], "rm -f /var/lib/lbstack/deploy.lock")
    out = deploy.stdout + deploy.stderr
    assert deploy.returncode != 0, out[-4000:]
    assert f"another deploy holds the lock on {hosts['app1'].name}: deployer@ci-runner (pid 4242)" in out, out[-4000:]
    assert _instances_of(hosts["app2"]) == before
    rc, lock, _ = run(hosts["app2"], "test -e /var/lib/lbstack/deploy.lock && echo held || echo free")
    assert lock.strip() == "free"
