"""Checks: compare what the facts read from a host with what the plan says (the rows of the
verification, :mod:`lbstack.verification`).

Pure functions over fact values (see ``facts/``); each returns :class:`Check` rows. A row whose
``ok`` is None was not applicable on this host (for example ``memory.high`` on cgroup v1) and
says why in ``note``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from lbstack import hardening, layout, phpsettings
from lbstack import release as release_mod
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
    for component, unit in plan.slices.items():
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


# -- the stack's components ----------------------------------------------------------------------


def _limits_text(limits: Limits, high: bool = True) -> str:
    parts = [f"CPU {limits.cpu_quota_pct}%"]
    if high:
        parts.append(f"high {limits.memory_high_mib} MiB")
    parts += [f"max {limits.memory_max_mib} MiB", f"tasks {limits.tasks_max}"]
    return " · ".join(parts)


def _fact_limits_text(fact: dict, source: str, high: bool = True) -> str:
    if source == "systemd":
        sd = fact.get("systemd", {})
        values = {"cpu": _quota_pct(sd.get("cpu_quota_us_per_s"), 1_000_000), "high": sd.get("memory_high"),
                  "max": sd.get("memory_max"), "tasks": sd.get("tasks_max")}
    else:
        cg = fact.get("cgroup", {})
        values = {"cpu": _quota_pct(cg.get("cpu_quota_us"), cg.get("cpu_period_us")), "high": cg.get("memory_high"),
                  "max": cg.get("memory_max"), "tasks": cg.get("pids_max")}
    parts = [f"CPU {values['cpu']}"]
    if high:
        parts.append(f"high {_mib_str(values['high'])}")
    parts += [f"max {_mib_str(values['max'])}", f"tasks {_show(values['tasks'])}"]
    return " · ".join(parts)


def check_service(component: str, unit: str, slice_unit: str, fact: dict | None, limits: Limits | None = None) -> list[Check]:
    """A service: active and enabled, running inside its component's slice, and (for the FPM
    instances) under its own planned limits, as systemd and the cgroup files say."""
    fact = fact or {}
    state = f"{fact.get('active_state', 'absent')}, {fact.get('unit_file_state', 'absent')}"
    rows = [
        Check(component, f"{unit} state", "active, enabled", state,
              fact.get("active_state") == "active" and fact.get("unit_file_state") in ("enabled", "static")),
    ]
    cgroup_path = fact.get("control_group", "")
    in_slice = f"/{slice_unit}/" in cgroup_path + "/"
    rows.append(Check(component, f"{unit} slice", slice_unit, cgroup_path or "-", in_slice))
    if limits is not None:
        rows.append(_row(component, f"{unit} limits (systemd)", _limits_text(limits), _fact_limits_text(fact, "systemd")))
        version = fact.get("cgroup_version", 0)
        if fact.get("cgroup"):
            rows.append(_row(component, f"{unit} limits (cgroup v{version})", _limits_text(limits, high=version == 2),
                             _fact_limits_text(fact, "cgroup", high=version == 2)))
        else:
            rows.append(Check(component, f"{unit} limits (cgroup)", _limits_text(limits), "no cgroup", False,
                              "the unit is not running"))
    return rows


def check_instance_cpus(plan: Plan, units: dict[str, dict]) -> list[Check]:
    """Each pinned instance's master runs on the CPUs the plan placed it on, as the kernel has it
    (its workers are forked from it). Nothing to check when the plan pins none."""
    rows = []
    for index, cpus in enumerate(plan.php_fpm.instance_cpus, start=1):
        if cpus:
            live = (units.get(layout.fpm_unit(index)) or {}).get("cpus_allowed") or "not running"
            rows.append(_row("app", f"{layout.instance_name(index)} CPUs", cpus, live))
    return rows


def check_pools(plan: Plan, status: dict[str, dict]) -> list[Check]:
    """Each instance's FPM pool, from its own status page: answering, static, planned size."""
    rows = []
    for index in range(1, plan.instances + 1):
        name = f"app{index}"
        pool = status.get(name, {"error": "not asked"})
        if "error" in pool:
            rows.append(Check("app", f"{name} pool status", f"static, {plan.php_fpm.max_children} workers",
                              "no answer", False, pool["error"][:120]))
            continue
        rows.append(_row("app", f"{name} pool status", f"static, {plan.php_fpm.max_children} workers",
                         f"{pool.get('process_manager')}, {pool.get('total')} workers"))
    return rows


