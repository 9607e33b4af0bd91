"""Facts about lbstack's secret store on the host. They never read a secret's value: only which
secrets exist, their SHA-256 digests (to tell whether two hosts hold the same value), and
whether a file rendered from them is current (decided on the host)."""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase

STORE = "/etc/lbstack/secrets"
HELPER = "/usr/local/sbin/lbstack-secrets"


class SecretNames(FactBase):
    """
    Names of the secrets present in the store (values are never read).

    Returns a sorted list, e.g. ``["app_key", "db_password", "redis_password"]``; empty when the
    store does not exist yet.
    """

    @staticmethod
    def default():
        return []

    def command(self) -> str:
        return f"for f in {STORE}/*; do [ -s \"$f\" ] && echo \"${{f##*/}}\"; done; true"

    def process(self, output) -> list[str]:
        return sorted(line.strip() for line in output if line.strip() and not line.strip().endswith(".new"))


class SecretFileCurrent(FactBase):
    """
    Whether ``dest`` is ``source`` with its secrets filled in, with that owner, group and mode.

    Decided on the host by ``lbstack-secrets check`` (the comparison never leaves the host).
    Returns True or False (False also when the helper is not installed yet).
    """

    @staticmethod
    def default():
        return False

    def command(self, source: str, dest: str, owner: str, group: str, mode: str) -> str:
        args = " ".join(shlex.quote(a) for a in (source, dest, owner, group, mode))
        return f"if [ -x {HELPER} ] && {HELPER} check {args} >/dev/null 2>&1; then echo current; else echo stale; fi"

    def process(self, output) -> bool:
        return [line.strip() for line in output] == ["current"]


class SecretDigests(FactBase):
    """
    The SHA-256 digest of each secret present in the store, computed on the host by
    ``lbstack-secrets digests`` (the values never leave it).

    Returns ``{"db_password": "3227bf...", ...}``; empty when the store or the helper is not
    there yet. Two hosts hold the same secret when the digests are equal.
    """

    @staticmethod
    def default():
        return {}

    def command(self) -> str:
        return f"if [ -x {HELPER} ]; then {HELPER} digests; fi; true"

    def process(self, output) -> dict[str, str]:
        found = {}
        for line in output:
            parts = line.split()
            if len(parts) == 2 and len(parts[1]) == 64:
                found[parts[0]] = parts[1]
        return found
