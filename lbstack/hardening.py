"""Host hardening's decisions, apart from the host: whether the sshd drop-in may be written (the
converge must not lock itself out), and what sshd, fail2ban and apt must then say."""

from __future__ import annotations

from facts.base import SshdEffective
from lbstack import transport
from lbstack.settings import Settings

SSHD_DROPIN = "/etc/ssh/sshd_config.d/10-lbstack.conf"
FAIL2BAN_JAIL = "/etc/fail2ban/jail.d/lbstack.conf"
APT_CONF = "/etc/apt/apt.conf.d/52lbstack"
MAX_AUTH_TRIES = 3
FAIL2BAN_FINDTIME_S = 600

# sshd -T's names and values once the drop-in is read (prohibit-password prints as its old name)
SSHD_WANTED = {
    "pubkeyauthentication": "yes",
    "passwordauthentication": "no",
    "kbdinteractiveauthentication": "no",
    "permitemptypasswords": "no",
    "permitrootlogin": "without-password",
    "maxauthtries": str(MAX_AUTH_TRIES),
    "x11forwarding": "no",
    "allowtcpforwarding": "no",
    "allowagentforwarding": "no",
}
# read to decide, besides the above: a login that needs a password too must keep it
SSHD_ASKED = (*SSHD_WANTED, "authenticationmethods")

MODPROBE_CONF = "/etc/modprobe.d/lbstack.conf"
CORE_LIMITS = "/etc/security/limits.d/lbstack.conf"
BANNERS = ("/etc/issue", "/etc/issue.net")
BLOCKED_MODULES = ("dccp", "sctp", "rds", "tipc", "usb-storage", "firewire-core", "firewire-ohci")
# /etc/login.defs: key -> value (new accounts' password hashing rounds and aging, default umask)
LOGIN_DEFS = {"UMASK": "027", "SHA_CRYPT_MIN_ROUNDS": "10000", "PASS_MAX_DAYS": "365", "PASS_MIN_DAYS": "1"}

UPGRADE_KEYS = ("APT::Periodic::Update-Package-Lists", "APT::Periodic::Unattended-Upgrade")


def lockout_reason(method: str | None, who: str, effective: dict[str, str]) -> str | None:
    """Why the keys-only drop-in must not be written now, or None when it is safe: pyinfra itself
    just logged in with a key (``method`` from the live connection, :func:`lbstack.transport.
    login_method`), so the drop-in, which turns off only passwords, keeps that login working."""
    if method is None:
        return f"{who}; cannot see how it logs in, so sshd is left as it is"
    if method != "publickey":
        return (f"pyinfra logged in as {who} with {method}, not a key: keys-only sshd would lock it out. "
                "Install a key (ssh-copy-id) and set ssh_key in the inventory, then run again")
    methods = effective.get("authenticationmethods", "any")
    if methods != "any" and any(m in methods for m in ("password", "keyboard-interactive")):
        return (f"sshd's AuthenticationMethods ({methods}) need a password as well as a key: "
                "keys-only sshd would lock everyone out")
    return None


def sshd_refusal(host, effective: dict[str, str] | None = None) -> str | None:
    """Why the keys-only sshd drop-in is not written on pyinfra host ``host`` now (None: safe).
    ``effective``: :class:`facts.base.SshdEffective` of :data:`SSHD_ASKED`, if already read."""
    method, who = transport.login_method(host)
    if effective is None:
        effective = host.get_fact(SshdEffective, keys=list(SSHD_ASKED))
    return lockout_reason(method, who, effective)


def sshd_template_data() -> dict:
    return {"max_auth_tries": MAX_AUTH_TRIES}


def apt_template_data(settings: Settings) -> dict:
    return {"enabled": settings.unattended_upgrades}


def fail2ban_template_data(settings: Settings, ssh_ports: list[int]) -> dict:
    return {"ssh_ports": ",".join(str(p) for p in ssh_ports) or str(settings.ssh_port),
            "maxretry": settings.fail2ban_maxretry, "findtime_s": FAIL2BAN_FINDTIME_S,
            "bantime_s": settings.fail2ban_bantime_s, "ignore": list(settings.fail2ban_ignore)}


def upgrade_values(settings: Settings) -> dict[str, str]:
    """What ``apt-config`` must say for ``unattended_upgrades``."""
    value = "1" if settings.unattended_upgrades else "0"
    return {key: value for key in UPGRADE_KEYS}
