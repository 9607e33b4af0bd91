"""Verification: read the live state back with lbstack's facts and compare it with the plan.

Each component placed on the host is read back: units active, enabled and inside their slice with
the planned limits; every FPM pool answering on its own socket with its planned size; the release
in service; the queue workers running it and the scheduler's timer; MariaDB and Redis answering with the app's credentials and the planned sizes; the
upstream nginx has loaded; the health endpoints; requests through the balancer reaching every
instance; the firewall. The deploy runs :func:`gather` as its last step (``deploy/verification.py``)
and ``lbstack drift`` runs it too; any difference is a failed row (:mod:`lbstack.checks`).

Reads pyinfra's current ``host`` (deploy code, or a :func:`lbstack.session.use_host` block).
"""

from __future__ import annotations

import time

from pyinfra import host
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import File
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from facts.app import Instances, ReleaseIntegrity, Releases
from facts.base import Account, AptConfig, Fail2banJail, SshdEffective, SysctlValues, Virtualization
from facts.files import DirEntries, Directives, StagedDiffers
from facts.firewall import LbstackTable, SshdPorts, TableAsLoaded
from facts.http import Distribution, HttpStatus
from facts.keepalived import Ipv4Addresses
from facts.limits import UnitExposure, UnitLimits
from facts.mariadb import AppLogin, Security
from facts.nginx import Upstreams
from facts.php_fpm import EffectiveSettings, PoolStatus
from facts.queue import QueueWorkers, Scheduler
from facts.redis import AclUsers, AppConnection
from facts.tls import AcmeCertificate, ServedCertificate
from lbstack import checks, hardening, layout, owned, packages, phpsettings, sandbox, topology
from lbstack.topology import open_ssh_ports
from lbstack.plan import Plan
from lbstack.settings import Settings

DISTRIBUTION_RETRIES = 3
DISTRIBUTION_REQUESTS = 100


def local_url(path: str) -> str:
    return f"http://127.0.0.1{path}"


def base_checks(settings: Settings, plan: Plan, installed: dict) -> list[checks.Check]:
    """The base host: packages (``installed``: the DebPackages fact), service user, kernel
    settings, time sync."""
    virt = host.get_fact(Virtualization)
    account = host.get_fact(Account, user=settings.app_user)
    timesync = None
    if "systemd-timesyncd" in installed:
        unit = "systemd-timesyncd.service"
        timesync = {
            "enabled": host.get_fact(SystemdEnabled, services=[unit]).get(unit, False),
            "running": host.get_fact(SystemdStatus, services=[unit]).get(unit, False),
        }
    return checks.check_base(
        settings, plan,
        packages=packages.BASE,
        installed=installed,
        users={settings.app_user: account} if account else {},
        sysctl=host.get_fact(SysctlValues, path=layout.SYSCTL_FILE, keys=list(plan.sysctl)),
        container=virt["container"],
        timesync=timesync,
    )


def effective_php(settings: Settings, plan: Plan) -> tuple[dict[str, dict[str, str]], dict[str, dict]]:
    """(what each instance's master must run with, what it reports it runs with)."""
    addresses = topology.instance_addresses(plan.instances)
    expected = {layout.instance_name(i): phpsettings.expected(settings, plan, i, topology.listen_address(i))
                for i in range(1, plan.instances + 1)}
    keys = sorted({key for values in expected.values() for key in values})
    return expected, host.get_fact(EffectiveSettings, instances=addresses, keys=keys)


