"""The whole stack on every host of the inventory, each component on its group's hosts, then
verification of the live state against the capacity plan.

    pyinfra -y inventories/prod.py deploy/full.py
"""

from pyinfra import host

from deploy import base, host_context, limits, verification
from lbstack import report

settings, plan = host_context(host)
report.print_tables(*report.plan_tables(plan, host.name), stderr=True)
base.base(settings, plan)
limits.limits(settings, plan)
verification.verification(settings, plan)
