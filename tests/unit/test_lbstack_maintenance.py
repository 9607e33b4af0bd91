"""lbstack-maintenance rendered from its real template (paths in a scratch directory) and run with
bash against fake ``systemctl``, ``mariadb`` and ``lbstack-backup``: the flag, and the MariaDB
restart's success and failure paths (a failed restart or a server that does not come back leaves
maintenance on), with the output/exit-code contract."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from lbstack import hostscripts, layout, rollout
from lbstack.render import render
from lbstack.settings import load



def relocated(paths: dict[str, str], root: Path) -> dict[str, str]:
    return {key: f"{root}{value}" if value.startswith("/") else value for key, value in paths.items()}


def assert_contract(run) -> None:
    """stdout holds only KEY=VALUE lines, each key once; a failure ends with detail=."""
    keys = [line.partition("=")[0] for line in run.out.splitlines()]
    assert all(re.fullmatch(r"[a-z_]+", k) for k in keys) and len(keys) == len(set(keys)), run.out
    if run.code:
        assert keys and keys[-1] == "detail", run.out

FAKES = {
    # systemctl restart mariadb.service: records whether maintenance was on; the server then
    # refuses its first 2 connections ($FAKE/starting), or all of them with $FAKE/stays-down;
    # the restart fails when $FAKE/fail-restart exists
    "systemctl": r'''
echo "systemctl $* maintenance=$([ -e "$FLAG" ] && echo on || echo off)" >> "$FAKE/calls"
if [ "$1" = restart ]; then
    if [ -e "$FAKE/fail-restart" ]; then echo "Job for $2 failed." >&2; exit 1; fi
    echo 2 > "$FAKE/starting"
fi
''',
    "mariadb": r'''
echo "mariadb $*" >> "$FAKE/calls"
starting=$(cat "$FAKE/starting" 2>/dev/null || echo 0)
if [ -e "$FAKE/stays-down" ] || [ "$starting" -gt 0 ]; then
    echo $((starting - 1)) > "$FAKE/starting"
    echo "ERROR 2002 (HY000): Can't connect to local server" >&2
    exit 1
fi
case "$*" in
*information_schema*) if [ -e "$FAKE/db-exists" ]; then echo 1; fi ;;
*) echo 1 ;;
esac
''',
    "lbstack-backup": r'''
echo "lbstack-backup $* maintenance=$([ -e "$FLAG" ] && echo on || echo off)" >> "$FAKE/calls"
if [ -e "$FAKE/backup-fails" ]; then echo "lbstack-backup: no backup of lbstack was made: mysqldump failed" >&2; exit 1; fi
echo lbstack-20261124T101500Z.sql.gz
''',
}


@pytest.fixture
def host(tmp_path):
    root, fake, bin_dir = tmp_path / "root", tmp_path / "fake", tmp_path / "bin"
    paths = relocated(hostscripts.maintenance_paths(), root)
    for directory in (fake, bin_dir, Path(paths["backup_helper"]).parent):
        directory.mkdir(parents=True, exist_ok=True)
    for name, body in FAKES.items():
        path = Path(paths["backup_helper"]) if name == "lbstack-backup" else bin_dir / name
        path.write_text(f"#!/bin/sh\nFAKE={fake}\nFLAG={paths['flag']}\n{body}")
        path.chmod(0o755)
    script = tmp_path / "lbstack-maintenance"
    script.write_text(render(layout.MAINTENANCE_HELPER, **hostscripts.maintenance_template_data(**paths)))
    script.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LANG": "C.UTF-8"}

    def run(*args: str) -> SimpleNamespace:
        started = time.monotonic()
        proc = subprocess.run([str(script), *args], capture_output=True, text=True, env=env, timeout=60)
        return SimpleNamespace(code=proc.returncode, out=proc.stdout, err=proc.stderr, seconds=time.monotonic() - started,
                               fields=rollout.Result(proc.returncode, proc.stdout, proc.stderr).fields)

    def calls() -> list[str]:
        path = fake / "calls"
        return path.read_text().splitlines() if path.exists() else []

    return SimpleNamespace(run=run, calls=calls, fake=fake, flag=Path(paths["flag"]), paths=paths)


def restart(host, wait_s: int = 30):
    return host.run(*hostscripts.restart_mariadb(load({}), wait_s=wait_s)[1:])


def test_renders_from_the_layout():
    text = render(layout.MAINTENANCE_HELPER, **hostscripts.maintenance_template_data())
    assert text.startswith("#!/bin/bash\n") and "set -euo pipefail" in text and "{{" not in text
    for line in (f"FLAG={layout.MAINTENANCE_FLAG}", f"BACKUP_HELPER={layout.BACKUP_HELPER}", "DB_UNIT=mariadb.service"):
        assert f"\n{line}\n" in text


def test_on_off_and_usage(host):
    on = host.run("on")
    assert on.code == 0 and on.fields == {"maintenance": "on"} and host.flag.exists()
    assert host.run("on").code == 0  # again: still on
    off = host.run("off")
    assert off.code == 0 and off.fields == {"maintenance": "off"} and not host.flag.exists()
    assert host.run("off").code == 0
    assert host.run("help").code == 0
    for args in ([], ["sideways"], ["on", "now"], ["restart-mariadb"], ["restart-mariadb", "--database", "x; DROP"],
                 ["restart-mariadb", "--database", "lbstack", "--wait", "long"]):
        run = host.run(*args)
        assert run.code == 2, (args, run.out, run.err)
    assert host.calls() == [] and not host.flag.exists()


def test_restart_backs_up_then_restarts_inside_maintenance(host):
    (host.fake / "db-exists").touch()
    run = restart(host)
    assert run.code == 0, run.err
    assert run.fields == {"backup": "lbstack-20261124T101500Z.sql.gz", "restarted": "mariadb.service", "maintenance": "off"}
    assert_contract(run)
    assert not host.flag.exists()
    calls = host.calls()
    backup = next(i for i, c in enumerate(calls) if c.startswith("lbstack-backup"))
    (restarted,) = [i for i, c in enumerate(calls) if c.startswith("systemctl restart")]
    assert calls[backup] == "lbstack-backup create --reason before a MariaDB restart (config changed) maintenance=off"
    assert calls[restarted] == "systemctl restart mariadb.service maintenance=on"
    assert backup < restarted
    assert "schema_name = 'lbstack'" in calls[0]
    assert run.seconds >= 1  # running requests got their second
    # it waited for the server to answer again (2 refusals, then an answer) before ending maintenance
    assert calls[restarted + 1:] == ["mariadb -N -e SELECT 1"] * 3


def test_no_database_yet_no_backup(host):
    run = restart(host)
    assert run.code == 0 and run.fields["backup"] == "none"
    assert not any(c.startswith("lbstack-backup") for c in host.calls())


def test_a_failed_backup_changes_nothing(host):
    (host.fake / "db-exists").touch()
    (host.fake / "backup-fails").touch()
    run = restart(host)
    assert run.code == 1 and "backup of lbstack failed" in run.fields["detail"] and "mysqldump failed" in run.err
    assert_contract(run)
    assert not host.flag.exists() and not any(c.startswith("systemctl") for c in host.calls())


def test_a_failed_restart_leaves_maintenance_on(host):
    (host.fake / "fail-restart").touch()
    run = restart(host)
    assert run.code == 1
    assert_contract(run)
    assert run.fields["maintenance"] == "on" and host.flag.exists()
    assert "systemctl restart mariadb.service failed: maintenance stays on" in run.fields["detail"]
    assert "lbstack-maintenance off" in run.err


def test_a_server_that_does_not_come_back_in_time_leaves_maintenance_on(host):
    (host.fake / "stays-down").touch()
    run = restart(host, wait_s=1)
    assert run.code == 1 and run.fields["maintenance"] == "on" and host.flag.exists()
    assert "did not answer within 1 s" in run.fields["detail"]
    assert 1.9 < run.seconds < 5  # the settle second, then the bounded wait
    answers = [c for c in host.calls() if c == "mariadb -N -e SELECT 1"]
    assert 2 <= len(answers) <= 4
