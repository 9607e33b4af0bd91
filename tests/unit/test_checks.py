"""Verification from recorded facts: a matching host passes; each kind of difference is named."""

import copy
import json
from pathlib import Path

from lbstack.plan import make_plan
from lbstack.settings import load
from lbstack import checks as _v, checks, layout
from lbstack.checks import check_base, check_limits, failures

FACTS = Path(__file__).parent.parent / "facts"
# The recorded hosts were converged when CPU ceilings were scaled to sum to the host (9.5 vCPU
# requested on 8) and pools were sized by memory; these settings give that same plan today.
RECORDED = {"capacity_cpus": 8, "capacity_memory_mib": 16384, "lb_cpus": 0.845, "app_cpus": 0.845,
            "db_cpus": 2.529, "cache_cpus": 0.425, "php_workers_per_cpu": 64,
            # ... and had no queue workers or scheduler (and the default worker size was 64 MiB)
            "queue_workers": 0, "queue_connection": "sync", "scheduler": False, "php_worker_memory_mib": 64,
            "os_hardening": False}  # ... and no hardening sysctls
PLAN = make_plan(8, 16384, load(RECORDED))
UNITS_V1 = json.loads((FACTS / "limits.UnitLimits/nspawn-cgroup-v1.json").read_text())["fact"]
SYSCTL = json.loads((FACTS / "base.SysctlValues/nspawn.json").read_text())["fact"]


def test_recorded_v1_host_matches_the_plan():
    rows = check_limits(PLAN, UNITS_V1)
    assert failures(rows) == []
    skipped = [r for r in rows if r.ok is None]
    assert {r.check for r in skipped} == {"cgroup v1 memory.high"}  # v1 has no memory.high


def test_a_changed_memory_limit_is_named_with_expected_and_actual():
    units = copy.deepcopy(UNITS_V1)
    units["lbstack-db.slice"]["cgroup"]["memory_max"] = 512 * 1024 * 1024
    (bad,) = failures(check_limits(PLAN, units))
    assert (bad.component, bad.check) == ("db", "cgroup v1 memory.limit_in_bytes")
    assert (bad.expected, bad.actual) == (f"{PLAN.limits['db'].memory_max_mib} MiB", "512 MiB")


def test_an_unlimited_cpu_quota_and_an_inactive_slice_are_failures():
    units = copy.deepcopy(UNITS_V1)
    units["lbstack-app.slice"]["cgroup"]["cpu_quota_us"] = None
    units["lbstack-app.slice"]["systemd"]["cpu_quota_us_per_s"] = None
    units["lbstack-cache.slice"]["active_state"] = "inactive"
    named = {(r.component, r.check, r.actual) for r in failures(check_limits(PLAN, units))}
    assert ("app", "systemd CPUQuota", "unlimited") in named
    assert ("app", "cgroup v1 cpu.cfs_quota_us/cfs_period_us", "unlimited") in named
    assert ("cache", "lbstack-cache.slice active", "inactive") in named


def test_a_missing_slice_fails_every_check_for_it():
    units = {k: v for k, v in UNITS_V1.items() if k != "lbstack-lb.slice"}
    bad = failures(check_limits(PLAN, units))
    assert bad and {r.component for r in bad} == {"lb"}


def test_v2_memory_high_is_checked():
    units = copy.deepcopy(UNITS_V1)
    for unit in units.values():
        unit["cgroup_version"] = 2
        if unit["cgroup"]:
            unit["cgroup"]["memory_high"] = unit["systemd"]["memory_high"]
    assert failures(check_limits(PLAN, units)) == []
    units["lbstack-lb.slice"]["cgroup"]["memory_high"] = None
    (bad,) = failures(check_limits(PLAN, units))
    assert bad.check == "cgroup v2 memory.high" and bad.actual == "unlimited"


def _base(**overrides):
    args = dict(
        packages=["curl", "acl"], installed={"curl": ["7"], "acl": ["2"]},
        users={"lbstack": {"shell": "/usr/sbin/nologin"}}, sysctl=SYSCTL,
        container="systemd-nspawn", timesync={"enabled": True, "running": False},
    )
    args.update(overrides)
    return check_base(load({}), PLAN, **args)


def test_base_in_a_container_checks_the_file_not_the_live_values():
    rows = _base()
    assert failures(rows) == []
    live = [r for r in rows if r.check.startswith("live ")]
    assert live and all(r.ok is None and "read-only" in r.note for r in live)


def test_base_outside_a_container_checks_live_values_and_time_sync():
    bad = failures(_base(container=None))
    checks = {r.check for r in bad}
    assert "live vm.swappiness" in checks  # the recorded live value is 60, the plan says 10
    assert "systemd-timesyncd running" in checks


