"""Local rehearsal hosts (``lbstack rehearsal up NAME [--vm]``), every one in every group.

    lbstack rehearsal up rehearsal1
    pyinfra -y inventories/rehearsal.py deploy/full.py

``LBSTACK_REHEARSAL_HOSTS=a,b`` limits the inventory to those hosts; ``LBSTACK_SETTINGS=FILE.yaml``
replaces the settings below. A rehearsal host sees this machine's CPUs and memory, so the plan is
made for the production size (8 vCPU / 16 GB) through the capacity override.
"""

import os

from lbstack.rehearsal import list_hosts, pyinfra_host
from lbstack.settings import inventory_data

SETTINGS = {
    "capacity_cpus": 8,
    "capacity_memory_mib": 16384,
    # a rehearsal host sends no NTP traffic out: timesyncd is pointed at the host itself
    "ntp_servers": ["127.0.0.1"],
}

_wanted = [n for n in os.environ.get("LBSTACK_REHEARSAL_HOSTS", "").split(",") if n]
_hosts = [pyinfra_host(h) for h in list_hosts() if not _wanted or h.name in _wanted]
_missing = sorted(set(_wanted) - {name for name, _ in _hosts})
if _missing or not _hosts:
    raise SystemExit(
        f"lbstack: no rehearsal host {', '.join(_missing) or 'is up'}: "
        "start one with `lbstack rehearsal up NAME` (see `lbstack rehearsal list`)."
    )

all = (_hosts, inventory_data(os.environ.get("LBSTACK_SETTINGS") or SETTINGS))  # noqa: A001

lb = [name for name, _ in _hosts]
app = list(lb)
db = list(lb)
cache = list(lb)