def check_release(current: str | None, complete: list[str], env_file: dict | None, app_user: str) -> list[Check]:
    rows = [
        Check("app", "release in service", "a complete release", current or "none",
              current is not None and current in complete),
    ]
    if env_file:
        actual = f"{env_file.get('user')}:{env_file.get('group')} {env_file.get('mode')}"
    else:
        actual = "absent"
    rows.append(_row("app", ".env owner and mode", f"{app_user}:{app_user} 640", actual))
    return rows


def check_instance_releases(pointers: dict[str, str], current: str | None, names: list[str]) -> list[Check]:
    """Every planned instance runs the release in service (its pointer), none is left behind."""
    return [_row("app", f"{name} runs the release in service", current or "none", pointers.get(name) or "none")
            for name in names]


def check_queue(plan: Plan, units: dict[str, dict], workers: dict, scheduler: dict | None) -> list[Check]:
    """The queue part: every planned worker active, enabled and in the queue slice, running the
    release in service (``workers``: the QueueWorkers fact), none beyond the plan; the scheduler's
    timer active and enabled, and its last run (if any yet) successful (``scheduler``: the
    Scheduler fact)."""
    q = plan.queue
    slice_unit = plan.slices["queue"]
    rows: list[Check] = []
    for index in range(1, q.workers + 1):
        unit = layout.queue_unit(index)
        rows += check_service("queue", unit, slice_unit, units.get(unit))
        live = workers["workers"].get(unit, {})
        rows.append(_row("queue", f"{unit} runs the release in service", workers["current"] or "none",
                         live.get("release") or "not running"))
    extra = sorted(u for u, w in workers["workers"].items()
                   if (w["index"] or 0) > q.workers and (w["active_state"] == "active" or w["enabled"] == "enabled"))
    rows.append(_row("queue", "queue workers beyond the plan", "none", ", ".join(extra) or "none"))
    if q.scheduler:
        timer = (scheduler or {}).get("timer", {})
        service = (scheduler or {}).get("service", {})
        rows.append(Check("queue", f"{layout.SCHEDULE_TIMER} state", "active, enabled",
                          f"{timer.get('active_state', 'absent')}, {timer.get('enabled', 'absent')}",
                          timer.get("active_state") == "active" and timer.get("enabled") == "enabled"))
        # a past run is not state a converge can repair (one failed while Redis restarted): it is
        # shown, and `lbstack status` lists a failed one as a problem
        ran = service.get("last_exit_at") is not None
        result = service.get("result") or "none"
        ok, note = True, ""
        if not ran:
            ok, note = None, "the timer starts it at the next minute"
        elif result != "success":
            ok, note = None, f"the last run failed: journalctl -u {layout.SCHEDULE_SERVICE}; the next minute runs it again"
        rows.append(Check("queue", f"{layout.SCHEDULE_SERVICE} last run", "success",
                          result if ran else "not run yet", ok, note))
    return rows


