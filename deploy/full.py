"""The whole stack on every host of the inventory, each component on its group's hosts, then
verification of the live state against the capacity plan.

    pyinfra -y inventories/prod.py deploy/full.py
"""

from pyinfra import host

from deploy import base, host_context, limits, verification

settings, plan = host_context(host)
base.base(settings, plan)
limits.limits(settings, plan)
verification.verification(settings, plan)
