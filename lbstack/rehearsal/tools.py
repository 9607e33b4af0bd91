"""Install the Debian packages the rehearsal hosts need on this machine, when missing."""

from __future__ import annotations

import os
import subprocess

from .common import require_root, run

# Packages for container hosts: nspawn, rootfs builds, ssh keys, veth setup (`ip`, `ss`).
NSPAWN_TOOLS = ("systemd-container", "mmdebstrap", "openssh-client", "iproute2", "e2fsprogs")
# Extra packages for VM hosts: the emulator and qemu-img.
VM_TOOLS = ("qemu-system-x86", "qemu-utils")


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


def ensure_tools(vm: bool = False) -> None:
    """Install the packages needed for nspawn hosts (and VMs with ``vm=True``) if missing.

    Runs ``apt-get update`` first only when apt does not know a missing package.
    """
    require_root()
    missing = missing_packages(NSPAWN_TOOLS + (VM_TOOLS if vm else ()))
    if not missing:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not all(_known(name) for name in missing):
        run(["apt-get", "update"], env=env)
    run(["apt-get", "install", "-y", "--no-install-recommends", *missing], env=env)
