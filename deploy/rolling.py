"""A rolling update of the app instances only: a new release (``app_source``), changed FPM/PHP
settings, or every instance restarted after its unit changed, a batch at a time (each drained,
switched, health-gated and put back; rolled back automatically when a gate fails), then the queue
workers (each restarted into the new release after its running job), the balancer's members and
the verification.

    pyinfra -y inventories/prod.py deploy/rolling.py
    lbstack deploy --rolling inventories/prod.py [--set app_source=git+URL@v1.2.3]

``deploy/full.py`` takes the same path for the instances; this file skips the other components.
Changing the instance count (scaling) re-plans every component's limits: use ``full.py``.
"""

from pyinfra import host

from deploy import app, nginx, php_fpm, queue, verification
from lbstack.context import host_context

settings, plan = host_context(host)
if "app" in plan.components:
    tampered = app.app(settings, plan, php_fpm.php_fpm(settings, plan))
    queue.queue(settings, plan)  # the workers follow the release in service, each after its job
    app.quarantined(tampered)  # releases that failed their manifest, now that nothing runs them
if "lb" in plan.components:
    nginx.nginx(settings, plan)
verification.verification(settings, plan)
