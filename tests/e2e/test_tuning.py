"""The per-request tuning of the app instances, on the session's converged nspawn host: each
instance on the CPUs the plan placed it on, OPcache preloading of the instance's own release, PHP
errors in the journal under the instance's name, and a release that cannot be preloaded refused
before any instance switches to it (the host keeps serving the release it had).

This module leaves the host converged with the rehearsal settings and the bundled sample app.
"""

from __future__ import annotations

import json
import secrets
import shlex
import shutil

import pytest

from lbstack import layout
from lbstack.plan import make_plan
from lbstack.release import SAMPLE_APP_DIR
from lbstack.settings import load

from e2e_helpers import REHEARSAL_SETTINGS, changed_ops, failed_ops, http, pyinfra, remote

INSTANCES = 5


def _online_cpus(info) -> int:
    rc, out, err = remote(info, "getconf _NPROCESSORS_ONLN")  # what pyinfra's Cpus fact falls back to
    assert rc == 0, err
    return int(out.strip())


def _pointers(info) -> dict[str, str]:
    rc, out, _ = remote(info, f"for p in {layout.INSTANCES_DIR}/*; do echo ${{p##*/}}=$(readlink -f $p); done")
    assert rc == 0
    return dict(line.split("=", 1) for line in out.split())


def _php_probe(info, instance: int, code: str) -> str:
    """Run ``code`` in one of the instance's FPM workers (straight on its socket), from a probe
    file that is removed afterwards; returns the body."""
    # next to the front controller: a directory every worker reads
    probe = f"{layout.FRONT_CONTROLLER.rsplit('/', 1)[0]}/probe-{secrets.token_hex(4)}.php"
    command = (f"printf '%s' {shlex.quote('<?php ' + code)} > {probe} && chmod 644 {probe} && "
               f"SCRIPT_FILENAME={probe} REQUEST_METHOD=GET cgi-fcgi -bind -connect {layout.fpm_socket(instance)}; "
               f"rc=$?; rm -f {probe}; exit $rc")
    rc, out, err = remote(info, command)
    assert rc == 0, err
    return out.split("\r\n\r\n", 1)[-1]


def test_each_instance_runs_on_the_cpus_the_plan_placed_it_on_as_a_batch_task(host):
    online = _online_cpus(host)
    settings = load(REHEARSAL_SETTINGS)
    plan = make_plan(settings.capacity_cpus, settings.capacity_memory_mib, settings, online_cpus=online)
    if online < 2:
        pytest.fail(f"the rehearsal host has {online} CPU: nothing to place (this machine has 2)")
    assert all(plan.php_fpm.instance_cpus) and len(set(plan.php_fpm.instance_cpus)) == min(online, INSTANCES)
    for index, expected in enumerate(plan.php_fpm.instance_cpus, start=1):
        unit = layout.fpm_unit(index)
        # the master and every worker it forked: the kernel's own record
        rc, out, err = remote(host, f"pid=$(systemctl show -p MainPID --value {unit}); "
                                    f"for p in $pid $(pgrep -P $pid); do "
                                    "sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/$p/status; done")
        assert rc == 0, err
        lists = out.split()
        assert len(lists) == 1 + plan.php_fpm.max_children, (unit, lists)
        assert set(lists) == {expected}, (unit, lists)
        rc, out, err = remote(host, f"pid=$(systemctl show -p MainPID --value {unit}); "
                                    "for p in $pid $(pgrep -P $pid); do chrt -p $p | head -1; done")
        assert rc == 0, err
        policies = {line.rsplit(":", 1)[1].strip() for line in out.splitlines()}
        assert policies == {"SCHED_BATCH"}, (unit, out)


def test_nginx_and_redis_run_as_batch_tasks(host):
    for unit in ("nginx.service", "redis-server.service"):
        rc, out, err = remote(host, f"pid=$(systemctl show -p MainPID --value {unit}); "
                                    "for p in $pid $(pgrep -P $pid); do chrt -p $p | head -1; done")
        assert rc == 0, err
        assert {line.rsplit(":", 1)[1].strip() for line in out.splitlines()} == {"SCHED_BATCH"}, (unit, out)


def test_each_master_preloads_its_own_release(host):
    pointers = _pointers(host)
    for index in (1, INSTANCES):
        body = _php_probe(host, index, "echo json_encode(opcache_get_status(false)['preload_statistics'] ?? null);")
        stats = json.loads(body)
        assert stats is not None, body
        assert {"App\\Http\\Kernel", "App\\Http\\Controllers\\QuestionController", "App\\Models\\Question"} <= set(stats["classes"])
        release = pointers[layout.instance_name(index)]
        app_scripts = [s for s in stats["scripts"] if s != layout.PRELOAD_SCRIPT]
        assert app_scripts and all(s.startswith(release + "/app/") for s in app_scripts), (release, app_scripts[:3])
    # the preloaded classes serve real requests
    status, _, body = http(f"http://{host.address}/api/questions/random")
    assert status == 200 and json.loads(body)["source"] in ("cache", "database")


def test_php_errors_reach_the_journal_under_the_instance_name(host):
    marker = f"lbstack-probe-{secrets.token_hex(6)}"
    _php_probe(host, 2, f"error_log('{marker}'); trigger_error('{marker}-warning', E_USER_WARNING); echo 'done';")
    rc, out, err = remote(host, f"for i in 1 2 3 4 5 6 7 8 9 10; do journalctl -t lbstack-app2 --no-pager -q | "
                                f"grep -c {marker} && break; sleep 0.3; done; journalctl -t lbstack-app2 --no-pager -q | grep {marker}")
    assert rc == 0, (out, err)
    assert marker in out and f"PHP Warning:  {marker}-warning" in out


def test_a_release_that_cannot_be_preloaded_is_refused_and_the_host_keeps_serving(host, tmp_path):
    before = _pointers(host)
    broken = tmp_path / "broken-app"
    shutil.copytree(SAMPLE_APP_DIR, broken, ignore=shutil.ignore_patterns("storage"))
    # a compile error OPcache cannot skip (a parse error is skipped and named; this is fatal)
    (broken / "app" / "Support").mkdir(exist_ok=True)
    (broken / "app" / "Support" / "Twice.php").write_text(
        "<?php\nnamespace App\\Support;\nfinal class Twice { public function a() {} public function a() {} }\n")
    run = pyinfra(host.name, settings={**REHEARSAL_SETTINGS, "app_source": str(broken)})
    assert run["rc"] != 0
    assert "cannot be preloaded by OPcache" in run["stderr"] and "Cannot redeclare" in run["stderr"]
    assert "php_preload: []" in run["stderr"]
    # the run stopped at the release check, before the database was touched: no backup, no
    # migration, no instance drained or switched (pyinfra names each operation it starts)
    output = run["stderr"] + run["stdout"]
    assert "Unpack release" in output
    assert "Migrate the database" not in output and "Back up the database" not in output
    assert "Rolling update" not in output
    assert _pointers(host) == before  # no instance switched
    for _ in range(20):
        status, headers, _ = http(f"http://{host.address}/api/questions/random")
        assert status == 200, status
    # back to the rehearsal settings: converges (removing the unsealed release) and is clean again
    again = pyinfra(host.name)
    assert again["rc"] == 0 and failed_ops(again) == [], again["stderr"][-3000:]
    assert _pointers(host) == before
    third = pyinfra(host.name)
    assert third["rc"] == 0 and changed_ops(third) == [], changed_ops(third)
