"""Container rehearsal hosts: systemd-nspawn with enforced cgroup limits, reached over ssh.

``up`` boots a copy of the golden rootfs (or of a given rootfs dir) with the PID-1 wrapper
that makes the v1 controllers writable, inside a dedicated ``nspawn-<name>`` cgroup in every
hierarchy, in a private network namespace joined to this machine by a veth pair:
host side 10.213.<index>.1/24, container 10.213.<index>.2/24 (sshd on port 22). apt inside
goes through :mod:`aptproxy` on the host side of the veth, port 3142.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import aptconfig, cgroups, network
from .common import (
    HostInfo, RehearsalError, check_name, copy_tree, get_host, host_dir, list_hosts, load_host,
    locked, reclaim_name, pid_matches, remove_tree, require_root, run, state_dir, stop_processes, sync_tree,
    wait_exec, wait_for_ssh, wait_until,
)
from .rootfs import INIT_WRAPPER, build_rootfs, ssh_key, write_file
from .signals import holding_signals

NET_PREFIX = "10.213"
PROXY_PORT = 3142
PROXY_CONF = "/etc/apt/apt.conf.d/00lbstack-rehearsal-proxy"
NETWORK_FILE = "/etc/systemd/network/10-lbstack-rehearsal.network"
PRIVATE_NETWORK_FILE = "/etc/systemd/network/11-lbstack-rehearsal-private.network"
BOOT_TIMEOUT_S = 90.0
POWEROFF_TIMEOUT_S = 20.0


def up(
    name: str, rootfs: str | Path | None = None, timeout_s: float = BOOT_TIMEOUT_S,
    owner: tuple[int | None, int | None] = (None, None), net: str | None = None,
) -> HostInfo:
    """Boot container host ``name`` and wait until ssh answers; returns its record.

    ``rootfs`` is a tree to boot a copy of (e.g. a :func:`snapshot`); default: the golden
    rootfs, or this host's own rootfs if an earlier ``down(keep_rootfs=True)`` kept it.
    ``owner`` is the ``(owner_pid, owner_start)`` recorded from the start (see :mod:`.owner`).
    ``net``: also put it on that rehearsal network (:mod:`.network`, made if new), as
    ``priv0`` with ``info.private_address``. On failure everything started so far is torn
    down again.
    """
    require_root()
    check_name(name)
    if net is not None:
        network.check_net_name(net)
    source = Path(rootfs) if rootfs else None
    if source is None and not (host_dir(name) / "rootfs").is_dir():
        source = build_rootfs()
    info = _register(name, source, owner, net)
    try:
        if source is not None:
            copy_tree(source, Path(info.rootfs))
        _personalize(info)
        _start_container(info)
        _configure_veth(info)
        _start_proxy(info)
        wait_for_ssh(info, timeout_s, alive=lambda: alive(info), log=Path(info.host_dir) / "nspawn.log")
    except BaseException:
        down(name, keep_rootfs=source is None)
        raise
    return info


def down(name: str, keep_rootfs: bool = False, when: Callable[[HostInfo], bool] | None = None) -> bool:
    """Stop host ``name`` and remove its processes, cgroups, veth, proxy and files.

    With ``keep_rootfs`` the rootfs copy stays (``up(name)`` boots it again). Safe to call
    twice or after a crash, even one in the middle of an earlier ``down``: host.json goes last,
    so whatever is left is still recorded. Returns False if there was nothing to tear down.
    With ``when``, only a recorded host for which ``when(record)`` is true (checked under the
    state lock) is torn down.
    """
    check_name(name)
    path = host_dir(name)
    record = path / "host.json"
    with holding_signals(), locked(state_dir() / ".lock"):
        if record.exists():
            info = load_host(record)
            if when is not None and not when(info):
                return False
            _release(info)
        elif not path.exists() or keep_rootfs or when is not None:
            return False
        for entry in path.iterdir():
            if entry.name not in ("host.json", "rootfs" if keep_rootfs else ""):
                remove_tree(entry)
        record.unlink(missing_ok=True)
        if not keep_rootfs:
            path.rmdir()
    return True


def snapshot(name: str, dest: str | Path) -> Path:
    """Copy the rootfs of running host ``name`` to ``dest`` (a new dir) for ``up(rootfs=dest)``.

    The copy is as consistent as after a power cut (services with journals, MariaDB, recover on
    boot): the bulk is copied while the host runs, then the host is frozen (cgroup freezer) only
    while the difference since is copied, under a second on an idle host. A long freeze would
    harm the host it copies: its systemd kills every FPM master whose watchdog (8 s) ran out while
    frozen (a 15 s freeze for the whole copy restarted the session host's instances in CI).
    """
    info = _get_running(name)
    target = Path(dest)
    if target.exists():
        raise RehearsalError(f"snapshot target {target} already exists")
    copy_tree(Path(info.rootfs), target)
    cgroups.freeze(info.cgroups, True)
    try:
        sync_tree(Path(info.rootfs), target)
    finally:
        cgroups.freeze(info.cgroups, False)
    return target


def alive(info: HostInfo) -> bool:
    """True if the host's systemd-nspawn process is still running."""
    return pid_matches(info.pid, _nspawn_marker(info.name))


def _nspawn_marker(name: str) -> str:
    """Command-line fragment identifying this host's nspawn process."""
    return f" -M {name} "


def _proxy_marker(info: HostInfo) -> str:
    """Command-line fragment identifying this host's apt proxy process."""
    return f"aptproxy.py --listen {NET_PREFIX}.{info.index}.1 "


def _get_running(name: str) -> HostInfo:
    """The record of ``name``, which must be a running container host."""
    info = get_host(name)
    if info.kind != "nspawn" or not alive(info):
        raise RehearsalError(f"{name!r} is not a running container host")
    return info


def _register(name: str, source: Path | None, owner: tuple[int | None, int | None], net: str | None) -> HostInfo:
    """Claim ``name`` and a free network index; write the initial host.json.

    A stale record (its nspawn died, e.g. after a reboot) is torn down first; its rootfs
    stays and boots again, as if the host had been restarted.
    """
    path = host_dir(name)
    with locked(state_dir() / ".lock"):
        reclaim_name(name, "nspawn", alive, _teardown)
        if source is not None and (path / "rootfs").exists():
            raise RehearsalError(f"{path} holds a kept rootfs: `lbstack rehearsal down {name}` deletes it")
        index = _free_index()
        private = network.ensure(net).address(index) if net else None
        path.mkdir(parents=True, exist_ok=True)
        info = HostInfo(
            name=name, kind="nspawn", address=f"{NET_PREFIX}.{index}.2", ssh_port=22,
            ssh_user="root", ssh_key=str(ssh_key()), pid=0, host_dir=str(path),
            started_at=time.time(), index=index, veth=f"vlbs{index}",
            rootfs=str(path / "rootfs"), proxy_address=f"{NET_PREFIX}.{index}.1:{PROXY_PORT}",
            owner_pid=owner[0], owner_start=owner[1], net=net, private_address=private,
        )
        info.save()
    return info


def _free_index() -> int:
    """The lowest index in 1..254 not used by a recorded host nor by an address or link here."""
    used = {h.index for h in list_hosts() if h.index}
    addresses = run(["ip", "-o", "addr", "show"]).stdout
    for index in range(1, 255):
        taken = index in used or f" {NET_PREFIX}.{index}." in addresses
        links = (f"vlbs{index}", network.host_veth(index))
        if not taken and not any(Path(f"/sys/class/net/{link}").exists() for link in links):
            return index
    raise RehearsalError("no free 10.213.<index>.0/24 network for another container host")


def _personalize(info: HostInfo) -> None:
    """Write the per-host files into the rootfs copy: network, apt proxy, ssh key, host name."""
    root = Path(info.rootfs)
    management = (
        "[Match]\nName=host0\n\n[Network]\n"
        f"Address={info.address}/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n"
    )
    write_file(root, NETWORK_FILE, management)
    if info.private_address:
        write_file(root, PRIVATE_NETWORK_FILE,
                   f"[Match]\nName={network.GUEST_IF}\n\n[Network]\n"
                   f"Address={info.private_address}/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n")
    else:  # a rootfs kept or snapshotted from a host that was on a network
        (root / PRIVATE_NETWORK_FILE.lstrip("/")).unlink(missing_ok=True)
    write_file(root, PROXY_CONF, f'Acquire::http::Proxy "http://{info.proxy_address}";\n')
    write_file(root, "/root/.ssh/authorized_keys", Path(info.ssh_key + ".pub").read_text(), 0o600)
    write_file(root, "/etc/hostname", f"{info.name}\n")
    write_file(root, "/etc/hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{info.name}\n")


def _start_container(info: HostInfo) -> None:
    """Start systemd-nspawn from a shell that first joins the host's own cgroups.

    The cgroups and the pid are recorded before anything can be left behind unrecorded.
    """
    leaf = f"nspawn-{info.name}"
    info.cgroups = [str(parent / leaf) for parent in cgroups.hierarchies()]
    info.save()
    cgroups.create(leaf)
    nspawn = [
        "systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--kill-signal=SIGRTMIN+3",
        "--console=read-only", "-D", info.rootfs, "-M", info.name,
        f"--network-veth-extra={info.veth}:host0",
        *([f"--network-veth-extra={network.host_veth(info.index)}:{network.GUEST_IF}"] if info.net else []),
        INIT_WRAPPER,
    ]
    procs_files = " ".join(shlex.quote(f"{path}/cgroup.procs") for path in info.cgroups)
    script = f'for f in {procs_files}; do echo $$ > "$f" || exit 1; done; exec setsid "$@"'
    with open(Path(info.host_dir) / "nspawn.log", "w") as log, holding_signals():
        process = subprocess.Popen(
            ["sh", "-c", script, "sh", *nspawn], stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
        info.pid = process.pid
        info.save()
    wait_exec(info.pid, nspawn[0])  # after sh and setsid have exec'd it


def _configure_veth(info: HostInfo) -> None:
    """Wait for nspawn to create the veth, then address and raise the host side."""
    link = Path(f"/sys/class/net/{info.veth}")
    if not wait_until(lambda: link.exists() or not alive(info), 15.0) or not link.exists():
        log = (Path(info.host_dir) / "nspawn.log").read_text()[-2000:]
        raise RehearsalError(f"{info.name}: systemd-nspawn did not create {info.veth}:\n{log}")
    run(["ip", "addr", "add", f"{NET_PREFIX}.{info.index}.1/24", "dev", info.veth])
    run(["ip", "link", "set", info.veth, "up"])
    if info.net:
        private = Path(f"/sys/class/net/{network.host_veth(info.index)}")
        if not wait_until(private.exists, 15.0):
            raise RehearsalError(f"{info.name}: systemd-nspawn did not create {private.name}")
        network.plug(info)


def _start_proxy(info: HostInfo) -> None:
    """Start the apt proxy on the host side of the veth and wait until it listens."""
    address = f"{NET_PREFIX}.{info.index}.1"
    allow = [arg for host in aptconfig.mirror_hosts() for arg in ("--allow", host)]
    script = str(Path(__file__).with_name("aptproxy.py"))
    with open(Path(info.host_dir) / "aptproxy.log", "w") as log, holding_signals():
        process = subprocess.Popen(
            [sys.executable, script, "--listen", address, "--port", str(PROXY_PORT), *allow],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )
        info.proxy_pid = process.pid
        info.save()
    if not wait_until(lambda: _listening(address, PROXY_PORT), 10.0):
        raise RehearsalError(f"{info.name}: apt proxy did not listen on {info.proxy_address}")


def _listening(address: str, port: int) -> bool:
    """True if a TCP connect to ``address:port`` succeeds."""
    try:
        with socket.create_connection((address, port), timeout=1.0):
            return True
    except OSError:
        return False


def _teardown(info: HostInfo) -> None:
    """:func:`_release` the host, then forget it (its rootfs stays)."""
    with holding_signals():
        _release(info)
        (Path(info.host_dir) / "host.json").unlink(missing_ok=True)


def _release(info: HostInfo) -> None:
    """Stop nspawn (clean poweroff, SIGKILL on timeout) and the proxy; drop cgroups and veth.

    Also what a run killed part-way leaves: nspawn already dead, a proxy whose pid was never
    recorded (found by its command line), processes left in the cgroups.
    """
    stop_processes(info.pid, _nspawn_marker(info.name), POWEROFF_TIMEOUT_S)
    if info.index:
        stop_processes(info.proxy_pid, _proxy_marker(info), 5.0)
    cgroups.remove(info.cgroups)
    network.release(info)  # the network goes with the last host on it
    link = Path(f"/sys/class/net/{info.veth}")
    # the kernel also drops the veth on its own once the container's network namespace is gone
    deleted = not info.veth or not link.exists() or subprocess.run(
        ["ip", "link", "delete", info.veth], capture_output=True, check=False).returncode == 0
    if not deleted and link.exists():
        run(["ip", "link", "delete", info.veth])