def check_app_backends(login: dict, redis: dict, plan: Plan, database: str) -> list[Check]:
    """MariaDB and Redis answering with the app's own credentials (from its .env)."""
    rows = [
        Check("app", "MariaDB login with the app's credentials", f"ok ({database})",
              f"ok ({login.get('database')})" if login.get("ok") else "failed",
              bool(login.get("ok")) and login.get("database") == database, login.get("error", "")[:120]),
        Check("app", "Redis PING with the app's credentials", "PONG", redis.get("ping", "failed"),
              bool(redis.get("ok")), redis.get("error", "")[:120]),
    ]
    if redis.get("ok"):
        refused = str(redis.get("app_config", "")).startswith("NOPERM")
        rows.append(Check("app", "Redis CONFIG refused to the app's credentials", "NOPERM",
                          "NOPERM" if refused else "allowed", refused, "" if refused else str(redis.get("app_config"))[:120]))
    if redis.get("ok") and plan.redis:  # the cache on this host: its running sizes too
        config = redis.get("config", {})
        rows.append(_row("cache", "Redis maxmemory", f"{plan.redis.maxmemory_mib} MiB",
                         _mib_str(config.get("maxmemory")) if isinstance(config.get("maxmemory"), int) else "-"))
        rows.append(_row("cache", "Redis maxmemory-policy", "noeviction", config.get("maxmemory-policy")))
    return rows


def check_hardening(settings: Settings, sshd_refused: str | None, sshd: dict[str, str], jail: dict,
                    apt_config: dict) -> list[Check]:
    """sshd keys only (unless it was left as it is, and why), fail2ban's sshd jail on the journal,
    and apt's daily security upgrades as ``unattended_upgrades`` says."""
    rows = []
    if settings.ssh_hardening and sshd_refused:
        rows.append(Check("base", "sshd keys only", "yes", "left as it is", None, sshd_refused[:200]))
    elif settings.ssh_hardening:
        for key, value in hardening.SSHD_WANTED.items():
            rows.append(_row("base", f"sshd {key}", value, sshd.get(key, "-"), "sshd -T"))
    if settings.fail2ban:
        state = ("not running" if not jail.get("running") else "no sshd jail" if not jail.get("jail")
                 else "sshd jail, journal" if jail.get("journal") else "sshd jail, log file")
        rows.append(Check("base", "fail2ban", "sshd jail, journal", state, state == "sshd jail, journal",
                          f"{jail.get('banned', 0) or 0} banned now" if jail.get("jail") else ""))
    for key, value in hardening.upgrade_values(settings).items():
        rows.append(_row("base", key, value, apt_config.get("values", {}).get(key) or "-", "apt-config"))
    if settings.unattended_upgrades:
        rows.append(_row("base", "apt-daily-upgrade.timer", "enabled", apt_config.get("upgrade_timer") or "-"))
    return rows


def check_exposure(limits: dict[str, float], exposure: dict[str, float]) -> list[Check]:
    """Each sandboxed unit's ``systemd-analyze security`` exposure at or under its limit."""
    rows = []
    for unit, limit in limits.items():
        live = exposure.get(unit)
        component = next((c for c, u in layout.SERVICES.items() if u == unit), "app")
        rows.append(Check(component, f"{unit} exposure (systemd-analyze security)", f"<= {limit:.1f}",
                          "-" if live is None else f"{live:.1f}", live is not None and live <= limit,
                          "" if live is not None else "not rated (unit not loaded?)"))
    return rows


def check_redis_users(acl: dict, monitoring: bool = False) -> list[Check]:
    """The live server's users are exactly those of redis.conf (the app's, lbstack's, and with
    ``monitoring`` the exporter's), and each may run what :func:`layout.redis_acl_probes` says and
    nothing it refuses (ACL DRYRUN, in probe order)."""
    wanted = layout.redis_acl_probes(monitoring)
    if not acl.get("answering"):
        return [Check("cache", "Redis answering lbstack's admin user", "yes", "no", False, acl.get("error", "")[:120])]
    rows = [_row("cache", "Redis users", ", ".join(sorted(wanted)), ", ".join(sorted(acl["users"])),
                 "a user added at runtime (ACL SETUSER) is removed by the next converge")]
    answers = iter(acl.get("probes", []))
    for user, probes in wanted.items():
        wrong = [command for command, allowed in probes if (next(answers, "") == "OK") != allowed]
        label = ("the app's user (default)" if user == "default" else f"the exporter's user ({user})"
                 if user == layout.REDIS_MONITOR_USER else f"lbstack's admin user ({user})")
        rows.append(Check("cache", f"Redis commands of {label}", "as planned",
                          "as planned" if not wrong else "differs: " + ", ".join(wrong), not wrong,
                          "checked with ACL DRYRUN; " + ("a refused command allowed or an allowed one refused"
                                                         if wrong else f"{len(probes)} commands")))
    return rows


