"""Redis: the app's sessions and cache. One password (Redis ACL, stored as its SHA-256 in the
config), ``maxmemory`` from the plan with ``noeviction`` (sessions are never evicted; the app's
cache keys expire by TTL and a refused cache write is tolerated), append-only persistence so
sessions survive a restart, bound to localhost unless the app runs on other hosts.

The config is rendered without the secret to the source directory, then written on the host by
``lbstack-secrets`` with the password's hash filled in; Redis is restarted when it changes.
"""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.operations import apt, files, server

from deploy import group_hosts, jinja, same_host, service_dropin, service_in_slice, template
from lbstack import layout
from lbstack.operations import secret_file
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
    dropin = service_dropin("redis-server.service", plan.slices["cache"], restart="always")
    files.template(
        name=f"Render {CONFIG} (secret-free source {layout.source(CONFIG)})",
        src=template(CONFIG),
        dest=layout.source(CONFIG),
        mode="600",
        jinja_env_kwargs=jinja(),
        **config_template_data(settings, plan, remote_clients=any(not same_host(h) for h in group_hosts("app")),
                               app_hosts=len(group_hosts("app"))),
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
        name="Restart Redis (its config or drop-in changed)",
        commands=["systemctl restart redis-server.service"],
        _if=lambda: dropin.did_change() or config.did_change(),
    )
