"""Typed settings for lbstack: every field defined once, with its unit, default and meaning.

Settings come from inventory data: each host carries them under the ``lbstack`` key, built by
:func:`inventory_data` inside the inventory file, so a bad value stops pyinfra while it loads the
inventory, before any host is contacted. :func:`load` is the single entry point; it refuses
unknown keys (suggesting the closest known one), wrong types and impossible values, naming the
key and the fix. The README's settings table is generated from :data:`FIELDS`
(``lbstack settings-doc``) and a test fails when they disagree.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable

import yaml

from lbstack import REPO_ROOT

LB_METHODS = ("least_conn", "ip_hash", "round_robin")
OVERCOMMIT_POLICIES = ("scale", "refuse")
TLS_MODES = ("off", "self_signed", "files", "acme")
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
# Laravel queue connections lbstack runs workers for; sync runs each job inside its request
QUEUE_CONNECTIONS = ("redis", "database", "sync")
MAX_QUEUE_WORKERS = 64
# Debian 12 ships PHP 8.2 only; other versions need a third-party repository lbstack does not add.
SUPPORTED_PHP_VERSIONS = ("8.2",)
SAMPLE_APP = "sample"
MAX_INSTANCES = 16

_HOSTNAME_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# Accounts of Debian 12 and of the services lbstack installs: an app running as one of them acts
# with that account's files and rights (root: everything; www-data: nginx's; mysql: the data).
SYSTEM_USERS = frozenset({
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
    "www-data", "backup", "list", "irc", "gnats", "nobody", "messagebus", "sshd", "mysql", "redis",
    "polkitd", "tss", "ntp", "postfix", "statd", "avahi", "dnsmasq", "libvirt-qemu", "prometheus",
})
# MariaDB's own accounts and schemas: privileges on one of them are privileges on the server.
DB_SYSTEM_USERS = frozenset({"root", "mysql", "mariadb", "debian_sys_maint"})
DB_SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})
# app_source's schemes (README "The stack"): git over https, ssh or a local repository
GIT_SCHEMES = ("https", "ssh", "file")


class SettingsError(ValueError):
    """Settings that cannot be used. The message names the key and the fix."""


def _doc(text: str, unit: str = "", check: Callable[[str, Any], None] | None = None) -> dict:
    return {"doc": text, "unit": unit, "check": check}


# -- value checks: each raises SettingsError naming the key and the fix ---------------------------


def _positive_int(maximum: int | None = None) -> Callable[[str, Any], None]:
    def check(key: str, value: int) -> None:
        if value < 1:
            raise SettingsError(f"{key}: must be at least 1, got {value}. Set {key} to a positive integer.")
        if maximum is not None and value > maximum:
            raise SettingsError(f"{key}: at most {maximum} is supported, got {value}. Lower {key}.")

    return check


def _positive_cpus(key: str, value: float) -> None:
    if value < 0.1:
        raise SettingsError(
            f"{key}: must be at least 0.1 vCPU, got {value}. Give {key} a fraction of a CPU such as 0.5."
        )


def _positive_number(key: str, value: float) -> None:
    if value <= 0:
        raise SettingsError(f"{key}: must be more than 0, got {value}. e.g. {key}: 1.5")


def _memory(minimum_mib: int) -> Callable[[str, Any], None]:
    def check(key: str, value: int) -> None:
        if value < minimum_mib:
            raise SettingsError(
                f"{key}: must be at least {minimum_mib} MiB, got {value}. Raise {key} (the unit is MiB)."
            )

    return check


def _one_of(choices: tuple[str, ...]) -> Callable[[str, Any], None]:
    def check(key: str, value: str) -> None:
        if value not in choices:
            raise SettingsError(f"{key}: {value!r} is not one of {', '.join(choices)}. Pick one of them.")

    return check


def _server_names(key: str, value: list[str]) -> None:
    if not value:
        raise SettingsError(f"{key}: needs at least one name, e.g. ['example.com', 'www.example.com'].")
    seen: set[str] = set()
    for name in value:
        if isinstance(name, str) and name in seen:
            raise SettingsError(f"{key}: {name!r} is listed twice. Remove the second one.")
        seen.add(name)
        if not isinstance(name, str):
            raise SettingsError(f"{key}: {name!r} is not a string. Write host names as strings.")
        if name == "_" or name == "localhost":
            continue
        labels = name[2:].split(".") if name.startswith("*.") else name.split(".")
        if len(name) > 253 or not all(_HOSTNAME_LABEL.match(label) for label in labels):
            raise SettingsError(
                f"{key}: {name!r} is not a valid host name (lower-case letters, digits and '-' "
                "between dots, optionally starting with '*.'). Fix or remove it."
            )


def _php_version(key: str, value: str) -> None:
    if not re.fullmatch(r"\d+\.\d+", value):
        raise SettingsError(f"{key}: {value!r} is not a PHP version like '8.2'. Write it as MAJOR.MINOR.")
    if value not in SUPPORTED_PHP_VERSIONS:
        raise SettingsError(
            f"{key}: PHP {value} is not packaged by Debian 12; supported: "
            f"{', '.join(SUPPORTED_PHP_VERSIONS)}. Set {key} to one of them."
        )


def _app_source(key: str, value: str) -> None:
    if not value.strip():
        raise SettingsError(
            f"{key}: is empty. Use {SAMPLE_APP!r} for the bundled sample app, a directory or "
            ".tar.gz archive path, or 'git+URL@REF'."
        )
    if value == SAMPLE_APP or value.startswith("git+"):
        if value.startswith("git+"):
            scheme = value[4:].split("://", 1)[0] if "://" in value else ""
            if scheme not in GIT_SCHEMES:
                raise SettingsError(
                    f"{key}: {_shown_source(value)!r}: git over {scheme or 'that address'!r} is not supported. "
                    f"Write it as 'git+URL@REF' with a URL starting {', '.join(s + '://' for s in GIT_SCHEMES)}."
                )
            if "@" not in value[4:].rsplit("/", 1)[-1]:
                raise SettingsError(f"{key}: {value!r} names no ref. Write it as 'git+URL@REF' (branch, tag or commit).")
        return
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
        raise SettingsError(
            f"{key}: {_shown_source(value)!r}: the scheme {value.split('://', 1)[0]!r} is not supported. "
            f"Use {SAMPLE_APP!r}, a directory or .tar.gz path on this machine, or 'git+URL@REF' "
            "(download an archive first, or point git at the repository)."
        )
    path = Path(value)
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.exists():
        raise SettingsError(
            f"{key}: {value!r} does not exist on this machine. Point {key} at the app's directory "
            f"or archive, or use {SAMPLE_APP!r}."
        )
    if path.is_file() and not path.name.endswith((".tar.gz", ".tgz")):
        raise SettingsError(f"{key}: {value!r} is a file but not a .tar.gz archive. Give a directory or .tar.gz.")


def _username(key: str, value: str) -> None:
    if not _USERNAME.match(value):
        raise SettingsError(f"{key}: {value!r} is not a valid user name (lower-case, at most 32 characters).")


def _shown_source(value: str) -> str:
    """app_source as it may be printed: a password in its URL masked."""
    return re.sub(r"(://)[^/@]*@", r"\1***@", value)


def _app_user(key: str, value: str) -> None:
    _username(key, value)
    if value in SYSTEM_USERS or value.startswith(("systemd-", "_")):
        raise SettingsError(
            f"{key}: {value!r} is a system account: the app's code would run with its files and rights. "
            f"Give the app an account of its own, e.g. 'lbstack' (the default; lbstack creates it)."
        )


def _db_user(key: str, value: str) -> None:
    _sql_name(key, value)
    if value in DB_SYSTEM_USERS:
        raise SettingsError(
            f"{key}: {value!r} is one of MariaDB's own accounts: the app would get its privileges on every "
            f"database. Give the app a user of its own, e.g. 'lbstack' (the default)."
        )


def _db_name(key: str, value: str) -> None:
    _sql_name(key, value)
    if value in DB_SYSTEM_SCHEMAS:
        raise SettingsError(
            f"{key}: {value!r} is a MariaDB system schema: privileges on it are privileges on the server "
            f"(its users and grants). Give the app a database of its own, e.g. 'lbstack' (the default)."
        )


def _ntp_servers(key: str, value: list[str]) -> None:
    for server in value:
        if not isinstance(server, str) or not re.fullmatch(r"[A-Za-z0-9.:-]+", server):
            raise SettingsError(f"{key}: {server!r} is not a host name or address. Fix or remove it.")


def _floating_address(key: str, value: str) -> None:
    if value == "":
        return
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise SettingsError(f"{key}: {value!r} is not an IPv4 address. Give the free address on the balancers' "
                            "private network that clients will use, e.g. 10.0.0.10, or '' for no keepalived.") from None
    if address.is_loopback or address.is_multicast or address.is_unspecified:
        raise SettingsError(f"{key}: {value} cannot float between hosts. Pick a free unicast address on their network.")


def _preload_dirs(key: str, value: list[str]) -> None:
    for directory in value:
        if (not isinstance(directory, str) or not re.fullmatch(r"[A-Za-z0-9._/-]+", directory)
                or directory.startswith("/") or ".." in directory.split("/")):
            raise SettingsError(
                f"{key}: {directory!r} is not a directory inside the release (relative, letters, digits, "
                f"'._/-', no '..'), e.g. 'app' or 'vendor/laravel/framework/src'. Fix it, or set {key}: [] "
                "to turn preloading off."
            )


def _debian_packages(key: str, value: list[str]) -> None:
    for name in value:
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", name):
            raise SettingsError(f"{key}: {name!r} is not a Debian package name (lower case, digits, '+.-'), "
                                "e.g. php8.2-gd. Fix or remove it.")


def _count(maximum: int) -> Callable[[str, Any], None]:
    def check(key: str, value: int) -> None:
        if not 0 <= value <= maximum:
            raise SettingsError(f"{key}: must be 0..{maximum}, got {value}. Set {key} to a whole number in that range.")

    return check


def _queue_names(key: str, value: list[str]) -> None:
    if not value:
        raise SettingsError(f"{key}: needs at least one queue, e.g. ['default'] or ['high', 'default'].")
    for name in value:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", name):
            raise SettingsError(f"{key}: {name!r} is not a queue name (letters, digits, '_.:-'). Fix or remove it.")


_ARTISAN_WORD = re.compile(r"[A-Za-z0-9_.:=,/@+-]+")


def _artisan_commands(key: str, value: list[str]) -> None:
    for command in value:
        words = command.split() if isinstance(command, str) else []
        if not words or not all(_ARTISAN_WORD.fullmatch(w) for w in words) or not re.fullmatch(r"[a-z][a-z0-9:_-]*", words[0]):
            raise SettingsError(
                f"{key}: {command!r} is not an artisan command (a command name and its options, letters, digits "
                "and '_.:=,/@+-' only, no shell), e.g. 'optimize' or 'horizon:publish'. Fix or remove it.")
        if words[0] in ("down", "up", "migrate", "db:wipe", "migrate:fresh", "migrate:reset", "key:generate", "tinker",
                        "serve", "queue:work", "queue:listen", "schedule:work"):
            raise SettingsError(
                f"{key}: {command!r}: lbstack runs `{words[0]}` itself or it would stop, wipe or hang the release. Remove it.")


def _optional_positive(key: str, value: float | None) -> None:
    if value is not None and value <= 0:
        raise SettingsError(f"{key}: must be positive, got {value}. Remove {key} to use the host's own value.")


def _non_negative(key: str, value: int | None) -> None:
    if value is not None and value < 0:
        raise SettingsError(f"{key}: must be 0 or more, got {value}. Remove {key} for the automatic reserve.")


def _sql_name(key: str, value: str) -> None:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", value):
        raise SettingsError(
            f"{key}: {value!r} is not a plain name (lower-case letters, digits, '_', at most 32). Rename it."
        )


def _addresses(key: str, value: list[str]) -> None:
    for item in value:
        try:
            if not isinstance(item, str):
                raise ValueError(item)
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise SettingsError(f"{key}: {item!r} is not an IP address or network (e.g. 203.0.113.7 or "
                                f"198.51.100.0/24)") from None


def _accounts(key: str, value: list[str]) -> None:
    for item in value:
        if not isinstance(item, str) or not re.fullmatch(r"[A-Za-z0-9_.$-]{1,80}@[A-Za-z0-9_.%:-]{1,255}", item):
            raise SettingsError(f"{key}: {item!r} is not an account as user@host (e.g. report@10.0.0.5 or "
                                "report@localhost). Fix or remove it.")
        if item.partition("@")[0] in ("root", "mariadb.sys", "mysql"):
            raise SettingsError(f"{key}: {item!r} is one of MariaDB's own accounts, which are always kept. Remove it.")


def _port(key: str, value: int) -> None:
    if not 1 <= value <= 65535:
        raise SettingsError(f"{key}: {value} is not a TCP port (1..65535). Set the port sshd listens on.")
    if value in (80, 443):
        raise SettingsError(f"{key}: {value} is the web port; sshd cannot share it. Set sshd's own port.")


def _absolute_path(key: str, value: str) -> None:
    if value and not value.startswith("/"):
        raise SettingsError(f"{key}: {value!r} must be an absolute path on the host, e.g. /etc/ssl/private/site.key.")


def _https_url(key: str, value: str) -> None:
    if not re.match(r"^https://[^\s/?#]+(/[^\s]*)?$", value):
        raise SettingsError(f"{key}: {value!r} is not an https:// URL. Use the ACME directory's URL, e.g. {LETS_ENCRYPT}.")


def _hsts(key: str, value: int) -> None:
    if value < 0:
        raise SettingsError(f"{key}: must be 0 (no HSTS) or more seconds, got {value}. e.g. 31536000 (a year).")


def _email(key: str, value: str) -> None:
    if value and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", value):
        raise SettingsError(f"{key}: {value!r} is not an e-mail address. Write one (name@example.com), or ''.")


def _url_path(key: str, value: str) -> None:
    if not value.startswith("/") or any(c.isspace() for c in value):
        raise SettingsError(f"{key}: {value!r} must be a URL path starting with '/', without spaces, "
                            "e.g. /api/questions/random.")


@dataclass(frozen=True)
class Settings:
    """lbstack settings. Field metadata carries the documentation shown in the README."""

    # Topology -------------------------------------------------------------------------------
    instances: int = field(default=5, metadata=_doc(
        "Number of PHP-FPM app instances (separate FPM masters) behind the load balancer.",
        "count", _positive_int(MAX_INSTANCES)))
    lb_method: str = field(default="least_conn", metadata=_doc(
        "nginx upstream method: least_conn, ip_hash (sticky by client IP) or round_robin.",
        "", _one_of(LB_METHODS)))
    lb_max_clients: int = field(default=2000, metadata=_doc(
        "Concurrent client connections the load balancer must hold; sizes nginx worker_connections.",
        "connections", _positive_int(1_000_000)))
    lb_floating_address: str = field(default="", metadata=_doc(
        "With two or more lb hosts: the address they share by VRRP (keepalived, unicast between their "
        "private addresses), held by one balancer whose nginx is healthy; clients and DNS use it. "
        "'' (default): no keepalived.", "IPv4", _floating_address))
    lb_vrrp_router_id: int = field(default=51, metadata=_doc(
        "VRRP virtual router id of the floating address; unique among the VRRP routers of that network.",
        "1-255", _positive_int(255)))
    server_names: list[str] = field(default_factory=lambda: ["_"], metadata=_doc(
        "nginx server_name values; '_' answers any name.", "", _server_names))
    tls: str = field(default="off", metadata=_doc(
        "TLS on 443: off, self_signed (rehearsals), files (certificate paths below) or acme (certificates "
        "for server_names from tls_acme_directory by HTTP-01 through the running nginx, renewed by a timer).",
        "", _one_of(TLS_MODES)))
    tls_acme_directory: str = field(default=LETS_ENCRYPT, metadata=_doc(
        "ACME directory URL when tls is 'acme' (default: Let's Encrypt's production directory).",
        "URL", _https_url))
    tls_acme_email: str = field(default="", metadata=_doc(
        "Contact address of the ACME account; '' registers without one.", "", _email))
    tls_acme_ca_bundle: str = field(default="", metadata=_doc(
        "CA certificates (a PEM file on the host) that sign the ACME server's own HTTPS certificate, for a "
        "private ACME server; '' trusts the host's CA store (Let's Encrypt).", "path", _absolute_path))
    tls_hsts_max_age_s: int = field(default=31536000, metadata=_doc(
        "Strict-Transport-Security max-age sent with HTTPS answers when tls is 'files' or 'acme' "
        "(HTTP then redirects to HTTPS); 0 sends none.", "s", _hsts))
    tls_expiry_days: int = field(default=14, metadata=_doc(
        "Verification fails when the served certificate expires within this many days.", "days",
        _positive_int(365)))
    tls_certificate_path: str = field(default="", metadata=_doc(
        "Certificate chain on the host, when tls is 'files'.", "path", _absolute_path))
    tls_key_path: str = field(default="", metadata=_doc(
        "Private key on the host, when tls is 'files'.", "path", _absolute_path))
    php_version: str = field(default="8.2", metadata=_doc(
        "PHP version of the FPM pools (Debian 12 packages 8.2).", "", _php_version))
    app_source: str = field(default=SAMPLE_APP, metadata=_doc(
        "App to deploy: 'sample' (bundled), a directory or .tar.gz path, or 'git+URL@REF'.",
        "", _app_source))
    app_user: str = field(default="lbstack", metadata=_doc(
        "System user that owns the releases and runs the FPM workers (not a system account).", "", _app_user))
    releases_keep: int = field(default=5, metadata=_doc(
        "App releases kept on the host (the one in service and the newest before it included), for rollback.",
        "releases", _positive_int(100)))
    db_name: str = field(default="lbstack", metadata=_doc(
        "MariaDB database of the app (not a system schema).", "", _db_name))
    db_keep_accounts: list[str] = field(default_factory=list, metadata=_doc(
        "MariaDB accounts of yours (user@host, e.g. report@10.0.0.5) the converge keeps; any other "
        "account but MariaDB's own and the app's is dropped.", "", _accounts))
    db_user: str = field(default="lbstack", metadata=_doc(
        "MariaDB user of the app: privileges on db_name only, password generated on the host.", "", _db_user))
    backups_keep: int = field(default=14, metadata=_doc(
        "Database backups kept on each db host (/var/backups/lbstack); each new backup deletes older ones beyond this.",
        "backups", _positive_int()))

    # Resources requested per component (the plan scales them down when the host is smaller) ---
    lb_cpus: float = field(default=1.0, metadata=_doc(
        "CPU ceiling requested for nginx.", "vCPU", _positive_cpus))
    lb_memory_mib: int = field(default=2048, metadata=_doc(
        "Memory requested for nginx.", "MiB", _memory(64)))
    app_cpus: float = field(default=1.0, metadata=_doc(
        "CPU ceiling requested per app instance.", "vCPU", _positive_cpus))
    app_memory_mib: int = field(default=3072, metadata=_doc(
        "Memory requested per app instance.", "MiB", _memory(128)))
    db_cpus: float = field(default=3.0, metadata=_doc(
        "CPU ceiling requested for MariaDB.", "vCPU", _positive_cpus))
    db_memory_mib: int = field(default=6144, metadata=_doc(
        "Memory requested for MariaDB.", "MiB", _memory(256)))
    cache_cpus: float = field(default=1.0, metadata=_doc(
        "CPU ceiling requested for Redis (it runs commands on one thread: more than 1 is never used).", "vCPU", _positive_cpus))
    cache_memory_mib: int = field(default=3072, metadata=_doc(
        "Memory requested for Redis.", "MiB", _memory(64)))
    php_worker_memory_mib: int = field(default=40, metadata=_doc(
        "Expected resident size of one PHP-FPM worker; divides an instance's budget into pm.max_children, and "
        "twice it is PHP's memory_limit. Default: a warmed worker of the bundled Laravel app is 29-31 MiB "
        "resident (5-7 MiB proportional) in `lbstack bench`, plus room for a heavier request.",
        "MiB", _memory(8)))
    php_max_children_cap: int = field(default=32, metadata=_doc(
        "Upper bound on pm.max_children per instance, whatever the memory allows.",
        "workers", _positive_int(1024)))
    php_workers_per_cpu: int = field(default=4, metadata=_doc(
        "PHP-FPM workers per vCPU of an instance's CPU share (its request scaled to fit the host). "
        "Raise it for apps that spend most of a request waiting on slow I/O (external APIs).",
        "workers", _positive_int(64)))
    php_preload: list[str] = field(default_factory=lambda: ["app"], metadata=_doc(
        "Release directories whose PHP files OPcache preloads in every instance's master (compiled once per "
        "start or reload, classes linked in shared memory); [] turns preloading off. A release whose files "
        "cannot be preloaded is refused before any instance switches to it.", "", _preload_dirs))
    app_packages: list[str] = field(default_factory=lambda: ["php-laravel-framework"], metadata=_doc(
        "Extra Debian packages the app needs on every app host (PHP extensions such as php8.2-gd, or the "
        "framework itself: the bundled app runs on Debian's php-laravel-framework); [] for none.",
        "", _debian_packages))
    artisan_commands: list[str] = field(default_factory=list, metadata=_doc(
        "Extra artisan commands run in every new release (as the app user, after the migrations and the "
        "config/route/view/event caches, before it is sealed), e.g. ['optimize', 'horizon:publish']; a failing one "
        "refuses the release, naming it.", "", _artisan_commands))
    app_cpu_pinning: bool = field(default=True, metadata=_doc(
        "Place each app instance on its own CPUs (as many as its CPU ceiling, from the last CPU down) for "
        "cache locality; false lets the scheduler move every worker anywhere.", ""))
    db_connection_headroom: int = field(default=20, metadata=_doc(
        "MariaDB connections beyond all PHP workers (admin, backups, cron).",
        "connections", _positive_int(10_000)))

    # Queue workers and the scheduler (on app hosts, in lbstack-queue.slice) ------------------
    queue_workers: int = field(default=2, metadata=_doc(
        "`artisan queue:work` workers per app host (lbstack-queue@N); 0 runs none (then queue_connection must be sync).",
        "workers", _count(MAX_QUEUE_WORKERS)))
    queue_connection: str = field(default="redis", metadata=_doc(
        "The app's QUEUE_CONNECTION and the workers' connection: redis, database or sync (each job runs inside "
        "its request; no workers).", "", _one_of(QUEUE_CONNECTIONS)))
    queue_names: list[str] = field(default_factory=lambda: ["default"], metadata=_doc(
        "Queues the workers take jobs from, in priority order (`queue:work --queue=`).", "", _queue_names))
    queue_tries: int = field(default=3, metadata=_doc(
        "Attempts of a job before it goes to failed_jobs (`--tries`; a job's own $tries wins).", "attempts",
        _positive_int(100)))
    queue_timeout_s: int = field(default=60, metadata=_doc(
        "Longest a job may run (`--timeout`). A worker stops only between jobs: its stop timeout is this plus "
        "30 s, and the queue's retry_after (QUEUE_RETRY_AFTER in .env) is this plus 30 s, so no job is run twice.",
        "seconds", _positive_int(86400)))
    queue_max_time_s: int = field(default=3600, metadata=_doc(
        "A worker exits after this long, after its job, and systemd starts a fresh one (`--max-time`: leaks "
        "do not accumulate).", "seconds", _positive_int(7 * 86400)))
    queue_cpus: float = field(default=1.0, metadata=_doc(
        "CPU ceiling requested for all queue workers and the scheduler of a host together.", "vCPU", _positive_cpus))
    queue_memory_mib: int = field(default=512, metadata=_doc(
        "Memory requested for all queue workers and the scheduler of a host together.", "MiB", _memory(64)))
    scheduler: bool = field(default=True, metadata=_doc(
        "Run `artisan schedule:run` every minute (lbstack-schedule.timer) as the app user.", ""))
    # Monitoring -----------------------------------------------------------------------------
    monitoring: bool = field(default=False, metadata=_doc(
        "Prometheus exporters from Debian on every host (node; nginx and the FPM instances' status on lb "
        "hosts; MariaDB on db hosts; Redis on cache hosts) and lbstack's own metrics (a textfile refreshed "
        "by a timer), all on loopback, in lbstack-monitoring.slice.", ""))
    monitoring_prometheus: bool = field(default=True, metadata=_doc(
        "With monitoring: a Prometheus server (Debian's, on loopback) with lbstack's recording and alert "
        "rules, on the first lb host; false: point an existing Prometheus at the exporters yourself.", ""))
    monitoring_cpus: float = field(default=0.5, metadata=_doc(
        "CPU ceiling requested for the exporters and Prometheus of a host together.", "vCPU", _positive_cpus))
    monitoring_memory_mib: int = field(default=512, metadata=_doc(
        "Memory requested for the exporters and Prometheus of a host together.", "MiB", _memory(128)))
    monitoring_scrape_interval_s: int = field(default=15, metadata=_doc(
        "How often Prometheus scrapes every target and evaluates the rules.", "s", _positive_int(300)))
    monitoring_retention_days: int = field(default=15, metadata=_doc(
        "How long Prometheus keeps samples.", "days", _positive_int(3650)))
    alert_p95_s: float = field(default=1.5, metadata=_doc(
        "Alert LbstackSlowRequests when the 95th percentile request time through the balancer exceeds this "
        "over 5 minutes.", "s", _positive_number))
    alert_error_rate_pct: float = field(default=2.0, metadata=_doc(
        "Alert LbstackErrorRate when more than this share of requests answers 5xx over 5 minutes.", "%",
        _positive_number))
    alert_min_instances: int = field(default=0, metadata=_doc(
        "Alert LbstackFewInstances when fewer app instances than this answer; 0: all but one of them.",
        "count", _count(MAX_INSTANCES)))
    alert_for_s: int = field(default=60, metadata=_doc(
        "How long a condition must hold before its alert fires (the rules' `for:`).", "s", _positive_int(3600)))

    # Capacity policy -----------------------------------------------------------------------
    overcommit: str = field(default="scale", metadata=_doc(
        "When the requests exceed the host: scale them down to fit (printed) or refuse.",
        "", _one_of(OVERCOMMIT_POLICIES)))
    os_reserve_mib: int | None = field(default=None, metadata=_doc(
        "Memory kept for the OS outside every limit; unset means 10 % of RAM, 256..2048 MiB.",
        "MiB", _non_negative))
    capacity_cpus: float | None = field(default=None, metadata=_doc(
        "Plan as if the host had this many CPUs (rehearse a bigger host's plan); unset uses the host's.",
        "vCPU", _optional_positive))
    capacity_memory_mib: int | None = field(default=None, metadata=_doc(
        "Plan as if the host had this much memory; unset uses the host's.", "MiB", _optional_positive))

    # Base host ---------------------------------------------------------------------------
    ntp_servers: list[str] = field(default_factory=list, metadata=_doc(
        "NTP servers for systemd-timesyncd; empty keeps Debian's pool.", "", _ntp_servers))
    firewall: bool = field(default=True, metadata=_doc(
        "nftables firewall: only ssh_port, 80 and 443 reachable from outside. false leaves the firewall to you.",
        "", None))
    ssh_port: int = field(default=22, metadata=_doc(
        "sshd's port, kept open by the firewall (ports sshd is seen listening on are kept open too).",
        "port", _port))

    ssh_hardening: bool = field(default=True, metadata=_doc(
        "sshd takes keys only (no passwords, root by key only), written only after the run saw pyinfra "
        "log in with a key; a host reached by password is left as it is, with the reason printed.", "", None))
    fail2ban: bool = field(default=True, metadata=_doc(
        "fail2ban bans an address after fail2ban_maxretry failed ssh logins (reads sshd's journal).", "", None))
    fail2ban_maxretry: int = field(default=5, metadata=_doc(
        "Failed ssh logins within 10 minutes before an address is banned.", "logins", _positive_int(100)))
    fail2ban_bantime_s: int = field(default=3600, metadata=_doc(
        "How long fail2ban bans an address.", "seconds", _positive_int(31536000)))
    fail2ban_ignore: list[str] = field(default_factory=list, metadata=_doc(
        "Addresses or networks fail2ban never bans (say, your office), besides localhost.", "", _addresses))
    os_hardening: bool = field(default=True, metadata=_doc(
        "Kernel and OS hardening: sysctls (no redirects, restricted kernel pointers and dmesg, ...), "
        "unused kernel modules blocked, no core dumps, stricter login.defs, a login banner, process "
        "accounting, sysstat and debsums.", "", None))
    unattended_upgrades: bool = field(default=True, metadata=_doc(
        "Install Debian's security updates every day (unattended-upgrades, no automatic reboot). "
        "false turns the daily upgrade off.", "", None))

    # Rolling updates (app releases, FPM config, scaling) ------------------------------------
    rolling_batch: int = field(default=1, metadata=_doc(
        "App instances taken out of rotation at once during a rolling update (the others keep serving).",
        "instances", _positive_int(MAX_INSTANCES)))
    health_gate_passes: int = field(default=3, metadata=_doc(
        "Consecutive good answers an updated instance must give on its own health path before it "
        "goes back into rotation.", "answers", _positive_int(100)))
    health_gate_timeout_s: int = field(default=30, metadata=_doc(
        "How long an updated instance may take to pass its health gate before the update is rolled back.",
        "seconds", _positive_int(3600)))
    drain_timeout_s: int = field(default=30, metadata=_doc(
        "Longest wait for a drained instance's running requests to finish before it is switched anyway.",
        "seconds", _positive_int(3600)))
    health_path: str = field(default="/api/ujian/health", metadata=_doc(
        "The app's health endpoint (200 when it can serve: the seed's /api/ujian/health checks MariaDB "
        "and Redis); behind /app-health and /instances/<name>/health, and the rolling update's gate.",
        "path", _url_path))
    smoke_path: str = field(default="/api/questions/random", metadata=_doc(
        "Request every updated instance must answer with 2xx (after its health path) to pass its gate.",
        "path", _url_path))
    deploy_lock_stale_s: int = field(default=3600, metadata=_doc(
        "Age after which another machine's deploy lock counts as stale and is taken over (a lock whose "
        "process is gone on this machine is taken over at once).", "seconds", _positive_int(7 * 86400)))

    def to_data(self) -> dict[str, Any]:
        """Plain dict of every field, for inventory data and ``--json``."""
        return dataclasses.asdict(self)


FIELDS: tuple[dataclasses.Field, ...] = dataclasses.fields(Settings)
_BY_NAME = {f.name: f for f in FIELDS}


def _type_name(f: dataclasses.Field) -> str:
    return str(f.type).replace("Optional", "").replace(" ", "")


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    """Check a raw value against the field's declared type (no silent string-to-number)."""
    declared = str(f.type)
    if value is None:
        if "None" in declared:
            return None
        raise SettingsError(f"{f.name}: must not be empty. Remove {f.name} to use its default.")
    if declared.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f"{f.name}: must be a whole number, got {value!r}. Write it without quotes, e.g. {f.default!r}.")
        return value
    if declared.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(f"{f.name}: must be a number, got {value!r}. Write it without quotes, e.g. 1.5.")
        return float(value)
    if declared.startswith("list"):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise SettingsError(f"{f.name}: must be a list, got {value!r}. Write it as a list, e.g. ['a', 'b'].")
        return list(value)
    if declared == "bool":
        if not isinstance(value, bool):
            raise SettingsError(f"{f.name}: must be true or false, got {value!r}. Write it without quotes.")
        return value
    if declared == "str":
        if not isinstance(value, str):
            raise SettingsError(f"{f.name}: must be a string, got {value!r}. Quote it.")
        return value
    raise AssertionError(f"unhandled settings type {declared}")  # pragma: no cover