def test_base_names_missing_packages_and_a_login_shell():
    bad = failures(_base(installed={"curl": ["7"]}, users={"lbstack": {"shell": "/bin/bash"}}))
    assert {(r.check, r.actual) for r in bad} == {
        ("packages installed", "missing acl"), ("user lbstack", "/bin/bash"),
    }


def test_recorded_v2_host_matches_the_plan_including_memory_high():
    units = json.loads((FACTS / "limits.UnitLimits/vm-cgroup-v2.json").read_text())["fact"]
    rows = check_limits(PLAN, units)
    assert failures(rows) == [] and all(r.ok is True for r in rows)
    assert any(r.check == "cgroup v2 memory.high" for r in rows)


# -- the stack's components, from recorded facts ---------------------------------------------------

_CASES = Path(__file__).parents[1] / "facts"


def _fact(name: str, case: str = "nspawn") -> object:
    return json.loads((_CASES / name / f"{case}.json").read_text())["fact"]


def _members():
    return [f"unix:/run/lbstack/app{i}/fpm.sock" for i in range(1, 6)]


def test_recorded_upstream_matches_and_a_missing_member_is_named():
    upstreams = _fact("nginx.Upstreams")
    assert _v.failures(_v.check_upstream(_members(), "least_conn", upstreams)) == []
    rows = _v.check_upstream(_members() + ["unix:/run/lbstack/app6/fpm.sock"], "ip_hash", upstreams)
    bad = {r.check for r in _v.failures(rows)}
    assert bad == {"upstream members", "upstream method"}


def test_distribution_spread_and_ip_hash_stickiness():
    spread = _fact("http.Distribution")
    names = [f"app{i}" for i in range(1, 6)]
    assert _v.failures(_v.check_distribution(spread, names, "least_conn")) == []
    assert [r.check for r in _v.failures(_v.check_distribution(spread, names, "ip_hash"))] == [
        "one client stays on one instance (ip_hash)"]
    missing = {**spread, "instances": {k: v for k, v in spread["instances"].items() if k != "app3"}}
    assert _v.failures(_v.check_distribution(missing, names, "least_conn"))[0].actual.startswith("4 (")


def test_distribution_probe_stopped_at_the_first_failure_fails_naming_it():
    """Recorded with Redis stopped: the app answers 503 after its 3 s wait, and the probe stops
    there (curl --fail-early) instead of spending 100 x 3 s on the same answer."""
    spread = _fact("http.Distribution", "redis-down")
    names = [f"app{i}" for i in range(1, 6)]
    first, spread_row = _v.check_distribution(spread, names, "least_conn", requested=100)
    assert not first.ok and (first.check, first.expected, first.actual) == (
        "100 requests through the balancer answered 200", "100", "0")
    assert first.note == "stopped at the first failure after 1 (503 x1)"
    assert not spread_row.ok
    healthy = _fact("http.Distribution")
    assert _v.failures(_v.check_distribution(healthy, names, "least_conn", requested=healthy["requests"])) == []


def test_pools_from_recorded_status_and_a_silent_instance():
    # recorded on a host converged with the rehearsal inventory's settings (the 8 vCPU / 16 GB plan)
    plan = make_plan(8, 16384, load({"capacity_cpus": 8, "capacity_memory_mib": 16384}))
    pools = _fact("php_fpm.PoolStatus")  # app1, app2 answering; app9 silent; app3..5 not asked
    rows = _v.check_pools(plan, pools)
    assert [r.check for r in _v.failures(rows)] == ["app3 pool status", "app4 pool status", "app5 pool status"]
    assert rows[0].ok and rows[0].actual == f"static, {plan.php_fpm.max_children} workers"
    assert rows[1].ok


# the Redis cases were recorded later, on a host converged with the defaults of their day
PLAN_DEFAULTS = make_plan(8, 16384, load({"capacity_cpus": 8, "capacity_memory_mib": 16384}))


def test_recorded_mariadb_matches_the_plan_and_redis_answers():
    assert _v.failures(_v.check_mariadb(PLAN_DEFAULTS, _fact("mariadb.Security"), load({}))) == []
    rows = _v.check_app_backends(_fact("mariadb.AppLogin"), _fact("redis.AppConnection"), PLAN_DEFAULTS, "lbstack")
    assert _v.failures(rows) == []
    assert [r.actual for r in rows if "CONFIG refused" in r.check] == ["NOPERM"]
    allowed = dict(_fact("redis.AppConnection"), app_config="OK")  # an app user that may run CONFIG
    assert [r.check for r in _v.failures(_v.check_app_backends(_fact("mariadb.AppLogin"), allowed, PLAN_DEFAULTS,
                                                               "lbstack"))] == ["Redis CONFIG refused to the app's credentials"]
    rows = _v.check_app_backends({"ok": False, "error": "ERROR 1045"}, {"ok": False, "error": "WRONGPASS"}, PLAN,
                                 "lbstack")
    assert len(_v.failures(rows)) == 2


