"""Local rehearsal hosts: real systemd machines on this machine, reachable over ssh by pyinfra.

Two kinds, same recipe (Debian 12 minbase + systemd, sshd, python3):

- ``nspawn`` (:mod:`.nspawn`): systemd-nspawn with cgroup limits actually enforced
  (cgroup v1 on this kind of machine), own network namespace, boots in seconds;
- ``vm`` (:mod:`.vm`): qemu with a real kernel and cgroup v2, like a VPS; ~45 s boot on TCG.

Typical use::

    info = up("r1")                      # or up("v1", vm=True)
    hosts = [pyinfra_host(info)]         # pyinfra @ssh inventory entry
    ...
    down("r1")

State (golden images, ssh key, one dir per host with its ``host.json``) lives in
``$LBSTACK_REHEARSAL_DIR`` (default /var/lib/lbstack-rehearsal). Everything needs root.
"""

from __future__ import annotations

from pathlib import Path

from . import nspawn, vm
from .common import (
    HostInfo, RehearsalError, check_name, get_host, host_dir, list_hosts, load_host,
    pyinfra_host, ssh_run,
)
from .nspawn import snapshot
from .rootfs import build_rootfs
from .tools import ensure_tools
from .vm import build_image

__all__ = [
    "HostInfo", "RehearsalError", "alive", "build_image", "build_rootfs", "down", "ensure_tools",
    "get_host", "list_hosts", "pyinfra_host", "snapshot", "ssh_run", "up",
]


def up(
    name: str, vm_host: bool = False, rootfs: str | Path | None = None, memory_mib: int = 4096, cpus: int = 2
) -> HostInfo:
    """Boot rehearsal host ``name`` and return its record once ssh answers.

    A container by default (``rootfs``: boot a copy of that tree); with ``vm_host`` a qemu VM
    with ``memory_mib`` and ``cpus`` (containers see this machine's CPUs and memory).
    """
    if vm_host:
        if rootfs:
            raise RehearsalError("--rootfs applies to container hosts only")
        return vm.up(name, memory_mib=memory_mib, cpus=cpus)
    return nspawn.up(name, rootfs=rootfs)


def down(name: str, keep_rootfs: bool = False) -> bool:
    """Tear host ``name`` down, whatever its kind; False if there was nothing to tear down."""
    record = host_dir(check_name(name)) / "host.json"
    if record.exists() and load_host(record).kind == "vm":
        if keep_rootfs:
            raise RehearsalError("--keep-rootfs applies to container hosts only")
        return vm.down(name)
    return nspawn.down(name, keep_rootfs=keep_rootfs)


def alive(info: HostInfo) -> bool:
    """True if the host's nspawn or qemu process is running."""
    return vm.alive(info) if info.kind == "vm" else nspawn.alive(info)
