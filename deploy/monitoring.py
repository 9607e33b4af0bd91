"""Monitoring (``monitoring: true``): Debian's Prometheus exporters on every host, lbstack's own
metrics, and (``monitoring_prometheus``) a Prometheus server with lbstack's rules.

Every host: node_exporter with lbstack's textfile directory, and ``lbstack-metrics.timer``
(``lbstack-metrics``: slices, instances, release, the balancer's requests and request-time
histogram from its access log, the served certificate's expiry). lb hosts: the
nginx exporter (``stub_status``); the FPM instances' status pages (OpenMetrics) are scraped
through the balancer's local-only ``/instances/<name>/status``. db hosts: the MariaDB exporter,
logging in over the socket as ``prometheus@localhost`` (unix_socket authentication: there is no
password to keep). cache hosts: the Redis exporter, as Redis user ``lbstack-monitor`` (no
password; PING, INFO and the slow log only). Everything listens on loopback only and runs in ``lbstack-monitoring.slice``.

The first lb host runs Prometheus (loopback, ``monitoring_retention_days``) with
``/etc/prometheus/lbstack-rules.yml``: recording rules and the alerts of the seed's criteria. Its
two files are staged and checked together with ``promtool check config`` before they replace the
live ones.
"""

from __future__ import annotations

import shlex

from pyinfra import host, logger
from pyinfra.api import QuoteString, StringCommand, deploy, operation
from pyinfra.operations import apt, files, server
from pyinfra.operations.util import any_changed

from facts.mariadb import Security
from lbstack import layout, services, textfiles, topology
from lbstack.operations import promote, template_file
from lbstack.plan import MONITORING, Plan
from lbstack.render import jinja, template
from lbstack.settings import Settings

UNIT_DIR = "/etc/systemd/system"
TEXTFILE_DIR = textfiles.TEXTFILE_DIR  # node_exporter's textfile collector reads *.prom here
METRICS_STATE_DIR = f"{layout.STATE_DIR}/metrics-state"  # lbstack-metrics' access-log offset and counts
METRICS_HELPER = textfiles.METRICS_HELPER
METRICS_SERVICE = "lbstack-metrics.service"
METRICS_TIMER = "lbstack-metrics.timer"
PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"
PROMETHEUS_RULES = "/etc/prometheus/lbstack-rules.yml"
MYSQLD_USER = "prometheus"  # the exporter's system user, and its MariaDB account (unix_socket)
MYSQLD_ACCOUNT = layout.MARIADB_EXPORTER_ACCOUNT
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 1.5, 2.5, 5, 10)  # request-time histogram (s); 1.5 s: the seed's p95 limit
PORTS = {"node": 9100, "nginx": 9113, "mysqld": 9104, "redis": 9121, "prometheus": 9090}
EXPORTERS = {  # component (None: every host) -> (package, service)
    None: ("prometheus-node-exporter", "prometheus-node-exporter.service"),
    "lb": ("prometheus-nginx-exporter", "prometheus-nginx-exporter.service"),
    "db": ("prometheus-mysqld-exporter", "prometheus-mysqld-exporter.service"),
    "cache": ("prometheus-redis-exporter", "prometheus-redis-exporter.service"),
}
PROMETHEUS = ("prometheus", "prometheus.service")


def prometheus_here(settings: Settings) -> bool:
    """Prometheus runs on the first lb host of the inventory (the one VPS of the one-VPS shape)."""
    lbs = topology.group_hosts("lb")
    return settings.monitoring_prometheus and bool(lbs) and topology.same_host(lbs[0])


def listen(port: int) -> str:
    return f"127.0.0.1:{port}"


def exporters(plan: Plan) -> dict[str, tuple[str, str]]:
    """The exporters of this host's components: name -> (package, service)."""
    found = {"node": EXPORTERS[None]}
    if "lb" in plan.components:
        found["nginx"] = EXPORTERS["lb"]
    if "db" in plan.components:
        found["mysqld"] = EXPORTERS["db"]
    if "cache" in plan.components:
        found["redis"] = EXPORTERS["cache"]
    return found