def test_firewall_table_is_compared_with_the_expected_ports():
    table = _fact("firewall.LbstackTable")
    assert _v.failures(_v.check_firewall([22, 80, 443], table)) == []
    assert _v.failures(_v.check_firewall([2222, 80, 443], table))[0].check == "firewall open TCP ports"
    assert _v.failures(_v.check_firewall([22, 80, 443], {"present": False}))[0].actual == "absent"


def test_pinned_instances_are_checked_against_their_masters_cpus():
    plan = make_plan(8, 16384, load({}), online_cpus=2)
    units = {f"lbstack-fpm@{i}.service": {"cpus_allowed": cpus} for i, cpus in enumerate(plan.php_fpm.instance_cpus, start=1)}
    rows = _v.check_instance_cpus(plan, units)
    assert [r.check for r in rows] == [f"app{i} CPUs" for i in range(1, 6)] and not failures(rows)
    units["lbstack-fpm@3.service"]["cpus_allowed"] = "0-1"  # restarted by hand without the drop-in
    del units["lbstack-fpm@5.service"]
    bad = {r.check: r for r in failures(_v.check_instance_cpus(plan, units))}
    assert set(bad) == {"app3 CPUs", "app5 CPUs"}
    assert (bad["app3 CPUs"].expected, bad["app3 CPUs"].actual) == ("1", "0-1")
    assert bad["app5 CPUs"].actual == "not running"


def test_unpinned_plan_has_no_cpu_rows():
    plan = make_plan(8, 16384, load({"app_cpu_pinning": False}), online_cpus=8)
    assert _v.check_instance_cpus(plan, {}) == []


def test_recorded_redis_users_are_the_two_managed_ones_with_their_planned_rights():
    acl = _fact("redis.AclUsers")
    assert _v.failures(_v.check_redis_users(acl)) == []
    extra = dict(acl, users=dict(acl["users"], evil="on ~* &* +@all"))
    (bad,) = _v.failures(_v.check_redis_users(extra))
    assert (bad.check, bad.actual) == ("Redis users", "default, evil, lbstack-admin")
    probes = list(acl["probes"])
    flushall = [i for i, (user, *words) in enumerate(layout.redis_probes()) if user == "default" and words == ["flushall"]]
    probes[flushall[0]] = "OK"  # the app's user given FLUSHALL
    (bad,) = _v.failures(_v.check_redis_users(dict(acl, probes=probes)))
    assert bad.check == "Redis commands of the app's user (default)" and bad.actual == "differs: flushall"
    assert _v.failures(_v.check_redis_users({"answering": False, "error": "WRONGPASS"}))[0].note == "WRONGPASS"


def test_a_firewall_table_changed_at_runtime_fails_verification_naming_the_rule():
    assert _v.failures(_v.check_firewall_loaded(_fact("firewall.TableAsLoaded"))) == []
    (bad,) = _v.failures(_v.check_firewall_loaded(_fact("firewall.TableAsLoaded", "nspawn-rule-added")))
    assert bad.actual == "changed at runtime: +tcp dport 8080 accept"
    (bad,) = _v.failures(_v.check_firewall_loaded(_fact("firewall.TableAsLoaded", "unsaved")))
    assert bad.actual == "not recorded"


def test_the_firewall_check_names_a_peer_rule_that_differs_from_the_plan():
    table = {"present": True, "input_policy": "drop", "open_tcp_ports": [22],
             "peer_rules": [{"sources": ["10.214.1.2"], "ports": [3306]}, {"sources": ["10.214.1.2"], "ports": [6379]}]}
    planned = [{"what": "Redis from the app hosts", "ports": [6379], "sources": ["10.214.1.2"]},
               {"what": "MariaDB from the app hosts", "ports": [3306], "sources": ["10.214.1.2"]}]
    assert _v.failures(_v.check_firewall([22], table, planned)) == []
    wider = [{"what": "MariaDB", "ports": [3306], "sources": ["10.214.1.2", "10.214.1.9"]}, planned[0]]
    (bad,) = _v.failures(_v.check_firewall([22], table, wider))
    assert bad.check == "firewall ports open to the stack's hosts only" and "10.214.1.9" in bad.expected
    # one VPS: no row at all
    assert [r.check for r in _v.check_firewall([22], {**table, "peer_rules": []})] == [
        "firewall input policy", "firewall open TCP ports"]


