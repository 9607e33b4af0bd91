"""Facts about MariaDB: the server as root sees it over the local socket, and the app's own login
with the credentials of its ``.env`` (read on the host; no password leaves it)."""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase

from facts.app import as_the_app

STORE_SECRET = "/etc/lbstack/secrets/db_password"


class AppLogin(FactBase):
    """
    Log in as the app, with the host, user, password and database of its ``.env``.

    Returns ``{"ok": True, "user": "lbstack@localhost", "database": "lbstack", "tables": 3}`` or
    ``{"ok": False, "error": "ERROR 1045 (28000): Access denied ..."}``.
    """

    @staticmethod
    def default():
        return {"ok": False, "error": "no answer"}

    def requires_command(self, env_file) -> str:
        return "mariadb"

    def command(self, env_file) -> str:
        return (
            as_the_app(env_file)
            # "localhost" is the socket, as PHP's mysqlnd reads it; a port would force TCP
            + 'h="$(v DB_HOST)"; p=""; [ "$h" = localhost ] || p="--port=$(v DB_PORT)"; '
            'MYSQL_PWD="$(v DB_PASSWORD)" mariadb --connect-timeout=5 -h "$h" $p '
            '-u "$(v DB_USERNAME)" -D "$(v DB_DATABASE)" -N -B -e '
            "\"SELECT CONCAT('@ok=', CURRENT_USER(), ' ', DATABASE(), ' ', "
            "(SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()))\" "
            "2>&1 | sed 's/^ERROR/@error=ERROR/' || true"
        )

    def process(self, output) -> dict:
        for line in output:
            line = line.strip()
            if line.startswith("@ok="):
                user, database, tables = line[4:].split(" ")
                return {"ok": True, "user": user, "database": database, "tables": int(tables)}
            if line.startswith("@error="):
                return {"ok": False, "error": line[7:]}
        return {"ok": False, "error": " ".join(line.strip() for line in output)[:200] or "no answer"}


# The account's password hash (mysql_native_password: '*' + upper hex SHA1(SHA1(password))) is
# compared with the stored secret's on the host; only "current" or "stale" is printed.
_PASSWORD_CHECK = (
    f"s={STORE_SECRET}; want=''; "
    "[ -s \"$s\" ] && want=\"*$(printf '%s' \"$(cat \"$s\")\" | openssl dgst -sha1 -binary "
    "| openssl dgst -sha1 -r | cut -c1-40 | tr a-f A-F)\"; "
)
_FILTER = (
    'printf "%s\\n" "$out" | while IFS= read -r line; do case "$line" in '
    '@user=*) h=${line#@user=}; h=${h%%=*}; a=${line##*=}; '
    'if [ -n "$want" ] && [ "$a" = "$want" ]; then echo "@user=$h=current"; else echo "@user=$h=stale"; fi ;; '
    '*) printf "%s\\n" "$line" ;; esac; done; true'
)


