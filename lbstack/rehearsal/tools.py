"""Install the Debian packages the rehearsal hosts need on this machine, when missing."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from .common import require_root, run

# Packages for container hosts: nspawn, rootfs builds, ssh keys, veth setup (`ip`, `ss`), rsync
# (a running host's snapshot: the difference since the bulk copy, while the host is frozen).
NSPAWN_TOOLS = ("systemd-container", "mmdebstrap", "openssh-client", "iproute2", "e2fsprogs", "rsync")
# Extra packages for VM hosts: the emulator and qemu-img.
VM_TOOLS = ("qemu-system-x86", "qemu-utils")
# Extra packages for the Vagrant rehearsal (:mod:`.vagrant`): Vagrant, its libvirt provider, a
# libvirt for it (networks need dnsmasq and iptables), bsdtar for `vagrant box add`.
VAGRANT_TOOLS = (
    "vagrant", "vagrant-libvirt", "libvirt-daemon-system", "libvirt-daemon-driver-qemu",
    "dnsmasq-base", "iptables", "libarchive-tools",
)
POLICY_RC = Path("/usr/sbin/policy-rc.d")


def missing_packages(packages: tuple[str, ...]) -> list[str]:
    """The subset of ``packages`` that dpkg does not report as installed."""
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *packages],
        capture_output=True,
        text=True,
    )
    installed = {
        line.split()[0] for line in result.stdout.splitlines() if line.endswith(" installed")
    }
    return [name for name in packages if name not in installed]


def _known(package: str) -> bool:
    """True if apt has a candidate version for ``package``."""
    result = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True)
    return "Candidate:" in result.stdout and "Candidate: (none)" not in result.stdout


def ensure_tools(vm: bool = False, vagrant: bool = False) -> None:
    """Install the packages needed for nspawn hosts (and VMs with ``vm=True``, the Vagrant
    rehearsal with ``vagrant=True``) if missing.

    Runs ``apt-get update`` first only when apt does not know a missing package. No service
    is started by the install (the Vagrant rehearsal starts its own libvirtd).
    """
    require_root()
    missing = missing_packages(NSPAWN_TOOLS + (VM_TOOLS if vm else ()) + (VAGRANT_TOOLS if vagrant else ()))
    if not missing:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not all(_known(name) for name in missing):
        run(["apt-get", "update"], env=env)
    with _no_service_starts():
        run(["apt-get", "install", "-y", "--no-install-recommends", *missing], env=env)


@contextlib.contextmanager
def _no_service_starts() -> Iterator[None]:
    """A policy-rc.d that refuses every start for the block, unless one is already there."""
    if POLICY_RC.exists():
        yield
        return
    POLICY_RC.write_text("#!/bin/sh\n# lbstack: no service starts while installing rehearsal tools\nexit 101\n")
    POLICY_RC.chmod(0o755)
    try:
        yield
    finally:
        POLICY_RC.unlink()
