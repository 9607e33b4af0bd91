"""Where lbstack puts things on a host: one place for the paths, names and ports that deploy
modules, facts and verification share."""

from __future__ import annotations

import shlex

from facts import php_fpm as facts_php_fpm
from facts.redis import ADMIN_USER

ETC = "/etc/lbstack"
SECRETS_DIR = f"{ETC}/secrets"  # root-only store, one file per secret
SOURCES_DIR = f"{ETC}/sources"  # secret-free sources of files that get secrets on the host
STAGE_DIR = "/var/lib/lbstack/staged"  # configs rendered here, validated, then promoted
LOG_DIR = "/var/log/lbstack"
BACKUP_DIR = "/var/backups/lbstack"  # database backups, root only (made by BACKUP_HELPER)
BACKUP_HELPER = "/usr/local/sbin/lbstack-backup"
# the rolling update's host side and the FPM status request (lbstack.hostscripts, facts.php_fpm)
INSTANCE_HELPER = facts_php_fpm.INSTANCE_HELPER
MAINTENANCE_HELPER = "/usr/local/sbin/lbstack-maintenance"  # maintenance flag, MariaDB restart (db hosts)

APP_HOME = "/srv/lbstack"
APP_ROOT = f"{APP_HOME}/app"
RELEASES_DIR = f"{APP_ROOT}/releases"
# in a release: Laravel's config:cache writes the secrets (APP_KEY, the passwords) into it in clear
CONFIG_CACHE = "bootstrap/cache/config.php"
SHARED_DIR = f"{APP_ROOT}/shared"
CURRENT = f"{APP_ROOT}/current"
ENV_FILE = f"{SHARED_DIR}/.env"
# the directories a Laravel app writes under storage/ (shared by every release)
STORAGE_DIRS = ("app/public", "framework/cache/data", "framework/sessions", "framework/views", "logs")
DOCUMENT_ROOT = f"{CURRENT}/public"
# each instance runs the release its own pointer names (instances/app3 -> ../releases/<id>), so a
# rolling update switches instances one at a time; ``current`` (static files, artisan) follows
# once every instance is on the new release
INSTANCES_DIR = f"{APP_ROOT}/instances"
# the one PHP file nginx names (SCRIPT_FILENAME): it runs the instance's release's public/index.php
FRONT_CONTROLLER = f"{APP_ROOT}/front/index.php"

STATE_DIR = "/var/lib/lbstack"
ARCHIVES_DIR = f"{STATE_DIR}/archives"  # uploaded release archives, root only
COMPOSER_HOME = f"{STATE_DIR}/composer"  # Composer's home and cache for `composer install` (the app user's)
DEPLOY_LOCK = f"{STATE_DIR}/deploy.lock"  # JSON: who deploys (machine, pid, user, since)
BAD_RELEASES_DIR = f"{STATE_DIR}/bad-releases"  # <digest>: why that build was rolled back
# <release id>.sha256: every file and link of a release as sealed (release integrity; root only)
MANIFESTS_DIR = f"{STATE_DIR}/manifests"
MAINTENANCE_FLAG = f"{STATE_DIR}/maintenance"  # present: nginx answers 503 + Retry-After
MAINTENANCE_RETRY_AFTER_S = 30

# tls: acme (certbot, Debian's; one certificate named CERT_NAME for every server_name)
ACME_HELPER = "/usr/local/sbin/lbstack-acme"  # issue, renew, the deploy hook (validate, reload nginx)
ACME_WEBROOT = f"{STATE_DIR}/acme"  # HTTP-01 tokens, served by nginx under /.well-known/acme-challenge/
ACME_CERT_NAME = "lbstack"
LETSENCRYPT_DIR = "/etc/letsencrypt"
ACME_LIVE = f"{LETSENCRYPT_DIR}/live/{ACME_CERT_NAME}"  # fullchain.pem, privkey.pem, cert.pem (certbot's links)
ACME_RENEWAL_CONF = f"{LETSENCRYPT_DIR}/renewal/{ACME_CERT_NAME}.conf"
ACME_RENEW_SERVICE = "lbstack-acme-renew.service"  # lbstack-acme renew ...
ACME_RENEW_TIMER = "lbstack-acme-renew.timer"  # ... twice a day (Debian's certbot.timer is masked)

QUEUE_UNIT = "lbstack-queue@.service"  # artisan queue:work, one unit per worker
SCHEDULE_SERVICE = "lbstack-schedule.service"  # artisan schedule:run, oneshot ...
SCHEDULE_TIMER = "lbstack-schedule.timer"  # ... every minute

