"""Facts about Redis, asked with the app's own credentials from its ``.env`` (on the host)."""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase

from facts.app import as_the_app

CONFIG_KEYS = ("maxmemory", "maxmemory-policy", "appendonly", "bind")
STORE = "/etc/lbstack/secrets"
ADMIN_USER = "lbstack-admin"
# REDIS_HOST is a unix socket path (Redis on the app's host) or a host name/address
_WHERE = '$(h="$(v REDIS_HOST)"; case "$h" in /*) echo "-s $h";; *) echo "-h $h -p $(v REDIS_PORT)";; esac)'
APP_CLI = f'REDISCLI_AUTH="$(v REDIS_PASSWORD)" redis-cli --no-auth-warning {_WHERE}'


def admin_cli(store: str, admin_user: str, where: str = _WHERE) -> str:
    """redis-cli as lbstack's admin user, its password read from the root-only store on the host."""
    secret = shlex.quote(f"{store}/redis_admin_password")
    return f'REDISCLI_AUTH="$(cat {secret} 2>/dev/null)" redis-cli --no-auth-warning --user {shlex.quote(admin_user)} {where}'


class _AsTheApp(FactBase):
    """A question to Redis at the host and port of the app's ``.env`` (read there), asked with the
    app's password and, for what the app may not ask, lbstack's admin user."""

    @staticmethod
    def default():
        return {"ok": False, "error": "no answer"}

    def requires_command(self, env_file, store=STORE, admin_user=ADMIN_USER) -> str:
        return "redis-cli"

    def command(self, env_file, store=STORE, admin_user=ADMIN_USER) -> str:
        return as_the_app(env_file) + self.ask(APP_CLI, admin_cli(store, admin_user))

    def ask(self, cli: str, admin: str) -> str:
        raise NotImplementedError


class AppConnection(_AsTheApp):
    """
    PING as the app connects (host, port and password of its ``.env``), whether the app's user is
    refused an admin command (``CONFIG GET``), and the live settings (asked as lbstack's admin).

    Returns ``{"ok": True, "ping": "PONG", "app_config": "NOPERM ...", "config": {"maxmemory":
    1336934400, "maxmemory-policy": "noeviction", "appendonly": "yes", "bind": "127.0.0.1 -::1"}}``
    or ``{"ok": False, "error": "NOAUTH ..."}``.
    """

    def ask(self, cli: str, admin: str) -> str:
        config = "; ".join(f"echo @config={k}=$({admin} CONFIG GET {k} 2>&1 | sed -n 2p)" for k in CONFIG_KEYS)
        return (f"echo @ping=$({cli} PING 2>&1 | head -n1); "
                f"echo @app_config=$({cli} CONFIG GET maxmemory 2>&1 | head -n1); {config}; true")

    def process(self, output) -> dict:
        result: dict = {"ok": False, "config": {}}
        for line in output:
            key, _, value = line.strip().partition("=")
            if key == "@error":
                return {"ok": False, "error": value}
            if key == "@ping":
                result["ping"] = value
                result["ok"] = value == "PONG"
            elif key == "@app_config":
                result["app_config"] = value[:200]
            elif key == "@config":
                name, _, val = value.partition("=")
                result["config"][name] = int(val) if name == "maxmemory" and val.isdigit() else val
        if not result["ok"]:
            return {"ok": False, "error": result.get("ping", "no answer")}
        return result


INFO_KEYS = ("uptime_in_seconds", "connected_clients", "blocked_clients", "rejected_connections",
             "used_memory", "used_memory_peak", "maxmemory", "maxmemory_policy", "mem_fragmentation_ratio",
             "keyspace_hits", "keyspace_misses", "evicted_keys", "expired_keys", "total_commands_processed",
             "instantaneous_ops_per_sec", "aof_enabled", "aof_last_write_status")


