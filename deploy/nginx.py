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

from lbstack import layout, packages, sandbox, services
from lbstack.layout import NGINX_CONF, SITE_CONF
from lbstack.operations import promote, template_file
from lbstack.plan import Plan
from lbstack.render import jinja, template
from lbstack.settings import Settings
from lbstack.topology import members

DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
TLS_DIR = f"{layout.ETC}/tls"
SELF_SIGNED = {"certificate": f"{TLS_DIR}/self-signed.crt", "key": f"{TLS_DIR}/self-signed.key"}


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
        "max_fails": plan.nginx.max_fails,
        "fail_timeout_s": plan.nginx.fail_timeout_s,
        "next_upstream_tries": plan.nginx.next_upstream_tries,
        "backlog": plan.nginx.listen_backlog,
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
        "max_clients": plan.nginx.max_clients,
        "worker_processes": plan.nginx.worker_processes,
        "worker_connections": plan.nginx.worker_connections,
        "rlimit_nofile": plan.nginx.worker_rlimit_nofile,
    }


@deploy("lbstack nginx")
def nginx(settings: Settings, plan: Plan) -> None:
    apt.packages(name="Install nginx", packages=packages.LB, no_recommends=True)
    dropin = services.dropin("nginx.service", plan.slices["lb"], sandbox=sandbox.nginx(),
                             LimitNOFILE=plan.nginx.worker_rlimit_nofile,
                             CPUSchedulingPolicy=services.SCHED_POLICY)
    if settings.tls == "self_signed":
        _self_signed(settings)

    staged = []
    for live, data in ((NGINX_CONF, main_template_data(settings, plan)), (SITE_CONF, site_template_data(
            settings, plan, members(), ipv6=bool(host.get_fact(File, path="/proc/net/if_inet6"))))):
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

    services.in_slice("nginx.service", plan.slices["lb"], dropin)
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
