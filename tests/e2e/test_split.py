"""The split topology on real hosts of one rehearsal network: a web host (lb + app) and a data
host (db + cache) converged from bare in one run, with a client host on the same network that is
not part of the stack.

Proves what one VPS cannot: the app reaching MariaDB and Redis on another host's private
address, with secrets nobody supplied (made on the data host, sent sealed to the web host), each
server listening on the private address only, and the firewall admitting each port only from the
host that uses it.
"""

from __future__ import annotations

import json
import shlex

import pytest

import lbstack.rehearsal as rehearsal
from lbstack.rehearsal import converge, network

from conftest import RUN_ID, run, unique_name
from e2e_helpers import TIMINGS

NET = f"s{RUN_ID}"[:15]
HEALTH = "/api/ujian/health"  # the sample app's (settings.health_path)
INVENTORY = "inventories/rehearsal_split.py"
PROBE = (
    "import socket,sys\n"
    "s=socket.socket(); s.settimeout(3)\n"
    "try:\n s.connect((sys.argv[1], int(sys.argv[2]))); print('open')\n"
    "except ConnectionRefusedError: print('refused')\n"
    "except OSError: print('filtered')\n"
)


def _converge(web, data) -> converge.PyinfraRun:
    groups = f"lb={web.name} app={web.name} db={data.name} cache={data.name}"
    return converge.pyinfra([web.name, data.name], inventory=INVENTORY, as_json=True,
                            env={"LBSTACK_REHEARSAL_GROUPS": groups}, timeout_s=2400)


def _probe(info, address: str, port: int) -> str:
    rc, out, err = run(info, f"python3 -c {shlex.quote(PROBE)} {address} {port}", timeout=30)
    assert rc == 0, err
    return out.strip()


def _digests(info) -> dict[str, str]:
    rc, out, err = run(info, "/usr/local/sbin/lbstack-secrets digests")
    assert rc == 0, err
    return dict(line.split() for line in out.splitlines())


@pytest.fixture(scope="module")
def split():
    """web (lb, app), data (db, cache) and client on one network; the stack converged from bare."""
    with rehearsal.owned_hosts():
        web = rehearsal.up(unique_name("web"), net=NET)
        data = rehearsal.up(unique_name("data"), net=NET)
        client = rehearsal.up(unique_name("client"), net=NET)
        first = _converge(web, data)
        TIMINGS["split converge from bare (2 hosts)"] = first.seconds
        assert first.rc == 0, first.stderr[-6000:]
        yield web, data, client, first


def test_the_split_stack_converges_verifies_and_a_second_run_changes_nothing(split):
    web, data, client, first = split
    assert "verification" in first.stderr.lower()
    again = _converge(web, data)
    TIMINGS["split no-op converge (2 hosts)"] = again.seconds
    assert again.rc == 0, again.stderr[-4000:]
    changed = [op["name"] for op in again.results["operations"] if op["success"]]
    assert again.results["operations"] and not changed, changed


def test_the_app_on_the_web_host_uses_mariadb_and_redis_on_the_data_host(split):
    web, data, client, _ = split
    rc, env, _ = run(web, "grep -E '^(DB_HOST|REDIS_HOST)=' /srv/lbstack/app/shared/.env")
    assert sorted(env.split()) == sorted([f"DB_HOST={data.private_address}", f"REDIS_HOST={data.private_address}"])
    # through the web host's balancer, from the client: the health endpoint reads MariaDB and Redis
    fetch = ("import urllib.request,sys\n"
             "r=urllib.request.urlopen(sys.argv[1], timeout=10); print(r.status); print(r.read().decode())")
    rc, out, err = run(client, f"python3 -c {shlex.quote(fetch)} http://{web.private_address}{HEALTH}")
    assert rc == 0 and out.splitlines()[0] == "200", (out, err)
    rc, out, _ = run(data, "ss -Hltn '( sport = :3306 or sport = :6379 )'")
    listening = sorted({line.split()[3] for line in out.splitlines()})
    # loopback for the data host's own tools, the private address for the web host; no wildcard
    assert {f"{data.private_address}:3306", f"{data.private_address}:6379", "127.0.0.1:3306",
            "127.0.0.1:6379"} <= set(listening), listening
    assert not [a for a in listening if a.startswith(("0.0.0.0:", "*:", "[::]:"))], listening
    rc, out, _ = run(web, "ss -Hltn '( sport >= :9001 and sport <= :9099 )'")
    assert not out.strip(), out  # FPM on unix sockets: the balancer is on the same host


def test_secrets_nobody_supplied_are_held_only_where_they_are_used_and_agree(split):
    web, data, client, first = split
    held = {"web": _digests(web), "data": _digests(data)}
    assert sorted(held["data"]) == ["db_password", "redis_admin_password", "redis_password"]
    assert sorted(held["web"]) == ["app_key", "db_password", "redis_password"]  # not Redis' admin password
    for name in ("db_password", "redis_password"):
        assert held["web"][name] == held["data"][name], name
    values = []
    for info in (web, data):
        rc, out, _ = run(info, "for f in /etc/lbstack/secrets/*; do cat $f; echo; done")
        values += [v for v in out.splitlines() if v]
    for value in values:
        assert value not in first.stdout + first.stderr, "a secret is in pyinfra's output"


def test_each_port_answers_only_the_host_that_uses_it(split):
    web, data, client, _ = split
    for port in (3306, 6379):
        assert _probe(web, data.private_address, port) == "open", port
        assert _probe(client, data.private_address, port) == "filtered", port
    assert _probe(client, data.private_address, 22) == "open"
    for port in (80, 443):
        assert _probe(client, data.private_address, port) == "filtered", port  # no web port off the balancer
    assert _probe(client, web.private_address, 80) == "open"
    assert network.get_net(NET) is not None
