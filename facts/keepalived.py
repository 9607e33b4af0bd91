"""Facts for the load balancers' floating address: the host's IPv4 addresses (which interface
carries its private address, whether it holds the floating one)."""

from __future__ import annotations

from pyinfra.api import FactBase


class Ipv4Addresses(FactBase):
    """
    The host's IPv4 addresses, from ``ip -o -4 addr show``.

    Returns ``[{"interface": "priv0", "address": "10.214.1.2", "prefix": 24}, ...]`` in the
    kernel's order (an address keepalived added comes after the interface's own).
    """

    @staticmethod
    def default():
        return []

    def requires_command(self) -> str:
        return "ip"

    def command(self) -> str:
        return "ip -o -4 addr show"

    def process(self, output) -> list[dict]:
        found = []
        for line in output:
            parts = line.split()
            if len(parts) >= 4 and parts[2] == "inet" and "/" in parts[3]:
                address, _, prefix = parts[3].partition("/")
                found.append({"interface": parts[1].split("@")[0], "address": address, "prefix": int(prefix)})
        return found


def interface_of(addresses: list[dict], address: str) -> dict | None:
    """The entry of :class:`Ipv4Addresses` carrying ``address``, or None."""
    return next((a for a in addresses if a["address"] == address), None)
