"""Database backups on a converged rehearsal host: ``lbstack backup``, rows changed, ``lbstack
restore NAME --yes`` brings the table back (CHECKSUM TABLE and row count); a backup corrupted on
the host is listed as unverified and its restore refused (exit 3, checksum mismatch) with the table
left as it was; no secret value in any output or in a dump."""

from __future__ import annotations

import re
import shlex

import pytest

from e2e_helpers import lbstack, remote
from lbstack.layout import BACKUP_DIR, BACKUP_HELPER, SECRETS, SECRETS_DIR

INV = "inventories/rehearsal.py"
TABLE = "lbstack.questions"
NAME = re.compile(r"^lbstack-\d{8}T\d{6}Z\.sql\.gz$")
OUTPUTS: list[str] = []  # every lbstack output of this module, for the secrets check at the end


@pytest.fixture(scope="module")
def host(converged_nspawn):
    """The shared host; its database is put back as it was (a backup made first, restored last)
    and the app's cache emptied, for the modules that run after this one."""
    _, info, first = converged_nspawn
    assert first["rc"] == 0, first["stderr"][-4000:]
    rc, out, err = remote(info, f"{BACKUP_HELPER} create --reason 'e2e: before test_backup'")
    assert rc == 0, err
    start = out.strip().splitlines()[-1]
    yield info
    rc, out, err = remote(info, f"{BACKUP_HELPER} restore {shlex.quote(start)} && "
                                "p=$(sed -n 's/^REDIS_PASSWORD=//p' /srv/lbstack/app/shared/.env); for n in 0 1; do "
                                'REDISCLI_AUTH="$p" redis-cli --no-auth-warning -s /run/redis/redis-server.sock '
                                '-n $n FLUSHDB >/dev/null || exit 1; done')
    assert rc == 0, out + err


def run(host, *args: str) -> dict:
    result = lbstack(host.name, *args)
    OUTPUTS.extend((result["stdout"], result["stderr"]))
    return result


def sql(host, statements: str) -> str:
    rc, out, err = remote(host, f"mariadb -N -B -e {shlex.quote(statements)}")
    assert rc == 0, err
    return out.strip()


def table_state(host) -> tuple[str, int]:
    """(CHECKSUM TABLE, row count) of the app's questions table."""
    checksum = sql(host, f"CHECKSUM TABLE {TABLE}").split("\t")[1]
    return checksum, int(sql(host, f"SELECT COUNT(*) FROM {TABLE}"))


def change_rows(host, tag: str) -> None:
    sql(host, f"UPDATE {TABLE} SET body = CONCAT(body, ' {tag}') WHERE id = 1; "
              f"DELETE FROM {TABLE} WHERE id IN (2, 3); "
              f"INSERT INTO {TABLE} (subject, body, options, answer) VALUES ('e2e', '{tag}', '[\"a\", \"b\"]', 0);")


def new_backup(host, reason: str) -> dict:
    made = run(host, "backup", INV, "--reason", reason, "--json")
    assert made["rc"] == 0, made["stdout"] + made["stderr"]
    (entry,) = made["json"]["backups"]
    return entry


def test_the_helper_and_its_directory_are_deployed_root_only(host):
    rc, out, _ = remote(host, f"stat -c '%U %G %a' {BACKUP_DIR} {BACKUP_HELPER}")
    assert rc == 0 and out.splitlines() == ["root root 700", "root root 755"], out
    rc, out, _ = remote(host, f"grep -E '^(DIR|DB|KEEP)=' {BACKUP_HELPER}")
    assert out.split() == [f"DIR={BACKUP_DIR}", "DB=lbstack", "KEEP=14"]


