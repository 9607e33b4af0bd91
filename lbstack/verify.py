"""Verification: compare what the facts read from a host with what the plan says.

Pure functions over fact values (see ``facts/``); each returns :class:`Check` rows. A row whose
``ok`` is None was not applicable on this host (for example ``memory.high`` on cgroup v1) and
says why in ``note``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from lbstack.plan import Limits, Plan
from lbstack.settings import Settings

MIB = 1024 * 1024


@dataclass(frozen=True)
class Check:
    component: str
    check: str
    expected: str
    actual: str
    ok: bool | None  # None: not applicable here, see note
    note: str = ""

    def to_data(self) -> dict:
        return asdict(self)


def _row(component: str, check: str, expected, actual, note: str = "") -> Check:
    return Check(component, check, _show(expected), _show(actual), expected == actual, note)


def _show(value) -> str:
    if value is None:
        return "unlimited"
    return str(value)


def _mib(value: int | None) -> int | None:
    return None if value is None else value // MIB


def check_slice(component: str, unit: str, limits: Limits, fact: dict | None) -> list[Check]:
    """One component's slice: active and enabled, limits as systemd and as the cgroup files say."""
    fact = fact or {}
    rows = [
        _row(component, f"{unit} active", "active", fact.get("active_state", "absent")),
        _row(component, f"{unit} enabled", "enabled", fact.get("unit_file_state", "absent")),
    ]
    sd = fact.get("systemd", {})
    rows += [
        _row(component, "systemd CPUQuota", f"{limits.cpu_quota_pct}%", _quota_pct(sd.get("cpu_quota_us_per_s"), 1_000_000)),
        _row(component, "systemd MemoryHigh", f"{limits.memory_high_mib} MiB", _mib_str(sd.get("memory_high"))),
        _row(component, "systemd MemoryMax", f"{limits.memory_max_mib} MiB", _mib_str(sd.get("memory_max"))),
        _row(component, "systemd TasksMax", limits.tasks_max, sd.get("tasks_max")),
    ]
    cg = fact.get("cgroup", {})
    version = fact.get("cgroup_version", 0)
    if not cg:
        return rows + [Check(component, "cgroup files", "present", "absent", False, "unit has no cgroup")]
    memory_file = "memory.max" if version == 2 else "memory.limit_in_bytes"
    cpu_file = "cpu.max" if version == 2 else "cpu.cfs_quota_us/cfs_period_us"
    rows += [
        _row(component, f"cgroup v{version} {cpu_file}", f"{limits.cpu_quota_pct}%",
             _quota_pct(cg.get("cpu_quota_us"), cg.get("cpu_period_us"))),
        _row(component, f"cgroup v{version} {memory_file}", f"{limits.memory_max_mib} MiB", _mib_str(cg.get("memory_max"))),
        _row(component, f"cgroup v{version} pids.max", limits.tasks_max, cg.get("pids_max")),
    ]
    if version == 2:
        rows.append(_row(component, "cgroup v2 memory.high", f"{limits.memory_high_mib} MiB", _mib_str(cg.get("memory_high"))))
    else:
        rows.append(Check(component, "cgroup v1 memory.high", f"{limits.memory_high_mib} MiB", "-", None,
                          "cgroup v1 has no memory.high; MemoryMax is enforced"))
    return rows


def _quota_pct(quota_us: int | None, period_us: int | None) -> str:
    if quota_us is None or not period_us:
        return "unlimited"
    return f"{round(quota_us * 100 / period_us)}%"


def _mib_str(value: int | None) -> str:
    return "unlimited" if value is None else f"{_mib(value)} MiB"


def check_limits(plan: Plan, units: dict[str, dict]) -> list[Check]:
    rows: list[Check] = []
    for component in plan.components:
        unit = plan.slices[component]
        rows += check_slice(component, unit, plan.limits[component], units.get(unit))
    return rows


def check_base(
    settings: Settings,
    plan: Plan,
    *,
    packages: list[str],
    installed: dict,
    users: dict,
    sysctl: dict[str, dict[str, str]],
    container: str | None,
    timesync: dict[str, bool] | None,
) -> list[Check]:
    """Base host: packages, service user, kernel settings (file, and live outside containers), time sync."""
    missing = [p for p in packages if p not in installed]
    rows = [_row("base", "packages installed", "all", "all" if not missing else "missing " + " ".join(missing))]
    user = users.get(settings.app_user)
    rows.append(_row("base", f"user {settings.app_user}", "/usr/sbin/nologin", user and user.get("shell")))
    for key, value in plan.sysctl.items():
        rows.append(_row("base", f"sysctl.d {key}", value, sysctl["file"].get(key)))
        if container:
            rows.append(Check("base", f"live {key}", value, sysctl["live"].get(key, "-"), None,
                              f"container ({container}): /proc/sys is read-only"))
        else:
            rows.append(_row("base", f"live {key}", value, sysctl["live"].get(key)))
    if timesync is None:
        rows.append(Check("base", "time sync", "running", "-", None, "another time daemon is installed and kept"))
    else:
        rows.append(_row("base", "systemd-timesyncd enabled", True, timesync["enabled"]))
        if container:
            rows.append(Check("base", "systemd-timesyncd running", "True", _show(timesync["running"]), None,
                              f"container ({container}): the clock is the machine's underneath"))
        else:
            rows.append(_row("base", "systemd-timesyncd running", True, timesync["running"]))
    return rows


def failures(rows: list[Check]) -> list[Check]:
    return [r for r in rows if r.ok is False]
