"""Two or more load balancers sharing a floating address (``lb_floating_address``): keepalived
(VRRP, unicast between the balancers' private addresses) on each lb host, tracking nginx's own
``/health``; the balancer holding the address serves it, another takes it within seconds when
that nginx (or its whole host) stops. Runs inside the lb slice; the config is validated with
``keepalived -t`` before it replaces the live one.
"""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.operations import apt, server
from pyinfra.operations.util import any_changed

from facts.keepalived import Ipv4Addresses, interface_of
from lbstack import layout, packages, services
from lbstack.layout import KEEPALIVED_CONFIG as CONFIG
from lbstack.operations import promote, template_file
from lbstack.plan import Plan
from lbstack.render import jinja, template
from lbstack.settings import Settings
from lbstack.topology import own_address, vrrp_peers, vrrp_priority

UNIT = "keepalived.service"
FALL_S = 2  # failed /health checks (1 s apart) before a balancer gives the address up


def template_data(settings: Settings, host_name: str, interface: str, prefix: int, own: str, peers: list[str],
                  priority: int) -> dict:
    return {
        "host_name": host_name,
        "address": settings.lb_floating_address,
        "router_id": settings.lb_vrrp_router_id,
        "interface": interface,
        "prefix": prefix,
        "own": own,
        "peers": peers,
        "priority": priority,
        "fall": FALL_S,
    }


@deploy("lbstack keepalived")
def keepalived(settings: Settings, plan: Plan) -> None:
    own = own_address()
    carrier = interface_of(host.get_fact(Ipv4Addresses), own)
    if carrier is None:
        logger.error(f"{host.name}: lb_floating_address needs this balancer's private_address ({own}) on one "
                     "of its interfaces: give the host its private_address in the inventory")
        raise SystemExit(1)
    apt.packages(name="Install keepalived (the floating address)", packages=packages.KEEPALIVED, no_recommends=True)
    dropin = services.dropin(UNIT, plan.slices["lb"])
    template_file(
        name=f"Render {CONFIG} (staged)",
        src=template(CONFIG),
        dest=layout.staged(CONFIG),
        mode="644",
        jinja_env_kwargs=jinja(),
        **template_data(settings, host.name, carrier["interface"], carrier["prefix"], own, vrrp_peers(), vrrp_priority()),
    )
    config = promote(
        name=f"Validate (keepalived -t) and promote {CONFIG}",
        files=[(layout.staged(CONFIG), CONFIG, "644")],
        test=f"keepalived -t -f {layout.staged(CONFIG)}",
    )
    services.in_slice(UNIT, plan.slices["lb"], dropin)
    server.shell(name="Reload keepalived (validated config changed)", commands=[f"systemctl reload {UNIT}"],
                 _if=any_changed(config))
