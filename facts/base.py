"""Facts about the base host: where it runs, and its kernel settings as written and as live."""

from __future__ import annotations

import re
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


class SshdEffective(FactBase):
    """
    sshd's effective value of each of ``keys`` (lowercase, as ``sshd -T`` prints them): what the
    running config files say, drop-ins included.

    Returns ``{"passwordauthentication": "no", "permitrootlogin": "without-password"}``; ``{}``
    when sshd is not installed or its config does not parse.
    """

    @staticmethod
    def default():
        return {}

    def requires_command(self, keys) -> str:
        return "sshd"

    def command(self, keys) -> str:
        pattern = "|".join(re.escape(k) for k in keys)
        return f"sshd -T 2>/dev/null | grep -E '^({pattern}) ' || true"

    def process(self, output) -> dict[str, str]:
        found = {}
        for line in output:
            key, _, value = line.strip().partition(" ")
            found[key] = value
        return found


class Fail2banJail(FactBase):
    """
    fail2ban's jail ``jail`` as the running server holds it (``fail2ban-client status``).

    Returns ``{"running": True, "jail": True, "journal": True, "failed": 0, "banned": 0,
    "banned_ips": []}`` (``journal``: it reads the systemd journal, not a log file);
    ``{"running": False}`` when fail2ban does not answer.
    """

    @staticmethod
    def default():
        return {"running": False}

    def requires_command(self, jail) -> str:
        return "fail2ban-client"

    def command(self, jail) -> str:
        j = shlex.quote(jail)
        # a server started a moment ago answers within a few seconds
        wait = "for i in 1 2 3 4 5 6 7 8 9 10; do fail2ban-client ping >/dev/null 2>&1 && break; sleep 0.5; done"
        return f"{wait}; fail2ban-client ping >/dev/null 2>&1 || exit 0; echo @running; fail2ban-client status {j} 2>&1; true"

    def process(self, output) -> dict:
        lines = [line.strip() for line in output]
        if "@running" not in lines:
            return {"running": False}
        result = {"running": True, "jail": False, "journal": False, "failed": None, "banned": None, "banned_ips": []}
        for line in lines:
            text = line.lstrip("|`- ")
            key, sep, value = text.partition(":")
            if not sep:
                continue
            value = value.strip()
            if key == "Currently failed":
                result["jail"] = True
                result["failed"] = int(value)
            elif key == "Currently banned":
                result["banned"] = int(value)
            elif key == "Journal matches":
                result["journal"] = True
            elif key == "Banned IP list":
                result["banned_ips"] = value.split()
        return result


class AptConfig(FactBase):
    """
    apt's value of each of ``keys`` after every file in ``/etc/apt/apt.conf.d`` (``apt-config``),
    and whether the daily upgrade timer is enabled.

    Returns ``{"values": {"APT::Periodic::Unattended-Upgrade": "1"}, "upgrade_timer": "enabled"}``.
    """

    @staticmethod
    def default():
        return {"values": {}, "upgrade_timer": None}

    def command(self, keys) -> str:
        asks = "; ".join(f"echo @{shlex.quote(k)}=$(apt-config shell v {shlex.quote(k)} | sed -n \"s/^v='\\(.*\\)'$/\\1/p\")"
                         for k in keys)
        return f"{asks}; echo @timer=$(systemctl is-enabled apt-daily-upgrade.timer 2>/dev/null); true"

    def process(self, output) -> dict:
        values, timer = {}, None
        for line in output:
            key, _, value = line.strip().partition("=")
            if key == "@timer":
                timer = value or None
            elif key.startswith("@"):
                values[key[1:]] = value
        return {"values": values, "upgrade_timer": timer}
