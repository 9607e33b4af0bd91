"""Facts that read systemd units' resource limits back, from systemd and from the cgroup filesystem.

Both cgroup layouts exist in the wild: v1 (legacy/hybrid: one hierarchy per controller, e.g. this
project's nspawn rehearsal hosts) and v2 (unified: Debian 12 VPSes, the qemu rehearsal host).
"""

from __future__ import annotations

import re
import shlex

from pyinfra.api import FactBase

# systemctl show properties read for each unit
PROPERTIES = (
    "Id", "LoadState", "ActiveState", "SubState", "UnitFileState", "ControlGroup",
    "CPUQuotaPerSecUSec", "MemoryHigh", "MemoryMax", "TasksMax", "NeedDaemonReload", "MainPID",
)
# cgroup files read per layout: v1 as <controller>/<file>, v2 as <file>
V1_FILES = ("memory/memory.limit_in_bytes", "cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us", "pids/pids.max")
V2_FILES = ("memory.max", "memory.high", "cpu.max", "pids.max")
# v1 reports "no memory limit" as the largest page-aligned signed 64-bit number
V1_UNLIMITED = 9223372036854771712

_SPAN = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|min|h)")
_SPAN_US = {"us": 1, "ms": 1_000, "s": 1_000_000, "min": 60_000_000, "h": 3_600_000_000}


def parse_timespan_us(value: str) -> int | None:
    """systemd time span ('1.500000s', '840ms', 'infinity') -> microseconds, None if unlimited."""
    value = value.strip()
    if not value or value == "infinity":
        return None
    parts = _SPAN.findall(value.replace(" ", ""))
    if not parts:
        raise ValueError(f"not a systemd time span: {value!r}")
    return round(sum(float(n) * _SPAN_US[unit] for n, unit in parts))


def _limit(value: str) -> int | None:
    """'infinity' / 'max' / '' -> None; digits -> int."""
    value = value.strip()
    if value in ("", "infinity", "max"):
        return None
    number = int(value)
    return None if number >= V1_UNLIMITED else number


class UnitLimits(FactBase):
    """
    Resource limits of systemd units as systemd states them and as the kernel enforces them.

    Returns, per unit (absent units have ``load_state`` "not-found")::

        {
            "lbstack-app.slice": {
                "load_state": "loaded", "active_state": "active", "sub_state": "active",
                "unit_file_state": "enabled", "control_group": "/lbstack.slice/lbstack-app.slice",
                "need_daemon_reload": False,      # its files changed since systemd loaded them
                "cgroup_version": 1,              # 1 (legacy/hybrid) or 2 (unified)
                "systemd": {                      # from systemctl show
                    "cpu_quota_us_per_s": 420000, # CPUQuota: 420 % -> 420000 us per second
                    "memory_high": 8021606400,    # bytes, None = unlimited
                    "memory_max": 8918138880,     # bytes, None = unlimited
                    "tasks_max": 185,             # None = unlimited
                },
                "cgroup": {                       # from the cgroup files, None = unlimited
                    "cpu_quota_us": 420000,       # per period; v1 cpu.cfs_quota_us, v2 cpu.max
                    "cpu_period_us": 100000,
                    "memory_max": 8918138880,     # v1 memory.limit_in_bytes, v2 memory.max
                    "memory_high": 8021606400,    # v2 only; v1 has no such file: key absent
                    "pids_max": 185,
                },
            },
        }

    ``cgroup`` is empty when the unit has no cgroup (inactive). Units with a main process also
    have ``"main_pid"`` and ``"cpus_allowed"``: the CPUs its process may run on, as the kernel
    has them (``Cpus_allowed_list`` of ``/proc/<pid>/status``, e.g. ``"1"`` or ``"0-7"``).
    """

    def requires_command(self, units) -> str:
        return "systemctl"

    def command(self, units) -> str:
        # one systemctl for every unit (it prints one block per unit, in the order asked, each
        # ended by a blank line); each block is printed after its unit's name and followed by its
        # cgroup files, read from the block's ControlGroup
        quoted = " ".join(shlex.quote(u) for u in units)
        props = ",".join(PROPERTIES)
        v1 = " ".join(V1_FILES)
        v2 = " ".join(V2_FILES)
        version = ('if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then v=2; else v=1; fi; '
                   'echo "@cgroup_version=$v"; ')
        if not units:
            return version + "true"  # a bare `systemctl show` would describe the manager itself
        return (
            version
            + "cgroup_files() { "
            '[ "${pid:-0}" = 0 ] || sed -n "s/^Cpus_allowed_list:[[:space:]]*/@cpus_allowed=/p" '
            '"/proc/$pid/status" 2>/dev/null; '
            '[ -n "$cg" ] || return 0; '
            f'if [ $v = 2 ]; then for f in {v2}; do '
            '[ -r "/sys/fs/cgroup$cg/$f" ] && echo "@cg.$f=$(cat "/sys/fs/cgroup$cg/$f")"; done; '
            f"else for f in {v1}; do "
            'p="/sys/fs/cgroup/${f%%/*}$cg/${f#*/}"; [ -r "$p" ] && echo "@cg.${f#*/}=$(cat "$p")"; done; fi; '
            "return 0; }; "
            f"systemctl show -p {props} -- {quoted} | {{ "
            f"set -- {quoted}; cg=; pid=0; first=1; "
            "while IFS= read -r line; do "
            'if [ -z "$line" ]; then cgroup_files; cg=; pid=0; first=1; continue; fi; '
            'if [ $first = 1 ]; then echo "@unit=$1"; shift; first=0; fi; '
            'printf "%s\\n" "$line"; '
            'case "$line" in ControlGroup=*) cg=${line#ControlGroup=} ;; MainPID=*) pid=${line#MainPID=} ;; esac; '
            "done; "
            "[ $first = 1 ] || cgroup_files; }"
        )

    def process(self, output) -> dict[str, dict]:
        units: dict[str, dict] = {}
        version = 1
        current: dict | None = None
        for line in output:
            key, _, value = line.strip().partition("=")
            if key == "@cgroup_version":
                version = int(value)
            elif key == "@unit":
                current = units.setdefault(value, {"cgroup_version": version, "systemd": {}, "cgroup": {}})
            elif current is None:
                continue
            elif key == "@cpus_allowed":
                current["cpus_allowed"] = value
            elif key.startswith("@cg."):
                _cgroup_file(current["cgroup"], key[4:], value)
            else:
                _systemd_property(current, key, value)
        return units


