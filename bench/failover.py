"""The split stack under load: a rolling update across both app hosts, an app host stopped, and
the active load balancer losing its nginx and then its whole host, with the requests that fail
during each, measured from a client host on the rehearsal network.

    python -m bench.failover [--connections 200] [--hold 20]

Boots lb1, lb2, app1, app2 (2 instances each), data (MariaDB and Redis) and a client on one
rehearsal network and converges the stack from bare. The client runs ``bench.load`` (keep-alive
connections, 15 s timeout, GETs round-robin over the random-question and health endpoints) at
the floating address throughout each step:

1. **rolling update**: ``lbstack deploy --rolling`` of a new build (one instance at a time
   across both app hosts, drained on both balancers);
2. **app host shut down**: app2's FPM instances and workers stopped as a shutdown stops them,
   then its power off (cgroups frozen, link cut) for ``--hold`` seconds, then powered on with
   its instances not started, then ``deploy/full.py`` on the stack: requests must reach app2's
   instances again;
   **app host lost power**: the same without the orderly stop (requests in flight on app2 are
   lost with it);
3. **nginx stopped** on the balancer holding the address, for ``--hold`` seconds;
4. **whole balancer host stopped** (frozen, link cut), the one holding the address then; it
   comes back as after a reboot (:meth:`Bench.rebooted`); afterwards, which balancer holds the
   address (no preemption: the one that took it keeps it).

Prints per step the requests, the failed ones (by kind), the share failed, when they failed
(seconds after the fault; containers share this machine's clock) and, for the balancer faults,
the seconds until the other balancer held the address (polled every 0.1 s); one JSON line at
the end. Load goes only to the client's network and each run is bounded; every host is torn
down afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

from bench.clientload import ClientLoad, install
from bench.rolling_update import new_build
from lbstack import REPO_ROOT
from lbstack.rehearsal import cgroups, converge, network, owned_hosts, ssh_run, up

PATHS = ("/api/questions/random", "/api/ujian/health")
INVENTORY = "inventories/rehearsal_split.py"
STACK = ("lb1", "lb2", "app1", "app2", "data")


def holder(hosts: dict, floating: str, tags=("lb1", "lb2")) -> list[str]:
    found = []
    for tag in tags:
        rc, out, _ = ssh_run(hosts[tag], "ip -o -4 addr show", timeout_s=10)
        if rc == 0 and f" {floating}/" in out:
            found.append(tag)
    return found


def link(net: network.Net, info, state: str) -> None:
    subprocess.run(["ip", "-n", net.netns, "link", "set", network.host_veth(info.index), state],
                   check=True, capture_output=True, timeout=30)


def power(net: network.Net, info, on: bool) -> None:
    """A host losing power, and back: frozen (no process runs) and its link cut (its kernel, which
    is this machine's, would still answer ARP for its addresses)."""
    if on:
        link(net, info, "up")
        cgroups.freeze(info.cgroups, False)
    else:
        cgroups.freeze(info.cgroups, True)
        link(net, info, "down")


def failures(result: dict, fault_at: float | None) -> dict:
    """Summary of a load run's records: requests, failed (by kind), share, and when (s after the fault)."""
    records = result.get("records", [])
    failed = [r for r in records if r["status"] is None or r["status"] >= 500]
    out = {"requests": len(records), "failed": len(failed),
           "failed_pct": round(100 * len(failed) / len(records), 3) if records else None,
           "failed_by_kind": dict(Counter(str(r["status"]) if r["status"] is not None else r["error"] for r in failed))}
    if failed and fault_at is not None:
        offset = result["started_monotonic"] - fault_at
        out["failed_between_s"] = [round(min(r["start"] for r in failed) + offset, 1),
                                   round(max(r["start"] + r["latency"] for r in failed) + offset, 1)]
    return out


def served_after(result: dict, after: float) -> Counter:
    """Which instances answered the requests started after ``after`` (this machine's monotonic clock)."""
    since = after - result["started_monotonic"]
    return Counter(r["instance"] for r in result.get("records", []) if r["start"] >= since and r["instance"])


class Bench:
    def __init__(self, hosts: dict, net_name: str, settings: Path, floating: str, connections: int):
        self.hosts, self.net_name, self.settings, self.floating = hosts, net_name, settings, floating
        self.connections = connections
        self.names = [hosts[t].name for t in STACK]
        self.env = {"LBSTACK_REHEARSAL_GROUPS": (
            f"lb={hosts['lb1'].name},{hosts['lb2'].name} app={hosts['app1'].name},{hosts['app2'].name} "
            f"db={hosts['data'].name} cache={hosts['data'].name}")}

    @property
    def net(self) -> network.Net:
        return network.get_net(self.net_name)

    def converge(self) -> converge.PyinfraRun:
        return converge.pyinfra(self.names, inventory=INVENTORY, settings_file=self.settings, env=self.env,
                                timeout_s=2400)

    @property
    def macs(self) -> dict[str, str]:
        if not hasattr(self, "_macs"):
            self._macs = {}
            for tag in ("lb1", "lb2"):
                _, out, _ = ssh_run(self.hosts[tag], "cat /sys/class/net/priv0/address", timeout_s=10)
                self._macs[tag] = out.strip()
        return self._macs

    def load(self) -> ClientLoad:
        handle = ClientLoad(self.hosts["client"], f"http://{self.floating}", self.connections, PATHS, records=True)
        time.sleep(3)  # connections open and warm
        return handle

    def rolling(self, tmp: str) -> dict:
        handle = self.load()
        started = time.monotonic()
        exe = os.path.join(os.path.dirname(sys.executable), "lbstack")
        proc = subprocess.run([exe, "deploy", "--rolling", INVENTORY, "--set", f"app_source={new_build(tmp, 1)}"],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
                              env={**os.environ, **self.env, "LBSTACK_SETTINGS": str(self.settings)})
        seconds = time.monotonic() - started
        time.sleep(2)
        result = handle.stop()
        if proc.returncode != 0:
            raise SystemExit(f"the rolling update failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
        return {"step": "rolling update", "seconds": round(seconds, 1), **failures(result, started),
                "releases": dict(Counter(r["release"] for r in result["records"] if r["release"]))}

    def app_host_stopped(self, hold_s: float, orderly: bool) -> dict:
        """app2 shut down (``orderly``: its services stopped as a shutdown stops them, then the power
        off) or losing power (no process runs any more, its link cut), for ``hold_s``; then
        powered on with its FPM instances not started (a host booting), and a converge."""
        app2 = self.hosts["app2"]
        handle = self.load()
        fault = time.monotonic()
        if orderly:
            ssh_run(app2, "systemctl stop 'lbstack-queue@*.service' 'lbstack-fpm@*.service'", timeout_s=120)
        power(self.net, app2, False)
        time.sleep(hold_s)
        if not orderly:  # what a boot would not have: the instances that ran when the power went
            cgroups.freeze(app2.cgroups, False)
            ssh_run(app2, "systemctl kill -s KILL 'lbstack-fpm@*.service'; systemctl stop 'lbstack-queue@*.service' "
                          "'lbstack-fpm@*.service'", timeout_s=120)
        power(self.net, app2, True)
        back = time.monotonic()
        run = self.converge()
        converged = time.monotonic()
        time.sleep(5)
        result = handle.stop()
        prefix = f"{app2.name}-"
        return {"step": "app host shut down" if orderly else "app host lost power", "hold_s": hold_s,
                **failures(result, fault), "converge_after_rc": run.rc, "converge_after_s": round(converged - back, 1),
                "app2_served_while_stopped": sum(n for i, n in served_after(result, fault + 1).items()
                                                 if i.startswith(prefix)) - sum(
                    n for i, n in served_after(result, back).items() if i.startswith(prefix)),
                "app2_served_after_converge": sum(n for i, n in served_after(result, converged).items()
                                                  if i.startswith(prefix))}

    def rebooted(self, info) -> None:
        """A balancer whose power was cut comes back as after a reboot: its link up only once its
        processes are fresh (keepalived starts as BACKUP, no floating address; nginx started). A
        thawed host would resume as the MASTER it was when frozen, still holding the address."""
        cgroups.freeze(info.cgroups, False)
        ssh_run(info, "systemctl kill -s KILL keepalived.service nginx.service; systemctl stop keepalived.service "
                      f"nginx.service; ip -4 addr del {self.floating}/32 dev priv0 2>/dev/null; true", timeout_s=60)
        link(self.net, info, "up")
        ssh_run(info, "systemctl start nginx.service keepalived.service", timeout_s=60)

    def balancer_fault(self, kind: str, hold_s: float) -> dict:
        (first,) = holder(self.hosts, self.floating)
        other = "lb2" if first == "lb1" else "lb1"
        info = self.hosts[first]
        handle = self.load()
        fault = time.monotonic()
        if kind == "nginx stopped":
            ssh_run(info, "systemctl stop nginx.service", timeout_s=30)
        else:
            power(self.net, info, False)
        moved_s = None
        while time.monotonic() - fault < 30:
            if holder(self.hosts, self.floating, (other,)):  # a stopped host answers no ssh: ask the other
                moved_s = time.monotonic() - fault
                break
            time.sleep(0.1)
        time.sleep(3)
        # what the client's kernel sends to: the floating address's MAC, against each balancer's
        _, neigh, _ = ssh_run(self.hosts["client"], f"ip neigh show {self.floating}", timeout_s=10)
        time.sleep(max(0.0, hold_s - (time.monotonic() - fault)))
        if kind == "nginx stopped":
            ssh_run(info, "systemctl start nginx.service", timeout_s=30)
        else:
            self.rebooted(info)
        time.sleep(8)  # the first balancer back: does it take the address back?
        result = handle.stop()
        return {"step": f"{kind} on the holder", "on": first, "moved_to": other,
                "moved_after_s": round(moved_s, 2) if moved_s is not None else None, **failures(result, fault),
                "holder_after_return": holder(self.hosts, self.floating),
                "client_neighbour_3s_after_move": neigh.strip(), "balancer_macs": self.macs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--hold", type=float, default=20.0, help="seconds each fault lasts")
    args = parser.parse_args()
    net_name = f"fo{int(time.time()) % 100000}"
    with owned_hosts(), tempfile.TemporaryDirectory() as tmp:
        hosts = {tag: up(f"{net_name}-{tag}", net=net_name) for tag in (*STACK, "client")}
        floating = network.get_net(net_name).address(250)
        settings = Path(tmp) / "settings.yaml"
        settings.write_text(yaml.safe_dump({"capacity_cpus": 8, "capacity_memory_mib": 16384, "instances": 2,
                                            "ntp_servers": ["127.0.0.1"], "lb_floating_address": floating}))
        bench = Bench(hosts, net_name, settings, floating, args.connections)
        started = time.monotonic()
        run = bench.converge()
        if run.rc != 0:
            raise SystemExit(f"converge failed:\n{run.stderr[-3000:]}")
        print(f"converged the split stack from bare in {time.monotonic() - started:.0f} s; floating address {floating}")
        install(hosts["client"])
        bench.macs  # read while both balancers answer
        rows = [bench.rolling(tmp), bench.app_host_stopped(args.hold, orderly=True),
                bench.app_host_stopped(args.hold, orderly=False),
                bench.balancer_fault("nginx stopped", args.hold), bench.balancer_fault("whole host stopped", args.hold)]
        for row in rows:
            extra = {k: v for k, v in row.items() if k not in ("step", "requests", "failed", "failed_pct")}
            print(f"{row['step']}: {row['failed']} of {row['requests']} requests failed ({row['failed_pct']} %); {extra}")
        print(json.dumps({"connections": args.connections, "hold_s": args.hold, "steps": rows}))


if __name__ == "__main__":
    main()