def defaults_data(name: str, settings: Settings) -> dict:
    """Jinja data of ``/etc/default/<package>`` for exporter (or Prometheus) ``name``."""
    data = {"listen": listen(PORTS[name])}
    if name == "node":
        data["textfile_dir"] = TEXTFILE_DIR
    elif name == "nginx":
        data["scrape_uri"] = "http://127.0.0.1/nginx-status"
    elif name == "mysqld":
        data.update(db_user=MYSQLD_USER, account=MYSQLD_ACCOUNT, socket="/run/mysqld/mysqld.sock")
    elif name == "redis":
        data.update(address="redis://127.0.0.1:6379", redis_user=layout.REDIS_MONITOR_USER)
    elif name == "prometheus":
        data.update(retention_days=settings.monitoring_retention_days, config=PROMETHEUS_CONFIG)
    return data


def min_instances(settings: Settings, total: int) -> int:
    """Fewer answering instances than this fires LbstackFewInstances: the setting, or all but one."""
    return settings.alert_min_instances or max(1, total - 1)


def scrape_jobs(members: list[dict]) -> list[dict]:
    """Prometheus' scrape jobs on the one-VPS shape: every exporter on loopback, and each member of
    the upstream (every instance of every app host) through the balancer's status location."""
    def local(name: str) -> dict:
        return {"name": f"lbstack-{name}", "params": {},
                "targets": [{"address": listen(PORTS[name]), "labels": {"host": host.name}}]}

    jobs = [local("prometheus"), local("node"), local("nginx")]
    if "db" in topology.host_components(host):
        jobs.append(local("mysqld"))
    if "cache" in topology.host_components(host):
        jobs.append(local("redis"))
    jobs.append({"name": "lbstack-fpm", "params": {"openmetrics": [""]}, "targets": [
        {"address": "127.0.0.1:80", "labels": {"instance": m["name"], "__metrics_path__": f"/instances/{m['name']}/status"}}
        for m in members]})
    return jobs


def rules_data(settings: Settings, instances_total: int) -> dict:
    return {"for_s": settings.alert_for_s, "min_instances": min_instances(settings, instances_total),
            "p95_s": settings.alert_p95_s, "error_ratio": settings.alert_error_rate_pct / 100,
            "error_pct": settings.alert_error_rate_pct, "expiry_days": settings.tls_expiry_days}


def metrics_helper_data(settings: Settings, plan: Plan) -> dict:
    """Jinja data of ``templates/usr/local/sbin/lbstack-metrics.j2`` (values shell-quoted)."""
    lb = "lb" in plan.components
    tls_name = ""
    if lb and settings.tls != "off":
        tls_name = next((n for n in settings.server_names if n not in ("_", "localhost")), "localhost")
    plain = {
        "textfile_dir": TEXTFILE_DIR, "state_dir": METRICS_STATE_DIR, "current": layout.CURRENT,
        "access_log": "/var/log/nginx/access.log" if lb else "", "tls_name": tls_name,
        "buckets": " ".join(f"{b:g}" for b in BUCKETS),
    }
    return {**{k: shlex.quote(v) for k, v in plain.items()}, "instances": plan.instances,
            "interval_s": settings.monitoring_scrape_interval_s}


def timer_data(settings: Settings, plan: Plan) -> dict:
    return {"helper": METRICS_HELPER, "service": METRICS_SERVICE, "slice": plan.slices[MONITORING],
            "interval_s": settings.monitoring_scrape_interval_s}


@operation()
def exporter_account():
    """MariaDB's ``prometheus@localhost`` (unix_socket: only the system user prometheus logs in
    as it, with no password) with what the exporter reads: PROCESS, REPLICATION CLIENT, SELECT."""
    if MYSQLD_ACCOUNT in host.get_fact(Security, app_user="-").get("accounts", []):
        return
    sql = (f"CREATE USER IF NOT EXISTS '{MYSQLD_USER}'@'localhost' IDENTIFIED VIA unix_socket; "
           f"GRANT PROCESS, REPLICATION CLIENT, SELECT ON *.* TO '{MYSQLD_USER}'@'localhost'")
    yield StringCommand("mariadb", "-e", QuoteString(sql))


