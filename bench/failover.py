"""Two load balancers under load: how long the floating address takes to move, and how many
requests fail while it does, when the balancer holding it loses its nginx, and when its whole
host stops (its cgroups frozen and its link to the network cut: no VRRP adverts, no answers, not
even ARP from its kernel, as when a host loses power).

    python -m bench.failover [--seconds 40] [--clients 20]

Boots lb1, lb2, web (app, db and cache on one host: a smaller stack, same failover) and a client
on one rehearsal network, converges the stack from bare, then runs each fault in turn with the
client sending ``GET <floating address>/api/ujian/health`` from ``--clients`` threads (a new
connection per request, 2 s timeout) for ``--seconds``; the fault starts 10 s in. Prints per
fault: the seconds until the other balancer held the address (polled every 0.1 s), the failed
requests and when they happened, and one JSON line at the end. Load goes only to the client's
network, bounded in time; every host is torn down afterwards.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import yaml

from lbstack.rehearsal import cgroups, converge, network, owned_hosts, ssh_run, up

HEALTH = "/api/ujian/health"
FAULT_AT_S = 10.0
LOAD = r"""
import json, sys, threading, time, urllib.request
url, seconds, clients = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
start = time.monotonic(); results = []; lock = threading.Lock()
def client():
    while time.monotonic() - start < seconds:
        t = time.monotonic() - start
        try:
            ok = urllib.request.urlopen(url, timeout=2).status == 200
        except Exception:
            ok = False
        with lock:
            results.append((round(t, 2), ok))
threads = [threading.Thread(target=client) for _ in range(clients)]
[t.start() for t in threads]; [t.join() for t in threads]
print(json.dumps(results))
"""


def holder(hosts: dict, floating: str, tags=("lb1", "lb2")) -> list[str]:
    found = []
    for tag in tags:
        rc, out, _ = ssh_run(hosts[tag], "ip -o -4 addr show", timeout_s=10)
        if rc == 0 and f" {floating}/" in out:
            found.append(tag)
    return found


def run_ip(net: network.Net, *args: str) -> None:
    subprocess.run(["ip", "-n", net.netns, "link", *args], check=True, capture_output=True, timeout=30)


def run_fault(hosts: dict, net: network.Net, floating: str, kind: str, seconds: float, clients: int) -> dict:
    (first,) = holder(hosts, floating)
    other = "lb2" if first == "lb1" else "lb1"
    output: dict = {}

    def load() -> None:
        command = f"python3 -c {shlex.quote(LOAD)} http://{floating}{HEALTH} {seconds} {clients}"
        rc, out, err = ssh_run(hosts["client"], command, timeout_s=seconds + 60)
        output["results"] = json.loads(out) if rc == 0 else []
        output["error"] = err[-500:] if rc else ""

    thread = threading.Thread(target=load)
    thread.start()
    time.sleep(FAULT_AT_S)
    started = time.monotonic()
    if kind == "nginx stopped":
        ssh_run(hosts[first], "systemctl stop nginx.service", timeout_s=30)
    else:  # the whole host stops: frozen, and cut off (a frozen kernel would still answer ARP)
        cgroups.freeze(hosts[first].cgroups, True)
        run_ip(net, "set", network.host_veth(hosts[first].index), "down")
    moved_s = None
    while time.monotonic() - started < 30:
        if holder(hosts, floating, (other,)):  # a frozen host answers no ssh: ask the other only
            moved_s = time.monotonic() - started
            break
        time.sleep(0.1)
    thread.join()
    if kind == "nginx stopped":
        ssh_run(hosts[first], "systemctl start nginx.service", timeout_s=30)
    else:
        run_ip(net, "set", network.host_veth(hosts[first].index), "up")
        cgroups.freeze(hosts[first].cgroups, False)
    results = output.get("results", [])
    failed = [t for t, ok in results if not ok]
    return {"fault": kind, "on": first, "moved_to": other, "moved_after_s": round(moved_s, 2) if moved_s else None,
            "requests": len(results), "failed": len(failed),
            # the load's clock starts with its ssh session: these are within ~0.5 s of the fault's
            "failed_between_s": [round(min(failed) - FAULT_AT_S, 1), round(max(failed) - FAULT_AT_S, 1)] if failed else None,
            "load_error": output.get("error", "")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args()
    net = f"fo{int(time.time()) % 100000}"
    with owned_hosts(), tempfile.TemporaryDirectory() as tmp:
        hosts = {tag: up(f"{net}-{tag}", net=net) for tag in ("lb1", "lb2", "web", "client")}
        floating = network.get_net(net).address(250)
        settings = Path(tmp) / "settings.yaml"
        settings.write_text(yaml.safe_dump({"capacity_cpus": 8, "capacity_memory_mib": 16384, "instances": 2,
                                            "ntp_servers": ["127.0.0.1"], "lb_floating_address": floating}))
        names = {tag: info.name for tag, info in hosts.items()}
        groups = f"lb={names['lb1']},{names['lb2']} app={names['web']} db={names['web']} cache={names['web']}"
        started = time.monotonic()
        run = converge.pyinfra([names["lb1"], names["lb2"], names["web"]], inventory="inventories/rehearsal_split.py",
                               settings_file=settings, env={"LBSTACK_REHEARSAL_GROUPS": groups}, timeout_s=2400)
        if run.rc != 0:
            raise SystemExit(f"converge failed:\n{run.stderr[-3000:]}")
        print(f"converged lb1, lb2, web in {time.monotonic() - started:.0f} s; floating address {floating}")
        rows = []
        for kind in ("nginx stopped", "whole host stopped"):
            row = run_fault(hosts, network.get_net(net), floating, kind, args.seconds, args.clients)
            rows.append(row)
            print(f"{kind} on {row['on']}: the address on {row['moved_to']} after {row['moved_after_s']} s; "
                  f"{row['failed']} of {row['requests']} requests failed"
                  + (f" (between {row['failed_between_s'][0]:.1f} and {row['failed_between_s'][1]:.1f} s after the fault)"
                     if row["failed_between_s"] else ""))
            time.sleep(5)
        print(json.dumps({"clients": args.clients, "seconds": args.seconds, "faults": rows}))


if __name__ == "__main__":
    main()
