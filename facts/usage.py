"""Facts about what systemd units are using right now: state, uptime, restarts, memory and CPU
(throttling included), read from systemd and from the cgroup files (v1 and v2)."""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase

from facts.limits import _limit

PROPERTIES = ("ActiveState", "SubState", "UnitFileState", "ActiveEnterTimestampMonotonic", "NRestarts",
              "MainPID", "TasksCurrent")


class UnitUsage(FactBase):
    """
    Per unit, its state and what its cgroup uses against its limits::

        {"lbstack-fpm@1.service": {
            "active_state": "active", "sub_state": "running", "unit_file_state": "enabled",
            "uptime_s": 3605.2,            # since it last became active; None when inactive
            "restarts": 0,                 # systemd's NRestarts (automatic restarts)
            "main_pid": 812, "tasks": 23,
            "memory_current": 91422720,    # bytes (v1 memory.usage_in_bytes, v2 memory.current)
            "memory_max": 1783627776,      # bytes, None = unlimited
            "cpu_usage_s": 12.81,          # CPU time used (v1 cpuacct.usage, v2 cpu.stat usage_usec)
            "cpu_periods": 1200, "cpu_throttled_periods": 3, "cpu_throttled_s": 0.21,
        }}
    """

    @staticmethod
    def default():
        return {}

    def requires_command(self, units) -> str:
        return "systemctl"

    def command(self, units) -> str:
        quoted = " ".join(shlex.quote(u) for u in units)
        return (
            'if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then v=2; else v=1; fi; '
            "echo \"@uptime=$(cut -d' ' -f1 /proc/uptime)\"; "
            f"for u in {quoted}; do echo \"@unit=$u\"; "
            f'systemctl show -p {",".join(PROPERTIES)} -- "$u"; '
            'cg=$(systemctl show -p ControlGroup --value -- "$u"); [ -n "$cg" ] || continue; '
            'if [ $v = 2 ]; then d=/sys/fs/cgroup$cg; '
            '[ -r $d/memory.current ] && echo "@mem=$(cat $d/memory.current)"; '
            '[ -r $d/memory.max ] && echo "@memmax=$(cat $d/memory.max)"; '
            '[ -r $d/cpu.stat ] && sed "s/^/@cpu./; s/ /=/" $d/cpu.stat; '
            'else m=/sys/fs/cgroup/memory$cg; c=/sys/fs/cgroup/cpu$cg; a=/sys/fs/cgroup/cpuacct$cg; '
            '[ -r $m/memory.usage_in_bytes ] && echo "@mem=$(cat $m/memory.usage_in_bytes)"; '
            '[ -r $m/memory.limit_in_bytes ] && echo "@memmax=$(cat $m/memory.limit_in_bytes)"; '
            '[ -r $c/cpu.stat ] && sed "s/^/@cpu./; s/ /=/" $c/cpu.stat; '
            '[ -r $a/cpuacct.usage ] && echo "@cpu.usage_nsec=$(cat $a/cpuacct.usage)"; '
            "fi; done; true"
        )

    def process(self, output) -> dict[str, dict]:
        units: dict[str, dict] = {}
        uptime = None
        current: dict | None = None
        for line in output:
            key, _, value = line.strip().partition("=")
            if key == "@uptime":
                uptime = float(value)
            elif key == "@unit":
                current = units.setdefault(value, {"uptime_s": None, "memory_current": None,
                                                   "memory_max": None, "cpu_usage_s": None,
                                                   "cpu_periods": None, "cpu_throttled_periods": None,
                                                   "cpu_throttled_s": None})
            elif current is not None:
                _usage(current, key, value)
        for unit in units.values():  # systemctl prints properties in its own order: compute last
            since = unit.pop("_since", 0)
            active = unit.get("active_state") in ("active", "reloading")
            unit["uptime_s"] = round(uptime - since / 1e6, 1) if active and since and uptime is not None else None
        return units


def _usage(unit: dict, key: str, value: str) -> None:
    simple = {"ActiveState": "active_state", "SubState": "sub_state", "UnitFileState": "unit_file_state"}
    if key in simple:
        unit[simple[key]] = value
    elif key == "ActiveEnterTimestampMonotonic":
        unit["_since"] = int(value or 0)
    elif key in ("NRestarts", "MainPID", "TasksCurrent"):
        number = _limit(value) if value.strip() not in ("", "[not set]") else None
        unit[{"NRestarts": "restarts", "MainPID": "main_pid", "TasksCurrent": "tasks"}[key]] = number
    elif key == "@mem":
        unit["memory_current"] = int(value)
    elif key == "@memmax":
        unit["memory_max"] = _limit(value)
    elif key in ("@cpu.usage_usec", "@cpu.usage_nsec"):
        unit["cpu_usage_s"] = round(int(value) / (1e6 if key.endswith("usec") else 1e9), 3)
    elif key == "@cpu.nr_periods":
        unit["cpu_periods"] = int(value)
    elif key == "@cpu.nr_throttled":
        unit["cpu_throttled_periods"] = int(value)
    elif key in ("@cpu.throttled_usec", "@cpu.throttled_time"):
        unit["cpu_throttled_s"] = round(int(value) / (1e6 if key.endswith("usec") else 1e9), 3)
