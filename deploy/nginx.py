"""nginx load balancer: upstream over the app instances with the configured method, passive
health checks and retry on another instance, static files served directly, health endpoints
(the balancer, the app through it, each instance), ``stub_status`` on localhost, a JSON access log
naming the upstream of every request, optional TLS.

Every file is rendered to the staging directory and the staged set is checked with ``nginx -t``
before it replaces the live one; a config that fails leaves the running nginx (and its files)
untouched and fails the run with nginx's own message.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from lbstack import layout, packages, sandbox, services
from lbstack.layout import NGINX_CONF, SITE_CONF
from facts.tls import AcmeCertificate
from lbstack.operations import acme_certificate, promote, promote_until, template_file
from lbstack.plan import Plan
from lbstack.render import jinja, template
from lbstack.settings import Settings
from lbstack.topology import members

DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
UNIT_DIR = "/etc/systemd/system"
TLS_DIR = f"{layout.ETC}/tls"
SELF_SIGNED = {"certificate": f"{TLS_DIR}/self-signed.crt", "key": f"{TLS_DIR}/self-signed.key"}


ACME_FILES = {"certificate": f"{layout.ACME_LIVE}/fullchain.pem", "key": f"{layout.ACME_LIVE}/privkey.pem"}
# the site while tls is acme and no certificate is issued yet (or its first issuance failed)
ACME_HTTP_ONLY = "tls is acme and no certificate is issued yet: HTTPS starts once lbstack-acme issue succeeds"


def tls_files(settings: Settings) -> dict | None:
    if settings.tls == "self_signed":
        return SELF_SIGNED
    if settings.tls == "files":
        return {"certificate": settings.tls_certificate_path, "key": settings.tls_key_path}
    if settings.tls == "acme":
        return ACME_FILES
    return None


def tls_config(settings: Settings, stapling: bool = False) -> dict | None:
    """What the site's TLS is rendered with: the files, and for a trusted certificate (files,
    acme) the HTTP -> HTTPS redirect and HSTS; OCSP stapling only when the certificate names an
    OCSP responder (``stapling``: Let's Encrypt's no longer do, pebble's never did)."""
    found = tls_files(settings)
    if found is None:
        return None
    trusted = settings.tls in ("files", "acme")
    return {**found, "redirect": trusted, "hsts_max_age_s": settings.tls_hsts_max_age_s if trusted else 0,
            "stapling": stapling}


def site_template_data(settings: Settings, plan: Plan, upstream: list[dict], ipv6: bool,
                       certificate: bool = True, stapling: bool = False) -> dict:
    """``certificate``: False renders tls: acme's HTTP-only site (before the first certificate)."""
    acme = settings.tls == "acme"
    return {
        "lb_method": settings.lb_method,
        "members": upstream,
        "max_fails": plan.nginx.max_fails,
        "fail_timeout_s": plan.nginx.fail_timeout_s,
        "next_upstream_tries": plan.nginx.next_upstream_tries,
        "backlog": plan.nginx.listen_backlog,
        "tls": tls_config(settings, stapling) if certificate or not acme else None,
        "acme_webroot": layout.ACME_WEBROOT if acme else None,
        "http_only_reason": ACME_HTTP_ONLY if acme and not certificate else "",
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

    acme = settings.tls == "acme"
    if acme:
        acme_state = host.get_fact(AcmeCertificate, live=layout.ACME_LIVE, renewal=layout.ACME_RENEWAL_CONF)
        _acme_helper(settings)
    ipv6 = bool(host.get_fact(File, path="/proc/net/if_inet6"))
    stapling = bool(acme and acme_state["certificate"] and acme_state["certificate"]["ocsp"])
    staged = _staged_set(layout.staged, settings, plan, ipv6, stapling=stapling)
    test = f"nginx -t -q -c {layout.staged(NGINX_CONF)}"
    if acme:
        # until certbot has a certificate, the HTTP-only site (with the ACME challenge location)
        # is the one that can load; chosen when the step runs, so a host whose certificate exists
        # goes straight to the full site
        http_only = _staged_set(acme_http_only_staged, settings, plan, ipv6, certificate=False)
        config = promote_until(
            name=f"Validate (nginx -t) and promote {NGINX_CONF}, {SITE_CONF} (HTTP only while no certificate "
                 "is issued)",
            files=staged, test=test, needs=ACME_FILES["certificate"],
            fallback=http_only, fallback_test=f"nginx -t -q -c {acme_http_only_staged(NGINX_CONF)}",
        )
    else:
        config = promote(
            name=f"Validate (nginx -t) and promote {NGINX_CONF}, {SITE_CONF}",
            files=staged,
            test=test,
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
    if acme:
        _acme_certificate(settings, plan, staged, test)
    elif host.get_fact(File, path=layout.ACME_HELPER):
        _acme_off()


def acme_http_only_staged(path: str) -> str:
    """Where tls: acme's HTTP-only variant of ``path`` is staged: a tree beside the staged one (not
    in it: drift compares every file there with its live path)."""
    return f"{layout.STATE_DIR}/staged-acme-http-only{path}"


def _staged_set(where, settings: Settings, plan: Plan, ipv6: bool, certificate: bool = True,
                stapling: bool = False) -> list[tuple[str, str, str]]:
    """Render nginx.conf and the site to ``where(live path)``: ``[(staged, live, mode)]``."""
    variant = "" if certificate else " (HTTP only, until the ACME certificate)"
    staged = []
    for live, data in ((NGINX_CONF, main_template_data(settings, plan)), (SITE_CONF, site_template_data(
            settings, plan, members(), ipv6=ipv6, certificate=certificate, stapling=stapling))):
        template_file(
            name=f"Render {live} (staged{variant})",
            src=template(live),
            dest=where(live),
            mode="644",
            jinja_env_kwargs=jinja(),
            **data,
        )
        staged.append((where(live), live, "644"))
    return staged


def acme_helper_data(settings: Settings) -> dict:
    """Jinja data of ``templates/usr/local/sbin/lbstack-acme.j2``: each value shell-quoted (the
    program assigns them to variables), and ``plain`` for its header comment."""
    plain = {"cert_name": layout.ACME_CERT_NAME, "directory": settings.tls_acme_directory,
             "webroot": layout.ACME_WEBROOT, "live": layout.ACME_LIVE, "email": settings.tls_acme_email,
             "ca_bundle": settings.tls_acme_ca_bundle}
    return {**{k: shlex.quote(v) for k, v in plain.items()},
            "names": " ".join(shlex.quote(n) for n in settings.server_names),
            "plain": {**plain, "names": " ".join(settings.server_names)}}


def _acme_helper(settings: Settings) -> None:
    apt.packages(name="Install certbot (tls: acme)", packages=packages.ACME, no_recommends=True)
    files.directory(name=f"Directory {layout.ACME_WEBROOT} (HTTP-01 tokens, read by nginx)",
                    path=layout.ACME_WEBROOT, user="root", group="root", mode="755")
    template_file(
        name=f"Render {layout.ACME_HELPER}",
        src=template(layout.ACME_HELPER),
        dest=layout.ACME_HELPER,
        mode="755",
        jinja_env_kwargs=jinja(),
        **acme_helper_data(settings),
    )


def _acme_certificate(settings: Settings, plan: Plan, staged: list, test: str) -> None:
    """The certificate (issued when missing, or when the names or the directory changed), the full
    site promoted once it exists, and the renewal timer (Debian's certbot.timer stopped: one renewer)."""
    issued = acme_certificate(
        name=f"ACME certificate for {' '.join(settings.server_names)} from {settings.tls_acme_directory} "
             "(HTTP-01 through the running nginx)",
        names=list(settings.server_names), directory=settings.tls_acme_directory,
    )
    config = promote(
        name=f"Validate (nginx -t) and promote {SITE_CONF} with the certificate (HTTPS, HTTP redirected)",
        files=staged,
        test=test,
    )
    server.shell(
        name="Reload nginx (the site with its certificate)",
        commands=["systemctl reload nginx.service"],
        _if=any_changed(issued, config),
    )
    services.timer(layout.ACME_RENEW_SERVICE, layout.ACME_RENEW_TIMER, "lbstack-acme renew, twice a day",
                   helper=layout.ACME_HELPER, service=layout.ACME_RENEW_SERVICE, slice=plan.slices["lb"])
    systemd.service(name="Stop and disable Debian's certbot.timer (lbstack-acme-renew.timer renews)",
                    service="certbot.timer", running=False, enabled=False)


def _acme_off() -> None:
    """tls is no longer acme: the renewal timer and the helper go (certbot's files stay, for a person)."""
    systemd.service(name=f"Stop and disable {layout.ACME_RENEW_TIMER} (tls is not acme)",
                    service=layout.ACME_RENEW_TIMER, running=False, enabled=False)
    for path in (f"{UNIT_DIR}/{layout.ACME_RENEW_TIMER}", f"{UNIT_DIR}/{layout.ACME_RENEW_SERVICE}",
                 layout.ACME_HELPER):
        files.file(name=f"Remove {path} (tls is not acme)", path=path, present=False)


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