# -- the served certificate (tls) ----------------------------------------------------------------

_ACME = load({"tls": "acme", "server_names": ["example.com", "www.example.com"]})
_NOW = 1_800_000_000.0
_LEAF = {"serial": "AB12", "not_after": int(_NOW + 60 * 86400), "ocsp": "", "issuer": "CN=Pebble Intermediate",
         "names": ["example.com", "www.example.com"]}
_RENEWAL = {"server": _ACME.tls_acme_directory, "authenticator": "webroot", "webroot_path": layout.ACME_WEBROOT,
            "renew_hook": f"{layout.ACME_HELPER} deployed"}


def _failed(rows) -> list[str]:
    return [r.check for r in rows if r.ok is False]


def test_certificate_rows_pass_for_certbots_current_certificate_with_every_name():
    rows = checks.check_certificate(_ACME, _LEAF, {"certificate": _LEAF, "renewal": _RENEWAL}, _NOW)
    assert _failed(rows) == [] and len(rows) == 6


def test_certificate_rows_fail_on_a_missing_name_an_expiry_within_the_window_and_an_unloaded_renewal():
    leaf = {**_LEAF, "names": ["example.com"], "not_after": int(_NOW + 3 * 86400)}
    renewed = {**_LEAF, "serial": "CD34"}  # certbot renewed; nginx still serves the old one
    rows = checks.check_certificate(_ACME, leaf, {"certificate": renewed, "renewal": _RENEWAL}, _NOW)
    assert _failed(rows) == ["certificate served on 443 names", "certificate served on 443 expires in",
                             "certificate served is certbot's current one (serial)"]
    assert "missing: www.example.com" in rows[0].note


def test_certificate_rows_fail_when_certbot_renews_elsewhere_or_without_the_deploy_hook():
    renewal = {**_RENEWAL, "server": "https://other.example/dir", "renew_hook": "/bin/true"}
    rows = checks.check_certificate(_ACME, _LEAF, {"certificate": _LEAF, "renewal": renewal}, _NOW)
    assert _failed(rows) == ["ACME renewal: directory", "ACME renewal: deploy hook (nginx -t, reload)"]


def test_no_tls_answer_is_one_failed_row_and_self_signed_is_checked_for_expiry_only():
    (row,) = checks.check_certificate(_ACME, None, {"certificate": None, "renewal": {}}, _NOW)
    assert row.ok is False and "none is issued yet" in row.note
    self_signed = load({"tls": "self_signed", "server_names": ["example.com"]})
    rows = checks.check_certificate(self_signed, {**_LEAF, "names": []}, None, _NOW)
    assert _failed(rows) == [] and len(rows) == 2
    wildcard = load({"tls": "files", "server_names": ["a.example.com"], "tls_certificate_path": "/c",
                     "tls_key_path": "/k"})
    assert _failed(checks.check_certificate(wildcard, {**_LEAF, "names": ["*.example.com"]}, None, _NOW)) == []


def test_with_monitoring_the_exporters_redis_user_is_expected_and_held_to_ping_and_info():
    acl = _fact("redis.AclUsers")
    # the recorded server has no exporter user: with monitoring on that is a difference
    (bad, *rest) = _v.failures(_v.check_redis_users(acl, monitoring=True))
    assert bad.check == "Redis users" and layout.REDIS_MONITOR_USER in bad.expected
    probes = layout.redis_acl_probes(True)[layout.REDIS_MONITOR_USER]
    answers = list(acl["probes"]) + ["OK" if allowed else "NOPERM" for _, allowed in probes]
    users = dict(acl["users"], **{layout.REDIS_MONITOR_USER: "on nopass " + layout.REDIS_MONITOR_ACL})
    assert _v.failures(_v.check_redis_users(dict(acl, users=users, probes=answers), monitoring=True)) == []
    answers[-len(probes) + [c for c, _ in probes].index("config get requirepass")] = "OK"  # it could read a secret
    (bad,) = _v.failures(_v.check_redis_users(dict(acl, users=users, probes=answers), monitoring=True))
    assert bad.check == f"Redis commands of the exporter's user ({layout.REDIS_MONITOR_USER})"
    assert bad.actual == "differs: config get requirepass"
    assert len(layout.redis_probes(True)) == len(layout.redis_probes()) + len(probes)
