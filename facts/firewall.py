"""Facts about the host firewall (nftables): lbstack's table as the kernel holds it."""

from __future__ import annotations

import re
import shlex

from pyinfra.api import FactBase

_DPORT = re.compile(r"^tcp dport (?:\{ ([^}]*) \}|(\S+)) accept$")
_PEER = re.compile(r"^ip saddr (?:\{ ([^}]*) \}|(\S+)) tcp dport (?:\{ ([^}]*) \}|(\S+)) accept\b")


def _items(braced: str | None, single: str | None) -> list[str]:
    return [x.strip() for x in (braced or single or "").split(",") if x.strip()]


class LbstackTable(FactBase):
    """
    lbstack's ``inet lbstack`` table, from ``nft list table``.

    Returns ``{"present": True, "input_policy": "drop", "open_tcp_ports": [22, 80, 443],
    "restricted_rules": 0, "peer_rules": []}`` (``restricted_rules``: accept rules limited to
    source addresses, for a split topology; ``peer_rules``: each such rule's
    ``{"sources": [...], "ports": [...]}``, sorted); ``{"present": False}`` when the table is not
    loaded.
    """

    @staticmethod
    def default():
        return {"present": False}

    def requires_command(self) -> str:
        return "nft"

    def command(self) -> str:
        return "nft list table inet lbstack 2>/dev/null || true"

    def process(self, output) -> dict:
        lines = [line.strip() for line in output]
        if not any(line.startswith("table inet lbstack") for line in lines):
            return {"present": False}
        result = {"present": True, "input_policy": None, "open_tcp_ports": [], "restricted_rules": 0, "peer_rules": []}
        chain = None
        for line in lines:
            if line.startswith("chain "):
                chain = line.split()[1]
            elif chain == "input" and line.startswith("type filter hook input"):
                match = re.search(r"policy (\w+);", line)
                result["input_policy"] = match.group(1) if match else None
            elif chain == "input":
                match = _DPORT.match(line)
                if match:
                    ports = (match.group(1) or match.group(2)).split(",")
                    result["open_tcp_ports"] += [int(p) for p in (x.strip() for x in ports) if p.isdigit()]
                elif _PEER.match(line):
                    peer = _PEER.match(line)
                    result["restricted_rules"] += 1
                    result["peer_rules"].append({"sources": sorted(_items(peer.group(1), peer.group(2))),
                                                 "ports": sorted(int(p) for p in _items(peer.group(3), peer.group(4)))})
                elif "saddr" in line and " accept" in line:
                    result["restricted_rules"] += 1
        result["open_tcp_ports"].sort()
        result["peer_rules"].sort(key=lambda rule: (rule["ports"], rule["sources"]))
        return result


class SshdPorts(FactBase):
    """
    The TCP ports sshd listens on now, from ``ss -Hltnp`` (so a firewall change never locks the
    operator out). Returns ``[22, 2222]``, sorted; ``[]`` when sshd listens nowhere.
    """

    @staticmethod
    def default():
        return []

    def command(self) -> str:
        return "ss -Hltnp 2>/dev/null | grep '\"sshd\"' || true"

    def process(self, output) -> list[int]:
        return sorted({int(m) for m in re.findall(r":(\d+)\s", " ".join(output) + " ")})


# counters change with traffic: left out when the table is compared with the one loaded
NORMALIZE = "sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/'"


class TableAsLoaded(FactBase):
    """
    Whether lbstack's ``inet lbstack`` table is still exactly what the last load left (``saved``:
    the table as listed right after lbstack loaded it, counters left out); a rule added, changed
    or deleted at runtime (``nft add rule ...``) shows here.

    Returns ``{"saved": True, "same": False, "diff": ["+tcp dport 8080 accept"]}``; ``saved``
    False when lbstack has not recorded a load yet.
    """

    @staticmethod
    def default():
        return {"saved": False, "same": False, "diff": []}

    def requires_command(self, saved) -> str:
        return "nft"

    def command(self, saved) -> str:
        s = shlex.quote(saved)
        return (f"[ -r {s} ] || {{ echo @unsaved; exit 0; }}; echo @saved; "
                f"nft list table inet lbstack 2>/dev/null | {NORMALIZE} | diff -U0 {s} - | "
                "grep -E '^[+-][^+-]' | head -n 40; true")

    def process(self, output) -> dict:
        lines = [line.rstrip() for line in output if line.strip()]
        if "@saved" not in lines:
            return {"saved": False, "same": False, "diff": []}
        diff = [line[0] + line[1:].strip() for line in lines if line != "@saved"]
        return {"saved": True, "same": not diff, "diff": diff}
