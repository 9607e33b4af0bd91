"""A rehearsal network: container hosts that reach each other at their private addresses, and
nothing else; made by the first host on it, gone with the last (and reaped after a kill).

Three bare hosts: two on the network, one not. No traffic leaves for anywhere but these hosts:
what this machine could reach (its default route leads out) is read from its routing table,
never probed.
"""

from __future__ import annotations

import json
import shlex
import os
import subprocess

import pytest

from lbstack import REPO_ROOT
from lbstack.rehearsal import RehearsalError, common, network, pyinfra_host
import lbstack.rehearsal as rehearsal

from conftest import RUN_ID, run, unique_name

NET = f"t{RUN_ID}"[:15]
PROBE = (
    "import socket,sys\n"
    "s=socket.socket(); s.settimeout(3)\n"
    "try:\n s.connect((sys.argv[1], 22)); print('open')\n"
    "except ConnectionRefusedError: print('refused')\n"
    "except OSError as e: print('unreachable' if e.errno in (101, 113) else 'filtered')\n"
)


def _connect(info, address: str) -> str:
    rc, out, err = run(info, f"python3 -c {shlex.quote(PROBE)} {address}", timeout=30)
    assert rc == 0, err
    return out.strip()


def _netns_links(net: network.Net) -> list[str]:
    out = subprocess.run(["ip", "-n", net.netns, "-o", "link", "show"], capture_output=True, text=True,
                         check=True).stdout
    return sorted(line.split(": ")[1].split("@")[0] for line in out.splitlines())


def test_hosts_on_a_network_reach_each_other_and_nothing_else_does():
    names = {tag: unique_name(f"net{tag}") for tag in "abc"}
    with rehearsal.owned_hosts():
        a = rehearsal.up(names["a"], net=NET)
        b = rehearsal.up(names["b"], net=NET)
        c = rehearsal.up(names["c"])
        net = network.get_net(NET)
        assert a.private_address == net.address(a.index) and b.private_address == net.address(b.index)
        assert pyinfra_host(a)[1]["private_address"] == a.private_address  # what a split inventory reads
        assert "private_address" not in pyinfra_host(c)[1]
        # a and b, on the network: sshd answers on the other's private address, both ways
        assert _connect(a, b.private_address) == "open" and _connect(b, a.private_address) == "open"
        rc, out, _ = run(a, "ip -o -4 addr show priv0")
        assert f"{a.private_address}/24" in out, out
        # c is not on it; a, on it, still has no way to c's or b's own side
        assert _connect(c, b.private_address) == "unreachable"
        assert _connect(a, c.address) == "unreachable" and _connect(a, b.address) == "unreachable"
        # the network: a bridge with the two hosts' ends, no address, no other link
        assert _netns_links(net) == sorted(["lo", network.BRIDGE, network.host_veth(a.index),
                                            network.host_veth(b.index)])
        addrs = subprocess.run(["ip", "-n", net.netns, "-o", "-4", "addr", "show"], capture_output=True, text=True,
                               check=True).stdout
        assert not addrs.strip(), addrs  # not even loopback's: nothing in there listens or routes
        # this machine has no address and no link on the subnet: its route to it is its default one
        here = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
        assert f" {network.PREFIX}.{net.index}." not in here
        assert not [p for p in os.listdir("/sys/class/net") if p.startswith("vlbp")]
        # the network outlives a host that leaves it, and goes with the last one
        rehearsal.down(a.name)
        assert network.get_net(NET) is not None and _connect(b, a.private_address) in ("unreachable", "filtered")
        rehearsal.down(b.name)
        assert network.get_net(NET) is None
        assert not os.path.exists(f"/run/netns/{net.netns}")
    left = network.leftovers()
    assert network.NETNS_PREFIX + NET not in left["namespaces"] and NET not in left["records"], left
    assert not left["veths"], left


def test_a_bad_network_name_is_refused_before_anything_starts():
    with pytest.raises(RehearsalError, match="invalid network name 'Bad_Net'"):
        rehearsal.up(unique_name("netbad"), net="Bad_Net")
    with pytest.raises(RehearsalError, match="--net applies to container hosts only"):
        rehearsal.up(unique_name("netvm"), vm_host=True, net=NET)
    assert not common.host_dir(unique_name("netbad")).exists()


def test_a_network_whose_hosts_owner_was_killed_is_reaped():
    owner = subprocess.Popen(["sleep", "600"])
    name = unique_name("netk")
    net_name = f"k{RUN_ID}"[:15]
    lbstack = str(REPO_ROOT / ".venv" / "bin" / "lbstack")
    try:
        up = subprocess.run([lbstack, "rehearsal", "up", name, "--net", net_name, "--owner", str(owner.pid)],
                            capture_output=True, text=True, timeout=300)
        assert up.returncode == 0 and f"on {net_name} at {network.PREFIX}." in up.stdout, up.stdout + up.stderr
        net = network.get_net(net_name)
        assert os.path.exists(f"/run/netns/{net.netns}")
        owner.kill()
        owner.wait()
        reap = subprocess.run([lbstack, "rehearsal", "reap"], capture_output=True, text=True, timeout=120)
        assert reap.returncode == 0 and f"network {net_name}" in reap.stdout, reap.stdout + reap.stderr
        assert network.get_net(net_name) is None and not os.path.exists(f"/run/netns/{net.netns}")
        assert name not in {h.name for h in rehearsal.list_hosts()}
    finally:
        owner.kill()
        rehearsal.down(name)