@deploy("lbstack monitoring")
def monitoring(settings: Settings, plan: Plan) -> None:
    slice_ = plan.slices[MONITORING]
    found = exporters(plan)
    here = prometheus_here(settings)
    if here and len(topology.all_stack_hosts()) > 1:
        logger.warning(f"{host.name}: monitoring_prometheus on a stack of several hosts: this Prometheus scrapes "
                       "this host's exporters and every instance's FPM status (through this balancer) only; the "
                       "other hosts' exporters answer on their loopback. Scrape them with your own Prometheus "
                       "(an SSH tunnel or an agent on each host), see the README's Monitoring section.")
    packages = [p for p, _ in found.values()] + ([PROMETHEUS[0]] if here else [])
    apt.packages(name="Install the Prometheus exporters" + (" and Prometheus" if here else ""), packages=packages,
                 no_recommends=True)
    files.directory(name=f"Directory {TEXTFILE_DIR} (lbstack's textfiles, read by node_exporter)",
                    path=TEXTFILE_DIR, user="root", group="root", mode="755")
    if "db" in plan.components:
        exporter_account(name=f"MariaDB account {MYSQLD_ACCOUNT} for the exporter (unix_socket, read-only status)")
    services_ = dict(found)
    if here:
        services_["prometheus"] = PROMETHEUS
    for name, (package, unit) in services_.items():
        defaults = template_file(
            name=f"Render /etc/default/{package} (on loopback)",
            src=template(f"/etc/default/{package}"),
            dest=f"/etc/default/{package}",
            mode="644",
            jinja_env_kwargs=jinja(),
            **defaults_data(name, settings),
        )
        dropin = services.dropin(unit, slice_)
        config = None
        if name == "prometheus":
            config = _prometheus_config(settings)
        services.in_slice(unit, slice_, dropin)
        server.shell(
            name=f"Restart {unit} (its settings or drop-in changed)",
            commands=[f"systemctl restart {unit}"],
            _if=any_changed(defaults, dropin),
        )
        if config is not None:
            # not right after a (re)start: the new process reads the new files, and a SIGHUP before
            # Prometheus has set its handler ends it (systemd counts that a clean exit: no restart)
            server.shell(name=f"Reload {unit} (validated config changed)", commands=[f"systemctl reload {unit}"],
                         _if=lambda config=config, restarted=any_changed(defaults, dropin):
                         config.did_change() and not restarted())
    _metrics_timer(settings, plan)


def _prometheus_config(settings: Settings):
    members = topology.members()
    staged = []
    for live, data in ((PROMETHEUS_CONFIG, {"interval_s": settings.monitoring_scrape_interval_s,
                                            "rules_file": PROMETHEUS_RULES.rsplit("/", 1)[1],
                                            "jobs": scrape_jobs(members)}),
                       (PROMETHEUS_RULES, rules_data(settings, len(members)))):
        template_file(
            name=f"Render {live} (staged)",
            src=template(live),
            dest=layout.staged(live),
            mode="644",
            jinja_env_kwargs=jinja(),
            **data,
        )
        staged.append((layout.staged(live), live, "644"))
    # rule_files is relative to the config's directory: the staged pair is checked as a pair
    return promote(name=f"Validate (promtool check config) and promote {PROMETHEUS_CONFIG}, {PROMETHEUS_RULES}",
                   files=staged, test=f"promtool check config {layout.staged(PROMETHEUS_CONFIG)}")


def _metrics_timer(settings: Settings, plan: Plan) -> None:
    template_file(
        name=f"Render {METRICS_HELPER}",
        src=template(METRICS_HELPER),
        dest=METRICS_HELPER,
        mode="755",
        jinja_env_kwargs=jinja(),
        **metrics_helper_data(settings, plan),
    )
    services.timer(METRICS_SERVICE, METRICS_TIMER, f"lbstack-metrics every {settings.monitoring_scrape_interval_s} s",
                   **timer_data(settings, plan))