class Security(FactBase):
    """
    The server as root sees it over the local socket: what a secured install must not have, the
    databases, the app user's accounts and privileges, a few live variables.

    Returns ``{"answering": False}`` when the server is down or absent, else::

        {"answering": True, "anonymous_users": 0, "test_database": False,
         "root_hosts": ["localhost"], "databases": ["lbstack", ...],
         "accounts": ["lbstack@localhost", "mariadb.sys@localhost", "mysql@localhost", "root@localhost"],
         "user_hosts": ["localhost"],                       # accounts of app_user
         "schema_privileges": {"localhost": {"lbstack": ["ALTER", "CREATE", ...]}},
         "global_privileges": {"localhost": ["USAGE"]},
         "password_current": {"localhost": True},           # hash equals the stored secret's
         "variables": {"max_connections": "125", "innodb_buffer_pool_size": "2013265920", ...}}

    ``password_current`` is decided on the host; neither the secret nor the hash leaves it.
    """

    @staticmethod
    def default():
        return {"answering": False}

    VARIABLES = ("max_connections", "innodb_buffer_pool_size", "bind_address", "slow_query_log")

    def requires_command(self, app_user) -> str:
        return "mariadb"

    def command(self, app_user) -> str:
        user = app_user.replace("'", "")
        names = ", ".join(f"'{v.upper()}'" for v in self.VARIABLES)
        grantee = f"'''{user}''@%'"
        sql = (
            "SELECT CONCAT('@anonymous=', COUNT(*)) FROM mysql.user WHERE user = ''; "
            "SELECT CONCAT('@database=', schema_name) FROM information_schema.schemata; "
            "SELECT CONCAT('@root=', host) FROM mysql.user WHERE user = 'root'; "
            "SELECT CONCAT('@account=', user, '@', host) FROM mysql.user; "
            f"SELECT CONCAT('@user=', host, '=', authentication_string) FROM mysql.user WHERE user = '{user}'; "
            "SELECT CONCAT('@schema_priv=', grantee, '=', table_schema, '=', privilege_type) "
            f"FROM information_schema.schema_privileges WHERE grantee LIKE {grantee}; "
            "SELECT CONCAT('@global_priv=', grantee, '=', privilege_type) "
            f"FROM information_schema.user_privileges WHERE grantee LIKE {grantee}; "
            "SELECT CONCAT('@var=', LOWER(variable_name), '=', variable_value) "
            f"FROM information_schema.global_variables WHERE variable_name IN ({names}); "
        )
        return (
            _PASSWORD_CHECK
            + f"out=$(mariadb -N -B -e {shlex.quote(sql)} 2>/dev/null) || exit 0; echo @answering; "
            + _FILTER
        )

    def process(self, output) -> dict:
        result: dict = {"answering": False, "anonymous_users": 0, "test_database": False, "root_hosts": [],
                        "databases": [], "user_hosts": [], "schema_privileges": {}, "global_privileges": {},
                        "password_current": {}, "variables": {}, "accounts": []}
        for line in output:
            line = line.strip()
            key, _, value = line.partition("=")
            if line == "@answering":
                result["answering"] = True
            elif key == "@anonymous":
                result["anonymous_users"] = int(value)
            elif key == "@database":
                result["databases"].append(value)
            elif key == "@root":
                result["root_hosts"].append(value)
            elif key == "@account":
                result["accounts"].append(value)
            elif key == "@user":
                host, _, state = value.rpartition("=")
                result["user_hosts"].append(host)
                result["password_current"][host] = state == "current"
            elif key == "@schema_priv":
                grantee, schema, privilege = value.split("=", 2)
                schemas = result["schema_privileges"].setdefault(_grantee_host(grantee), {})
                schemas.setdefault(schema, []).append(privilege)
            elif key == "@global_priv":
                grantee, _, privilege = value.partition("=")
                result["global_privileges"].setdefault(_grantee_host(grantee), []).append(privilege)
            elif key == "@var":
                name, _, val = value.partition("=")
                result["variables"][name] = val
        if not result["answering"]:
            return {"answering": False}
        result["test_database"] = any(d == "test" or d.startswith("test_") for d in result["databases"])
        for key in ("databases", "root_hosts", "user_hosts", "accounts"):
            result[key].sort()
        for schemas in result["schema_privileges"].values():
            for privileges in schemas.values():
                privileges.sort()
        for privileges in result["global_privileges"].values():
            privileges.sort()
        return result


def _grantee_host(grantee: str) -> str:
    """"'lbstack'@'localhost'" -> "localhost"."""
    return grantee.rpartition("@")[2].strip("'")


STATUS_VARIABLES = ("Uptime", "Threads_connected", "Threads_running", "Max_used_connections", "Connections",
                    "Aborted_connects", "Aborted_clients", "Slow_queries", "Questions",
                    "Innodb_buffer_pool_pages_total", "Innodb_buffer_pool_pages_free")


class ServerStatus(FactBase):
    """
    The server's counters (``SHOW GLOBAL STATUS``) and its connection limit, as root on the socket.

    Returns ``{"answering": True, "status": {"Threads_connected": 6, "Slow_queries": 0, ...},
    "max_connections": 125}`` or ``{"answering": False}``.
    """

    @staticmethod
    def default():
        return {"answering": False}

    def requires_command(self) -> str:
        return "mariadb"

    def command(self) -> str:
        names = ",".join(f"'{n}'" for n in STATUS_VARIABLES)
        sql = (f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names}); "
               "SHOW GLOBAL VARIABLES WHERE Variable_name = 'max_connections'")
        return f"mariadb --connect-timeout=5 -N -B -e {shlex.quote(sql)} 2>/dev/null || true"

    def process(self, output) -> dict:
        values: dict = {}
        for line in output:
            name, _, value = line.strip().partition("\t")
            if name and value.isdigit():
                values[name] = int(value)
        if not values:
            return {"answering": False}
        return {"answering": True, "max_connections": values.pop("max_connections", None), "status": values}


class Variables(FactBase):
    """
    Running server variables (``SHOW GLOBAL VARIABLES``), as root on the local socket.

    Returns ``{"max_connections": "125", "innodb_buffer_pool_size": "2013265920"}`` for the asked
    ``names`` (lower case), or ``{}`` when the server does not answer.
    """

    @staticmethod
    def default():
        return {}

    def requires_command(self, names) -> str:
        return "mariadb"

    def command(self, names) -> str:
        listed = ",".join(f"'{n}'" for n in names if n.replace("_", "").isalnum())
        sql = f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({listed})"
        return f"mariadb -N -B -e {shlex.quote(sql)} 2>/dev/null || true"

    def process(self, output) -> dict[str, str]:
        result = {}
        for line in output:
            name, _, value = line.strip().partition("\t")
            if name and value:
                result[name.lower()] = value
        return result