def gather(settings: Settings, plan: Plan) -> list[checks.Check]:
    """Read the host with lbstack's facts and compare everything with the plan."""
    components = plan.components
    units = [unit for _, unit in layout.planned_units(plan)]
    services = host.get_fact(UnitLimits, units=units)  # slices and services, one read
    installed = host.get_fact(DebPackages)  # read once: pyinfra 3 caches no fact
    rows = base_checks(settings, plan, installed) + checks.check_limits(plan, services)
    sshd = host.get_fact(SshdEffective, keys=list(hardening.SSHD_ASKED)) if settings.ssh_hardening else {}
    rows += checks.check_hardening(
        settings, hardening.sshd_refusal(host, sshd) if settings.ssh_hardening else None, sshd,
        host.get_fact(Fail2banJail, jail="sshd") if settings.fail2ban else {},
        host.get_fact(AptConfig, keys=list(hardening.UPGRADE_KEYS)))
    dirs = owned.owned_dirs(settings, plan)
    rows += checks.check_owned_dirs(owned.unmanaged(dirs, host.get_fact(DirEntries, paths=[d.path for d in dirs])))
    limits = sandbox.sandboxed_units(plan)
    rows += checks.check_exposure(limits, host.get_fact(UnitExposure, units=list(limits)))
    for component, names in packages.by_component(settings, components).items():
        rows += checks.check_packages(component, names, installed)
    if settings.firewall:
        web = [80, 443] if "lb" in components else []
        rows += checks.check_firewall(open_ssh_ports(settings, host.get_fact(SshdPorts)) + web, host.get_fact(LbstackTable),
                                      topology.peer_rules(components, plan.instances))
        rows += checks.check_firewall_loaded(host.get_fact(TableAsLoaded, saved=layout.FIREWALL_LOADED))
    if "db" in components:
        rows += checks.check_service("db", layout.SERVICES["db"], plan.slices["db"], services.get(layout.SERVICES["db"]))
        rows += checks.check_mariadb(plan, host.get_fact(Security, app_user=settings.db_user), settings)
    if "cache" in components:
        rows += checks.check_service("cache", layout.SERVICES["cache"], plan.slices["cache"],
                                     services.get(layout.SERVICES["cache"]))
        rows += checks.check_redis_file(plan, host.get_fact(Directives, path=layout.REDIS_CONFIG,
                                                            keys=["maxmemory", "maxmemory-policy"]))
        rows += checks.check_redis_users(host.get_fact(AclUsers, probes=layout.redis_probes(settings.monitoring),
                                                       store=layout.SECRETS_DIR, admin_user=layout.REDIS_ADMIN_USER),
                                         settings.monitoring)
    if "app" in components:
        for index in range(1, plan.instances + 1):
            unit = layout.fpm_unit(index)
            rows += checks.check_service("app", unit, plan.slices["app"], services.get(unit),
                                         plan.php_fpm.instance_limits)
        rows += checks.check_instance_cpus(plan, services)
        rows += checks.check_php_ini(host.get_fact(StagedDiffers, pairs=[list(p) for p in layout.pristine_php_ini(
            settings.php_version)]))
        rows += checks.check_pools(plan, host.get_fact(PoolStatus, instances=topology.instance_addresses(plan.instances)))
        rows += checks.check_effective_php(*effective_php(settings, plan))
        releases = host.get_fact(Releases, root=layout.APP_ROOT)
        env = host.get_fact(File, path=layout.ENV_FILE)
        env_state = {"user": env["user"], "group": env["group"], "mode": env["mode"]} if env else None
        rows += checks.check_release(releases["current"], releases["complete"], env_state, settings.app_user)
        pointers = host.get_fact(Instances, root=layout.APP_ROOT, bad_dir=layout.BAD_RELEASES_DIR)["pointers"]
        rows += checks.check_instance_releases(pointers, releases["current"],
                                               [layout.instance_name(i) for i in range(1, plan.instances + 1)])
        in_service = sorted({releases["current"], *pointers.values()} - {None})
        rows += checks.check_release_integrity(host.get_fact(ReleaseIntegrity, releases=in_service, root=layout.APP_ROOT,
                                                             manifests=layout.MANIFESTS_DIR))
        rows += checks.check_app_backends(host.get_fact(AppLogin, env_file=layout.ENV_FILE),
                                          host.get_fact(AppConnection, env_file=layout.ENV_FILE),
                                          plan, settings.db_name)
        if plan.queue:
            scheduler = (host.get_fact(Scheduler, timer=layout.SCHEDULE_TIMER, service=layout.SCHEDULE_SERVICE)
                         if plan.queue.scheduler else None)
            rows += checks.check_queue(plan, services, host.get_fact(QueueWorkers, current=layout.CURRENT), scheduler)
    if "lb" in components and topology.floating(settings):
        running = host.get_fact(SystemdStatus, services=["keepalived.service"]).get("keepalived.service", False)
        held = any(a["address"] == settings.lb_floating_address for a in host.get_fact(Ipv4Addresses))
        rows.append(checks.Check("lb", f"keepalived (floating address {settings.lb_floating_address})", "running",
                          "running" if running else "stopped", bool(running),
                          "held here" if held else "held by another balancer, or moving"))
    if "lb" in components:
        rows += checks.check_service("lb", layout.SERVICES["lb"], plan.slices["lb"], services.get(layout.SERVICES["lb"]))
        members = topology.members()  # every instance of every app host
        rows += checks.check_upstream([m["address"] for m in members], settings.lb_method, host.get_fact(Upstreams))
        paths = ["/health", "/app-health"] + [f"/instances/{m['name']}/health" for m in members] + [settings.health_path]
        rows += checks.check_http(host.get_fact(HttpStatus, urls=[local_url(p) for p in paths]))
        url = local_url(settings.health_path)
        names = [m["name"] for m in members]
        spread = host.get_fact(Distribution, url=url, requests=DISTRIBUTION_REQUESTS)
        for _ in range(DISTRIBUTION_RETRIES):
            if settings.lb_method == "ip_hash" or set(spread["instances"]) == set(names):
                break
            # an instance (re)started in this run may still be skipped by nginx's passive health
            # check (tried again after fail_timeout), or be busy under load (least_conn sends
            # elsewhere): measure again after fail_timeout, a few times
            time.sleep(plan.nginx.fail_timeout_s + 1)
            spread = host.get_fact(Distribution, url=url, requests=DISTRIBUTION_REQUESTS)
        rows += checks.check_distribution(spread, names, settings.lb_method, DISTRIBUTION_REQUESTS)
        if settings.tls != "off":
            name = next((n for n in settings.server_names if n not in ("_", "localhost")), "localhost")
            acme = (host.get_fact(AcmeCertificate, live=layout.ACME_LIVE, renewal=layout.ACME_RENEWAL_CONF)
                    if settings.tls == "acme" else None)
            rows += checks.check_certificate(settings, host.get_fact(ServedCertificate, server_name=name), acme,
                                             time.time())
    return rows
