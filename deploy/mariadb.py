"""MariaDB: installed and secured (no anonymous users, no test database, root only over the local
socket), sized by the plan (buffer pool, max_connections covering every PHP worker, slow log),
bound to localhost unless the app runs on other hosts, with the app's database and a
least-privilege user whose password is set on the host from the secret store.
"""

from __future__ import annotations

import shlex

from pyinfra import host, state as pyinfra_state
from pyinfra.api import OperationError, deploy, operation
from pyinfra.operations import apt, files, server

from facts.mariadb import Security, Variables
from facts.secrets import HELPER
from lbstack import hostscripts, layout, packages, sandbox, services
from lbstack.layout import BACKUP_DIR, BACKUP_HELPER, MARIADB_CONFIG as CONFIG
from lbstack.operations import template_file
from lbstack.plan import Plan
from lbstack.render import jinja, template
from lbstack.settings import Settings
from lbstack.topology import app_client_hosts, own_address

# what the app needs for its data and its migrations, on its own database only
APP_PRIVILEGES = ("SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP, REFERENCES, "
                  "CREATE TEMPORARY TABLES, LOCK TABLES, CREATE VIEW, SHOW VIEW, TRIGGER")


def config_template_data(plan: Plan, client_hosts: list[str], own: str = "0.0.0.0") -> dict:
    """``own``: this host's private address (:func:`lbstack.topology.own_address`), where remote
    app hosts connect; loopback stays for the host's own tools."""
    remote = any(h != "localhost" for h in client_hosts)
    db = plan.mariadb
    return {
        "memory_max_mib": plan.limits["db"].memory_max_mib,
        "bind_address": ("0.0.0.0" if own == "0.0.0.0" else f"127.0.0.1,{own}") if remote else "127.0.0.1",
        "workers": db.php_workers,
        "headroom": db.connection_headroom,
        "max_connections": db.max_connections,
        "buffer_pool_mib": db.buffer_pool_mib,
        "chunk_mib": db.buffer_pool_chunk_mib,
        "log_file_mib": db.log_file_mib,
        "thread_cache": db.thread_cache,
    }


def backup_helper_data(settings: Settings) -> dict:
    return {"backup_dir": BACKUP_DIR, "database": settings.db_name, "keep": settings.backups_keep}


@deploy("lbstack mariadb")
def mariadb(settings: Settings, plan: Plan) -> None:
    apt.packages(name="Install MariaDB", packages=packages.DB, no_recommends=True)
    files.directory(name=f"Directory {BACKUP_DIR} (root, mode 700)", path=BACKUP_DIR, user="root", group="root",
                    mode="700")
    template_file(
        name=f"Render {BACKUP_HELPER}",
        src=template(BACKUP_HELPER),
        dest=BACKUP_HELPER,
        mode="755",
        jinja_env_kwargs=jinja(),
        **backup_helper_data(settings),
    )
    template_file(
        name=f"Render {layout.MAINTENANCE_HELPER}",
        src=template(layout.MAINTENANCE_HELPER),
        dest=layout.MAINTENANCE_HELPER,
        mode="755",
        jinja_env_kwargs=jinja(),
        **hostscripts.maintenance_template_data(),
    )
    dropin = services.dropin("mariadb.service", plan.slices["db"], sandbox=sandbox.mariadb())
    data = config_template_data(plan, app_client_hosts(), own_address())
    static_change = services.restart_needed(CONFIG, CONFIG, data, set(DYNAMIC))
    config = template_file(
        name=f"Render {CONFIG}",
        src=template(CONFIG),
        dest=CONFIG,
        mode="644",
        jinja_env_kwargs=jinja(),
        **data,
    )
    services.in_slice("mariadb.service", plan.slices["db"], dropin)
    server.shell(
        name="Restart MariaDB (a setting only a restart applies, or its drop-in, changed): backup first, "
             "the balancer answers 503 + Retry-After meanwhile",
        commands=[hostscripts.shell(hostscripts.restart_mariadb(settings))],
        _if=lambda: dropin.did_change() or (config.did_change() and static_change),
    )
    live_variables(name="MariaDB's running sizing is the plan's (SET GLOBAL: max_connections, buffer pool, "
                        "redo log, thread cache; no restart; max_connections only raised here)",
                   wanted=live_values(data), raise_only=RAISE_FIRST)
    _secured_with_app_database(
        name=f"MariaDB: secured (no anonymous users, no test database, root over the socket only, no account "
             f"but MariaDB's own, the app's and db_keep_accounts); database {settings.db_name}, user "
             f"{settings.db_user} (password from the secret store)",
        database=settings.db_name,
        user=settings.db_user,
        client_hosts=app_client_hosts(),
        keep=tuple(layout.kept_accounts(settings)),
    )


