"""The host-side programs lbstack installs and runs: ``lbstack-instance`` (the rolling update's steps,
the release preload check) and ``lbstack-maintenance`` (the maintenance flag, the MariaDB restart).

They are bash programs rendered from ``templates/usr/local/sbin/*.j2`` with the data below (paths
and names from :mod:`lbstack.layout`, nothing else). The Python side only builds their argument
lists: the functions here are pure, ``argv -> list[str]``; the output and exit-code contract is in
each program's header comment (and, for ``lbstack-instance``, in :mod:`lbstack.rollout`).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterable

from lbstack import layout

INSTANCE_HELPER = layout.INSTANCE_HELPER
MAINTENANCE_HELPER = layout.MAINTENANCE_HELPER

# lbstack-instance's exit codes (the script defines the same; a test holds them equal)
EXIT_OK = 0
EXIT_FAILED = 1  # a step failed (its message on stderr, detail= on stdout)
EXIT_USAGE = 2  # bad arguments: nothing changed
EXIT_GATE = 3  # gate: the instance failed its health gate (failed=reload|health|smoke)
EXIT_INVALID = 4  # drain/undrain: the edited nginx config does not validate: nothing changed
EXIT_PRELOAD = 5  # preload-check: the release cannot be preloaded

_SENTINEL = 987654321  # an instance index that appears nowhere else in a path


def _around(name_of: Callable[[int], str]) -> tuple[str, str]:
    """(prefix, suffix) of a per-instance name or path: ``name_of(i) == prefix + str(i) + suffix``."""
    parts = name_of(_SENTINEL).split(str(_SENTINEL))
    if len(parts) != 2:
        raise ValueError(f"{name_of.__name__}: the index must appear exactly once")
    return parts[0], parts[1]


def instance_paths() -> dict[str, str]:
    """What lbstack-instance is rendered with, unquoted: every path and name it uses."""
    values = {
        "state_dir": layout.STATE_DIR,
        "stage_dir": layout.STAGE_DIR,
        "bad_releases_dir": layout.BAD_RELEASES_DIR,
        "releases_dir": layout.RELEASES_DIR,
        "releases_link": os.path.relpath(layout.RELEASES_DIR, layout.INSTANCES_DIR),
        "front_controller": layout.FRONT_CONTROLLER,
        "preload_script": layout.PRELOAD_SCRIPT,
        "php_settings_probe": layout.PHP_SETTINGS_PROBE,
        "fpm_config_dir": layout.FPM_CONFIG_DIR,
        "nginx_dir": layout.NGINX_DIR,
        "site_conf": layout.SITE_CONF,
        "nginx_unit": layout.SERVICES["lb"],
    }
    for key, name_of in (("instance_name", layout.instance_name), ("fpm_unit", layout.fpm_unit),
                         ("fpm_config", layout.fpm_config), ("pointer", layout.instance_pointer),
                         ("cpu_dropin", layout.fpm_cpu_dropin)):
        values[f"{key}_prefix"], values[f"{key}_suffix"] = _around(name_of)
    return values


def maintenance_paths() -> dict[str, str]:
    """What lbstack-maintenance is rendered with, unquoted."""
    return {"flag": layout.MAINTENANCE_FLAG, "backup_helper": layout.BACKUP_HELPER,
            "db_unit": layout.SERVICES["db"]}


def _quoted(defaults: dict[str, str], overrides: dict[str, str]) -> dict[str, str]:
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise TypeError(f"unknown template values: {', '.join(sorted(unknown))}")
    return {key: shlex.quote(value) for key, value in {**defaults, **overrides}.items()}


def instance_template_data(**overrides: str) -> dict[str, str]:
    """Jinja data of ``templates/usr/local/sbin/lbstack-instance.j2``: :func:`instance_paths`,
    each value shell-quoted (the template assigns them to variables). ``overrides`` replace
    paths (tests point them into a scratch directory)."""
    return _quoted(instance_paths(), overrides)


def maintenance_template_data(**overrides: str) -> dict[str, str]:
    """Jinja data of ``templates/usr/local/sbin/lbstack-maintenance.j2`` (as above)."""
    return _quoted(maintenance_paths(), overrides)


def shell(argv: list[str]) -> str:
    """``argv`` as one shell command line, each argument quoted (for ``server.shell``)."""
    return shlex.join(argv)


# -- lbstack-instance -----------------------------------------------------------------------------


def drain(members: Iterable[str]) -> list[str]:
    return [INSTANCE_HELPER, "drain", "--", *members]


def undrain(members: Iterable[str]) -> list[str]:
    return [INSTANCE_HELPER, "undrain", "--", *members]


def wait_idle(address: str, timeout_s: int) -> list[str]:
    return [INSTANCE_HELPER, "wait-idle", address, str(int(timeout_s))]


def switch(index: int, address: str, release: str | None = None,
           config: tuple[str, str, str] | None = None, restart: bool = False) -> list[str]:
    argv = [INSTANCE_HELPER, "switch", str(index), address]
    if release:
        argv += ["--release", release]
    if config:
        argv += ["--config", *config]
    if restart:
        argv.append("--restart")
    return argv


def revert(index: int, address: str, release: str | None = None, config_live: str | None = None) -> list[str]:
    argv = [INSTANCE_HELPER, "revert", str(index), address]
    if release:
        argv += ["--release", release]
    if config_live:
        argv += ["--config", config_live]
    return argv


def gate(index: int, address: str, health_path: str, smoke_path: str, passes: int, timeout_s: int,
         before: str, release: str | None = None) -> list[str]:
    argv = [INSTANCE_HELPER, "gate", str(index), address, "--health", health_path, "--smoke", smoke_path,
            "--passes", str(int(passes)), "--timeout", str(int(timeout_s)), "--before", before]
    if release:
        argv += ["--release", release]
    return argv


def mark_bad(release: str, gate_name: str, instance: str, detail: str) -> list[str]:
    return [INSTANCE_HELPER, "mark-bad", release, "--gate", gate_name, "--instance", instance,
            "--detail", detail]


def retire(index: int) -> list[str]:
    return [INSTANCE_HELPER, "retire", str(index)]


def forget_prev(lives: Iterable[str]) -> list[str]:
    return [INSTANCE_HELPER, "forget-prev", *lives]


def preload_check(settings, release_path: str) -> list[str]:
    """Run the OPcache preload script on ``release_path`` as the instance masters will (as root,
    preloading as ``app_user``), before any instance switches to it: exit 5 naming the release and
    both fixes when it cannot be preloaded. ``["true"]`` when ``php_preload`` is off.
    ``settings``: a :class:`lbstack.settings.Settings`."""
    if not settings.php_preload:
        return ["true"]
    return [INSTANCE_HELPER, "preload-check", release_path, "--php-version", settings.php_version,
            "--user", settings.app_user, "--dirs", ", ".join(settings.php_preload)]


# -- lbstack-maintenance --------------------------------------------------------------------------


def restart_mariadb(settings, wait_s: int = 30) -> list[str]:
    """Back up the app database, maintenance on (503 + Retry-After), restart MariaDB, wait until it
    answers (at most ``wait_s``), maintenance off; a failed restart leaves maintenance on and fails.
    ``settings``: a :class:`lbstack.settings.Settings` (its ``db_name``)."""
    return [MAINTENANCE_HELPER, "restart-mariadb", "--database", settings.db_name, "--wait", str(int(wait_s))]


def maintenance(on: bool) -> list[str]:
    return [MAINTENANCE_HELPER, "on" if on else "off"]