def check_mariadb(plan: Plan, security: dict, settings: Settings | None = None) -> list[Check]:
    if not security.get("answering"):
        return [Check("db", "MariaDB answering (root, local socket)", "yes", "no", False)]
    variables = security.get("variables", {})
    pool = variables.get("innodb_buffer_pool_size")
    extra = []
    if settings is not None:
        extra = layout.mariadb_extra_accounts(security.get("accounts", []), settings.db_user,
                                              layout.kept_accounts(settings))
    return [
        Check("db", "accounts beyond MariaDB's own and the app's", "none", " ".join(extra)[:160] or "none",
              not extra, "dropped by the next converge (db_keep_accounts keeps yours)" if extra else ""),
        _row("db", "anonymous users", 0, security["anonymous_users"]),
        _row("db", "test database", "absent", "present" if security["test_database"] else "absent"),
        _row("db", "root accounts", "localhost", ", ".join(security["root_hosts"])),
        _row("db", "max_connections", plan.mariadb.max_connections, int(variables.get("max_connections", -1))),
        _row("db", "innodb_buffer_pool_size", f"{plan.mariadb.buffer_pool_mib} MiB",
             _mib_str(int(pool)) if pool and pool.isdigit() else "-"),
    ]


def check_upstream(expected: list[str], method: str, upstreams: dict) -> list[Check]:
    """The upstream nginx loaded: exactly the planned members, the configured method, none down."""
    live = upstreams.get("lbstack_app")
    if live is None:
        return [Check("lb", "upstream lbstack_app", "present", "absent", False, "not in `nginx -T`")]
    addresses = [s["address"] for s in live["servers"]]
    down = [s["address"] for s in live["servers"] if s["down"]]
    return [
        _row("lb", "upstream members", ", ".join(expected), ", ".join(addresses)),
        _row("lb", "upstream method", method, live["method"]),
        _row("lb", "upstream members marked down", "none", ", ".join(down) or "none"),
    ]


def check_http(statuses: dict[str, int]) -> list[Check]:
    return [_row("lb", f"GET {url}", 200, code) for url, code in statuses.items()]


def check_distribution(distribution: dict, instances: list[str], method: str, requested: int | None = None) -> list[Check]:
    """``requested`` requests through the balancer (default: as many as were answered): all
    answered 200; spread over every instance, or for ip_hash all on one (one client address).
    Fewer answers than requested: the probe stopped at the first failure (facts.http.Distribution)."""
    total = distribution.get("requests", 0)
    requested = total if requested is None else requested
    statuses = distribution.get("statuses", {})
    ok = statuses.get("200", 0)
    reached = sorted(i for i in distribution.get("instances", {}) if i in instances)
    counts = ", ".join(f"{i}: {n}" for i, n in sorted(distribution.get("instances", {}).items()))
    failed = ", ".join(f"{status} x{n}" for status, n in sorted(statuses.items()) if status != "200")
    note = f"stopped at the first failure after {total} ({failed})" if total < requested and failed else ""
    rows = [_row("lb", f"{requested} requests through the balancer answered 200", requested, ok, note)]
    if method == "ip_hash":
        rows.append(Check("lb", "one client stays on one instance (ip_hash)", "1 instance",
                          f"{len(reached)} ({counts})", len(reached) == 1 and sum(distribution["instances"].values()) == total))
    else:
        rows.append(Check("lb", "requests reached every instance", f"{len(instances)} instances",
                          f"{len(reached)} ({counts})", reached == sorted(instances)))
    return rows


