"""systemd sandboxing of the units lbstack owns (FPM masters, queue workers, the scheduler) and of
the packaged services it drops into (nginx, MariaDB): the ``[Service]`` directives, in order.

Every unit gets the same base: no new privileges, the whole file system read-only but the paths
it writes (``ProtectSystem=strict`` + ``ReadWritePaths``), no home directories, its own /tmp and
/dev, the kernel's tunables, modules, logs, clock, hostname and cgroups out of reach, no new
namespaces, no realtime scheduling, no set-uid files, only native system calls of systemd's
``@system-service`` set, only unix and IP sockets, and ``UMask=0027``. Then per unit:

- the app's units (FPM, queue, scheduler) run as the app user with no capability at all; an FPM
  master is the app user too (PHP-FPM's pools then run as that user), in the group ``www-data``
  only so its unix socket can be given to nginx;
- nginx's master stays root (it binds 80/443 and starts workers as www-data) but keeps only the
  capabilities for that;
- MariaDB runs as mysql, as Debian's unit says, with only ``CAP_IPC_LOCK`` (its own unit's).

``systemd-analyze security`` of each is read back by :class:`facts.base.UnitSecurity` and checked
against :data:`EXPOSURE_MAX` by verification.
"""

from __future__ import annotations

from lbstack import layout

# systemd-analyze security's overall exposure each unit must stay at or under (issue 17)
EXPOSURE_MAX = {"app": 3.0, "lb": 3.0, "db": 4.0}

_BASE = (
    ("NoNewPrivileges", "yes"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("DevicePolicy", "closed"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("ProtectControlGroups", "yes"),
    ("ProtectClock", "yes"),
    ("ProtectHostname", "yes"),
    ("ProtectProc", "invisible"),
    ("RestrictNamespaces", "yes"),
    ("RestrictRealtime", "yes"),
    ("RestrictSUIDSGID", "yes"),
    ("LockPersonality", "yes"),
    ("KeyringMode", "private"),
    ("SystemCallArchitectures", "native"),
    ("SystemCallErrorNumber", "EPERM"),
    ("SystemCallFilter", "@system-service"),
    ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
)


def app(read_write: tuple[str, ...] = (), fpm: bool = False) -> list[tuple[str, str]]:
    """An app unit (its ``User=`` is the app user, set by its template): no capabilities, the app's
    storage (and ``read_write``) its only writable paths. An FPM master also chowns its socket
    to the group www-data, so it keeps the chown system calls."""
    rows = list(_BASE)
    rows += [
        ("SystemCallFilter", "~@privileged @resources"),
        *([("SystemCallFilter", "@chown")] if fpm else []),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("RemoveIPC", "yes"),
        ("ProcSubset", "pid"),
        ("UMask", "0027"),
        ("ReadWritePaths", " ".join((f"{layout.SHARED_DIR}/storage", *read_write))),
    ]
    return rows


def nginx() -> list[tuple[str, str]]:
    """nginx: root master binding 80/443 and starting its workers as www-data; writes only its
    logs, its temp files and its pid file. It raises its own open-file limit (@resources)."""
    return [*_BASE,
            ("SystemCallFilter", "~@mount @swap @reboot @raw-io @module @clock @cpu-emulation @debug @obsolete"),
            ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID CAP_CHOWN CAP_DAC_OVERRIDE"),
            ("ProcSubset", "pid"),
            ("UMask", "0027"),
            ("ReadWritePaths", "/var/log/nginx /var/lib/nginx /run")]


def mariadb() -> list[tuple[str, str]]:
    """MariaDB as mysql (Debian's unit): its data, logs and socket directory writable, and only
    the capability Debian's unit gives it (CAP_IPC_LOCK)."""
    return [*_BASE,
            ("SystemCallFilter", "~@mount @swap @reboot @raw-io @module @clock @cpu-emulation @debug @obsolete"),
            ("CapabilityBoundingSet", "CAP_IPC_LOCK"),
            ("RemoveIPC", "yes"),
            ("ProcSubset", "pid"),
            ("UMask", "0007"),
            ("ReadWritePaths", "/var/lib/mysql -/var/log/mysql /run/mysqld")]


def sandboxed_units(plan) -> dict[str, float]:
    """Every unit :func:`directives` are rendered into for ``plan``, with the exposure it must stay
    at or under (Redis is left as Debian hardens it: 1.1 here)."""
    units: dict[str, float] = {}
    for component, unit in layout.planned_units(plan):
        if unit.endswith(".service") and component in ("app", "queue", "lb", "db"):
            units[unit] = EXPOSURE_MAX["app" if component == "queue" else component]
    if plan.queue and plan.queue.scheduler:
        units[layout.SCHEDULE_SERVICE] = EXPOSURE_MAX["app"]
    return units
