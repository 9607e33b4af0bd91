"""The directories lbstack owns on a host, and what may be in each: anything else there was put
by hand (or by an intruder) and is unmanaged.

An unmanaged file is never deleted: the converge moves it into a dated quarantine,
``/var/lib/lbstack/quarantine/<UTC time>/<its full path>``, where a person can read it and put
it back elsewhere, and then makes the service that read the directory read it again (nginx is
tested and reloaded, FPM masters reloaded, units restarted after ``daemon-reload``). Drift and
verification name every such file.

Debian's own files in these directories are expected: the PHP extension links ``phpenmod``
makes in ``conf.d`` (symlinks into ``mods-available``).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from lbstack import hostscripts, layout
from lbstack.plan import Plan
from lbstack.settings import Settings

QUARANTINE_DIR = f"{layout.STATE_DIR}/quarantine"
UNIT_DIR = "/etc/systemd/system"


@dataclass(frozen=True)
class OwnedDir:
    path: str
    allowed: tuple[str, ...]  # names (fnmatch patterns) lbstack puts there
    links_into: str | None = None  # symlinks into this directory are Debian's (PHP's mods-available)
    then: tuple[str, ...] = ()  # shell commands that make the reader of the directory read it again

    def unmanaged(self, entries: list[list[str]]) -> list[str]:
        """Full paths of ``entries`` (``[name, type, link target]``, from :class:`facts.files.
        DirEntries`) that are not lbstack's and not Debian's."""
        found = []
        for name, kind, target in entries:
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.allowed):
                continue
            if self.links_into and kind == "l" and target.startswith(self.links_into + "/"):
                continue
            found.append(f"{self.path}/{name}")
        return found


def quarantine_moves(paths: list[str], stamp: str) -> list[list[str]]:
    """Argument lists that move each of ``paths`` to ``QUARANTINE_DIR/<stamp>/<its full path>``,
    then leave the quarantine root's alone (``stamp``: the UTC time, ``20261202T050140Z``).

    A quarantined release loses its config cache (:data:`layout.CONFIG_CACHE`): it holds the
    secrets in clear, and the quarantine is kept for people to read, copy off and keep. What the
    file was sealed as stays in the release's manifest, quarantined beside it.
    """
    moves = []
    for path in paths:
        dest = f"{QUARANTINE_DIR}/{stamp}{path}"
        moves += [["mkdir", "-p", "-m", "700", dest.rsplit("/", 1)[0]], ["mv", "-f", path, dest]]
        if path.startswith(layout.RELEASES_DIR + "/") and "/" not in path[len(layout.RELEASES_DIR) + 1:]:
            moves.append(["rm", "-f", f"{dest}/{layout.CONFIG_CACHE}"])
    return moves + [["chmod", "700", QUARANTINE_DIR]] if moves else []


def _restart(unit: str) -> str:
    return f"systemctl daemon-reload && systemctl try-restart {unit}"


def owned_dirs(settings: Settings, plan: Plan) -> list[OwnedDir]:
    """Every directory lbstack owns on a host of ``plan``'s components."""
    dirs = [OwnedDir(layout.ETC, ("fpm", "secrets", "sources", "tls"))]
    components = plan.components
    if "lb" in components:
        reload_nginx = "nginx -t -q && systemctl try-reload-or-restart nginx.service"
        dirs += [
            OwnedDir(f"{layout.NGINX_DIR}/conf.d", (layout.SITE_CONF.rsplit("/", 1)[1],), then=(reload_nginx,)),
            OwnedDir(f"{layout.NGINX_DIR}/sites-enabled", (), then=(reload_nginx,)),
            OwnedDir(f"{UNIT_DIR}/nginx.service.d", ("lbstack.conf",), then=(_restart("nginx.service"),)),
        ]
    if "app" in components:
        version = settings.php_version
        reload_fpm = " && ".join(f"systemctl try-reload-or-restart {layout.fpm_unit(i)}"
                                 for i in range(1, plan.instances + 1))
        dirs += [
            # app<N>.conf of any N: an instance scaled away keeps its config until the rolling
            # update retires it (it is how that update finds the instance)
            OwnedDir(layout.FPM_CONFIG_DIR, ("app[0-9]*.conf", layout.PRELOAD_SCRIPT.rsplit("/", 1)[1])),
            OwnedDir(f"/etc/php/{version}/fpm/conf.d", ("90-lbstack.ini",), f"/etc/php/{version}/mods-available",
                     then=(reload_fpm,)),
            OwnedDir(f"/etc/php/{version}/cli/conf.d", (), f"/etc/php/{version}/mods-available"),
            # a removed drop-in changes its directory: the rolling update restarts the instance
            OwnedDir(f"{UNIT_DIR}/{layout.FPM_UNIT}.d", (), then=("systemctl daemon-reload",)),
            *(OwnedDir(layout.fpm_cpu_dropin(i).rsplit("/", 1)[0], ("lbstack-cpu.conf",),
                       then=("systemctl daemon-reload",)) for i in range(1, plan.instances + 1)),
        ]
        if plan.queue:
            dirs.append(OwnedDir(f"{UNIT_DIR}/{layout.QUEUE_UNIT}.d", (),
                                 then=(_restart("'lbstack-queue@*.service'"),)))
    if "db" in components:
        dirs.append(OwnedDir(f"{UNIT_DIR}/mariadb.service.d", ("lbstack.conf",),
                             then=("systemctl daemon-reload", hostscripts.shell(hostscripts.restart_mariadb(settings)))))
    if "cache" in components:
        dirs.append(OwnedDir(f"{UNIT_DIR}/redis-server.service.d", ("lbstack.conf",),
                             then=(_restart("redis-server.service"),)))
    return dirs


def unmanaged(dirs: list[OwnedDir], entries: dict[str, list[list[str]]]) -> dict[str, list[str]]:
    """Each owned directory's unmanaged paths (directories with none left out)."""
    found = {}
    for owned in dirs:
        paths = owned.unmanaged(entries.get(owned.path, []))
        if paths:
            found[owned.path] = paths
    return found