def check_firewall(expected_ports: list[int], table: dict, peer_rules: list[dict] | None = None) -> list[Check]:
    """The live table: policy, the ports open to all, and (split topology) each port open only to
    the hosts that use it (``peer_rules``: :func:`lbstack.topology.peer_rules`)."""
    if not table.get("present"):
        return [Check("base", "firewall table inet lbstack", "loaded", "absent", False)]
    rows = [
        _row("base", "firewall input policy", "drop", table.get("input_policy")),
        _row("base", "firewall open TCP ports", ", ".join(map(str, expected_ports)),
             ", ".join(map(str, table.get("open_tcp_ports", [])))),
    ]
    def text(rules) -> str:
        return "; ".join(f"{','.join(map(str, r['ports']))} from {','.join(r['sources'])}" for r in rules) or "none"

    wanted = sorted(({"sources": sorted(r["sources"]), "ports": sorted(r["ports"])} for r in peer_rules or []),
                    key=lambda rule: (rule["ports"], rule["sources"]))
    live = table.get("peer_rules", [])
    if wanted or live:
        rows.append(_row("base", "firewall ports open to the stack's hosts only", text(wanted), text(live)))
    return rows


def check_php_ini(differ: list[str]) -> list[Check]:
    """PHP's php.ini files as Debian ships them (``differ``: those that are not)."""
    return [Check("app", "php.ini as Debian ships it (FPM, CLI)", "yes", "yes" if not differ else
                  "edited: " + " ".join(differ), not differ, "" if not differ else "the next converge puts it back")]


def check_owned_dirs(found: dict[str, list[str]]) -> list[Check]:
    """No unmanaged file in the directories lbstack owns (:mod:`lbstack.owned`)."""
    if not found:
        return [Check("base", "unmanaged files in lbstack's directories", "none", "none", True)]
    return [Check("base", f"unmanaged files in {directory}", "none",
                  " ".join(p.rsplit("/", 1)[1] for p in paths)[:160], False,
                  "the next converge moves them into the quarantine") for directory, paths in found.items()]


def check_firewall_loaded(table: dict) -> list[Check]:
    """The live ``inet lbstack`` table is what lbstack loaded (no rule added or removed by hand)."""
    if not table.get("saved"):
        return [Check("base", "firewall table as lbstack loaded it", "recorded", "not recorded", False,
                      "the next converge loads it and records it")]
    diff = table.get("diff", [])
    return [Check("base", "firewall table as lbstack loaded it", "unchanged",
                  "unchanged" if not diff else f"changed at runtime: {' '.join(diff[:4])}"[:160], not diff,
                  "" if not diff else "the next converge loads it again")]


def check_packages(component: str, packages: list[str], installed: dict) -> list[Check]:
    """The component's Debian packages are installed (versions shown, not pinned)."""
    missing = [p for p in packages if p not in installed]
    versions = ", ".join(f"{p} {'/'.join(sorted(installed[p]))}" for p in packages if installed.get(p))
    return [Check(component, "packages installed", " ".join(packages),
                  "missing " + " ".join(missing) if missing else "all", not missing, versions[:160])]


def check_redis_file(plan: Plan, directives: dict | None) -> list[Check]:
    """redis.conf on disk says what the plan says (the running value is checked separately)."""
    directives = directives or {}
    return [
        _row("cache", "redis.conf maxmemory", f"{plan.redis.maxmemory_mib}mb", directives.get("maxmemory", "absent")),
        _row("cache", "redis.conf maxmemory-policy", "noeviction", directives.get("maxmemory-policy", "absent")),
    ]


def check_release_integrity(integrity: dict[str, dict]) -> list[Check]:
    """Every release in service is as it was sealed (``integrity``: the ReleaseIntegrity fact of
    those releases): no file changed, added or removed, no link pointed elsewhere."""
    rows = []
    for release_id, entry in sorted(integrity.items()):
        state = entry.get("state")
        actual = {"ok": "as sealed", "no manifest": "no manifest", "missing": "missing"}.get(
            state, f"differs: {release_mod.tampered(entry)}"[:160])
        replace = "the next converge replaces it with a new release of the same build"
        fix = {"ok": "", "missing": "",
               "no manifest": replace if release_mod.has_manifest_by_design(release_id) else
               "sealed before lbstack wrote manifests: the next converge records it"}.get(state, replace)
        rows.append(Check("app", f"release {release_id} integrity (manifest)", "as sealed", actual, state == "ok", fix))
    return rows


