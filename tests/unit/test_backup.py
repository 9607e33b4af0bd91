"""Database backups without a database: the helper lbstack-backup rendered from its template and
run here against fake ``mysqldump``/``mariadb`` scripts (create, checksums, metadata, retention,
verify, refused and good restores, a failing dump), the ``backups_keep`` setting, and the
``backup``/``backups``/``restore`` commands' errors run as a user runs them (subprocesses)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from pyinfra.api.util import get_template

from lbstack.render import jinja, template
from lbstack import REPO_ROOT, layout
from lbstack.backup import NAME, db_hosts
from lbstack.session import SessionError
from lbstack.settings import SettingsError, load

DB = "lbstack"
DUMP = "-- fake dump of lbstack\nCREATE TABLE questions (id INT);\nINSERT INTO questions VALUES (1),(2),(3);\n-- ünïcode ✓\n"
PATTERN = re.compile(rf"^{DB}-\d{{8}}T\d{{6}}Z\.sql\.gz$")


def render(backup_dir: str, database: str = DB, keep: int = 3) -> str:
    """The helper as deploy/mariadb.py renders it."""
    return get_template(template(layout.BACKUP_HELPER), jinja()).render(
        backup_dir=backup_dir, database=database, keep=keep)


# -- the template ----------------------------------------------------------------------------------


def test_template_renders_valid_bash_from_the_default_settings(tmp_path):
    settings = load({})
    text = render(layout.BACKUP_DIR, settings.db_name, settings.backups_keep)
    script = tmp_path / "lbstack-backup"
    script.write_text(text)
    check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert text.startswith("#!/bin/bash\n")
    assert "\nDIR=/var/backups/lbstack\nDB=lbstack\nKEEP=14\n" in text
    assert "set -euo pipefail" in text and "umask 077" in text
    assert "{{" not in text and "{%" not in text


# -- the helper, run against fake mysqldump and mariadb ------------------------------------------------


@pytest.fixture
def helper(tmp_path):
    """Run the rendered helper (keep 3) with fake mysqldump/mariadb first in PATH."""
    bin_dir, log, backups = tmp_path / "bin", tmp_path / "log", tmp_path / "backups"
    bin_dir.mkdir()
    log.mkdir()
    (tmp_path / "dump.sql").write_text(DUMP)
    fakes = {
        "mysqldump": 'echo "$*" > "$FAKE_LOG/mysqldump.args"\n'
                     'if [ -e "$FAKE_LOG/nodb" ]; then\n'
                     '  echo "mysqldump: Got error: 1049: \\"Unknown database \'lbstack\'\\" when selecting the database" >&2\n'
                     '  exit 2\n'
                     'fi\n'
                     'if [ -e "$FAKE_LOG/fail" ]; then\n'
                     '  printf "half a dump"\n'
                     '  echo "mysqldump: Got error: 2002: Can\'t connect to local server through socket" >&2\n'
                     '  exit 2\n'
                     'fi\n'
                     'cat "$FAKE_DUMP"\n',
        "mariadb": 'echo "$*" >> "$FAKE_LOG/mariadb.calls"\ncat > "$FAKE_LOG/mariadb.stdin"\n',
    }
    for name, body in fakes.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)
    script = tmp_path / "lbstack-backup"
    script.write_text(render(str(backups)))
    script.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(log),
           "FAKE_DUMP": str(tmp_path / "dump.sql")}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(script), *args], capture_output=True, text=True, env=env, timeout=60)

    return SimpleNamespace(run=run, dir=backups, log=log)


def complete(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.sql.gz"))


def fabricate(directory: Path, stamp: str, content: bytes = b"-- old\n") -> str:
    """A complete backup as create leaves one, with the given time stamp."""
    directory.mkdir(mode=0o700, exist_ok=True)
    name = f"{DB}-{stamp}.sql.gz"
    data = gzip.compress(content)
    (directory / name).write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    (directory / f"{name}.sha256").write_text(f"{digest}  {name}\n")
    (directory / f"{name}.json").write_text(json.dumps(
        {"name": name, "database": DB, "created": "x", "bytes": len(data), "sha256": digest, "reason": "old"},
        separators=(",", ":")) + "\n")
    return name


def flip_byte(path: Path, offset: int = 12) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_create_writes_dump_checksum_and_metadata(helper):
    run = helper.run("create", "--reason", 'before "upgrade" of C:\\db')
    assert run.returncode == 0, run.stderr
    (name,) = run.stdout.splitlines()  # the name, one line, nothing else on stdout
    assert PATTERN.match(name)
    assert sorted(p.name for p in helper.dir.iterdir() if not p.name.startswith(".")) == [
        name, f"{name}.json", f"{name}.sha256"]
    data = (helper.dir / name).read_bytes()
    assert gzip.decompress(data).decode() == DUMP
    digest = hashlib.sha256(data).hexdigest()
    assert (helper.dir / f"{name}.sha256").read_text() == f"{digest}  {name}\n"  # sha256sum format
    check = subprocess.run(["sha256sum", "-c", f"{name}.sha256"], cwd=helper.dir, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    meta = json.loads((helper.dir / f"{name}.json").read_text())
    assert meta == {"name": name, "database": DB, "created": meta["created"], "bytes": len(data),
                    "sha256": digest, "reason": 'before "upgrade" of C:\\db'}
    stamp = name[len(DB) + 1:-len(".sql.gz")]
    assert meta["created"] == f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}Z"
    args = (helper.log / "mysqldump.args").read_text().split()
    assert args[-2:] == ["--databases", DB]
    assert {"--single-transaction", "--quick", "--routines", "--triggers", "--events"} <= set(args)
    assert stat.S_IMODE(helper.dir.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in helper.dir.iterdir())
    assert not (helper.log / "mariadb.calls").exists()


def test_two_backups_in_one_second_get_different_names(helper):
    first, second = helper.run("create"), helper.run("create")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert first.stdout != second.stdout
    assert complete(helper.dir) == sorted([first.stdout.strip(), second.stdout.strip()])


def test_retention_keeps_the_newest_and_deletes_the_oldest_with_their_files(helper):
    old = [fabricate(helper.dir, f"2020010{i}T000000Z") for i in range(1, 5)]
    run = helper.run("create")
    assert run.returncode == 0, run.stderr
    name = run.stdout.strip()
    assert complete(helper.dir) == [old[2], old[3], name]  # keep 3
    for gone in old[:2]:
        assert not list(helper.dir.glob(f"{gone}*")), gone
        assert f"removed {gone}" in run.stderr
    assert run.stdout.splitlines() == [name]


def test_retention_never_deletes_the_backup_just_made(helper):
    # the clock went back: three backups with later names than the new one
    later = [fabricate(helper.dir, f"2099010{i}T000000Z") for i in range(1, 4)]
    run = helper.run("create")
    assert run.returncode == 0, run.stderr
    name = run.stdout.strip()
    assert (helper.dir / name).is_file() and (helper.dir / f"{name}.sha256").is_file()
    assert complete(helper.dir) == sorted([name, *later])


def test_list_is_one_json_object_per_backup_newest_last_with_checksums_computed(helper):
    older = fabricate(helper.dir, "20200101T000000Z")
    name = helper.run("create", "--reason", "nightly").stdout.strip()
    (helper.dir / f"{older}.json").unlink()  # metadata lost: rebuilt from the files
    listed = helper.run("list")
    assert listed.returncode == 0, listed.stderr
    entries = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [e["name"] for e in entries] == [older, name]
    assert all(e["verified"] is True for e in entries)
    assert entries[0]["created"] == "2020-01-01T00:00:00Z" and entries[0]["reason"] == ""
    assert entries[1]["reason"] == "nightly"
    assert set(entries[1]) >= {"name", "created", "bytes", "sha256", "reason", "verified"}
    flip_byte(helper.dir / older)
    entries = [json.loads(line) for line in helper.run("list").stdout.splitlines()]
    assert [e["verified"] for e in entries] == [False, True]


def test_verify_passes_a_good_backup_and_fails_a_corrupt_one_with_exit_3(helper):
    name = helper.run("create").stdout.strip()
    good = helper.run("verify", name)
    assert good.returncode == 0 and f"backup {name} ok" in good.stdout, good.stderr
    expected = hashlib.sha256((helper.dir / name).read_bytes()).hexdigest()
    flip_byte(helper.dir / name)
    got = hashlib.sha256((helper.dir / name).read_bytes()).hexdigest()
    bad = helper.run("verify", name)
    assert bad.returncode == 3
    assert f"backup {name} is corrupt: checksum mismatch (expected {expected}, got {got})" in bad.stderr


def test_verify_refuses_missing_backups_and_checksums_and_broken_gzip(helper):
    missing = helper.run("verify", f"{DB}-20200101T000000Z.sql.gz")
    assert missing.returncode == 3 and "does not exist" in missing.stderr
    name = fabricate(helper.dir, "20200102T000000Z")
    (helper.dir / f"{name}.sha256").unlink()
    no_sum = helper.run("verify", name)
    assert no_sum.returncode == 3 and "checksum file" in no_sum.stderr
    # a checksum that matches a file that is not gzip (written so by hand): gzip -t catches it
    other = f"{DB}-20200103T000000Z.sql.gz"
    (helper.dir / other).write_bytes(b"not gzip at all")
    (helper.dir / f"{other}.sha256").write_text(f"{hashlib.sha256(b'not gzip at all').hexdigest()}  {other}\n")
    not_gzip = helper.run("verify", other)
    assert not_gzip.returncode == 3 and "gzip -t failed" in not_gzip.stderr


def test_restore_pipes_exactly_the_dump_into_mariadb(helper):
    name = helper.run("create").stdout.strip()
    run = helper.run("restore", name)
    assert run.returncode == 0, run.stderr
    assert (helper.log / "mariadb.stdin").read_text() == DUMP
    assert len((helper.log / "mariadb.calls").read_text().splitlines()) == 1


def test_restore_of_a_corrupt_backup_is_refused_and_mariadb_never_called(helper):
    name = helper.run("create").stdout.strip()
    flip_byte(helper.dir / name, 20)
    run = helper.run("restore", name)
    assert run.returncode == 3
    assert f"backup {name} is corrupt: checksum mismatch" in run.stderr
    assert not (helper.log / "mariadb.calls").exists()
    missing = helper.run("restore", f"{DB}-20200101T000000Z.sql.gz")
    assert missing.returncode == 3 and not (helper.log / "mariadb.calls").exists()


@pytest.mark.parametrize("bad", ["../../etc/shadow", f"{DB}-20200101T000000Z.sql.gz/../x", "other-20200101T000000Z.sql.gz",
                                 f"{DB}-20200101T000000Z.sql.gz.sha256", f"{DB}-2020.sql.gz", "", "-x"])
def test_names_that_are_not_backups_of_this_database_are_refused(helper, bad):
    fabricate(helper.dir, "20200101T000000Z")
    for command in ("verify", "restore", "info"):
        run = helper.run(command, bad)
        assert run.returncode == 2, (command, bad, run.stderr)
        assert "not a backup name" in run.stderr
    assert not (helper.log / "mariadb.calls").exists()


def test_a_failing_dump_leaves_no_backup_and_says_why(helper):
    kept = fabricate(helper.dir, "20200101T000000Z")
    (helper.log / "fail").touch()
    run = helper.run("create")
    assert run.returncode != 0
    assert "Got error: 2002" in run.stderr and f"no backup of {DB} was made: mysqldump failed" in run.stderr
    assert run.stdout == ""
    assert sorted(p.name for p in helper.dir.iterdir() if not p.name.startswith(".")) == [
        kept, f"{kept}.json", f"{kept}.sha256"]


def test_a_database_not_created_yet_is_nothing_to_back_up(helper):
    (helper.log / "nodb").touch()  # first install: a restart's backup comes before the database
    run = helper.run("create", "--reason", "before a MariaDB restart")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "" and f"database {DB} does not exist: nothing to back up" in run.stderr
    assert [p.name for p in helper.dir.iterdir() if not p.name.startswith(".")] == []


def test_usage_errors(helper):
    for args in ([], ["frobnicate"], ["create", "--force"], ["verify"], ["restore", "a", "b"], ["list", "x"]):
        run = helper.run(*args)
        assert run.returncode == 2 and "usage: lbstack-backup" in run.stderr, args
    long_reason = helper.run("create", "--reason", "x" * 201)
    assert long_reason.returncode == 2 and "200 characters" in long_reason.stderr


# -- the setting ---------------------------------------------------------------------------------------


def test_backups_keep_default_and_refusals():
    assert load({}).backups_keep == 14 and load({"backups_keep": 1}).backups_keep == 1
    for value, phrase in ((0, "at least 1"), (-2, "at least 1"), ("14", "whole number"), (2.5, "whole number")):
        with pytest.raises(SettingsError) as err:
            load({"backups_keep": value})
        assert str(err.value).startswith("backups_keep:") and phrase in str(err.value)


# -- the commands, as a user runs them -------------------------------------------------------------------


def lbstack(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    exe = os.path.join(os.path.dirname(sys.executable), "lbstack")
    return subprocess.run([exe, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)


GOOD_NAME = f"{DB}-20250101T120000Z.sql.gz"


def inventory(tmp_path: Path, body: str, name: str = "inv.py") -> str:
    path = tmp_path / name
    path.write_text("from lbstack.settings import inventory_data\n" + textwrap.dedent(body))
    return str(path)


@pytest.fixture
def unreachable(tmp_path):
    """One host refusing ssh (127.0.0.1 port 1: nothing listens) in every group."""
    return inventory(tmp_path, """
        all = ([("db1", {"ssh_hostname": "127.0.0.1", "ssh_port": 1, "ssh_connect_retries": 0})],
               inventory_data({}))
        lb = app = db = cache = ["db1"]
    """)


@pytest.mark.parametrize("args", [["backup"], ["backups"], ["restore", "--yes"]])
def test_missing_inventory_is_a_usage_error(args):
    extra = [GOOD_NAME] if args[0] == "restore" else []
    run = lbstack(args[0], "inventories/nope.py", *extra, *args[1:])
    assert run.returncode == 2, run.stderr
    assert "inventory file 'inventories/nope.py' not found" in run.stderr
    assert "Traceback" not in run.stdout + run.stderr


def test_restore_without_yes_says_what_it_would_do_and_does_nothing(unreachable):
    run = lbstack("restore", unreachable, GOOD_NAME)
    assert run.returncode == 2, run.stderr
    assert f"would restore backup {GOOD_NAME} on db1 (database lbstack)" in run.stderr
    assert "--yes" in run.stderr and "cannot reach" not in run.stderr  # no connection made


@pytest.mark.parametrize("name", ["../etc/passwd", "lbstack-latest.sql.gz", "lbstack-20250101T120000Z.sql"])
def test_restore_of_a_name_that_is_no_backup_is_a_usage_error(unreachable, name):
    run = lbstack("restore", unreachable, name, "--yes")
    assert run.returncode == 2 and "is not a backup name" in run.stderr and "Traceback" not in run.stderr


def test_restore_needs_a_name(unreachable):
    run = lbstack("restore", unreachable)
    assert run.returncode == 2 and "Missing argument 'NAME'" in run.stderr


@pytest.mark.parametrize("args", [["backup"], ["backups"], ["restore", GOOD_NAME, "--yes"], ["restore", GOOD_NAME]])
def test_limit_to_an_unknown_host(unreachable, args):
    run = lbstack(args[0], unreachable, *args[1:], "--limit", "db9")
    assert run.returncode == 2 and "no host db9" in run.stderr, run.stderr


@pytest.mark.parametrize("args", [["backup"], ["backups"], ["restore", GOOD_NAME, "--yes"]])
def test_unreachable_host_is_named(unreachable, args):
    run = lbstack(args[0], unreachable, *args[1:])
    assert run.returncode == 1, run.stderr
    assert "cannot reach db1 (127.0.0.1:1)" in run.stderr and "Traceback" not in run.stdout + run.stderr


def test_a_bad_reason_is_a_usage_error(unreachable):
    run = lbstack("backup", unreachable, "--reason", "x" * 201)
    assert run.returncode == 2 and "--reason" in run.stderr


def test_an_invalid_backups_keep_stops_the_command_naming_the_key(tmp_path):
    path = inventory(tmp_path, """
        all = (["127.0.0.1"], inventory_data({"backups_keep": 0}))
        lb = app = db = cache = ["127.0.0.1"]
    """)
    for args in (["backup", path], ["restore", path, GOOD_NAME]):
        run = lbstack(*args)
        assert run.returncode == 2, run.stderr
        assert "backups_keep: must be at least 1" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.skipif(os.path.exists(layout.BACKUP_HELPER), reason="this machine has lbstack-backup installed")
def test_a_host_without_the_helper_is_named_with_the_fix(tmp_path):
    path = inventory(tmp_path, """
        all = (["@local"], inventory_data({}))
        lb = app = db = cache = ["@local"]
    """)
    for args in (["backup", path], ["backups", path], ["restore", path, GOOD_NAME, "--yes"]):
        run = lbstack(*args)
        assert run.returncode == 1, run.stderr
        assert f"@local: {layout.BACKUP_HELPER} is missing" in run.stderr and "deploy/full.py" in run.stderr


def test_restore_with_several_db_hosts_asks_for_one(tmp_path):
    path = inventory(tmp_path, """
        all = ([("db1", {"ssh_hostname": "127.0.0.1", "ssh_port": 1}), ("db2", {"ssh_hostname": "127.0.0.1", "ssh_port": 1})],
               inventory_data({}))
        db = ["db1", "db2"]
    """)
    run = lbstack("restore", path, GOOD_NAME)
    assert run.returncode == 2 and "on db1 (database lbstack), db2 (database lbstack)" in run.stderr


# -- which hosts ---------------------------------------------------------------------------------------


def test_db_hosts_are_the_db_group_or_every_host_without_one():
    a, b, c = (SimpleNamespace(name=n) for n in "abc")
    assert db_hosts([c, a, b], [b], "inv.py") == [b]
    assert db_hosts([c, a], [], "inv.py") == [a, c]  # no db group: a single-VPS style inventory
    with pytest.raises(SessionError, match="no host of inv.py's db group is among a, c"):
        db_hosts([a, c], [b], "inv.py")


def test_backup_names_the_cli_accepts():
    assert NAME.match(GOOD_NAME) and NAME.match("my_app2-20991231T235959Z.sql.gz")
    for bad in ("lbstack-20250101T120000Z.sql.gz.sha256", "../lbstack-20250101T120000Z.sql.gz", "Lb-20250101T120000Z.sql.gz"):
        assert not NAME.match(bad)
