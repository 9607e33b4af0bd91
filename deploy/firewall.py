"""Firewall (nftables): from outside the host only SSH, HTTP and HTTPS answer; MariaDB, Redis and
the PHP-FPM instances are reachable over loopback only (or, split across hosts, from the stack's
own hosts). The ruleset replaces only lbstack's own table, is checked with ``nft --check`` before
it replaces the live file, and the SSH ports sshd is listening on are always kept open.
"""

from __future__ import annotations

import re

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Command
from pyinfra.operations import apt, server

from deploy import group_hosts, jinja, private_address, same_host, template
from lbstack import layout
from lbstack.operations import promote, template_file, unit_active
from lbstack.plan import Plan
from lbstack.settings import Settings

PACKAGES = ["nftables"]
CONFIG = "/etc/nftables.conf"
PRIVATE_PORTS = (3306, 6379)  # plus the FPM ports 9001..


def sshd_ports() -> list[int]:
    """Ports sshd listens on now (so a firewall change never locks the operator out)."""
    output = host.get_fact(Command, command="ss -Hltnp 2>/dev/null | grep '\"sshd\"' || true") or ""
    return sorted({int(m) for m in re.findall(r":(\d+)\s", output + " ")})


def stack_peers() -> list[str]:
    """The other hosts of the stack (split topology), by private address."""
    return sorted({private_address(h) for g in ("lb", "app", "db", "cache") for h in group_hosts(g)
                   if not same_host(h)})


def open_ssh_ports(settings: Settings) -> list[int]:
    """``ssh_port`` plus every port sshd listens on now."""
    return sorted({settings.ssh_port, *sshd_ports()})


def template_data(settings: Settings, plan: Plan, ssh_ports: list[int], peers: list[str]) -> dict:
    fpm_ports = [layout.FPM_PORT_BASE + i for i in range(1, plan.instances + 1)]
    return {
        "ssh_ports": ssh_ports,
        "private_sources": peers,
        "private_ports": list(PRIVATE_PORTS) + fpm_ports,
    }


@deploy("lbstack firewall")
def firewall(settings: Settings, plan: Plan) -> None:
    apt.packages(name="Install nftables", packages=PACKAGES, no_recommends=True)
    template_file(
        name=f"Render {CONFIG} (staged)",
        src=template(CONFIG),
        dest=layout.staged(CONFIG),
        mode="755",
        jinja_env_kwargs=jinja(),
        **template_data(settings, plan, open_ssh_ports(settings), stack_peers()),
    )
    rules = promote(
        name=f"Validate (nft --check) and promote {CONFIG}",
        files=[(layout.staged(CONFIG), CONFIG, "755")],
        test=f"nft --check --file {layout.staged(CONFIG)}",
    )
    unit_active(name="Start and enable nftables.service (loads the rules at boot)", unit="nftables.service")
    server.shell(name=f"Load {CONFIG}", commands=[f"nft --file {CONFIG}"], _if=rules.did_change)
