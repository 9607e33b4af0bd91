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

Interrupted runs clean up:

- every host records its owner process (``HostInfo.owner_pid`` and ``owner_start``, see
  :mod:`.owner`): by default the process that called :func:`up`; ``up(..., owner=None)``
  (what ``lbstack rehearsal up NAME`` does) makes a host nobody's, never reaped;
- :func:`reap_stale` (``lbstack rehearsal reap``) tears down every host whose owner is gone,
  whatever was left of it (running nspawn/qemu, or only veth, cgroups, proxy, rootfs);
- :func:`teardown_on_signal` (:mod:`.signals`) turns SIGTERM/SIGINT/SIGHUP into
  :class:`Interrupted` so ``finally:`` teardown runs; :func:`owned_hosts` adds to that the
  teardown of every host this process booted inside the block::

    with owned_hosts():                  # SIGTERM/SIGINT/SIGHUP: hosts torn down, then Interrupted
        a, b = up("bench-a"), up("bench-b")
        ...                              # leaving the block (any way) tears both down
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import network, nspawn, vagrant, vm
from .common import (
    HostInfo, RehearsalError, check_name, get_host, host_dir, list_hosts, load_host, locked, pid_matches,
    pyinfra_host, ssh_run, state_dir,
)
from .nspawn import snapshot
from .owner import NoSuchProcess, is_mine, owner_record
from .rootfs import build_rootfs
from .signals import Interrupted, holding_signals, teardown_on_signal
from .tools import ensure_tools
from .vm import build_image

__all__ = [
    "HostInfo", "Interrupted", "Reaped", "RehearsalError", "alive", "build_image", "build_rootfs", "down",
    "ensure_tools", "get_host", "holding_signals", "list_hosts", "owned_hosts", "pyinfra_host", "reap_stale", "snapshot",
    "ssh_run", "teardown_on_signal", "up",
]

_owned_blocks: list[list[str]] = []  # names booted by this process in each active owned_hosts()


def up(
    name: str, vm_host: bool = False, rootfs: str | Path | None = None, memory_mib: int = 4096, cpus: int = 2,
    owner: int | str | None = "self", net: str | None = None,
) -> HostInfo:
    """Boot rehearsal host ``name`` and return its record once ssh answers.

    A container by default (``rootfs``: boot a copy of that tree); with ``vm_host`` a qemu VM
    with ``memory_mib`` and ``cpus`` (containers see this machine's CPUs and memory). ``net``:
    a container also joins that rehearsal network (:mod:`.network`), where the hosts on it
    reach each other at their ``private_address``.

    ``owner``: the process whose end makes the host stale for :func:`reap_stale`: ``"self"``
    (default) this process, a pid, or None for nobody (a host kept by a person). It is
    recorded before anything is started. Inside :func:`owned_hosts`, a host owned by this
    process is also torn down when the block exits.
    """
    try:
        owner_pid, owner_start = owner_record(owner)
    except NoSuchProcess as error:
        raise RehearsalError(f"owner of {name!r}: {error}") from None
    if owner_pid == os.getpid() and _owned_blocks and name not in _owned_blocks[-1]:
        _owned_blocks[-1].append(name)
    if vm_host:
        if rootfs:
            raise RehearsalError("--rootfs applies to container hosts only")
        if net:
            raise RehearsalError("--net applies to container hosts only (VMs reach only this machine)")
        return vm.up(name, memory_mib=memory_mib, cpus=cpus, owner=(owner_pid, owner_start))
    return nspawn.up(name, rootfs=rootfs, owner=(owner_pid, owner_start), net=net)


def down(name: str, keep_rootfs: bool = False, when=None) -> bool:
    """Tear host ``name`` down, whatever its kind; False if there was nothing to tear down.

    With ``when`` (a function of the :class:`HostInfo`), only a recorded host for which it is
    true, checked under the state lock, is torn down. Signals of a :func:`teardown_on_signal`
    block wait until the teardown is done.
    """
    record = host_dir(check_name(name)) / "host.json"
    if record.exists() and load_host(record).kind == "vm":
        if keep_rootfs:
            raise RehearsalError("--keep-rootfs applies to container hosts only")
        return vm.down(name, when=when)
    return nspawn.down(name, keep_rootfs=keep_rootfs, when=when)


@dataclass
class Reaped:
    """A stale host :func:`reap_stale` tore down, and what of it was still there."""

    name: str
    kind: str
    owner_pid: int | None
    removed: list[str] = field(default_factory=list)  # e.g. "systemd-nspawn pid 123", "veth vlbs1"

    def __str__(self) -> str:
        what = ", ".join(self.removed) or "its record"
        return f"{self.name}: owner process {self.owner_pid} is gone; removed {what}"