FPM_CONFIG_DIR = f"{ETC}/fpm"
FPM_UNIT = "lbstack-fpm@.service"
PRELOAD_SCRIPT = f"{FPM_CONFIG_DIR}/preload.php"  # opcache.preload of every instance master
# run by an instance's worker on lbstack-instance's request: the master's effective PHP settings
PHP_SETTINGS_PROBE = "/usr/local/lib/lbstack/php-settings.php"
FPM_PORT_BASE = 9000  # split topology: instance N listens on 9000 + N
UPSTREAM = "lbstack_app"

# the packaged services' files lbstack writes
NGINX_DIR = "/etc/nginx"
NGINX_CONF = f"{NGINX_DIR}/nginx.conf"
SITE_CONF = f"{NGINX_DIR}/conf.d/lbstack.conf"  # the upstream and the site
MARIADB_CONFIG = "/etc/mysql/mariadb.conf.d/90-lbstack.cnf"
REDIS_CONFIG = "/etc/redis/redis.conf"
REDIS_SOCKET = "/run/redis/redis-server.sock"  # templates/etc/redis/redis.conf.j2: unixsocket, perm 770
SYSCTL_FILE = "/etc/sysctl.d/60-lbstack.conf"
FIREWALL_CONFIG = "/etc/nftables.conf"
KEEPALIVED_CONFIG = "/etc/keepalived/keepalived.conf"
FIREWALL_LOADED = "/var/lib/lbstack/nftables.loaded"  # lbstack's table as listed right after it was loaded

# Redis' two users (templates/etc/redis/redis.conf.j2): the app's (Redis' default user) without
# @dangerous but FLUSHDB (artisan cache:clear), and lbstack's own for the live settings and INFO
REDIS_ADMIN_USER = ADMIN_USER
REDIS_APP_ACL = "+@all -@dangerous +flushdb"
REDIS_ADMIN_ACL = "-@all +ping +info +config|get +config|set +acl|list +acl|deluser +acl|dryrun"
# what each may run and may not, asked of the live server with ACL DRYRUN (Redis rewrites the
# rules it prints, so the outcome is checked rather than the text): user -> (command, allowed)
REDIS_ACL_PROBES: dict[str, tuple[tuple[str, bool], ...]] = {
    "default": tuple((c, True) for c in (
        "ping", "select 1", "get k", "setex k 60 v", "del k", "expire k 60", "eval 'return 1' 0", "blpop q 1",
        "zadd z 1 m", "flushdb")) + tuple((c, False) for c in (
        "flushall", "config get maxmemory", "config set dir /tmp", "debug sleep 0", "shutdown", "keys *",
        "info", "monitor", "save", "replicaof no one", "module list", "client kill 127.0.0.1:1",
        "acl setuser x on", "migrate h 1 k 0 1")),
    ADMIN_USER: tuple((c, True) for c in (
        "ping", "info", "config get maxmemory", "config set maxmemory 1", "acl list", "acl deluser x")) + tuple(
        (c, False) for c in ("get k", "set k v", "flushdb", "flushall", "shutdown", "keys *", "acl setuser x on",
                             "debug sleep 0")),
}

# monitoring: Debian's redis exporter's user, no password (Redis listens on loopback and the
# private network only), PING and INFO and what the exporter asks besides, no key, no setting
REDIS_MONITOR_USER = "lbstack-monitor"
REDIS_MONITOR_ACL = "-@all +ping +info +client|setname +slowlog|get +slowlog|len +latency|latest"
REDIS_MONITOR_PROBES = tuple((c, True) for c in ("ping", "info", "slowlog len")) + tuple(
    (c, False) for c in ("get k", "set k v", "config get maxmemory", "config get requirepass", "keys *", "flushdb",
                         "acl list", "client list", "monitor"))


def redis_acl_probes(monitoring: bool = False) -> dict[str, tuple[tuple[str, bool], ...]]:
    """Redis' users and what each may run: the two of :data:`REDIS_ACL_PROBES`, and the exporter's
    with monitoring on."""
    return {**REDIS_ACL_PROBES, **({REDIS_MONITOR_USER: REDIS_MONITOR_PROBES} if monitoring else {})}


def redis_probes(monitoring: bool = False) -> list[list[str]]:
    """:func:`redis_acl_probes` as the :class:`facts.redis.AclUsers` fact takes them (in order)."""
    return [[user, *shlex.split(command)] for user, probes in redis_acl_probes(monitoring).items()
            for command, _ in probes]