def _cross_checks(s: Settings) -> None:
    if s.instances > 1 and s.rolling_batch >= s.instances:
        raise SettingsError(
            f"rolling_batch: {s.rolling_batch} would take all {s.instances} instances out of rotation at once. "
            f"Use at most {s.instances - 1}."
        )
    if s.tls == "files" and not (s.tls_certificate_path and s.tls_key_path):
        raise SettingsError(
            "tls_certificate_path/tls_key_path: tls is 'files' but a path is missing. "
            "Set both to absolute paths on the host, or use tls: self_signed."
        )
    if s.tls != "files" and (s.tls_certificate_path or s.tls_key_path):
        raise SettingsError(
            "tls_certificate_path/tls_key_path: set but tls is not 'files'. Set tls: files, or remove the paths."
        )
    if s.tls == "acme":
        bad = [n for n in s.server_names if n in ("_", "localhost") or n.startswith("*.")]
        if bad:
            raise SettingsError(
                f"server_names: {', '.join(repr(n) for n in bad)} cannot have an ACME certificate (HTTP-01 proves "
                "real host names only: no '_', 'localhost' or wildcard). List the site's names, e.g. "
                "['example.com', 'www.example.com'], or use tls: files.")
    if s.tls != "acme" and s.tls_acme_ca_bundle:
        raise SettingsError("tls_acme_ca_bundle: set but tls is not 'acme'. Set tls: acme, or remove it.")
    if s.queue_connection == "sync" and s.queue_workers:
        raise SettingsError(
            f"queue_workers: {s.queue_workers} workers would wait on nothing: queue_connection is sync (each job runs "
            "inside its request). Set queue_workers: 0, or queue_connection: redis.")
    if s.queue_connection != "sync" and not s.queue_workers:
        raise SettingsError(
            f"queue_workers: 0 with queue_connection {s.queue_connection}: queued jobs would never run. "
            "Set queue_workers to 1 or more, or queue_connection: sync.")
    if s.capacity_cpus is not None:
        for key in ("lb_cpus", "app_cpus", "db_cpus", "cache_cpus", "queue_cpus", "monitoring_cpus"):
            if getattr(s, key) > s.capacity_cpus:
                raise SettingsError(
                    f"{key}: {getattr(s, key)} vCPU is more than the host's {s.capacity_cpus} "
                    f"(capacity_cpus). Lower {key}."
                )
    if s.capacity_memory_mib is not None:
        if s.capacity_memory_mib < 512:
            raise SettingsError(
                f"capacity_memory_mib: {s.capacity_memory_mib} MiB is too small to plan a stack; "
                "use at least 512."
            )
        for key in ("lb_memory_mib", "app_memory_mib", "db_memory_mib", "cache_memory_mib", "queue_memory_mib",
                    "monitoring_memory_mib"):
            if getattr(s, key) > s.capacity_memory_mib:
                raise SettingsError(
                    f"{key}: {getattr(s, key)} MiB is more than the host's {s.capacity_memory_mib} MiB "
                    f"(capacity_memory_mib). Lower {key}."
                )
        if s.os_reserve_mib is not None and s.os_reserve_mib >= s.capacity_memory_mib:
            raise SettingsError(
                f"os_reserve_mib: {s.os_reserve_mib} MiB leaves nothing of the host's "
                f"{s.capacity_memory_mib} MiB. Lower os_reserve_mib."
            )


