"""Settings and the capacity plan for one pyinfra host: where every entry file (and every
operating command) starts."""

from __future__ import annotations

import sys

from pyinfra.api.host import Host
from pyinfra.facts.hardware import Cpus, Memory

from facts.base import Account
from lbstack import layout, settings as settings_mod, topology, transport
from lbstack.plan import Plan, PlanError, make_plan
from lbstack.settings import Settings, SettingsError


def plan_for(host: Host, settings: Settings) -> Plan:
    """The capacity plan of ``host`` from its facts (CPUs, memory), its groups and ``settings``."""
    online = host.get_fact(Cpus)
    cpus = settings.capacity_cpus or online
    memory = settings.capacity_memory_mib or host.get_fact(Memory)
    return make_plan(cpus, int(memory), settings, topology.host_components(host), online_cpus=online,
                     app_hosts=len(host.inventory.get_group("app", [])) or 1)


def host_context(host: Host) -> tuple[Settings, Plan]:
    """Validated settings and the capacity plan for one host; exits with the reason if impossible.

    Runs while pyinfra prepares operations, so a refusal stops the run before any change. The
    host's ssh connection is also set up for many small commands (:func:`transport.no_delay`).
    """
    transport.no_delay(host)
    try:
        settings = settings_mod.load(host.data.get("lbstack"))
        settings_mod.check_app_account(settings, host.get_fact(Account, user=settings.app_user), layout.APP_HOME)
        if settings.tls == "acme" and len(host.inventory.get_group("lb", [])) > 1:
            raise SettingsError(
                "tls: acme with two or more lb hosts: each would ask for its own certificate, and an HTTP-01 "
                "token written on one is fetched from whichever holds the address. Use tls: files (one "
                "certificate copied to every balancer), or one lb host.")
        return settings, plan_for(host, settings)
    except (SettingsError, PlanError) as exc:
        print(f"lbstack: {host.name}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
