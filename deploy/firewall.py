"""Firewall (nftables): from outside the host only SSH answers, and HTTP and HTTPS on a load
balancer; MariaDB, Redis and the PHP-FPM instances are reachable over loopback only, or, split
across hosts, each from the hosts that use it alone (:func:`lbstack.topology.peer_rules`). The ruleset replaces only lbstack's own table, is checked with ``nft --check`` before
it replaces the live file, and the SSH ports sshd is listening on are always kept open.
"""

from __future__ import annotations

from pyinfra import host, state
from pyinfra.api import StringCommand, deploy, operation
from pyinfra.operations import apt

from facts.firewall import NORMALIZE, SshdPorts, TableAsLoaded
from lbstack import layout, packages
from lbstack.layout import FIREWALL_CONFIG as CONFIG
from lbstack.operations import promote, template_file, unit_active
from lbstack.plan import Plan
from lbstack.render import jinja, template
from lbstack.settings import Settings
from lbstack.topology import floating, open_ssh_ports, peer_rules, vrrp_peers


def template_data(settings: Settings, plan: Plan, ssh_ports: list[int], rules: list[dict],
                  vrrp: list[str] | None = None) -> dict:
    """``rules``: :func:`lbstack.topology.peer_rules` of this host; ``vrrp``: the other balancers,
    whose VRRP adverts keepalived must hear (a floating address)."""
    return {
        "ssh_ports": ssh_ports,
        "web": "lb" in plan.components,
        "peer_rules": rules,
        "vrrp_sources": vrrp or [],
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
        **template_data(settings, plan, open_ssh_ports(settings, host.get_fact(SshdPorts)),
                        peer_rules(plan.components, plan.instances),
                        vrrp_peers() if "lb" in plan.components and floating(settings) else []),
    )
    rules = promote(
        name=f"Validate (nft --check) and promote {CONFIG}",
        files=[(layout.staged(CONFIG), CONFIG, "755")],
        test=f"nft --check --file {layout.staged(CONFIG)}",
    )
    unit_active(name="Start and enable nftables.service (loads the rules at boot)", unit="nftables.service")
    loaded(name=f"Load {CONFIG} (when it changed, or the live table was changed at runtime)", rules=rules)


@operation()
def loaded(rules):
    """``nft --file`` the config when ``rules`` (its promotion) changed it or the live table is no
    longer what the last load left (a rule added by hand); then record the table as loaded."""
    live = host.get_fact(TableAsLoaded, saved=layout.FIREWALL_LOADED)
    if live["same"] and not (state.is_executing and rules.did_change()):
        return
    yield StringCommand("nft", "--file", CONFIG)
    yield StringCommand(f"nft list table inet lbstack | {NORMALIZE} > {layout.FIREWALL_LOADED}.new && "
                        f"mv -f {layout.FIREWALL_LOADED}.new {layout.FIREWALL_LOADED}")