def check_effective_php(expected: dict[str, dict[str, str]], actual: dict[str, dict]) -> list[Check]:
    """Each instance's master runs with lbstack's PHP settings (``expected``: instance name ->
    :func:`lbstack.phpsettings.expected`; ``actual``: the EffectiveSettings fact), wherever a
    different value came from."""
    rows = []
    for name, values in expected.items():
        got = actual.get(name, {"error": "not asked"})
        want = f"lbstack's ({len(values)} settings)"
        if "error" in got:
            rows.append(Check("app", f"{name} PHP settings in force", want, "no answer", False, got["error"][:120]))
            continue
        wrong = phpsettings.differences(values, got)
        rows.append(Check("app", f"{name} PHP settings in force", want, "lbstack's" if not wrong else
                          "; ".join(wrong)[:160], not wrong, "" if not wrong else "the next converge reloads it"))
    return rows


def check_certificate(settings: Settings, served: dict | None, acme: dict | None, now: float) -> list[Check]:
    """The certificate nginx serves (``served``: facts.tls.ServedCertificate) carries every
    server_name and is not about to expire (``tls_expiry_days``); for tls: acme (``acme``:
    facts.tls.AcmeCertificate) it is certbot's current one (a renewal nginx has not loaded
    shows here), and certbot renews it from the configured directory, through the webroot,
    with lbstack's deploy hook."""
    if served is None:
        return [Check("lb", "certificate served on 443", "a certificate", "no TLS answer", False,
                      "tls is acme and none is issued yet" if settings.tls == "acme" else "")]
    # a self-signed certificate (rehearsals) names only the first server_name, in its CN
    names = [n for n in settings.server_names if n not in ("_", "localhost")] if settings.tls != "self_signed" else []
    missing = [n for n in names if not _covers(served["names"], n)]
    rows = [Check("lb", "certificate served on 443 names", " ".join(names) or "(any)",
                  " ".join(served["names"]) or "(none)", not missing,
                  f"missing: {' '.join(missing)}" if missing else f"issuer {served['issuer']}")]
    left_days = None if served["not_after"] is None else (served["not_after"] - now) / 86400
    rows.append(Check("lb", "certificate served on 443 expires in", f"> {settings.tls_expiry_days} days",
                      "unknown" if left_days is None else f"{left_days:.1f} days",
                      left_days is not None and left_days > settings.tls_expiry_days,
                      "renewal is due 30 days before expiry (lbstack-acme-renew.timer)" if settings.tls == "acme" else
                      "tls_expiry_days"))
    if settings.tls == "acme":
        cert = (acme or {}).get("certificate")
        rows.append(_row("lb", "certificate served is certbot's current one (serial)",
                         cert["serial"] if cert else "an issued certificate", served["serial"]))
        renewal = (acme or {}).get("renewal", {})
        rows += [
            _row("lb", "ACME renewal: directory", settings.tls_acme_directory, renewal.get("server")),
            _row("lb", "ACME renewal: HTTP-01 through nginx's webroot",
                 f"webroot {layout.ACME_WEBROOT}",
                 f"{renewal.get('authenticator')} {renewal.get('webroot_path')}"),
            _row("lb", "ACME renewal: deploy hook (nginx -t, reload)", f"{layout.ACME_HELPER} deployed",
                 renewal.get("renew_hook")),
        ]
    return rows


def _covers(names: list[str], wanted: str) -> bool:
    return wanted in names or any(n.startswith("*.") and wanted.split(".", 1)[-1] == n[2:] for n in names)
