"""Host hardening on every host: sshd keys only (never locking the converge out), fail2ban on
sshd's journal, and Debian's security updates installed daily by unattended-upgrades. Each is a
setting (``ssh_hardening``, ``fail2ban``, ``unattended_upgrades``) that is on by default."""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.operations import apt, files, server

from facts.firewall import SshdPorts
from facts.base import Virtualization
from lbstack import hardening as policy, layout, packages
from lbstack.operations import promote, template_file, unit_active
from lbstack.render import jinja, template
from lbstack.settings import Settings


_F2B_TEST = "/etc/fail2ban/jail.d/zz-lbstack-staged.conf"


@deploy("lbstack hardening")
def hardening(settings: Settings) -> None:
    if settings.ssh_hardening:
        _sshd()
    if settings.fail2ban:
        _fail2ban(settings)
    _upgrades(settings)
    if settings.os_hardening:
        _os()


def _os() -> None:
    apt.packages(name=f"Install {' '.join(packages.OS_HARDENING)} (process accounting, sysstat, debsums, ...)",
                 packages=packages.OS_HARDENING, no_recommends=True)
    template_file(name=f"Render {policy.MODPROBE_CONF} (unused kernel modules never load)",
                  src=template(policy.MODPROBE_CONF), dest=policy.MODPROBE_CONF, mode="644", jinja_env_kwargs=jinja(),
                  modules=list(policy.BLOCKED_MODULES))
    template_file(name=f"Render {policy.CORE_LIMITS} (no core dumps)", src=template(policy.CORE_LIMITS),
                  dest=policy.CORE_LIMITS, mode="644", jinja_env_kwargs=jinja())
    for banner in policy.BANNERS:
        template_file(name=f"Render {banner} (login banner)", src=template(banner), dest=banner, mode="644",
                      jinja_env_kwargs=jinja())
    for key, value in policy.LOGIN_DEFS.items():
        files.line(name=f"/etc/login.defs: {key} {value}", path="/etc/login.defs", line=rf"^#*[[:space:]]*{key}[[:space:]]+[0-9]", extended_regex=True,
                   replace=f"{key} {value}")
    files.line(name="sysstat collects (ENABLED=\"true\" in /etc/default/sysstat)", path="/etc/default/sysstat",
               line=r"^ENABLED=", replace='ENABLED="true"')
    unit_active(name="Start and enable sysstat.service", unit="sysstat.service")
    container = host.get_fact(Virtualization)["container"]
    if container:  # accton needs CAP_SYS_PACCT, which a container does not get
        logger.info(f"lbstack: {host.name}: process accounting left off: a {container} container may not turn it on")
    else:
        unit_active(name="Start and enable acct.service (process accounting)", unit="acct.service")


def _sshd() -> None:
    reason = policy.sshd_refusal(host)
    if reason:
        logger.warning(f"lbstack: {host.name}: sshd left as it is: {reason}")
        return
    staged = layout.staged(policy.SSHD_DROPIN)
    template_file(name=f"Render {policy.SSHD_DROPIN} (staged)", src=template(policy.SSHD_DROPIN), dest=staged,
                  mode="644", jinja_env_kwargs=jinja(), **policy.sshd_template_data())
    dropin = promote(
        name=f"Validate (sshd -t) and promote {policy.SSHD_DROPIN}: keys only (pyinfra logged in with a key)",
        files=[(staged, policy.SSHD_DROPIN, "644")],
        test=f"sshd -t -f {staged}",
    )
    server.shell(name="Reload sshd (its own `sshd -t` first; open sessions stay)",
                 commands=["systemctl reload ssh.service"], _if=dropin.did_change)


def _fail2ban(settings: Settings) -> None:
    apt.packages(name=f"Install {' '.join(packages.FAIL2BAN)}", packages=packages.FAIL2BAN, no_recommends=True)
    staged = layout.staged(policy.FAIL2BAN_JAIL)
    template_file(name=f"Render {policy.FAIL2BAN_JAIL} (staged)", src=template(policy.FAIL2BAN_JAIL), dest=staged,
                  mode="644", jinja_env_kwargs=jinja(),
                  **policy.fail2ban_template_data(settings, host.get_fact(SshdPorts)))
    jail = promote(name=f"Validate (fail2ban-client --test) and promote {policy.FAIL2BAN_JAIL}",
                   files=[(staged, policy.FAIL2BAN_JAIL, "644")],
                   # read after the live file (jail.d in name order), so the staged values are the ones tested
                   test=f"cp {staged} {_F2B_TEST} && fail2ban-client --test >/dev/null; rc=$?; rm -f {_F2B_TEST}; "
                        "exit $rc")
    unit_active(name="Start and enable fail2ban.service", unit="fail2ban.service")
    server.shell(name="Restart fail2ban (its jails from the new file; bans are kept in its database)",
                 commands=["systemctl restart fail2ban.service"], _if=jail.did_change)


def _upgrades(settings: Settings) -> None:
    if settings.unattended_upgrades:
        apt.packages(name=f"Install {' '.join(packages.UNATTENDED_UPGRADES)}", packages=packages.UNATTENDED_UPGRADES,
                     no_recommends=True)
    template_file(name=f"Render {policy.APT_CONF} (security updates {'daily' if settings.unattended_upgrades else 'off'})",
                  src=template(policy.APT_CONF), dest=policy.APT_CONF, mode="644", jinja_env_kwargs=jinja(),
                  **policy.apt_template_data(settings))