class Info(_AsTheApp):
    """
    Redis ``INFO`` (memory, clients, stats, persistence) where the app connects, asked as
    lbstack's admin user (INFO is one of the commands the app's user is refused).

    Returns ``{"ok": True, "info": {"used_memory": 1048576, "keyspace_hits": 10, ...},
    "keys": 42}`` or ``{"ok": False, "error": "..."}``.
    """

    def ask(self, cli: str, admin: str) -> str:
        return f"{admin} INFO 2>&1 | tr -d '\\r' || true"

    def process(self, output) -> dict:
        info: dict = {}
        keys = 0
        for line in output:
            name, sep, value = line.strip().partition(":")
            if not sep:
                if line.strip() and not line.startswith("#"):
                    return {"ok": False, "error": line.strip()[:200]}
                continue
            if name in INFO_KEYS:
                info[name] = _number(value)
            elif name.startswith("db") and name[2:].isdigit():
                keys += int(dict(p.split("=", 1) for p in value.split(","))["keys"])
        if not info:
            return {"ok": False, "error": "no answer"}
        return {"ok": True, "info": info, "keys": keys}


def _number(value: str):
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


class LiveConfig(FactBase):
    """
    The running server's value of each of ``keys`` (``CONFIG GET``), asked as root on the Redis
    host as lbstack's admin user, its password from lbstack's store (read there; never on a
    command line).

    Returns ``{"maxmemory": "1336934400", "maxmemory-policy": "noeviction"}``, or ``{}`` when
    Redis, the admin user or its password is not there yet.
    """

    @staticmethod
    def default():
        return {}

    def requires_command(self, keys, store=STORE, admin_user=ADMIN_USER) -> str:
        return "redis-cli"

    def command(self, keys, store=STORE, admin_user=ADMIN_USER) -> str:
        secret = shlex.quote(f"{store}/redis_admin_password")
        cli = admin_cli(store, admin_user, "")
        gets = "; ".join(f"echo @{shlex.quote(k)}=$({cli} CONFIG GET {shlex.quote(k)} 2>/dev/null | sed -n 2p)"
                         for k in keys)
        return f"[ -s {secret} ] || exit 0; {gets}; true"

    def process(self, output) -> dict[str, str]:
        values = {}
        for line in output:
            key, _, value = line.strip().partition("=")
            if key.startswith("@") and value:
                values[key[1:]] = value
        return values


class AclUsers(FactBase):
    """
    The users the running server has (``ACL LIST``, live: users added at runtime too) and, for
    each ``probes`` entry ``[user, command words...]``, what ``ACL DRYRUN`` answers (``OK`` or the
    refusal), asked as root on the Redis host as lbstack's admin user. Password hashes are left out.

    Returns ``{"answering": True, "users": {"default": "on sanitize-payload ~* &* +@all -@admin
    ...", "lbstack-admin": "on ..."}, "probes": ["OK", "This user has no permissions to run the
    'flushall' command"]}``, or ``{"answering": False, "error": "..."}`` when Redis does not answer
    the admin user (or its password is not in the store yet).
    """

    @staticmethod
    def default():
        return {"answering": False, "error": "no answer"}

    def requires_command(self, probes=(), store=STORE, admin_user=ADMIN_USER) -> str:
        return "redis-cli"

    def command(self, probes=(), store=STORE, admin_user=ADMIN_USER) -> str:
        cli = admin_cli(store, admin_user, "")
        asks = "".join(f"; echo @probe=$({cli} ACL DRYRUN {' '.join(shlex.quote(w) for w in probe)} 2>&1 | head -n1)"
                       for probe in probes)
        return f"{cli} ACL LIST 2>&1 | tr -d '\\r'{asks}; true"

    def process(self, output) -> dict:
        users: dict[str, str] = {}
        probes: list[str] = []
        for line in output:
            if line.startswith("@probe="):
                probes.append(line[len("@probe="):].strip()[:200])
                continue
            words = line.split()
            if len(words) < 2 or words[0] != "user":
                return {"answering": False, "error": line.strip()[:200]}
            users[words[1]] = " ".join(w for w in words[2:] if not w.startswith(("#", ">", "<")))
        if not users:
            return {"answering": False, "error": "no answer"}
        return {"answering": True, "users": users, "probes": probes}
