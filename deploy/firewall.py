"""Firewall (nftables): from outside the host only SSH, HTTP and HTTPS answer; MariaDB, Redis and
the PHP-FPM instances are reachable over loopback only (or, split across hosts, from the stack's
own hosts). The ruleset replaces only lbstack's own table, is checked with ``nft --check`` before
it replaces the live file, and the SSH ports sshd is listening on are always kept open.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt, server

from facts.firewall import SshdPorts
from lbstack import layout, packages
from lbstack.layout import FIREWALL_CONFIG as CONFIG
from lbstack.operations import promote, template_file, unit_active
from lbstack.plan import Plan
from lbstack.render import jinja, template
from lbstack.settings import Settings
from lbstack.topology import open_ssh_ports, stack_peers

PRIVATE_PORTS = (3306, 6379)  # plus the FPM ports 9001..


def template_data(settings: Settings, plan: Plan, ssh_ports: list[int], peers: list[str]) -> dict:
    fpm_ports = [layout.FPM_PORT_BASE + i for i in range(1, plan.instances + 1)]
    return {
        "ssh_ports": ssh_ports,
        "private_sources": peers,
        "private_ports": list(PRIVATE_PORTS) + fpm_ports,
    }


@deploy("lbstack firewall")
def firewall(settings: Settings, plan: Plan) -> None:
    apt.packages(name="Install nftables", packages=packages.FIREWALL, no_recommends=True)
    template_file(
        name=f"Render {CONFIG} (staged)",
        src=template(CONFIG),
        dest=layout.staged(CONFIG),
        mode="755",
        jinja_env_kwargs=jinja(),
        **template_data(settings, plan, open_ssh_ports(settings, host.get_fact(SshdPorts)), stack_peers()),
    )
    rules = promote(
        name=f"Validate (nft --check) and promote {CONFIG}",
        files=[(layout.staged(CONFIG), CONFIG, "755")],
        test=f"nft --check --file {layout.staged(CONFIG)}",
    )
    unit_active(name="Start and enable nftables.service (loads the rules at boot)", unit="nftables.service")
    server.shell(name=f"Load {CONFIG}", commands=[f"nft --file {CONFIG}"], _if=rules.did_change)
