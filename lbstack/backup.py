"""Database backups: ``lbstack backup|backups|restore INVENTORY``.

Each db host keeps its own backups in ``/var/backups/lbstack`` (root only), made and checked there
by ``/usr/local/sbin/lbstack-backup`` (``templates/usr/local/sbin/lbstack-backup.j2``, installed by
``deploy/mariadb.py``): a gzipped mysqldump of the app's database with a SHA-256 file and a small
metadata file, the newest ``backups_keep`` kept. These commands run that helper over pyinfra's
connection (as the inventory's user, with its ``_sudo`` settings); only names, sizes, checksums
and the tools' messages come back, never data or secrets.

Exit codes, as in ``lbstack/commands.py``: 0 done; 1 a host cannot be reached or read, or the
helper is missing; 2 bad arguments or inventory, and ``restore`` without ``--yes``; 3 a backup
failed, a listed backup does not match its checksum, or a restore was refused (missing or corrupt
backup: nothing touched) or failed.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import time
from dataclasses import dataclass

import click
from pyinfra.api import Config, State
from pyinfra.api.host import Host
from pyinfra.context import ctx_config, ctx_state
from rich.table import Table

from lbstack import layout, report, settings as settings_mod, transport
from lbstack.commands import (EXIT_ERROR, EXIT_UNHEALTHY, EXIT_USAGE, connected, emit, fail, inventory_argument,
                              json_option, limit_option)
from lbstack.session import InventoryError, Session, SessionError, load_inventory, use_host

# what the helper accepts (it also checks the database part against its own database)
NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}-\d{8}T\d{6}Z\.sql\.gz$")
REASON_MAX = 200
DUMP_TIMEOUT_S = 6 * 3600  # a dump or restore of a large database (bounded, like every command)
LIST_TIMEOUT_S = 3600  # list computes every backup's checksum
_EXIT_MARK = "lbstack-backup-exit="
_REMOVED = re.compile(r"^lbstack-backup: removed (\S+) ")


@dataclass
class HelperRun:
    host: str
    code: int
    stdout: list[str]
    stderr: list[str]

    @property
    def message(self) -> str:
        """The helper's (or the tool's) last words on stderr, one line."""
        lines = [line.removeprefix("lbstack-backup: ") for line in self.stderr if line.strip("- \t")]
        return "; ".join(lines[-3:]) or f"exit status {self.code}"


def run_helper(host: Host, *args: str, timeout: int) -> HelperRun:
    """Run ``lbstack-backup ARGS`` on ``host`` over its pyinfra connection (sudo and the like as
    the inventory's host data say, the way pyinfra runs a fact); the exit status comes back in
    a marker line, since pyinfra's connectors report only success or failure."""
    command = " ".join([layout.BACKUP_HELPER, *(shlex.quote(a) for a in args)]) + f'; echo "{_EXIT_MARK}$?"'
    with use_host(host):
        try:
            _, output = transport.run_command(host, command, timeout)
        except TimeoutError:
            raise SessionError(f"{host.name}: lbstack-backup {args[0]} did not finish within {timeout} s") from None
        except OSError as exc:  # the connection broke
            raise SessionError(f"{host.name}: lbstack-backup {args[0]}: {type(exc).__name__}: {exc}") from None
    stdout = list(output.stdout_lines)
    code = None
    while stdout and code is None:
        last = stdout.pop()
        if last.startswith(_EXIT_MARK):
            code = int(last[len(_EXIT_MARK):])
    if code is None:
        raise SessionError(f"{host.name}: lbstack-backup {args[0]} gave no exit status (connection lost?)")
    run = HelperRun(host.name, code, stdout, list(output.stderr_lines))
    if code in (126, 127):
        raise SessionError(f"{host.name}: {layout.BACKUP_HELPER} is missing or not executable "
                           f"({run.message}): converge the host with deploy/full.py first")
    return run


def db_hosts(hosts: list[Host], db_group: list[Host], inventory: str) -> list[Host]:
    """The hosts of the inventory's ``db`` group among ``hosts``, or all of them when it has none."""
    if not db_group:
        return sorted(hosts, key=lambda h: h.name)
    chosen = [h for h in hosts if h in db_group]
    if not chosen:
        raise SessionError(f"no host of {inventory}'s db group is among {', '.join(h.name for h in hosts)}")
    return sorted(chosen, key=lambda h: h.name)


def session_db_hosts(sess: Session) -> list[Host]:
    return db_hosts(list(sess.state.activated_hosts), sess.state.inventory.get_group("db", []), sess.inventory_path)


def _settings(host: Host) -> settings_mod.Settings:
    return settings_mod.load(host.data.get("lbstack"))


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return "-"  # pragma: no cover


def _json_lines(run: HelperRun) -> tuple[list[dict], list[str]]:
    """Parsed JSON lines of the helper's stdout, and the lines that were not JSON."""
    parsed, bad = [], []
    for line in run.stdout:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            bad.append(line)
    return parsed, bad


# ---------------------------------------------------------------------------------------------


@click.command()
@inventory_argument
@limit_option
@click.option("--reason", metavar="TEXT", default="", help="Why, kept with the backup (shown by `lbstack backups`).")
@json_option
def backup(inventory: str, limit: tuple[str, ...], reason: str, as_json: bool) -> None:
    """Back up the app's database on each db host: a gzipped mysqldump in /var/backups/lbstack with
    its SHA-256; the newest backups_keep stay. Prints each backup's name, size and checksum.

    Exit 0 done, 3 a backup failed (mysqldump's message) or the database does not exist yet, 1 a
    host cannot be reached.
    """
    if len(reason) > REASON_MAX or not reason.isprintable():
        raise click.BadParameter(f"at most {REASON_MAX} printable characters", param_hint="--reason")
    made, failed = [], []
    with connected(inventory, limit) as sess:
        for host in session_db_hosts(sess):
            started = time.monotonic()
            run = run_helper(host, "create", *(["--reason", reason] if reason else []), timeout=DUMP_TIMEOUT_S)
            if run.code != 0 or not run.stdout:  # exit 0, no name: the database does not exist yet
                failed.append({"host": host.name, "error": run.message if run.code else
                               f"nothing to back up: {run.message}"})
                continue
            name = run.stdout[-1].strip()
            info = run_helper(host, "info", name, timeout=LIST_TIMEOUT_S)
            parsed, _ = _json_lines(info)
            meta = parsed[0] if info.code == 0 and parsed else {}
            removed = [m.group(1) for m in map(_REMOVED.match, run.stderr) if m]
            made.append({"host": host.name, "name": name, "database": meta.get("database"),
                         "created": meta.get("created"), "bytes": meta.get("bytes"), "sha256": meta.get("sha256"),
                         "reason": meta.get("reason", reason), "removed": removed,
                         "seconds": round(time.monotonic() - started, 1)})
    for f in failed:
        click.echo(f"lbstack: {f['host']}: backup failed: {f['error']}", err=True)
    data = {"inventory": inventory, "backups": made, "failed": failed, "ok": not failed}
    emit(data, as_json, lambda: [_made_table(made)] if made else [])
    sys.exit(0 if data["ok"] else EXIT_UNHEALTHY)


def _made_table(made: list[dict]) -> Table:
    table = Table(title="Database backups made")
    for column in ("host", "backup", "size", "sha256", "removed (retention)"):
        table.add_column(column, justify="right" if column == "size" else "left", no_wrap=column == "sha256")
    for b in made:
        table.add_row(b["host"], b["name"], _size(b["bytes"]), b["sha256"] or "-", ", ".join(b["removed"]) or "-")
    return table


@click.command()
@inventory_argument
@limit_option
@json_option
def backups(inventory: str, limit: tuple[str, ...], as_json: bool) -> None:
    """List each db host's database backups, oldest first, each checked against its SHA-256.

    Exit 0 when every backup matches its checksum, 3 when one does not (named), 1 when a host
    cannot be reached.
    """
    hosts = []
    with connected(inventory, limit) as sess:
        for host in session_db_hosts(sess):
            run = run_helper(host, "list", timeout=LIST_TIMEOUT_S)
            if run.code != 0:
                raise SessionError(f"{host.name}: lbstack-backup list failed: {run.message}")
            entries, bad = _json_lines(run)
            problems = [f"{e.get('name')}: checksum mismatch" for e in entries if not e.get("verified")]
            problems += [f"unreadable metadata line: {line[:80]}" for line in bad]
            hosts.append({"host": host.name, "directory": layout.BACKUP_DIR, "keep": _settings(host).backups_keep,
                          "backups": entries, "problems": problems})
    for h in hosts:
        for problem in h["problems"]:
            click.echo(f"lbstack: {h['host']}: {problem}", err=True)
    data = {"inventory": inventory, "hosts": hosts, "ok": not any(h["problems"] for h in hosts)}
    emit(data, as_json, lambda: [_list_table(h) for h in hosts])
    sys.exit(0 if data["ok"] else EXIT_UNHEALTHY)


def _list_table(host: dict) -> Table:
    entries = host["backups"]
    table = Table(title=f"{host['host']}: {len(entries)} database backup(s) in {host['directory']} "
                        f"(the newest {host['keep']} are kept)")
    for column in ("backup", "created", "size", "sha256", "verified", "reason"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for e in entries:
        table.add_row(str(e.get("name")), str(e.get("created")), _size(e.get("bytes")),
                      (e.get("sha256") or "-")[:16], report.STATUS[bool(e.get("verified"))], e.get("reason") or "")
    return table


@click.command()
@inventory_argument
@click.argument("name")
@limit_option
@click.option("--yes", is_flag=True, help="Really replace the database with the backup.")
def restore(inventory: str, name: str, limit: tuple[str, ...], yes: bool) -> None:
    """Replace the app's database on the db host with backup NAME (as `lbstack backups` lists it).

    The backup is checked against its SHA-256 on the host first: a missing or corrupt backup is
    refused (exit 3) and nothing is touched. Without --yes, prints what it would do (exit 2).
    Exit 0 restored, 3 refused or failed, 1 the host cannot be reached.
    """
    if not NAME.match(name):
        raise click.BadParameter(f"{name!r} is not a backup name like lbstack-20250101T120000Z.sql.gz "
                                 "(see `lbstack backups INVENTORY`)", param_hint="NAME")
    if not yes:
        targets = _restore_targets(inventory, limit)
        click.echo(f"lbstack: would restore backup {name} on {targets}, replacing the database's current "
                   "contents (after checking the backup's SHA-256 there). Nothing done: add --yes to restore.",
                   err=True)
        sys.exit(EXIT_USAGE)
    with connected(inventory, limit) as sess:
        hosts = session_db_hosts(sess)
        if len(hosts) > 1:
            fail(f"restore {name}: {len(hosts)} db hosts ({', '.join(h.name for h in hosts)}); "
                 "pick the one that holds the backup with --limit", EXIT_USAGE)
        (host,) = hosts
        database = _settings(host).db_name
        started = time.monotonic()
        run = run_helper(host, "restore", name, timeout=DUMP_TIMEOUT_S)
    if run.code == 0:
        click.echo(f"{host.name}: restored {name} into database {database} "
                   f"({time.monotonic() - started:.1f} s)")
        return
    if run.code == 3:
        fail(f"{host.name}: restore refused, nothing touched: {run.message}", EXIT_UNHEALTHY)
    if run.code == 2:
        fail(f"{host.name}: restore refused: {run.message}", EXIT_USAGE)
    fail(f"{host.name}: restore of {name} failed: {run.message}", EXIT_UNHEALTHY)


def _restore_targets(inventory: str, limit: tuple[str, ...]) -> str:
    """'host (database db)' for the db hosts a restore would touch, read from the inventory
    without connecting; an inventory that does not load exits 2 like the other commands."""
    state = State()
    try:
        with ctx_state.use(state), ctx_config.use(Config()):
            inv = load_inventory(inventory, state)
            unknown = sorted(set(limit) - {h.name for h in inv})
            if unknown:
                raise InventoryError(f"no host {', '.join(unknown)} in {inventory}")
            hosts = [h for h in inv if not limit or h.name in limit]
            chosen = db_hosts(hosts, inv.get_group("db", []), inventory)
            return ", ".join(f"{h.name} (database {_settings(h).db_name})" for h in chosen)
    except InventoryError as exc:
        fail(str(exc), EXIT_USAGE)
    except (SessionError, settings_mod.SettingsError) as exc:
        fail(str(exc), EXIT_ERROR)
    return ""  # pragma: no cover (fail exits)


def register(group: click.Group) -> None:
    for command in (backup, backups, restore):
        group.add_command(command)