def _systemd_property(unit: dict, key: str, value: str) -> None:
    simple = {
        "LoadState": "load_state", "ActiveState": "active_state", "SubState": "sub_state",
        "UnitFileState": "unit_file_state", "ControlGroup": "control_group",
    }
    if key in simple:
        unit[simple[key]] = value
    elif key == "MainPID":
        unit["main_pid"] = int(value) if value.isdigit() else 0
    elif key == "NeedDaemonReload":
        unit["need_daemon_reload"] = value == "yes"
    elif key == "CPUQuotaPerSecUSec":
        unit["systemd"]["cpu_quota_us_per_s"] = parse_timespan_us(value)
    elif key == "MemoryHigh":
        unit["systemd"]["memory_high"] = _limit(value)
    elif key == "MemoryMax":
        unit["systemd"]["memory_max"] = _limit(value)
    elif key == "TasksMax":
        unit["systemd"]["tasks_max"] = _limit(value)


def _cgroup_file(cgroup: dict, name: str, value: str) -> None:
    if name in ("memory.limit_in_bytes", "memory.max"):
        cgroup["memory_max"] = _limit(value)
    elif name == "memory.high":
        cgroup["memory_high"] = _limit(value)
    elif name == "cpu.cfs_quota_us":
        quota = int(value)
        cgroup["cpu_quota_us"] = None if quota < 0 else quota
    elif name == "cpu.cfs_period_us":
        cgroup["cpu_period_us"] = int(value)
    elif name == "cpu.max":
        quota, _, period = value.partition(" ")
        cgroup["cpu_quota_us"] = _limit(quota)
        cgroup["cpu_period_us"] = int(period) if period else None
    elif name == "pids.max":
        cgroup["pids_max"] = _limit(value)


CONTROL_DIRS = ("/etc/systemd/system.control", "/run/systemd/system.control")


class ControlOverrides(FactBase):
    """
    Drop-ins that ``systemctl set-property`` wrote for ``units`` (persistent in
    ``/etc/systemd/system.control``, ``--runtime`` in ``/run/systemd/system.control``): hand-made
    resource settings that override the plan's.

    Returns ``{"lbstack-fpm@2.service": ["/etc/systemd/system.control/lbstack-fpm@2.service.d/50-MemoryMax.conf"]}``
    (units without any are left out).
    """

    @staticmethod
    def default():
        return {}

    def command(self, units) -> str:
        dirs = " ".join(CONTROL_DIRS)
        quoted = " ".join(shlex.quote(u) for u in units)
        return (f"for u in {quoted}; do for d in {dirs}; do for f in \"$d/$u.d\"/*.conf; do "
                '[ -f "$f" ] && echo "$u $f"; done; done; done; true')

    def process(self, output) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for line in output:
            unit, _, path = line.strip().partition(" ")
            if path:
                found.setdefault(unit, []).append(path)
        return found


class StartedBeforeChange(FactBase):
    """
    Each of ``units`` (``{unit: [file, ...]}``) whose main process started before the newest of
    its files was last written: it runs an older unit file or drop-in than the one on disk (a run
    that wrote the file and then failed, say). Units not running, and files missing, are left out.

    Returns ``["lbstack-fpm@1.service"]``.
    """

    @staticmethod
    def default():
        return []

    def command(self, units) -> str:
        checks = []
        for unit, paths in units.items():
            u = shlex.quote(unit)
            files = " ".join(shlex.quote(p) for p in paths)
            checks.append(f"t=$(systemctl show -P ExecMainStartTimestamp {u}); [ -n \"$t\" ] && "
                          f"s=$(date -d \"$t\" +%s) && m=$(stat -c %Y {files} 2>/dev/null | sort -n | tail -n1) && "
                          f"[ -n \"$m\" ] && [ \"$s\" -lt \"$m\" ] && echo {u}")
        return "; ".join(checks) + "; true"

    def process(self, output) -> list[str]:
        return [line.strip() for line in output if line.strip()]


class UnitExposure(FactBase):
    """
    ``systemd-analyze security``'s overall exposure of each of ``units`` (0 best, 10 worst): how
    much of systemd's sandboxing the unit as loaded uses.

    Returns ``{"nginx.service": 2.6, "lbstack-fpm@1.service": 1.4}``; a unit it cannot rate
    (not loaded) is left out.
    """

    @staticmethod
    def default():
        return {}

    def requires_command(self, units) -> str:
        return "systemd-analyze"

    def command(self, units) -> str:
        return "; ".join(f"systemd-analyze security --no-pager {shlex.quote(u)} 2>/dev/null | tail -n1"
                         for u in units) + "; true"

    def process(self, output) -> dict[str, float]:
        found = {}
        for line in output:
            match = re.search(r"Overall exposure level for (\S+): ([0-9.]+)", line)
            if match:
                found[match.group(1)] = float(match.group(2))
        return found
