"""End to end on the real container rehearsal host (systemd-nspawn, cgroup v1 on these machines):
converge from bare with ``deploy/full.py``, read every planned limit back from the cgroup files,
re-run with zero changes, and see the planned limits enforced on real processes. The same on a
real kernel with cgroup v2 is tests/e2e/test_vagrant.py's converge.
"""

from __future__ import annotations

import re
import subprocess
import time

from facts.limits import UnitLimits
from lbstack.checks import check_limits, failures

from e2e_helpers import MIB, TIMINGS, changed_ops, failed_ops, pyinfra, rehearsal_plan, remote


def test_converges_from_bare_and_verification_passes(converged):
    kind, info, first = converged
    assert first["rc"] == 0, first["stderr"][-4000:]
    assert not failed_ops(first)
    # from bare, real work happened: packages installed, slices written and started
    changed = changed_ops(first)
    assert any("Install base packages" in name for name in changed), changed
    assert any("Install PHP" in name for name in changed), changed
    assert any("Validate (nginx -t) and promote" in name for name in changed), changed
    assert any("Enable lbstack-fpm@5.service" in name for name in changed), changed
    # the instances are started by the rolling update: each gated before it serves
    assert any("Rolling update: instances to release" in name for name in changed), changed
    assert any("lbstack-app.slice" in name for name in changed), changed
    assert "all checks passed" in first["stderr"]


def test_every_planned_limit_reads_back_from_the_cgroup_files(converged):
    kind, info, _ = converged
    plan = rehearsal_plan()
    fact = UnitLimits()
    rc, out, err = remote(info, fact.command(units=list(plan.slices.values())))
    assert rc == 0, err
    units = fact.process(out.splitlines())
    # a container has this machine's cgroup version (v1 here; v2 is the Vagrant test's converge)
    machine = subprocess.run(["stat", "-fc", "%T", "/sys/fs/cgroup"], capture_output=True, text=True, check=True)
    expected_version = 2 if machine.stdout.strip() == "cgroup2fs" else 1
    for component, unit in plan.slices.items():
        limits = plan.limits[component]
        got = units[unit]
        assert got["cgroup_version"] == expected_version
        assert got["active_state"] == "active"
        cg = got["cgroup"]
        assert cg["memory_max"] == limits.memory_max_mib * MIB, (unit, cg)
        assert cg["cpu_quota_us"] * 100_000 // cg["cpu_period_us"] == limits.cpu_quota_us, (unit, cg)
        assert cg["pids_max"] == limits.tasks_max, (unit, cg)
        if expected_version == 2:
            assert cg["memory_high"] == limits.memory_high_mib * MIB, (unit, cg)
    assert failures(check_limits(plan, units)) == []


def test_second_run_changes_nothing(converged):
    kind, info, _ = converged
    again = pyinfra(info.name)
    TIMINGS[f"{kind} no-op re-run"] = again["seconds"]
    assert again["rc"] == 0, again["stderr"][-4000:]
    assert changed_ops(again) == [] and failed_ops(again) == []


def _cpu_seconds(info, pid: int) -> float:
    """CPU time (user + system) a process has used: the same on cgroup v1 and v2 hosts."""
    rc, out, err = remote(info, f"cat /proc/{pid}/stat; getconf CLK_TCK")
    assert rc == 0, err
    stat, ticks_per_s = out.splitlines()[0], int(out.splitlines()[1])
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks_per_s


def test_planned_cpu_quota_holds_a_busy_loop(converged):
    kind, info, _ = converged
    plan = rehearsal_plan()
    quota = plan.limits["cache"].cpu_quota_pct / 100
    unit = "lbstack-test-busy.service"
    rc, _, err = remote(info, f"systemd-run --unit {unit} --slice lbstack-cache.slice "
                              "python3 -c 'while True: pass'")
    assert rc == 0, err
    try:
        time.sleep(1)
        rc, out, err = remote(info, f"systemctl show -P MainPID {unit}")
        pid = int(out.strip())
        before, t0 = _cpu_seconds(info, pid), time.monotonic()
        time.sleep(5)
        used = (_cpu_seconds(info, pid) - before) / (time.monotonic() - t0)
    finally:
        remote(info, f"systemctl stop {unit}; systemctl reset-failed {unit} 2>/dev/null; true")
    assert quota * 0.7 <= used <= quota * 1.2, f"busy loop used {used:.2f} CPU under a {quota:.2f} quota"


def test_planned_memory_max_kills_a_process_over_it(converged):
    kind, info, _ = converged
    plan = rehearsal_plan()
    limit_mib = plan.limits["cache"].memory_max_mib
    grab_mib = limit_mib + 512
    rc, out, err = remote(
        info,
        f"systemd-run --wait --unit lbstack-test-hog --slice lbstack-cache.slice "
        f"python3 -c 'x = b\"x\" * ({grab_mib} * 1024 * 1024); print(\"survived\")' 2>&1; "
        "echo rc=$?",
        timeout=300,
    )
    remote(info, "systemctl reset-failed lbstack-test-hog 2>/dev/null; true")
    result = re.search(r"Finished with result: ([\w-]+)", out)
    assert result and result.group(1) in ("signal", "oom-kill"), out
    assert "rc=0" not in out and "survived" not in out


def test_verification_fails_naming_what_differs(nspawn_host):
    """A limit changed behind the deploy's back is caught, named, and fails the run (nspawn host)."""
    info = nspawn_host
    assert pyinfra(info.name)["rc"] == 0  # converged (a no-op when the tests above ran first)
    planned = rehearsal_plan().limits["lb"].tasks_max
    rc, _, err = remote(info, "systemctl set-property --runtime lbstack-lb.slice TasksMax=7")
    assert rc == 0, err
    try:
        run = pyinfra(info.name, "deploy/verify.py")
        assert run["rc"] != 0
        assert re.search(rf"systemd TasksMax\s*│\s*{planned}\s*│\s*7\s*│\s*FAIL", run["stderr"]), run["stderr"][-3000:]
        assert re.search(r"cgroup v1 pids.max\s*│\s*\d+\s*│\s*7\s*│\s*FAIL", run["stderr"]), run["stderr"][-3000:]
    finally:
        remote(info, "rm -rf /run/systemd/system.control/lbstack-lb.slice.d && systemctl daemon-reload")
    restored = pyinfra(info.name, "deploy/verify.py")
    assert restored["rc"] == 0, restored["stderr"][-3000:]
