"""PHP-FPM: N app instances, each its own FPM master (``lbstack-fpm@N``) in the app slice under
the plan's per-instance limits, with its own socket (or port, when nginx is on another host),
status and ping pages and slow log.

Each instance's config is rendered to the staging directory, checked with ``php-fpm --test``, and
only then promoted and reloaded: a config that fails leaves every instance serving as before.
Debian's own ``php<V>-fpm`` service (the ``www`` pool) is stopped and disabled.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import FindFiles
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from deploy import jinja, template
from lbstack import layout
from lbstack.operations import daemon_reload, promote, unit_active
from lbstack.plan import OPCACHE_MIB, Plan
from lbstack.settings import Settings

EXTENSIONS = ("fpm", "cli", "mysql", "opcache", "mbstring", "xml", "curl", "zip", "bcmath", "intl")
UNIT_FILE = f"/etc/systemd/system/{layout.FPM_UNIT}"


def packages(settings: Settings) -> list[str]:
    # php-redis is Debian's phpredis for the default PHP; libfcgi-bin gives cgi-fcgi (status fact)
    return [f"php{settings.php_version}-{ext}" for ext in EXTENSIONS] + ["php-redis", "libfcgi-bin"]


def ini_path(settings: Settings) -> str:
    return f"/etc/php/{settings.php_version}/fpm/conf.d/90-lbstack.ini"


def listen_address(index: int) -> str:
    """Unix socket when nginx is on this host; a port on every address otherwise (split topology:
    the firewall admits only the lb hosts)."""
    if "lb" in host.groups:
        return layout.fpm_socket(index)
    return f"0.0.0.0:{layout.FPM_PORT_BASE + index}"


def instance_addresses(plan: Plan) -> dict[str, str]:
    """Each instance's name and FPM address on this host (status facts ask there directly)."""
    return {layout.instance_name(i): listen_address(i) for i in range(1, plan.instances + 1)}


def instance_template_data(settings: Settings, plan: Plan, index: int, listen: str) -> dict:
    return {
        "instance": layout.instance_name(index),
        "index": index,
        "php_version": settings.php_version,
        "app_user": settings.app_user,
        "listen": listen,
        "max_children": plan.php_max_children,
        "worker_memory_mib": settings.php_worker_memory_mib * 2,  # memory_limit: twice the expected size
    }


def unit_template_data(settings: Settings, plan: Plan) -> dict:
    return {
        "slice": plan.slices["app"],
        "instances": plan.instances,
        "php_version": settings.php_version,
        "config_dir": layout.FPM_CONFIG_DIR,
        "limits": plan.instance_limits,
    }


@deploy("lbstack php-fpm")
def php_fpm(settings: Settings, plan: Plan) -> None:
    version = settings.php_version
    apt.packages(name=f"Install PHP {version} (FPM, CLI, extensions)", packages=packages(settings), no_recommends=True)
    systemd.service(
        name=f"Stop and disable Debian's php{version}-fpm (the www pool; lbstack runs its own masters)",
        service=f"php{version}-fpm.service",
        running=False,
        enabled=False,
    )
    files.directory(name=f"Directory {layout.LOG_DIR}", path=layout.LOG_DIR, user="root", group="root", mode="755")
    files.directory(name=f"Directory {layout.FPM_CONFIG_DIR}", path=layout.FPM_CONFIG_DIR, user="root", group="root",
                    mode="755")

    ini = files.template(
        name=f"Render {ini_path(settings)}",
        src=template("/etc/php/fpm/conf.d/90-lbstack.ini"),
        dest=ini_path(settings),
        mode="644",
        jinja_env_kwargs=jinja(),
        opcache_mib=OPCACHE_MIB,
    )
    unit = files.template(
        name=f"Render {UNIT_FILE}",
        src=template(UNIT_FILE),
        dest=UNIT_FILE,
        mode="644",
        jinja_env_kwargs=jinja(),
        **unit_template_data(settings, plan),
    )
    indexes = range(1, plan.instances + 1)
    staged = []
    for index in indexes:
        live = layout.fpm_config(index)
        files.template(
            name=f"Render {live} (staged)",
            src=template(f"{layout.FPM_CONFIG_DIR}/app.conf"),
            dest=layout.staged(live),
            mode="644",
            jinja_env_kwargs=jinja(),
            **instance_template_data(settings, plan, index, listen_address(index)),
        )
        staged.append((layout.staged(live), live, "644"))
    fpm = f"/usr/sbin/php-fpm{version}"
    test = " && ".join(f"{fpm} --test --fpm-config {shlex.quote(s)}" for s, _, _ in staged)
    configs = promote(
        name=f"Validate ({fpm} --test) and promote {layout.FPM_CONFIG_DIR}/app{{1..{plan.instances}}}.conf",
        files=staged,
        test=test,
    )
    daemon_reload(name="systemctl daemon-reload (if the instance units changed on disk)",
                  units=[layout.fpm_unit(i) for i in indexes], changed=[unit])
    for index in indexes:
        unit_active(name=f"Start and enable {layout.fpm_unit(index)}", unit=layout.fpm_unit(index))
    one_at_a_time(plan, "restart", f"Restart the instances one at a time ({UNIT_FILE} changed)", unit.did_change)
    one_at_a_time(plan, "reload-or-restart",
                  "Reload the instances one at a time (their config or PHP settings changed)",
                  any_changed(configs, ini))
    _remove_surplus(plan)


def one_at_a_time(plan: Plan, action: str, name: str, when) -> None:
    """``systemctl <action>`` each instance in turn (``when``: the ``_if`` condition), so the
    balancer always has the others."""
    units = " ".join(layout.fpm_unit(i) for i in range(1, plan.instances + 1))
    server.shell(name=name, commands=[f"for u in {units}; do systemctl {action} $u; done"], _if=when)


def _remove_surplus(plan: Plan) -> None:
    """Instances beyond the planned count (after scaling down): stopped, disabled, config removed."""
    present = host.get_fact(FindFiles, path=layout.FPM_CONFIG_DIR, maxdepth=1, fname="app*.conf") or []
    for path in sorted(present):
        name = path.rsplit("/", 1)[-1][:-len(".conf")]
        index = name[3:]
        if not index.isdigit() or int(index) <= plan.instances:
            continue
        unit = layout.fpm_unit(int(index))
        systemd.service(name=f"Stop and disable {unit} (beyond {plan.instances} instances)", service=unit,
                        running=False, enabled=False)
        for path_ in (path, layout.staged(path)):
            files.file(name=f"Remove {path_}", path=path_, present=False)
