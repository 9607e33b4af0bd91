"""PHP-FPM: N app instances, each its own FPM master (``lbstack-fpm@N``) in the app slice under
the plan's per-instance limits, with its own socket (or port, when nginx is on another host),
status and ping pages and slow log.

Each instance's config is rendered to the staging directory and checked with ``php-fpm --test``;
the rolling update (``deploy.app`` -> ``lbstack.rollout``) then promotes it and reloads the
instances a batch at a time, each drained and health-gated: a config that fails validation leaves
every instance serving as before. nginx names one front controller for every instance
(``/srv/lbstack/app/front/index.php``); it runs the release the instance's own pointer names.
Debian's own ``php<V>-fpm`` service (the ``www`` pool) is stopped and disabled.

Per-request tuning (README, "Tuning"): every master preloads its own release's classes into its
OPcache (``opcache.preload``, the ``php_preload`` setting; a new release is preloaded once by the
deploy before any instance switches to it), each instance runs on the CPUs the plan placed it on
(a ``CPUAffinity=`` drop-in per instance: changed, the instance restarts through the rolling
update), and workers' output is not piped to the master (PHP errors go to the journal).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import FindFiles
from pyinfra.operations import apt, files, server, systemd

from facts.app import Instances
from lbstack import hostscripts, layout, packages, sandbox, services
from lbstack.phpsettings import ini_template_data, instance_template_data
from lbstack.operations import daemon_reload, directories, promote, template_file, unit_active, validated
from lbstack.plan import FPM_WATCHDOG_S, Plan
from lbstack.render import jinja, template
from lbstack.settings import Settings
from lbstack.topology import listen_address, member

UNIT_FILE = f"/etc/systemd/system/{layout.FPM_UNIT}"


def ini_path(settings: Settings) -> str:
    return f"/etc/php/{settings.php_version}/fpm/conf.d/90-lbstack.ini"


def preload_template_data(settings: Settings) -> dict:
    return {"dirs": settings.php_preload, "instances_dir": layout.INSTANCES_DIR}


def unit_template_data(settings: Settings, plan: Plan) -> dict:
    return {
        "slice": plan.slices["app"],
        "instances": plan.instances,
        "php_version": settings.php_version,
        "config_dir": layout.FPM_CONFIG_DIR,
        "limits": plan.php_fpm.instance_limits,
        "sched_policy": services.SCHED_POLICY,
        "app_user": settings.app_user,
        "sandbox": sandbox.app(fpm=True),
        "watchdog_s": FPM_WATCHDOG_S,
    }


@dataclass
class Changes:
    """What the php-fpm step prepared for the rolling update (``deploy.app``): the instance unit
    and PHP settings operations (changed: restart / reload every instance) and each instance's
    validated staged config ``(staged, live, mode)``."""

    unit: object
    ini: object
    configs: dict[int, tuple[str, str, str]]
    preload: object  # the preload script (changed: reload every instance)
    cpus: dict[int, object]  # each instance's CPUAffinity drop-in (changed: restart it)
    php_ini: object = None  # Debian's php.ini put back (changed: reload every instance)


@deploy("lbstack php-fpm")
def php_fpm(settings: Settings, plan: Plan) -> Changes:
    version = settings.php_version
    apt.packages(name=f"Install PHP {version} (FPM, CLI, extensions)", packages=packages.php(settings), no_recommends=True)
    apt.packages(name=f"Install {' and '.join(packages.APP_CLIENTS)} (verification logs in as the app does)",
                 packages=packages.APP_CLIENTS, no_recommends=True)
    if settings.app_packages:
        apt.packages(name=f"Install the app's Debian packages: {' '.join(settings.app_packages)}",
                     packages=list(settings.app_packages), no_recommends=True)
    php_ini = promote(
        name=f"PHP's php.ini (FPM and CLI) as Debian ships it: lbstack's settings are in conf.d/90-lbstack.ini "
             "and the pools, so a hand edit there is put back",
        files=layout.pristine_php_ini(settings.php_version),
    )
    systemd.service(
        name=f"Stop and disable Debian's php{version}-fpm (the www pool; lbstack runs its own masters)",
        service=f"php{version}-fpm.service",
        running=False,
        enabled=False,
    )
    paths = (layout.LOG_DIR, layout.FPM_CONFIG_DIR, layout.FRONT_CONTROLLER.rsplit("/", 1)[0],
             layout.PHP_SETTINGS_PROBE.rsplit("/", 1)[0])
    directories(name=f"Directories {', '.join(paths)} (root, mode 755)",
                paths=[(path, "root", "root", "755") for path in paths])
    template_file(
        name=f"Render {layout.FRONT_CONTROLLER} (runs each instance's own release)",
        src=template(layout.FRONT_CONTROLLER),
        dest=layout.FRONT_CONTROLLER,
        mode="644",
        jinja_env_kwargs=jinja(),
        instances_dir=layout.INSTANCES_DIR,
        retry_after_s=layout.MAINTENANCE_RETRY_AFTER_S,
    )

    template_file(
        name=f"Render {layout.PHP_SETTINGS_PROBE} (each master's effective PHP settings, asked on its socket)",
        src=template(layout.PHP_SETTINGS_PROBE),
        dest=layout.PHP_SETTINGS_PROBE,
        mode="644",
        jinja_env_kwargs=jinja(),
    )

    # each master's slow log (the master is the app user; `php-fpm --test` as root opens the file,
    # so it is made first, the user's, rather than left for the test to create as root's)
    logs = [layout.fpm_log_dir(index) for index in range(1, plan.instances + 1)]
    directories(name=f"Directories {layout.LOG_DIR}/app{{1..{plan.instances}}} ({settings.app_user}, mode 750)",
                paths=[(path, settings.app_user, settings.app_user, "750") for path in logs])
    for path in logs:
        files.file(name=f"{path}/slow.log ({settings.app_user}, mode 640)", path=f"{path}/slow.log",
                   user=settings.app_user, group=settings.app_user, mode="640", touch=False)

    preload = template_file(
        name=f"Render {layout.PRELOAD_SCRIPT} (OPcache preloading of each instance's release)",
        src=template(layout.PRELOAD_SCRIPT),
        dest=layout.PRELOAD_SCRIPT,
        mode="644",
        jinja_env_kwargs=jinja(),
        **preload_template_data(settings),
    )
    serving = sorted(set(host.get_fact(Instances, root=layout.APP_ROOT, bad_dir=layout.BAD_RELEASES_DIR)["pointers"].values()))
    if settings.php_preload and serving:
        # the releases instances serve now will be preloaded at their next reload: check them with
        # the new script before the PHP settings that name it are written (new releases are
        # checked when they are built, before any instance switches to them)
        server.shell(
            name=f"Check OPcache preloading of the release(s) in service: {', '.join(serving)}",
            commands=[hostscripts.shell(hostscripts.preload_check(settings, f"{layout.RELEASES_DIR}/{r}"))
                      for r in serving],
            _if=preload.did_change,
        )
    ini = template_file(
        name=f"Render {ini_path(settings)}",
        src=template("/etc/php/fpm/conf.d/90-lbstack.ini"),
        dest=ini_path(settings),
        mode="644",
        jinja_env_kwargs=jinja(),
        **ini_template_data(settings, plan),
    )
    unit = template_file(
        name=f"Render {UNIT_FILE}",
        src=template(UNIT_FILE),
        dest=UNIT_FILE,
        mode="644",
        jinja_env_kwargs=jinja(),
        **unit_template_data(settings, plan),
    )
    indexes = range(1, plan.instances + 1)
    staged = {}
    for index in indexes:
        live = layout.fpm_config(index)
        address = listen_address(index)
        template_file(
            name=f"Render {live} (staged)",
            src=template(f"{layout.FPM_CONFIG_DIR}/app.conf"),
            dest=layout.staged(live),
            mode="644",
            jinja_env_kwargs=jinja(),
            **instance_template_data(settings, plan, index, address, member(host, index, address.startswith("/"))["name"]),
        )
        staged[index] = (layout.staged(live), live, "644")
    fpm = f"/usr/sbin/php-fpm{version}"
    validated(
        name=f"Validate the staged {layout.FPM_CONFIG_DIR}/app{{1..{plan.instances}}}.conf ({fpm} --test); "
             "the rolling update promotes them",
        files=list(staged.values()),
        # -R: root may test a pool without user/group (the master runs as the app user)
        test=" && ".join(f"{fpm} --test -R --fpm-config {shlex.quote(s)}" for s, _, _ in staged.values()),
    )
    cpus = {}
    for index in indexes:
        cpus[index] = template_file(
            name=f"Render {layout.fpm_cpu_dropin(index)} "
                 f"(CPUAffinity={plan.php_fpm.instance_cpus[index - 1] or 'any: ' + plan.php_fpm.pinning_note})",
            src=template(f"/etc/systemd/system/{layout.FPM_UNIT}.d/lbstack-cpu.conf"),
            dest=layout.fpm_cpu_dropin(index),
            mode="644",
            jinja_env_kwargs=jinja(),
            unit=layout.fpm_unit(index),
            cpus=plan.php_fpm.instance_cpus[index - 1],
            why=plan.php_fpm.pinning_note,
        )
    daemon_reload(name="systemctl daemon-reload (if the instance units changed on disk)",
                  units=[layout.fpm_unit(i) for i in indexes], changed=[unit, *cpus.values()])
    for index in indexes:
        unit_active(name=f"Enable {layout.fpm_unit(index)} (started by the rolling update)",
                    unit=layout.fpm_unit(index), start=False)
    return Changes(unit=unit, ini=ini, configs=staged, preload=preload, cpus=cpus, php_ini=php_ini)


def surplus_instances(plan: Plan) -> list[int]:
    """Instances beyond the planned count (after scaling down) that still have a config."""
    present = host.get_fact(FindFiles, path=layout.FPM_CONFIG_DIR, maxdepth=1, fname="app*.conf") or []
    found = []
    for path in present:
        index = path.rsplit("/", 1)[-1][len("app"):-len(".conf")]
        if index.isdigit() and int(index) > plan.instances:
            found.append(int(index))
    return sorted(found)