def final_sizing(settings: Settings, plan: Plan) -> None:
    """After the app instances changed (scaling down): lower what was only raised before them."""
    live_variables(name="MariaDB's max_connections down to the plan's (after the app instances changed)",
                   wanted=live_values(config_template_data(plan, app_client_hosts(), own_address())))


# sized by the plan and changed by scaling; MariaDB 10.11 applies them to the running server
DYNAMIC = ("max_connections", "innodb_buffer_pool_size", "innodb_log_file_size", "thread_cache_size")


def live_values(data: dict) -> dict[str, str]:
    """The running values the plan asks for, as ``SHOW GLOBAL VARIABLES`` prints them."""
    mib = 1024 * 1024
    return {"max_connections": str(data["max_connections"]),
            "innodb_buffer_pool_size": str(data["buffer_pool_mib"] * mib),
            "innodb_log_file_size": str(data["log_file_mib"] * mib),
            "thread_cache_size": str(data["thread_cache"])}


# connection limits every app worker holds a (persistent) connection against: while the instances
# are replaced one at a time, old and new pools coexist, so the limit is raised before them and
# lowered only after (final_sizing)
RAISE_FIRST = ("max_connections",)


@operation()
def live_variables(wanted: dict[str, str], raise_only: tuple[str, ...] = ()):
    """``SET GLOBAL`` each of ``wanted`` the running server does not have (scaling changed the
    plan, or someone changed it by hand): the file says the same for the next start. Variables in
    ``raise_only`` are only raised here."""
    live = host.get_fact(Variables, names=sorted(wanted))
    if not live:
        return  # not answering (first install: it starts with the file's values)
    changes = [f"SET GLOBAL {name} = {int(value)};" for name, value in sorted(wanted.items())
               if live.get(name) != value
               and not (name in raise_only and live.get(name, "").isdigit() and int(live[name]) > int(value))]
    if changes:
        yield _sql(" ".join(changes))


def _sql(statements: str) -> str:
    return f"mariadb -e {shlex.quote(statements)}"


def expected_privileges() -> list[str]:
    return sorted(p.strip() for p in APP_PRIVILEGES.split(","))


def _quoted(text: str) -> str:
    """``text`` as an SQL string literal (an account name read from the server may hold anything)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


@operation()
def _secured_with_app_database(database: str, user: str, client_hosts: list[str], keep: tuple[str, ...] = ()):
    """A secured server (no anonymous users, no test database, root only as root@localhost over
    the socket), the app's database, its user on each client host with the stored password, and
    exactly the app's privileges on that database (nothing global), from one read of the server.
    The password is filled in on the host by lbstack-secrets: the SQL that travels holds only a
    placeholder."""
    state = host.get_fact(Security, app_user=user)
    if not state.get("answering"):
        if not pyinfra_state.is_executing:
            # a dry run (drift) of a host whose MariaDB is stopped: the run would start it first
            # (an earlier operation) and secure it then; drift names both instead of not preparing
            yield "true  # MariaDB is not answering: checked and secured once this run has started it"
            return
        raise OperationError("MariaDB is not answering on its local socket")
    if state["anonymous_users"]:
        yield _sql("DELETE FROM mysql.global_priv WHERE User = ''; FLUSH PRIVILEGES;")
    if state["test_database"]:
        yield _sql("DROP DATABASE IF EXISTS test; DELETE FROM mysql.db WHERE Db = 'test' OR Db LIKE 'test\\_%'; "
                   "FLUSH PRIVILEGES;")
    for root_host in state["root_hosts"]:
        if root_host != "localhost":
            yield _sql(f"DROP USER 'root'@'{root_host}';")
    for account in layout.mariadb_extra_accounts(state.get("accounts", []), user, keep):
        name, _, where = account.rpartition("@")
        yield _sql(f"DROP USER {_quoted(name)}@{_quoted(where)};")
    statements = []
    if database not in state["databases"]:
        statements.append(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;")
    for client in client_hosts:
        account = f"'{user}'@'{client}'"
        if client not in state["user_hosts"]:
            statements.append(f"CREATE USER {account} IDENTIFIED BY '@@secret:db_password@@';")
        elif not state["password_current"].get(client):
            statements.append(f"ALTER USER {account} IDENTIFIED BY '@@secret:db_password@@';")
        privileges = state["schema_privileges"].get(client, {})
        global_privileges = state["global_privileges"].get(client, ["USAGE"])
        if privileges != {database: expected_privileges()} or global_privileges != ["USAGE"]:
            statements.append(f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {account};")
            statements.append(f"GRANT {APP_PRIVILEGES} ON `{database}`.* TO {account};")
    for stale in state["user_hosts"]:
        if stale not in client_hosts:
            statements.append(f"DROP USER '{user}'@'{stale}';")
    if statements:
        sql = " ".join(statements + ["FLUSH PRIVILEGES;"])
        yield f"printf '%s\\n' {shlex.quote(sql)} | {HELPER} fill | mariadb"
