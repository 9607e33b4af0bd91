"""Base host: packages, the app's service user, kernel settings for many connections, time sync.

Inside a container ``/proc/sys`` is read-only and the clock is the machine's underneath: sysctl
values are then only written to their file (verification checks the file), and time sync is
skipped, each with a printed reason.
"""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import apt, files, server, systemd

from facts.base import Virtualization
from lbstack import hostscripts, layout, packages
from lbstack.layout import APP_HOME, SYSCTL_FILE
from lbstack.operations import service_user, template_file
from lbstack.plan import Plan
from lbstack.render import jinja, template
from lbstack.settings import Settings

TIME_DAEMONS = ("chrony", "ntp", "ntpsec", "openntpd")  # if one is installed, keep it
TIMESYNCD_DROPIN = "/etc/systemd/timesyncd.conf.d/lbstack.conf"


def sysctl_template_data(settings: Settings, plan: Plan) -> dict:
    return {"sysctl": plan.sysctl, "max_clients": settings.lb_max_clients}


@deploy("lbstack base")
def base(settings: Settings, plan: Plan) -> None:
    virt = host.get_fact(Virtualization)
    apt.update(name="Update apt package lists (at most hourly)", cache_time=3600)
    apt.packages(name=f"Install base packages: {' '.join(packages.BASE)}", packages=packages.BASE, no_recommends=True)
    _service_user(settings)
    # the rolling update's host side: lb hosts drain and undrain, app hosts switch and gate
    template_file(
        name=f"Render {layout.INSTANCE_HELPER}",
        src=template(layout.INSTANCE_HELPER),
        dest=layout.INSTANCE_HELPER,
        mode="755",
        jinja_env_kwargs=jinja(),
        **hostscripts.instance_template_data(),
    )
    _sysctl(settings, plan, virt["container"])
    _time_sync(settings, virt["container"])


def _service_user(settings: Settings) -> None:
    server.group(name=f"Group {settings.app_user}", group=settings.app_user, system=True)
    service_user(  # home not made by useradd: the directory below is root-owned, workers cannot rewrite code
        name=f"Service user {settings.app_user} (home {APP_HOME}, no login)",
        user=settings.app_user,
        group=settings.app_user,
        home=APP_HOME,
        shell="/usr/sbin/nologin",
    )
    files.directory(name=f"Directory {APP_HOME}", path=APP_HOME, user="root", group="root", mode="755")


def _sysctl(settings: Settings, plan: Plan, container: str | None) -> None:
    template_file(
        name=f"Render {SYSCTL_FILE}",
        src=template(SYSCTL_FILE),
        dest=SYSCTL_FILE,
        mode="644",
        jinja_env_kwargs=jinja(),
        **sysctl_template_data(settings, plan),
    )
    if container:
        logger.info(
            f"[{host.name}] sysctl: not applied live: running in a container ({container}), where "
            f"/proc/sys is read-only; {SYSCTL_FILE} is written and verified instead."
        )
        return
    for key, value in plan.sysctl.items():
        server.sysctl(name=f"sysctl {key} = {value}", key=key, value=value.split() if " " in value else value)


def _time_sync(settings: Settings, container: str | None) -> None:
    installed = host.get_fact(DebPackages)
    other = [name for name in TIME_DAEMONS if name in installed]
    if other:
        logger.info(f"[{host.name}] time sync: keeping the installed {', '.join(other)}.")
        return
    apt.packages(name="Install systemd-timesyncd", packages=packages.TIME_SYNC, no_recommends=True)
    dropin = template_file(
        name=f"Render {TIMESYNCD_DROPIN}",
        src=template(TIMESYNCD_DROPIN),
        dest=TIMESYNCD_DROPIN,
        mode="644",
        jinja_env_kwargs=jinja(),
        ntp_servers=settings.ntp_servers,
    ) if settings.ntp_servers else files.file(name=f"Remove {TIMESYNCD_DROPIN}", path=TIMESYNCD_DROPIN, present=False)
    if container:
        logger.info(
            f"[{host.name}] time sync: systemd-timesyncd enabled but not started: a container "
            f"({container}) takes its clock from the machine underneath."
        )
        systemd.service(name="Enable systemd-timesyncd", service="systemd-timesyncd.service", running=None, enabled=True)
        return
    systemd.service(name="Run systemd-timesyncd", service="systemd-timesyncd.service", running=True, enabled=True)
    systemd.service(
        name="Restart systemd-timesyncd (NTP servers changed)",
        service="systemd-timesyncd.service",
        running=True,
        restarted=True,
        _if=dropin.did_change,
    )
