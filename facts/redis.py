"""Facts about Redis, asked with the app's own credentials from its ``.env`` (on the host)."""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase

from facts.app import as_the_app

CONFIG_KEYS = ("maxmemory", "maxmemory-policy", "appendonly", "bind")
# REDIS_HOST is a unix socket path (Redis on the app's host) or a host name/address
APP_CLI = ('REDISCLI_AUTH="$(v REDIS_PASSWORD)" redis-cli --no-auth-warning '
           '$(h="$(v REDIS_HOST)"; case "$h" in /*) echo "-s $h";; *) echo "-h $h -p $(v REDIS_PORT)";; esac)')


class _AsTheApp(FactBase):
    """A question to Redis with the host, port and password of the app's ``.env`` (read there)."""

    @staticmethod
    def default():
        return {"ok": False, "error": "no answer"}

    def requires_command(self, env_file) -> str:
        return "redis-cli"

    def command(self, env_file) -> str:
        return as_the_app(env_file) + self.ask(APP_CLI)

    def ask(self, cli: str) -> str:
        raise NotImplementedError


class AppConnection(_AsTheApp):
    """
    PING and the live settings, as the app connects (host, port and password of its ``.env``).

    Returns ``{"ok": True, "ping": "PONG", "config": {"maxmemory": 1336934400,
    "maxmemory-policy": "noeviction", "appendonly": "yes", "bind": "127.0.0.1 -::1"}}`` or
    ``{"ok": False, "error": "NOAUTH ..."}``.
    """

    def ask(self, cli: str) -> str:
        config = "; ".join(f"echo @config={k}=$({cli} CONFIG GET {k} 2>&1 | sed -n 2p)" for k in CONFIG_KEYS)
        return f"echo @ping=$({cli} PING 2>&1 | head -n1); {config}; true"

    def process(self, output) -> dict:
        result: dict = {"ok": False, "config": {}}
        for line in output:
            key, _, value = line.strip().partition("=")
            if key == "@error":
                return {"ok": False, "error": value}
            if key == "@ping":
                result["ping"] = value
                result["ok"] = value == "PONG"
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
    Redis ``INFO`` (memory, clients, stats, persistence), as the app connects.

    Returns ``{"ok": True, "info": {"used_memory": 1048576, "keyspace_hits": 10, ...},
    "keys": 42}`` or ``{"ok": False, "error": "..."}``.
    """

    def ask(self, cli: str) -> str:
        return f"{cli} INFO 2>&1 | tr -d '\\r' || true"

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
    host with the password from lbstack's store (read there; never on a command line).

    Returns ``{"maxmemory": "1336934400", "maxmemory-policy": "noeviction"}``, or ``{}`` when
    Redis or the password is not there yet.
    """

    @staticmethod
    def default():
        return {}

    def requires_command(self, keys, store="/etc/lbstack/secrets") -> str:
        return "redis-cli"

    def command(self, keys, store="/etc/lbstack/secrets") -> str:
        secret = shlex.quote(f"{store}/redis_password")
        cli = f'REDISCLI_AUTH="$(cat {secret})" redis-cli --no-auth-warning'
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