def load(raw: dict[str, Any] | None) -> Settings:
    """Validate raw settings (from inventory data or YAML) and return :class:`Settings`."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SettingsError(f"settings must be a mapping of key: value, got {type(raw).__name__}.")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        f = _BY_NAME.get(key)
        if f is None:
            close = difflib.get_close_matches(str(key), _BY_NAME, n=1)
            hint = f"Did you mean {close[0]!r}?" if close else "Remove it; `lbstack settings-doc` lists the keys."
            raise SettingsError(f"{key}: unknown setting. {hint}")
        values[key] = _coerce(f, value)
    for key, value in values.items():
        check = _BY_NAME[key].metadata["check"]
        if check is not None and value is not None:
            check(key, value)
    settings = Settings(**values)
    _cross_checks(settings)
    return settings


def load_file(path: str | Path) -> Settings:
    """Load settings from a YAML file (a mapping of key: value)."""
    path = Path(path)
    if not path.is_file():
        raise SettingsError(f"{path}: settings file not found. Check the path.")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return load(raw)
    except SettingsError as exc:
        raise SettingsError(f"{path}: {exc}") from exc


def validated(raw: dict[str, Any] | str | Path) -> dict[str, Any]:
    """Settings (a mapping or a YAML file path) validated into the dict hosts carry as ``lbstack``.

    For inventory and ``group_data/*.py`` files, which pyinfra loads before connecting: invalid
    settings end the run there, with one line naming the key and the fix (no traceback).
    """
    try:
        if isinstance(raw, (str, Path)):
            raw = load_file(raw).to_data()
        settings = load({**raw, **overrides_from_env()})
    except SettingsError as exc:
        raise SystemExit(f"lbstack: invalid settings: {exc}") from None
    return settings.to_data()


OVERRIDES_ENV = "LBSTACK_OVERRIDES"


def overrides_from_env() -> dict[str, Any]:
    """Settings given on the command line (``lbstack deploy --set KEY=VALUE``), passed to the
    inventory as JSON in ``LBSTACK_OVERRIDES``; they replace the inventory's values and are
    validated with them."""
    text = os.environ.get(OVERRIDES_ENV, "").strip()
    if not text:
        return {}
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"{OVERRIDES_ENV}: not JSON ({exc}). Use `lbstack deploy --set KEY=VALUE`.") from None
    if not isinstance(values, dict):
        raise SettingsError(f"{OVERRIDES_ENV}: must be a JSON object of setting: value.")
    return values


def inventory_data(raw: dict[str, Any] | str | Path, **host_data: Any) -> dict[str, Any]:
    """Host data for an inventory file: validated settings under ``lbstack`` plus connector data."""
    return {**host_data, "lbstack": validated(raw)}


def markdown_table() -> str:
    """The README's settings table, generated from :data:`FIELDS`."""
    rows = ["| key | type | unit | default | meaning |", "|---|---|---|---|---|"]
    for f in FIELDS:
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        shown = "unset" if default is None else f"`{default!r}`"
        rows.append(f"| `{f.name}` | {_type_name(f)} | {f.metadata['unit']} | {shown} | {f.metadata['doc']} |")
    return "\n".join(rows)


def check_app_account(settings: Settings, account: dict | None, app_home: str) -> None:
    """``app_user`` on a host (read there before anything changes, ``account`` from
    :class:`facts.base.Account`): an account lbstack made (home ``app_home``) or none yet. Any other
    existing account, a system one (``backup``, ``list``, ...) or a person's, is refused: the
    app would run as it, with its files and groups, and lbstack would change its home and shell."""
    if account is None or account.get("home") == app_home:
        return
    kind = "a system account" if account.get("uid", 0) < 1000 else "a person's account"
    raise SettingsError(
        f"app_user: {settings.app_user!r} is {kind} this host already has (uid {account.get('uid')}, home "
        f"{account.get('home')}), not one lbstack made. Choose a name the host does not have "
        "(lbstack creates it, e.g. the default 'lbstack').")
