"""Redis: the app's sessions and cache. One password (Redis ACL, stored as its SHA-256 in the
config), ``maxmemory`` from the plan with ``noeviction`` (sessions are never evicted; the app's
cache keys expire by TTL and a refused cache write is tolerated), append-only persistence so
sessions survive a restart, bound to localhost unless the app runs on other hosts.

The config is rendered without the secret to the source directory, then written on the host by
``lbstack-secrets`` with the password's hash filled in. Settings that scaling changes (maxmemory,
maxclients) are applied to the running server with ``CONFIG SET``; Redis restarts only when
another setting changes.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import StringCommand, deploy, operation
from pyinfra.operations import apt, server

from deploy import SCHED_POLICY, group_hosts, jinja, restart_needed, same_host, service_dropin, service_in_slice, template
from facts.redis import LiveConfig
from lbstack import layout
from lbstack.operations import secret_file, template_file
from lbstack.plan import Plan
from lbstack.settings import Settings

PACKAGES = ["redis-server", "redis-tools"]
CONFIG = "/etc/redis/redis.conf"
CLIENT_HEADROOM = 100  # connections beyond one per PHP worker (admin, monitoring)


def config_template_data(settings: Settings, plan: Plan, remote_clients: bool, app_hosts: int) -> dict:
    return {
        "source": layout.source(CONFIG),
        "bind": "0.0.0.0" if remote_clients else "127.0.0.1 -::1",
        "tcp_backlog": 511 if int(plan.sysctl["net.core.somaxconn"]) < 511 else plan.sysctl["net.core.somaxconn"],
        "maxmemory_mib": plan.redis_maxmemory_mib,
        "maxclients": plan.instances * plan.php_max_children * max(1, app_hosts) + CLIENT_HEADROOM,
    }


@deploy("lbstack redis")
def redis(settings: Settings, plan: Plan) -> None:
    apt.packages(name="Install Redis", packages=PACKAGES, no_recommends=True)
    dropin = service_dropin("redis-server.service", plan.slices["cache"], restart="always",
                            CPUSchedulingPolicy=SCHED_POLICY)
    data = config_template_data(settings, plan, remote_clients=any(not same_host(h) for h in group_hosts("app")),
                                app_hosts=len(group_hosts("app")))
    # compared with the secret-free source of the last run: the live file carries the password hash
    static_change = restart_needed(layout.source(CONFIG), CONFIG, data, set(DYNAMIC))
    template_file(
        name=f"Render {CONFIG} (secret-free source {layout.source(CONFIG)})",
        src=template(CONFIG),
        dest=layout.source(CONFIG),
        mode="600",
        jinja_env_kwargs=jinja(),
        **data,
    )
    config = secret_file(
        name=f"Write {CONFIG} on the host (password hash filled in there)",
        source=layout.source(CONFIG),
        dest=CONFIG,
        owner="redis",
        group="redis",
        mode="640",
    )
    service_in_slice("redis-server.service", plan.slices["cache"], dropin)
    server.shell(
        name="Restart Redis (a setting only a restart applies, or its drop-in, changed)",
        commands=["systemctl restart redis-server.service"],
        _if=lambda: dropin.did_change() or (config.did_change() and static_change),
    )
    live_settings(name="Redis's running maxmemory, policy and maxclients are the plan's (CONFIG SET; no restart; "
                       "maxclients only raised here)",
                  wanted=live_values(plan, data), raise_only=("maxclients",))


def final_sizing(settings: Settings, plan: Plan) -> None:
    """After the app instances changed (scaling down): lower what was only raised before them."""
    data = config_template_data(settings, plan, remote_clients=any(not same_host(h) for h in group_hosts("app")),
                                app_hosts=len(group_hosts("app")))
    live_settings(name="Redis's maxclients down to the plan's (after the app instances changed)",
                  wanted=live_values(plan, data))


# sized by the plan and changed by scaling: applied to the running server with CONFIG SET
DYNAMIC = ("maxmemory", "maxmemory-policy", "maxclients")


def live_values(plan: Plan, data: dict | None = None) -> dict[str, str]:
    """The settings the running server must have, as CONFIG GET prints them."""
    wanted = {"maxmemory": str(plan.redis_maxmemory_mib * 1024 * 1024), "maxmemory-policy": "noeviction"}
    if data is not None:
        wanted["maxclients"] = str(data["maxclients"])
    return wanted


@operation()
def live_settings(wanted: dict[str, str], raise_only: tuple[str, ...] = ()):
    """``CONFIG SET`` each of ``wanted`` that the running server has changed (e.g. by hand with
    redis-cli); the file already says the same, so a restart would too, without the downtime."""
    live = host.get_fact(LiveConfig, keys=sorted(wanted))
    if not live:
        return  # not answering yet (first run before the restart) or no password: nothing to compare
    secret = shlex.quote(f"{layout.SECRETS_DIR}/redis_password")
    for key, value in sorted(wanted.items()):
        lower = key in raise_only and str(live.get(key, "")).isdigit() and int(live[key]) > int(value)
        if live.get(key) != value and not lower:
            yield StringCommand(f'REDISCLI_AUTH="$(cat {secret})" redis-cli --no-auth-warning '
                                f"CONFIG SET {shlex.quote(key)} {shlex.quote(value)}")