def test_backup_then_restore_brings_the_table_back(host):
    before = table_state(host)
    assert before[1] > 3, "the sample app's questions are seeded"
    table = run(host, "backup", INV)  # the table for people: name, size, checksum
    assert table["rc"] == 0, table["stdout"] + table["stderr"]
    entry = new_backup(host, "e2e round trip")
    name = entry["name"]
    assert entry["host"] == host.name and NAME.match(name) and entry["database"] == "lbstack"
    assert entry["bytes"] > 1000 and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
    assert entry["reason"] == "e2e round trip"
    assert "Database backups made" in table["stdout"]
    assert re.search(r"lbstack-\d{8}T\d{6}Z\.sql\.gz", table["stdout"]) and re.search(r"[0-9a-f]{64}", table["stdout"])
    rc, out, err = remote(host, f"cd {BACKUP_DIR} && sha256sum -c {name}.sha256 && stat -c '%U %a' {name}")
    assert rc == 0 and out.splitlines() == [f"{name}: OK", "root 600"], out + err

    listed = run(host, "backups", INV, "--json")
    assert listed["rc"] == 0, listed["stderr"]
    (h,) = listed["json"]["hosts"]
    mine = {b["name"]: b for b in h["backups"]}[name]
    assert mine["verified"] is True and mine["sha256"] == entry["sha256"] and mine["bytes"] == entry["bytes"]
    assert h["backups"][-1]["name"] == name  # newest last

    change_rows(host, "changed-after-backup")
    changed = table_state(host)
    assert changed[0] != before[0] and changed[1] == before[1] - 1

    asked = run(host, "restore", INV, name)
    assert asked["rc"] == 2 and "--yes" in asked["stderr"] and name in asked["stderr"]
    assert table_state(host) == changed  # nothing done without --yes

    restored = run(host, "restore", INV, name, "--yes")
    assert restored["rc"] == 0, restored["stdout"] + restored["stderr"]
    assert f"{host.name}: restored {name} into database lbstack" in restored["stdout"]
    assert table_state(host) == before


def test_a_corrupt_backup_is_refused_and_the_table_left_alone(host):
    name = new_backup(host, "e2e corrupt")["name"]
    change_rows(host, "changed-before-corrupt-restore")
    changed = table_state(host)
    path = f"{BACKUP_DIR}/{name}"
    # one byte changed for sure: 'x', or 'y' where the file already has an 'x'
    rc, _, err = remote(host, f"if [ \"$(dd if={path} bs=1 skip=100 count=1 2>/dev/null)\" = x ]; then c=y; "
                              f"else c=x; fi; printf $c | dd of={path} bs=1 seek=100 conv=notrunc 2>/dev/null")
    assert rc == 0, err

    listed = run(host, "backups", INV, "--json")
    assert listed["rc"] == 3 and f"{name}: checksum mismatch" in listed["stderr"]
    (h,) = listed["json"]["hosts"]
    assert {b["name"]: b["verified"] for b in h["backups"]}[name] is False

    refused = run(host, "restore", INV, name, "--yes")
    assert refused["rc"] == 3, refused["stdout"] + refused["stderr"]
    assert f"{host.name}: restore refused" in refused["stderr"]
    assert f"backup {name} is corrupt: checksum mismatch (expected " in refused["stderr"]
    assert "Traceback" not in refused["stderr"]
    assert table_state(host) == changed

    missing = run(host, "restore", INV, "lbstack-20000101T000000Z.sql.gz", "--yes")
    assert missing["rc"] == 3 and "does not exist" in missing["stderr"]
    assert table_state(host) == changed


def test_a_restore_that_mariadb_rejects_fails_with_its_message(host):
    before = table_state(host)
    name = "lbstack-20000102T000000Z.sql.gz"  # intact and checksummed, but not SQL
    rc, _, err = remote(host, f"cd {BACKUP_DIR} && echo 'THIS IS NOT SQL;' | gzip > {name} && sha256sum {name} > {name}.sha256")
    assert rc == 0, err
    failed = run(host, "restore", INV, name, "--yes")
    assert failed["rc"] == 3, failed["stdout"] + failed["stderr"]
    assert f"{host.name}: restore of {name} failed: " in failed["stderr"] and "ERROR 1064" in failed["stderr"]
    assert table_state(host) == before
    remote(host, f"rm -f {BACKUP_DIR}/{name} {BACKUP_DIR}/{name}.sha256")


def test_no_secret_in_any_output_or_dump(host):
    assert OUTPUTS, "run after the other tests of this module"
    values = []
    for name in SECRETS:
        rc, out, _ = remote(host, f"cat {SECRETS_DIR}/{name}")
        assert rc == 0 and len(out.strip()) >= 16
        values.append(out.strip())
    for value in values:
        assert all(value not in text for text in OUTPUTS), "a secret is in lbstack's output"
    patterns = " ".join(f"-e {shlex.quote(v)}" for v in values)
    rc, out, _ = remote(host, f"for f in {BACKUP_DIR}/*.sql.gz; do gunzip -c \"$f\" | grep -cF {patterns}; done; true")
    assert out.split() and all(count == "0" for count in out.split()), out
