"""The rehearsal hosts are real systemd machines whose cgroup limits hold, and leave no trace.

Each behaviour is checked on both kinds: the container (cgroup v1 on this kind of machine)
and the VM (real kernel, cgroup v2).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import uuid
from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.facts.server import Hostname

from lbstack import rehearsal
from lbstack.rehearsal import HostInfo, pyinfra_host

KINDS = [pytest.param("nspawn", id="nspawn"), pytest.param("vm", id="vm", marks=pytest.mark.vm)]

# Runs on the host: CPU share of a unit over 5 s, read from its cgroup, plus its quota.
CPU_PROBE = r'''
import json, os, subprocess, sys, time
unit = sys.argv[1]
cg = subprocess.run(["systemctl", "show", "-P", "ControlGroup", unit],
                    capture_output=True, text=True, check=True).stdout.strip()
v2 = f"/sys/fs/cgroup{cg}"

def usage_s():
    """CPU seconds the unit has used so far."""
    if os.path.exists(f"{v2}/cpu.stat"):
        stat = dict(line.split() for line in open(f"{v2}/cpu.stat"))
        return int(stat["usage_usec"]) / 1e6
    acct = f"/sys/fs/cgroup/cpuacct{cg}/cpuacct.usage"
    if os.path.exists(acct):
        return int(open(acct).read()) / 1e9
    # cpu and cpuacct are separate v1 hierarchies here and systemd puts units in "cpu" only:
    # sum utime+stime of the processes listed in the unit's cpu cgroup.
    ticks = 0
    for pid in open(f"/sys/fs/cgroup/cpu{cg}/cgroup.procs").read().split():
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")

def quota():
    """The CPU limit as the kernel sees it: 'quota period' in microseconds."""
    if os.path.exists(f"{v2}/cpu.max"):
        return open(f"{v2}/cpu.max").read().strip()
    v1 = f"/sys/fs/cgroup/cpu{cg}"
    return " ".join(open(f"{v1}/cpu.cfs_{name}_us").read().strip() for name in ("quota", "period"))

time.sleep(1)
start, used = time.monotonic(), usage_s()
time.sleep(5)
share = (usage_s() - used) / (time.monotonic() - start)
print(json.dumps({"share": share, "quota": quota()}))
'''


@pytest.fixture(params=KINDS)
def host(request: pytest.FixtureRequest) -> HostInfo:
    """The session's host of each kind in turn."""
    return request.getfixturevalue(f"{request.param}_host")


def cgroup_fs(host: HostInfo, run) -> str:
    """File system type of /sys/fs/cgroup on ``host``: cgroup2fs (v2) or tmpfs (v1)."""
    rc, out, err = run(host, "stat -fc %T /sys/fs/cgroup")
    assert rc == 0, err
    return out.strip()


def test_systemd_is_running(host: HostInfo, run) -> None:
    rc, out, err = run(host, "systemctl is-system-running --wait", timeout=180)
    assert out.strip() in ("running", "degraded"), (out, err)


def test_cgroup_version(host: HostInfo, run) -> None:
    machine = subprocess.run(["stat", "-fc", "%T", "/sys/fs/cgroup"], capture_output=True, text=True)
    expected = "cgroup2fs" if host.kind == "vm" else machine.stdout.strip()
    assert cgroup_fs(host, run) == expected
    if expected != "cgroup2fs":  # the init wrapper made the v1 controllers writable
        rc, out, _ = run(host, "grep ' /sys/fs/cgroup/memory ' /proc/self/mounts")
        assert rc == 0 and " rw," in out, out


def test_cpu_quota_holds(host: HostInfo, run) -> None:
    unit = f"lbt-busy-{uuid.uuid4().hex[:8]}"
    start = f"systemd-run --unit {unit} -p CPUQuota=50% -p CPUAccounting=yes /bin/sh -c 'while :; do :; done'"
    try:
        rc, _, err = run(host, start)
        assert rc == 0, err
        rc, out, err = run(host, f"python3 -c {shlex.quote(CPU_PROBE)} {unit}", timeout=60)
        assert rc == 0, err
        probe = json.loads(out)
    finally:
        run(host, f"systemctl stop {unit}; systemctl reset-failed {unit}")
    assert probe["quota"] == "50000 100000"
    assert 0.35 <= probe["share"] <= 0.65, f"busy loop used {probe['share']:.2f} CPU under CPUQuota=50%"


def test_memory_max_kills(host: HostInfo, run) -> None:
    unit = f"lbt-mem-{uuid.uuid4().hex[:8]}"
    hog = "python3 -c 'x = b\"x\" * (256 << 20); print(\"survived\")'"
    try:
        rc, out, _ = run(host, f"systemd-run --wait --unit {unit} -p MemoryMax=64M {hog}", timeout=120)
        _, props, err = run(host, f"systemctl show -p Result -p ExecMainStatus {unit}")
    finally:
        run(host, f"systemctl stop {unit}; systemctl reset-failed {unit}")
    result = dict(line.split("=", 1) for line in props.split())
    assert rc != 0 and "survived" not in out
    # v1 has no memory.events: systemd sees the OOM kill only as SIGKILL.
    expected = "oom-kill" if cgroup_fs(host, run) == "cgroup2fs" else "signal"
    assert result["Result"] == expected, props
    assert result["ExecMainStatus"] == "9", props


def test_pyinfra_reaches_host(host: HostInfo) -> None:
    inventory = Inventory(([pyinfra_host(host)], {}))
    state = State(inventory, Config())
    connect_all(state)
    try:
        assert inventory.get_host(host.name).get_fact(Hostname) == host.name
    finally:
        disconnect_all(state)


@pytest.mark.parametrize("kind", KINDS)
def test_down_leaves_nothing(kind: str, host_name) -> None:
    name = host_name(f"d{kind[0]}")
    try:
        info = rehearsal.up(name, vm_host=kind == "vm")
    finally:
        found = rehearsal.down(name)
    assert found
    assert info.owner_pid == os.getpid()  # owned by the test run: reaped if it is killed
    assert rehearsal.down(name) is False  # a second down is harmless
    assert not Path(f"/proc/{info.pid}").exists()
    assert not Path(info.host_dir).exists()
    listeners = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout
    if kind == "vm":
        assert f" 127.0.0.1:{info.ssh_port} " not in listeners
        return
    assert not Path(f"/proc/{info.proxy_pid}").exists()
    assert f" {info.proxy_address} " not in listeners
    assert not Path(f"/sys/class/net/{info.veth}").exists()
    leftovers = [d for d, subdirs, _ in os.walk("/sys/fs/cgroup") if d.endswith(f"/nspawn-{name}")]
    assert leftovers == []
