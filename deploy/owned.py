"""Directories lbstack owns hold nothing it did not put there (or Debian's own links): anything
else is moved into a dated quarantine and the service reading the directory reads it again
(:mod:`lbstack.owned`). Runs before the components, so their own steps start from a clean slate."""

from __future__ import annotations

import time

from pyinfra import host
from pyinfra.api import StringCommand, deploy, operation

from facts.files import DirEntries
from lbstack import owned as policy
from lbstack.plan import Plan
from lbstack.settings import Settings


@deploy("lbstack owned directories")
def owned(settings: Settings, plan: Plan) -> None:
    dirs = policy.owned_dirs(settings, plan)
    quarantined(name=f"Nothing unmanaged in {', '.join(d.path for d in dirs[:4])}, ... ({len(dirs)} directories "
                     f"lbstack owns): moved into {policy.QUARANTINE_DIR}/<time>/", dirs=dirs)


@operation()
def quarantined(dirs: list[policy.OwnedDir]):
    found = policy.unmanaged(dirs, host.get_fact(DirEntries, paths=[d.path for d in dirs]))
    if not found:
        return
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    paths = [path for owned_dir in dirs for path in found.get(owned_dir.path, [])]
    for argv in policy.quarantine_moves(paths, stamp):
        yield StringCommand(*argv)
    for owned_dir in dirs:  # then each directory's reader reads it again
        if owned_dir.path in found:
            yield from owned_dir.then


@operation()
def moved_to_quarantine(paths: list[str]):
    """Move ``paths`` into the dated quarantine (:func:`lbstack.owned.quarantine_moves`)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for argv in policy.quarantine_moves(paths, stamp):
        yield StringCommand(*argv)
