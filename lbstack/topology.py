"""Where the stack's parts are, seen from the host being deployed: the inventory's groups (lb,
app, db, cache), how hosts reach each other, the upstream members and the FPM addresses.

Every function reads pyinfra's current ``host`` and ``inventory`` (deploy code, or a
:func:`lbstack.session.use_host` block): one VPS and a split topology are the same code.
"""

from __future__ import annotations

from pyinfra import host as current_host, inventory
from pyinfra.api.host import Host

from lbstack import layout
from lbstack.plan import COMPONENTS


def host_components(host: Host) -> tuple[str, ...]:
    """The components placed on ``host``: its inventory groups among lb, app, db, cache."""
    return tuple(c for c in COMPONENTS if c in host.groups)


def group_hosts(group: str) -> list[Host]:
    """The inventory's hosts in ``group`` (lb, app, db, cache)."""
    return list(inventory.get_group(group, []))


def first_of(group: str) -> bool:
    """Whether this host is the first of ``group`` in the inventory (or the group is empty): who
    does a stack-wide step once, such as the app hosts' database migrations."""
    hosts = group_hosts(group)
    return not hosts or hosts[0].name == current_host.name


def lock_host() -> Host:
    """Where the stack's one deploy lock lives: the first app host of the inventory (the host
    itself on one VPS, or when there is no app group). Every app host's deploy takes it there, so
    two deploys of a split stack cannot overlap on any of its hosts."""
    hosts = group_hosts("app")
    return hosts[0] if hosts else current_host


def same_host(other: Host) -> bool:
    """Whether ``other`` is the host being deployed now."""
    return other.name == current_host.name


def private_address(other: Host) -> str:
    """How the stack's hosts reach ``other``: its ``private_address`` host data, else its name."""
    return other.data.get("private_address") or other.name


MARIADB_PORT = 3306
REDIS_PORT = 6379


def peer_rules(components: tuple[str, ...], instances: int) -> list[dict]:
    """What the firewall admits from the stack's other hosts, per port: MariaDB and Redis from the
    app hosts (on the db and cache hosts), the FPM instances from the load balancers (on the
    app hosts). ``[{"what", "ports", "sources"}]``; empty on one VPS."""
    def others(group: str) -> list[str]:
        return sorted({private_address(h) for h in group_hosts(group) if not same_host(h)})

    wanted = []
    if "db" in components:
        wanted.append(("MariaDB from the app hosts", [MARIADB_PORT], others("app")))
    if "cache" in components:
        wanted.append(("Redis from the app hosts", [REDIS_PORT], others("app")))
    if "app" in components:
        wanted.append(("PHP-FPM from the load balancers",
                       [layout.FPM_PORT_BASE + i for i in range(1, instances + 1)], others("lb")))
    return [{"what": what, "ports": ports, "sources": sources} for what, ports, sources in wanted if sources]


def floating(settings) -> bool:
    """Whether the balancers share a floating address (keepalived): one is set and there are two
    or more lb hosts."""
    return bool(settings.lb_floating_address) and len(group_hosts("lb")) >= 2


def vrrp_peers() -> list[str]:
    """The other balancers' private addresses (keepalived's unicast peers)."""
    return sorted({private_address(h) for h in group_hosts("lb") if not same_host(h)})


def vrrp_priority() -> int:
    """This balancer's VRRP priority: 150 for the first lb host of the inventory, 10 less for each
    next one (with no preemption it only decides who takes the address first)."""
    names = [h.name for h in group_hosts("lb")]
    return 150 - 10 * names.index(current_host.name) if current_host.name in names else 100


def open_ssh_ports(settings, sshd_ports: list[int]) -> list[int]:
    """The ports the firewall keeps open for ssh: ``ssh_port`` plus every port sshd listens on
    now (``facts.firewall.SshdPorts``), so a firewall change never locks the operator out."""
    return sorted({settings.ssh_port, *sshd_ports})


def own_address() -> str:
    """Where this host listens for the stack's other hosts (FPM, MariaDB, Redis in a split
    topology): its ``private_address`` host data, or every address (``0.0.0.0``) when the
    inventory gives none. Either way the firewall admits only the hosts that use each port."""
    return current_host.data.get("private_address") or "0.0.0.0"


def listen_address(index: int) -> str:
    """Where instance ``index`` listens on this host: its unix socket when nginx is on this host;
    a port on the private address otherwise (:func:`own_address`)."""
    if "lb" in current_host.groups:
        return layout.fpm_socket(index)
    return f"{own_address()}:{layout.FPM_PORT_BASE + index}"


def instance_addresses(instances: int) -> dict[str, str]:
    """Each instance's name and FPM address on this host (status facts ask there directly)."""
    return {layout.instance_name(i): listen_address(i) for i in range(1, instances + 1)}


def member(app_host: Host, index: int, local: bool) -> dict:
    """Instance ``index`` of ``app_host`` as an upstream member ``{"name", "address", "drained"}``:
    ``appN`` on its unix socket to a balancer on the same host (``local``), else ``<host>-appN``
    on the app host's private address."""
    name = layout.instance_name(index)
    if local:
        return {"name": name, "address": f"unix:{layout.fpm_socket(index)}", "drained": False}
    return {"name": f"{app_host.name}-{name}", "address": f"{private_address(app_host)}:{layout.FPM_PORT_BASE + index}",
            "drained": False}


def instances_of(app_host: Host) -> int:
    """How many FPM instances ``app_host`` runs: ``instances`` of its own settings (its ``lbstack``
    host data). One app host is scaled by giving it settings of its own (inventories/split.py)."""
    from lbstack import settings as settings_mod  # settings imports nothing of the topology

    return settings_mod.load(app_host.data.get("lbstack")).instances


def members() -> list[dict]:
    """Upstream members: every instance of every app host, each host's own count
    (:func:`instances_of`; :func:`member`: unix sockets when on this host)."""
    return [member(app_host, index, same_host(app_host))
            for app_host in group_hosts("app") or [current_host] for index in range(1, instances_of(app_host) + 1)]


def backend_address(group: str) -> str:
    """How the app reaches the db or cache group: a unix socket when it runs on this host (no TCP
    stack on either side: measured 3 % of a cached API request's CPU), else the first such host's
    private address."""
    hosts = group_hosts(group) or [current_host]
    if any(same_host(h) for h in hosts):
        return "localhost" if group == "db" else layout.REDIS_SOCKET  # MariaDB: "localhost" is its socket
    return private_address(hosts[0])


def app_client_hosts() -> list[str]:
    """Where the app's database user may connect from: localhost, or the app hosts' addresses."""
    return sorted({"localhost" if same_host(h) else private_address(h) for h in group_hosts("app") or [current_host]})


def remote_app_clients() -> bool:
    """Whether an app host other than this one connects to this host's MariaDB or Redis."""
    return any(not same_host(h) for h in group_hosts("app"))


def all_stack_hosts() -> set[str]:
    """The names of every host that carries a component."""
    return {h.name for group in COMPONENTS for h in group_hosts(group)}
