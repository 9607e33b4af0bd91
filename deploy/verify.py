"""Verification only: read the live state back and compare it with the plan; changes nothing.

    pyinfra -y inventories/prod.py deploy/verify.py
"""

from pyinfra import host

from deploy import verification
from lbstack.context import host_context

settings, plan = host_context(host)
verification.verification(settings, plan)
