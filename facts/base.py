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


class Account(FactBase):
    """
    One user account, from the system's user and group databases (``getent``): a cheap read of
    the one user lbstack manages, where pyinfra's ``Users`` fact reads every user's groups.

    Returns ``{"uid": 999, "gid": 999, "group": "lbstack", "home": "/srv/lbstack",
    "shell": "/usr/sbin/nologin"}`` (``group``: the primary group's name, ``None`` when the gid has
    no group entry), or ``None`` when there is no such user.
    """

    @staticmethod
    def default():
        return None

    def command(self, user) -> str:
        return (f"p=$(getent passwd {shlex.quote(user)}) || exit 0; echo \"@passwd=$p\"; "
                "g=$(printf '%s' \"$p\" | cut -d: -f4); echo \"@group=$(getent group \"$g\" | cut -d: -f1)\"")

    def process(self, output) -> dict | None:
        result: dict | None = None
        for line in output:
            key, _, value = line.rstrip("\n").partition("=")
            if key == "@passwd":
                fields = value.split(":")
                if len(fields) < 7:
                    continue
                result = {"uid": int(fields[2]), "gid": int(fields[3]), "group": None,
                          "home": fields[5], "shell": fields[6]}
            elif key == "@group" and result is not None:
                result["group"] = value or None
        return result
