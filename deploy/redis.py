"""Redis: the app's sessions and cache. Two users (Redis ACL, each password stored as its SHA-256
in the config): the app's, refused Redis' @dangerous commands (but FLUSHDB), and lbstack's own
admin user for the live settings and INFO; users added at runtime are removed. ``maxmemory`` from the plan with ``noeviction`` (sessions are never evicted; the app's
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

from facts.redis import AclUsers, LiveConfig, admin_cli
from lbstack import checks, layout, packages, services
from lbstack.layout import REDIS_CONFIG as CONFIG
from lbstack.operations import secret_file, template_file
from lbstack.plan import Plan
from lbstack.settings import Settings
from lbstack.render import jinja, template
from lbstack.topology import own_address, remote_app_clients


def config_template_data(plan: Plan, remote_clients: bool, own: str = "0.0.0.0", monitoring: bool = False) -> dict:
    """``own``: this host's private address (:func:`lbstack.topology.own_address`), where remote
    app hosts connect; loopback stays for the host's own tools."""
    return {
        "source": layout.source(CONFIG),
        "bind": ("0.0.0.0" if own == "0.0.0.0" else f"127.0.0.1 -::1 {own}") if remote_clients else "127.0.0.1 -::1",
        "tcp_backlog": plan.redis.tcp_backlog,
        "maxmemory_mib": plan.redis.maxmemory_mib,
        "maxclients": plan.redis.maxclients,
        "app_acl": layout.REDIS_APP_ACL,
        "admin_user": layout.REDIS_ADMIN_USER,
        "admin_acl": layout.REDIS_ADMIN_ACL,
        "monitor_user": layout.REDIS_MONITOR_USER if monitoring else "",
        "monitor_acl": layout.REDIS_MONITOR_ACL,
    }


@deploy("lbstack redis")
def redis(settings: Settings, plan: Plan) -> None:
    apt.packages(name="Install Redis", packages=packages.CACHE, no_recommends=True)
    dropin = services.dropin("redis-server.service", plan.slices["cache"], restart="always",
                             CPUSchedulingPolicy=services.SCHED_POLICY)
    data = config_template_data(plan, remote_app_clients(), own_address(), settings.monitoring)
    # compared with the secret-free source of the last run: the live file carries the password hash
    static_change = services.restart_needed(layout.source(CONFIG), CONFIG, data, set(DYNAMIC))
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
    services.in_slice("redis-server.service", plan.slices["cache"], dropin)
    server.shell(
        name="Restart Redis (a setting only a restart applies, or its drop-in, changed)",
        commands=["systemctl restart redis-server.service"],
        _if=lambda: dropin.did_change() or (config.did_change() and static_change),
    )
    live_settings(name="Redis's running maxmemory, policy and maxclients are the plan's (CONFIG SET; no restart; "
                       "maxclients only raised here)",
                  wanted=live_values(plan), raise_only=("maxclients",))
    live_users(name="Redis has no user but the app's and lbstack's (ACL DELUSER of any added at runtime)",
               monitoring=settings.monitoring)


def final_sizing(settings: Settings, plan: Plan) -> None:
    """After the app instances changed (scaling down): lower what was only raised before them."""
    live_settings(name="Redis's maxclients down to the plan's (after the app instances changed)",
                  wanted=live_values(plan))


# sized by the plan and changed by scaling: applied to the running server with CONFIG SET
DYNAMIC = ("maxmemory", "maxmemory-policy", "maxclients")


def live_values(plan: Plan) -> dict[str, str]:
    """The settings the running server must have, as CONFIG GET prints them."""
    return {"maxmemory": str(plan.redis.maxmemory_mib * 1024 * 1024), "maxmemory-policy": "noeviction",
            "maxclients": str(plan.redis.maxclients)}


def _admin_cli() -> str:
    """redis-cli as lbstack's admin user on the Redis host (password read there, from the store)."""
    return admin_cli(layout.SECRETS_DIR, layout.REDIS_ADMIN_USER, "")


@operation()
def live_settings(wanted: dict[str, str], raise_only: tuple[str, ...] = ()):
    """``CONFIG SET`` each of ``wanted`` that the running server has changed (e.g. by hand with
    redis-cli); the file already says the same, so a restart would too, without the downtime."""
    live = host.get_fact(LiveConfig, keys=sorted(wanted), store=layout.SECRETS_DIR, admin_user=layout.REDIS_ADMIN_USER)
    if not live:
        return  # not answering yet (first run before the restart) or no password: nothing to compare
    for key, value in sorted(wanted.items()):
        lower = key in raise_only and str(live.get(key, "")).isdigit() and int(live[key]) > int(value)
        if live.get(key) != value and not lower:
            yield StringCommand(f"{_admin_cli()} CONFIG SET {shlex.quote(key)} {shlex.quote(value)}")


@operation()
def live_users(monitoring: bool = False):
    """``ACL DELUSER`` each user the running server has beyond the two of redis.conf (added at
    runtime with ACL SETUSER); a managed user whose rights were changed at runtime (ACL DRYRUN
    answers other than planned) gets a restart, which reads the file's rules again."""
    live = host.get_fact(AclUsers, probes=layout.redis_probes(monitoring), store=layout.SECRETS_DIR,
                         admin_user=layout.REDIS_ADMIN_USER)
    if not live["answering"]:
        return  # not answering the admin user yet (first run before the restart)
    extra = sorted(set(live["users"]) - set(layout.redis_acl_probes(monitoring)))
    if extra:
        yield StringCommand(f"{_admin_cli()} ACL DELUSER " + " ".join(shlex.quote(u) for u in extra))
    if any(not row.ok for row in checks.check_redis_users(live, monitoring)[1:]):
        yield StringCommand("systemctl restart redis-server.service")