def reap_stale() -> list[Reaped]:
    """Tear down every recorded host whose owner process is gone (see :mod:`.owner`).

    That includes what a hard kill (SIGKILL of the owner, or of the owner in the middle of
    ``up`` or ``down``) leaves: a running nspawn/qemu, or only its veth, cgroups, apt proxy,
    rootfs or overlay; and the Vagrant rehearsal's set-up (:mod:`.vagrant`). Hosts owned by nobody or by a live process are left alone, and so are
    kept rootfs dirs without a record. Returns what was removed, one entry per host; if some
    host cannot be torn down the others still are, then RehearsalError names it.
    """
    reaped, errors = [], []
    for info in list_hosts():
        if not info.owner_gone():
            continue
        leftovers = _leftovers(info)
        try:
            if down(info.name, when=HostInfo.owner_gone):
                reaped.append(Reaped(info.name, info.kind, info.owner_pid, leftovers))
        except RehearsalError as error:
            errors.append(f"{info.name}: {error}")
    setup = vagrant.load()
    try:
        removed = vagrant.reap_stale()
    except RehearsalError as error:
        errors.append(f"vagrant: {error}")
    else:
        if removed and setup:
            reaped.append(Reaped("vagrant", "vagrant", setup.owner_pid, removed))
    with locked(state_dir() / ".lock"):
        for name in network.reap_unused():  # a run killed between making a network and its host
            reaped.append(Reaped(f"network {name}", "network", None, [f"namespace {network.NETNS_PREFIX}{name}"]))
    if errors:
        raise RehearsalError("cannot reap stale hosts: " + "; ".join(errors))
    return reaped


def _leftovers(info: HostInfo) -> list[str]:
    """What of host ``info`` is still there (for :class:`Reaped`)."""
    found = []
    if alive(info):
        found.append(f"{'qemu' if info.kind == 'vm' else 'systemd-nspawn'} pid {info.pid}")
    if info.kind == "vm":
        if info.overlay and Path(info.overlay).exists():
            found.append("overlay")
        return found
    if info.proxy_pid and pid_matches(info.proxy_pid, "aptproxy.py"):
        found.append(f"apt proxy pid {info.proxy_pid}")
    if info.veth and Path(f"/sys/class/net/{info.veth}").exists():
        found.append(f"veth {info.veth}")
    cgroup_dirs = [path for path in info.cgroups if Path(path).exists()]
    if cgroup_dirs:
        found.append(f"{len(cgroup_dirs)} cgroup dirs")
    if info.rootfs and Path(info.rootfs).exists():
        found.append("rootfs")
    if info.net and not [h for h in list_hosts() if h.net == info.net and h.name != info.name]:
        found.append(f"network {info.net}")
    return found


def _mine(info: HostInfo) -> bool:
    """True if this process owns host ``info``."""
    return is_mine(info.owner_pid, info.owner_start)


@contextlib.contextmanager
def owned_hosts() -> Iterator[list[str]]:
    """:func:`teardown_on_signal`, plus: every host this process boots inside is torn down on exit.

    Yields the list of those host names (in boot order). On leaving the block, normally, by
    an exception or by a signal, each of them that is still up and owned by this process is
    torn down (newest first; signals wait meanwhile), even where the caller's own ``finally``
    was cut short. A host that cannot be torn down does not stop the others; its error is
    raised afterwards unless another exception is already on its way.
    """
    names: list[str] = []
    with teardown_on_signal():
        _owned_blocks.append(names)
        try:
            yield names
        except BaseException:
            _owned_blocks.remove(names)
            _down_owned(names, raise_errors=False)
            raise
        _owned_blocks.remove(names)
        _down_owned(names, raise_errors=True)


def _down_owned(names: list[str], raise_errors: bool) -> None:
    """Tear down those of ``names`` this process owns, newest first, all of them even if one fails."""
    errors: list[Exception] = []
    with holding_signals(reraise=raise_errors):
        for name in reversed(names):
            try:
                down(name, when=_mine)
            except Exception as error:  # noqa: BLE001 (the others are still torn down)
                errors.append(error)
                print(f"lbstack: tearing down {name} failed: {error}", file=sys.stderr)
    if errors and raise_errors:
        raise errors[0]


def alive(info: HostInfo) -> bool:
    """True if the host's nspawn or qemu process is running."""
    return vm.alive(info) if info.kind == "vm" else nspawn.alive(info)
