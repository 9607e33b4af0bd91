"""The whole stack on every host of the inventory, each component on its group's hosts, then
verification of the live state against the capacity plan.

    pyinfra -y inventories/prod.py deploy/full.py
"""

from pyinfra import host, logger

from deploy import (
    app, base, firewall, hardening, keepalived, limits, monitoring, owned, mariadb, nginx, php_fpm, queue, redis, secrets,
    verification,
)
from lbstack import report
from lbstack.context import host_context
from lbstack.topology import floating

settings, plan = host_context(host)
report.print_tables(*report.plan_tables(plan, host.name), stderr=True)
base.base(settings, plan)
secrets.secrets()
limits.limits(settings, plan)
if settings.firewall:
    firewall.firewall(settings, plan)
hardening.hardening(settings)
owned.owned(settings, plan)
if "db" in plan.components:
    mariadb.mariadb(settings, plan)
if "cache" in plan.components:
    redis.redis(settings, plan)
if "app" in plan.components:
    tampered = app.app(settings, plan, php_fpm.php_fpm(settings, plan))
    queue.queue(settings, plan)  # after the switch: workers restart into the release in service
    app.quarantined(tampered)  # releases that failed their manifest, now that nothing runs them
if "lb" in plan.components:
    nginx.nginx(settings, plan)
    if floating(settings):
        keepalived.keepalived(settings, plan)
    elif settings.lb_floating_address:
        logger.warning(f"{host.name}: lb_floating_address is set, but there is one lb host: no keepalived "
                       "(add a second balancer to the lb group, or unset it)")
if settings.monitoring:
    monitoring.monitoring(settings, plan)
# connection limits were only raised before the instances changed; now they may come down
if "db" in plan.components:
    mariadb.final_sizing(settings, plan)
if "cache" in plan.components:
    redis.final_sizing(settings, plan)
verification.verification(settings, plan)
