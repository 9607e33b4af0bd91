"""Verification: the last step of every run, comparing lbstack's facts with the capacity plan."""

from __future__ import annotations

from pyinfra.api import deploy

from deploy import base
from lbstack.operations import verify
from lbstack.plan import Plan
from lbstack.settings import Settings


@deploy("lbstack verification")
def verification(settings: Settings, plan: Plan) -> None:
    verify(
        name="Verify the host against the capacity plan",
        settings=settings,
        plan=plan,
        base_packages=base.PACKAGES,
        sysctl_file=base.SYSCTL_FILE,
    )