# MariaDB's own accounts on Debian 12 (besides root@localhost): kept; any other account but the
# app user's (and db_keep_accounts) is drift and dropped by the converge
MARIADB_SYSTEM_ACCOUNTS = ("root@localhost", "mariadb.sys@localhost", "mysql@localhost")
MARIADB_EXPORTER_ACCOUNT = "prometheus@localhost"  # monitoring: the exporter's (unix_socket, no password)


def kept_accounts(settings) -> list[str]:
    """Accounts besides MariaDB's own and the app's that the converge keeps: db_keep_accounts, and
    the exporter's with monitoring on."""
    return list(settings.db_keep_accounts) + ([MARIADB_EXPORTER_ACCOUNT] if settings.monitoring else [])


def mariadb_extra_accounts(accounts: list[str], app_user: str, keep: list[str]) -> list[str]:
    """The ``user@host`` accounts that are neither MariaDB's own, the app user's nor kept."""
    return [a for a in accounts if a.rpartition("@")[0] != app_user and a not in MARIADB_SYSTEM_ACCOUNTS
            and a not in keep]


# secrets: name -> kind (how lbstack-secrets generates it)
SECRETS = {"db_password": "password", "redis_password": "password", "redis_admin_password": "password",
           "app_key": "app_key"}


def instance_name(index: int) -> str:
    return f"app{index}"


def manifest(release_id: str) -> str:
    """The manifest of release ``release_id``, written when it is sealed."""
    return f"{MANIFESTS_DIR}/{release_id}.sha256"


def pristine_php_ini(php_version: str) -> list[tuple[str, str, str]]:
    """``(as Debian ships it, live, mode)`` of PHP's FPM and CLI php.ini: lbstack's own settings
    are in conf.d/90-lbstack.ini and the pools, so these stay as shipped."""
    shipped = f"/usr/lib/php/{php_version}"
    return [(f"{shipped}/php.ini-production", f"/etc/php/{php_version}/fpm/php.ini", "644"),
            (f"{shipped}/php.ini-production.cli", f"/etc/php/{php_version}/cli/php.ini", "644")]


def fpm_log_dir(index: int) -> str:
    """Instance ``index``'s logs directory (its FPM slow log), the app user's."""
    return f"{LOG_DIR}/{instance_name(index)}"


def fpm_unit(index: int) -> str:
    return f"lbstack-fpm@{index}.service"


def queue_unit(index: int) -> str:
    return f"lbstack-queue@{index}.service"


def fpm_cpu_dropin(index: int) -> str:
    """The instance's CPUAffinity drop-in (the plan's CPU placement)."""
    return f"/etc/systemd/system/{fpm_unit(index)}.d/lbstack-cpu.conf"


def fpm_config(index: int) -> str:
    return f"{FPM_CONFIG_DIR}/app{index}.conf"


def instance_pointer(index: int) -> str:
    return f"{INSTANCES_DIR}/{instance_name(index)}"


def fpm_socket(index: int) -> str:
    return f"/run/lbstack/app{index}/fpm.sock"


def staged(path: str) -> str:
    """The staging copy of a live path: /etc/nginx/nginx.conf -> /var/lib/lbstack/staged/etc/nginx/nginx.conf."""
    return STAGE_DIR + path


def source(path: str) -> str:
    """The secret-free source of a file that gets secrets on the host."""
    return SOURCES_DIR + path

# the packaged service of each component that has one (the app's are the FPM instances, fpm_unit)
SERVICES = {"lb": "nginx.service", "db": "mariadb.service", "cache": "redis-server.service"}


def planned_units(plan) -> list[tuple[str, str]]:
    """(component, unit) for every unit lbstack runs for ``plan`` (a :class:`lbstack.plan.Plan`):
    each component's (and the queue's) slice, then its service or, for the app, each FPM
    instance, and the queue workers and the scheduler's timer."""
    units = [(c, unit) for c, unit in plan.slices.items()]
    for component in plan.components:
        if component == "app":
            units += [("app", fpm_unit(i)) for i in range(1, plan.instances + 1)]
        else:
            units.append((component, SERVICES[component]))
    if plan.queue:
        units += [("queue", queue_unit(i)) for i in range(1, plan.queue.workers + 1)]
        if plan.queue.scheduler:
            units.append(("queue", SCHEDULE_TIMER))
    return units
