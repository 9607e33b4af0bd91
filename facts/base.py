"""Facts about the base host: where it runs, and its kernel settings as written and as live."""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase


class Virtualization(FactBase):
    """
    What the host runs in, from ``systemd-detect-virt``.

    Returns ``{"container": "systemd-nspawn" | None, "vm": "kvm" | None}``. Inside a container
    ``/proc/sys`` is read-only and time comes from the machine underneath.
    """

    def requires_command(self) -> str:
        return "systemd-detect-virt"

    def command(self) -> str:
        return "echo container=$(systemd-detect-virt --container || true); echo vm=$(systemd-detect-virt --vm || true)"

    def process(self, output) -> dict[str, str | None]:
        found: dict[str, str | None] = {"container": None, "vm": None}
        for line in output:
            key, _, value = line.strip().partition("=")
            if key in found and value not in ("", "none"):
                found[key] = value
        return found


class SysctlValues(FactBase):
    """
    Kernel settings: the values in a sysctl.d file and the live values of the same keys.

    Returns ``{"file": {"net.core.somaxconn": "4096", ...}, "live": {"net.core.somaxconn": "4096"}}``;
    a key missing from the file or unknown to the kernel is absent. Whitespace inside values
    (``ip_local_port_range``) is normalised to single spaces.
    """

    def command(self, path: str, keys: list[str]) -> str:
        quoted = " ".join(shlex.quote(k) for k in keys)
        return (
            f"echo @file; cat {shlex.quote(path)} 2>/dev/null || true; echo @live; "
            f"for k in {quoted}; do v=$(sysctl -n \"$k\" 2>/dev/null) && echo \"$k = $v\"; done; true"
        )

    def process(self, output) -> dict[str, dict[str, str]]:
        result: dict[str, dict[str, str]] = {"file": {}, "live": {}}
        section = None
        for line in output:
            line = line.strip()
            if line in ("@file", "@live"):
                section = result[line[1:]]
                continue
            if section is None or not line or line.startswith(("#", ";")) or "=" not in line:
                continue
            key, _, value = line.partition("=")
            section[key.strip()] = " ".join(value.split())
        return result
