"""Rehearsal networks: a private network several rehearsal hosts share, like a VPS provider's
private network between the servers of one project.

A network ``NET`` is a bridge (``br0``) inside a network namespace of its own,
``lbsnet-NET``, with the subnet ``10.214.<net index>.0/24``. A container host booted with
``up(name, net=NET)`` gets a second veth: ``priv0`` inside it, addressed
``10.214.<net index>.<host index>``, its other end (``vlbp<host index>``) moved into the
network's namespace and enslaved to the bridge. The hosts on one network reach each other on
those addresses; nothing else can: the namespace has no other link, carries no address of its
own and forwards nowhere, and this machine (whose default route leads out) has no route to the
subnet. Each host keeps its own veth to this machine for ssh and apt (its "public" side).

A network exists while a host is on it: the first host to join creates it (under the state
lock), the last to leave deletes it, which also removes every veth end on its bridge. The record
``<state>/nets/<NET>.json`` is written before the namespace is made, so a run killed in between
leaves a record :func:`reap_unused` (``lbstack rehearsal reap``) finds and removes.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from .common import HostInfo, RehearsalError, list_hosts, run, state_dir

PREFIX = "10.214"
NETNS_PREFIX = "lbsnet-"
BRIDGE = "br0"
GUEST_IF = "priv0"
NET_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,14}$")


@dataclass(frozen=True)
class Net:
    name: str
    index: int  # the subnet: 10.214.<index>.0/24

    @property
    def netns(self) -> str:
        return NETNS_PREFIX + self.name

    @property
    def subnet(self) -> str:
        return f"{PREFIX}.{self.index}.0/24"

    def address(self, host_index: int) -> str:
        """The private address of the host with network index ``host_index``."""
        return f"{PREFIX}.{self.index}.{host_index}"


def check_net_name(name: str) -> str:
    if not NET_NAME_RE.match(name):
        raise RehearsalError(f"invalid network name {name!r}: use 1-15 of a-z, 0-9 and '-', starting with a letter")
    return name


def host_veth(host_index: int) -> str:
    """The host's private veth end on the network's bridge (inside the network's namespace)."""
    return f"vlbp{host_index}"


def nets_dir() -> Path:
    path = state_dir() / "nets"
    path.mkdir(exist_ok=True)
    return path


def list_nets() -> list[Net]:
    return [Net(**json.loads(p.read_text())) for p in sorted(nets_dir().glob("*.json"))]


def get_net(name: str) -> Net | None:
    path = nets_dir() / f"{check_net_name(name)}.json"
    return Net(**json.loads(path.read_text())) if path.exists() else None


def _netns_exists(netns: str) -> bool:
    return Path(f"/run/netns/{netns}").exists()


def ensure(name: str) -> Net:
    """Network ``name``, created if it does not exist yet. Call with the state lock held."""
    net = get_net(name)
    if net is None:
        used = {n.index for n in list_nets()}
        index = next((i for i in range(1, 255) if i not in used), None)
        if index is None:
            raise RehearsalError("no free 10.214.<index>.0/24 subnet for another rehearsal network")
        net = Net(name, index)
        tmp = nets_dir() / f"{name}.tmp"
        tmp.write_text(json.dumps(asdict(net)) + "\n")
        tmp.replace(nets_dir() / f"{name}.json")
    if not _netns_exists(net.netns):
        run(["ip", "netns", "add", net.netns])
    if subprocess.run(["ip", "-n", net.netns, "link", "show", BRIDGE], capture_output=True).returncode != 0:
        run(["ip", "-n", net.netns, "link", "add", BRIDGE, "type", "bridge"])
    run(["ip", "-n", net.netns, "link", "set", BRIDGE, "up"])
    return net


def plug(info: HostInfo) -> None:
    """Move the host's private veth end (made by systemd-nspawn on this machine) into its
    network's namespace, onto the bridge."""
    net = get_net(info.net)
    if net is None:
        raise RehearsalError(f"{info.name}: its network {info.net!r} has no record")
    veth = host_veth(info.index)
    run(["ip", "link", "set", veth, "netns", net.netns])
    run(["ip", "-n", net.netns, "link", "set", veth, "master", BRIDGE])
    run(["ip", "-n", net.netns, "link", "set", veth, "up"])


def release(info: HostInfo) -> None:
    """After host ``info`` is stopped: delete its network if no other recorded host is on it.
    Call with the state lock held."""
    if not info.net:
        return
    others = [h for h in list_hosts() if h.net == info.net and h.name != info.name]
    if not others:
        _delete(info.net)


def _delete(name: str) -> None:
    net = get_net(name)
    netns = net.netns if net else NETNS_PREFIX + name
    if _netns_exists(netns):
        run(["ip", "netns", "delete", netns])  # removes the bridge and every veth end on it
    (nets_dir() / f"{name}.json").unlink(missing_ok=True)


def reap_unused() -> list[str]:
    """Delete every network no recorded host is on; returns their names. Call with the state lock
    held. (A namespace is only made after its record is written, so every one of ours has a
    record; namespaces of another state dir are not touched.)"""
    in_use = {h.net for h in list_hosts() if h.net}
    removed = []
    for net in list_nets():
        if net.name not in in_use:
            _delete(net.name)
            removed.append(net.name)
    return removed


def leftovers() -> dict[str, list[str]]:
    """What of any rehearsal network is on this machine: namespaces, records, private veths
    left in this machine's own namespace."""
    netns = sorted(p.name for p in Path("/run/netns").glob(NETNS_PREFIX + "*")) if Path("/run/netns").is_dir() else []
    links = sorted(p.name for p in Path("/sys/class/net").glob("vlbp*"))
    return {"namespaces": netns, "records": [n.name for n in list_nets()], "veths": links}
