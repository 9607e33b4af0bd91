"""nginx load balancer: upstream over the app instances with the configured method, passive
health checks and retry on another instance, static files served directly, health endpoints
(the balancer, the app through it, each instance), ``stub_status`` on localhost, a JSON access log
naming the upstream of every request, optional TLS.

Every file is rendered to the staging directory and the staged set is checked with ``nginx -t``
before it replaces the live one; a config that fails leaves the running nginx (and its files)
untouched and fails the run with nginx's own message.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, server
from pyinfra.operations.util import any_changed

from deploy import SCHED_POLICY, group_hosts, jinja, private_address, same_host, service_dropin, service_in_slice, template
from lbstack import layout
from lbstack.operations import promote, template_file
from lbstack.plan import Plan
from lbstack.settings import Settings

PACKAGES = ["nginx"]
NGINX_CONF = "/etc/nginx/nginx.conf"
SITE_CONF = "/etc/nginx/conf.d/lbstack.conf"
DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
TLS_DIR = f"{layout.ETC}/tls"
SELF_SIGNED = {"certificate": f"{TLS_DIR}/self-signed.crt", "key": f"{TLS_DIR}/self-signed.key"}
MAX_FAILS = 3  # passive health: failures within fail_timeout before an instance is skipped
FAIL_TIMEOUT_S = 5  # ... and for how long: a crashed instance (restarted after 1 s) is back within ~6 s


def members(plan: Plan) -> list[dict]:
    """Upstream members: every instance of every app host (unix sockets when on this host)."""
    result = []
    for app_host in group_hosts("app") or [host]:
        for index in range(1, plan.instances + 1):
            name = layout.instance_name(index)
            if same_host(app_host):
                address = f"unix:{layout.fpm_socket(index)}"
            else:
                address = f"{private_address(app_host)}:{layout.FPM_PORT_BASE + index}"
                name = f"{app_host.name}-{name}"
            result.append({"name": name, "address": address, "drained": False})
    return result


def tls_files(settings: Settings) -> dict | None:
    if settings.tls == "self_signed":
        return SELF_SIGNED
    if settings.tls == "files":
        return {"certificate": settings.tls_certificate_path, "key": settings.tls_key_path}
    return None


def site_template_data(settings: Settings, plan: Plan, upstream: list[dict], ipv6: bool) -> dict:
    return {
        "lb_method": settings.lb_method,
        "members": upstream,
        "max_fails": MAX_FAILS,
        "fail_timeout_s": FAIL_TIMEOUT_S,
        # a refused or failed request may try every member once: with all but one instance dead,
        # a request still reaches the live one before the dead ones reach max_fails
        "next_upstream_tries": len(upstream),
        "backlog": plan.sysctl["net.core.somaxconn"],
        "tls": tls_files(settings),
        "server_names": settings.server_names,
        "document_root": layout.DOCUMENT_ROOT,
        "front_controller": layout.FRONT_CONTROLLER,
        "health_path": settings.health_path,
        "maintenance_flag": layout.MAINTENANCE_FLAG,
        "retry_after_s": layout.MAINTENANCE_RETRY_AFTER_S,
        "ipv6": ipv6,
    }


def main_template_data(settings: Settings, plan: Plan) -> dict:
    return {
        "max_clients": settings.lb_max_clients,
        "worker_processes": plan.nginx_worker_processes,
        "worker_connections": plan.nginx_worker_connections,
        "rlimit_nofile": plan.nginx_worker_rlimit_nofile,
    }


@deploy("lbstack nginx")
def nginx(settings: Settings, plan: Plan) -> None:
    apt.packages(name="Install nginx", packages=PACKAGES, no_recommends=True)
    dropin = service_dropin("nginx.service", plan.slices["lb"], LimitNOFILE=plan.nginx_worker_rlimit_nofile,
                            CPUSchedulingPolicy=SCHED_POLICY)
    if settings.tls == "self_signed":
        _self_signed(settings)

    staged = []
    for live, data in ((NGINX_CONF, main_template_data(settings, plan)), (SITE_CONF, site_template_data(
            settings, plan, members(plan), ipv6=bool(host.get_fact(File, path="/proc/net/if_inet6"))))):
        template_file(
            name=f"Render {live} (staged)",
            src=template(live),
            dest=layout.staged(live),
            mode="644",
            jinja_env_kwargs=jinja(),
            **data,
        )
        staged.append((layout.staged(live), live, "644"))
    config = promote(
        name=f"Validate (nginx -t) and promote {NGINX_CONF}, {SITE_CONF}",
        files=staged,
        test=f"nginx -t -q -c {layout.staged(NGINX_CONF)}",
    )
    # the stock site is not included by lbstack's nginx.conf; removed so nobody edits it in vain
    default_site = files.link(name=f"Remove {DEFAULT_SITE}", path=DEFAULT_SITE, present=False)

    service_in_slice("nginx.service", plan.slices["lb"], dropin)
    server.shell(
        name="Restart nginx (its drop-in changed)",
        commands=["systemctl restart nginx.service"],
        _if=dropin.did_change,
    )
    server.shell(
        name="Reload nginx (validated config changed)",
        commands=["systemctl reload nginx.service"],
        _if=any_changed(config, default_site),
    )


def _self_signed(settings: Settings) -> None:
    files.directory(name=f"Directory {TLS_DIR}", path=TLS_DIR, user="root", group="root", mode="700")
    if host.get_fact(File, path=SELF_SIGNED["certificate"]):
        return
    name = settings.server_names[0] if settings.server_names[0] != "_" else "localhost"
    server.shell(
        name=f"Self-signed certificate for {name} in {TLS_DIR}",
        commands=[
            "openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj /CN=" + name
            + f" -keyout {SELF_SIGNED['key']} -out {SELF_SIGNED['certificate']} 2>/dev/null",
            f"chmod 600 {SELF_SIGNED['key']}",
        ],
    )
