"""Verification: the last step of every run, comparing lbstack's facts with the capacity plan
(:func:`lbstack.verification.gather`). Any difference fails the run with a
component/check/expected/actual table.
"""

from __future__ import annotations

import time

from pyinfra.api import deploy

from lbstack import hostscripts, textfiles, verification as host_verification
from lbstack.operations import verification_report
from lbstack.plan import Plan
from lbstack.settings import Settings


@deploy("lbstack verification")
def verification(settings: Settings, plan: Plan) -> None:
    record = None
    if settings.monitoring:
        def record(rows):
            return hostscripts.shell(textfiles.record_argv("deploy", textfiles.deploy_textfile(plan, rows, time.time())))
    verification_report(name="Verify the host against the capacity plan",
                        gather=lambda: host_verification.gather(settings, plan), record=record)
