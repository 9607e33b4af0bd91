"""Local rehearsal hosts as a split stack: each group on the hosts ``LBSTACK_REHEARSAL_GROUPS``
names, the hosts reaching each other on a rehearsal network (``lbstack rehearsal up NAME --net
NET``: each host's ``private_address`` comes from it).

    lbstack rehearsal up web1 --net split
    lbstack rehearsal up data1 --net split
    LBSTACK_REHEARSAL_GROUPS="lb=web1 app=web1 db=data1 cache=data1" \\
        pyinfra -y inventories/rehearsal_split.py deploy/full.py

Settings as in ``inventories/rehearsal.py`` (``LBSTACK_SETTINGS=FILE.yaml`` replaces them);
``LBSTACK_REHEARSAL_HOST_SETTINGS`` (JSON, ``{"HOST": {"instances": 3}}``) changes them for one
host, as a host's own ``lbstack`` data does in ``inventories/split.py``. Every host is planned
from its own facts, for the components of its groups, at the production size through the
capacity override.
"""

import json
import os

from lbstack.rehearsal import list_hosts, pyinfra_host
from lbstack.settings import inventory_data

SETTINGS = {
    "capacity_cpus": 8,
    "capacity_memory_mib": 16384,
    "ntp_servers": ["127.0.0.1"],  # a rehearsal host sends no NTP traffic out
}
_GROUPS = ("lb", "app", "db", "cache")


def _groups(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for part in text.split():
        group, _, names = part.partition("=")
        if group not in _GROUPS or not names:
            raise SystemExit(f"lbstack: LBSTACK_REHEARSAL_GROUPS: {part!r} is not GROUP=HOST[,HOST...] "
                             f"with GROUP one of {', '.join(_GROUPS)}")
        found[group] = [n for n in names.split(",") if n]
    missing = [g for g in _GROUPS if g not in found]
    if missing:
        raise SystemExit(f"lbstack: LBSTACK_REHEARSAL_GROUPS names no host for {', '.join(missing)} "
                         '(e.g. "lb=web1 app=web1 db=data1 cache=data1")')
    return found


_placed = _groups(os.environ.get("LBSTACK_REHEARSAL_GROUPS", ""))
_names = list(dict.fromkeys(n for g in _GROUPS for n in _placed[g]))
_up = {h.name: h for h in list_hosts()}
_missing = [n for n in _names if n not in _up]
if _missing:
    raise SystemExit(f"lbstack: no rehearsal host {', '.join(_missing)}: start it with "
                     "`lbstack rehearsal up NAME --net NET` (see `lbstack rehearsal list`).")
_off_net = [n for n in _names if not _up[n].private_address]
if len(_names) > 1 and _off_net:
    raise SystemExit(f"lbstack: {', '.join(_off_net)} on no rehearsal network: the hosts of a split stack "
                     "must reach each other (`lbstack rehearsal up NAME --net NET`).")

_settings = inventory_data(os.environ.get("LBSTACK_SETTINGS") or SETTINGS)
try:
    _own = json.loads(os.environ.get("LBSTACK_REHEARSAL_HOST_SETTINGS") or "{}")
except ValueError as exc:
    raise SystemExit(f"lbstack: LBSTACK_REHEARSAL_HOST_SETTINGS: not JSON ({exc})") from None
if not isinstance(_own, dict) or not all(isinstance(v, dict) for v in _own.values()) or set(_own) - set(_names):
    raise SystemExit('lbstack: LBSTACK_REHEARSAL_HOST_SETTINGS: give {"HOST": {"setting": value}} for hosts of '
                     "LBSTACK_REHEARSAL_GROUPS")


def _entry(name: str) -> tuple[str, dict]:
    host, data = pyinfra_host(_up[name])
    if name in _own:  # this host's own settings: the stack's, changed as asked, validated the same
        data = {**data, **inventory_data({**_settings["lbstack"], **_own[name]})}
    return host, data


all = ([_entry(n) for n in _names], _settings)  # noqa: A001

lb = list(_placed["lb"])
app = list(_placed["app"])
db = list(_placed["db"])
cache = list(_placed["cache"])
