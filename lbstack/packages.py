"""The Debian packages each part of the stack installs: the one list the deploy modules install,
verification checks, the bench's plain-apt baseline installs and the VM image pre-bakes."""

from __future__ import annotations

from lbstack.plan import COMPONENTS
from lbstack.settings import Settings

BASE = ["ca-certificates", "curl", "procps", "iproute2", "logrotate", "tzdata", "acl", "openssl"]
TIME_SYNC = ["systemd-timesyncd"]  # unless another time daemon is installed (deploy.base)
FIREWALL = ["nftables"]
LB = ["nginx"]
DB = ["mariadb-server", "mariadb-client"]
CACHE = ["redis-server", "redis-tools"]
PHP_EXTENSIONS = ("fpm", "cli", "mysql", "opcache", "mbstring", "xml", "curl", "zip", "bcmath", "intl")
FAIL2BAN = ["fail2ban", "python3-systemd"]  # python3-systemd: its journal backend
UNATTENDED_UPGRADES = ["unattended-upgrades"]
OS_HARDENING = ["acct", "sysstat", "debsums", "apt-show-versions", "libpam-tmpdir"]
ACME = ["certbot"]  # tls: acme (certbot's webroot authenticator: no plugin)
KEEPALIVED = ["keepalived"]  # lb hosts sharing a floating address (lb_floating_address)
COMPOSER = ["composer", "unzip"]  # only for a release with composer.json and no vendor/
# on the app hosts: verification logs in to MariaDB and Redis with the app's credentials, from
# where the app connects (in a split stack the servers, and their packages, are elsewhere)
APP_CLIENTS = ["mariadb-client", "redis-tools"]


def php(settings: Settings) -> list[str]:
    """PHP for the app instances; php-redis is Debian's phpredis for the default PHP; libfcgi-bin
    gives cgi-fcgi (the FPM status requests of facts.php_fpm and lbstack-instance)."""
    return [f"php{settings.php_version}-{ext}" for ext in PHP_EXTENSIONS] + ["php-redis", "libfcgi-bin"]


def by_component(settings: Settings, components: tuple[str, ...]) -> dict[str, list[str]]:
    """The packages of each placed component (and the firewall's and the host hardening's, when on)."""
    wanted = {"lb": LB + (ACME if settings.tls == "acme" else []), "app": php(settings) + APP_CLIENTS + list(settings.app_packages), "db": DB, "cache": CACHE}
    found = {c: list(wanted[c]) for c in COMPONENTS if c in components}
    if settings.firewall:
        found["firewall"] = list(FIREWALL)
    hardening = ((FAIL2BAN if settings.fail2ban else []) + (UNATTENDED_UPGRADES if settings.unattended_upgrades else [])
                 + (OS_HARDENING if settings.os_hardening else []))
    if hardening:
        found["hardening"] = hardening
    return found


def everything(settings: Settings, components: tuple[str, ...] = COMPONENTS) -> list[str]:
    """Every package a deploy of ``components`` installs on a bare Debian 12 host, sorted."""
    names = BASE + TIME_SYNC + [p for ps in by_component(settings, components).values() for p in ps]
    return sorted(set(names))
