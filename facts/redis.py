"""Facts about Redis, asked with the app's own credentials from its ``.env`` (on the host)."""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase

from facts.app import env_reader

CONFIG_KEYS = ("maxmemory", "maxmemory-policy", "appendonly", "bind")


class AppConnection(FactBase):
    """
    PING and the live settings, as the app connects (host, port and password of its ``.env``).

    Returns ``{"ok": True, "ping": "PONG", "config": {"maxmemory": 1336934400,
    "maxmemory-policy": "noeviction", "appendonly": "yes", "bind": "127.0.0.1 -::1"}}`` or
    ``{"ok": False, "error": "NOAUTH ..."}``.
    """

    @staticmethod
    def default():
        return {"ok": False, "error": "no answer"}

    def requires_command(self, env_file) -> str:
        return "redis-cli"

    def command(self, env_file) -> str:
        cli = 'REDISCLI_AUTH="$(v REDIS_PASSWORD)" redis-cli --no-auth-warning -h "$(v REDIS_HOST)" -p "$(v REDIS_PORT)"'
        config = "; ".join(f"echo @config={k}=$({cli} CONFIG GET {k} 2>&1 | sed -n 2p)" for k in CONFIG_KEYS)
        return (
            env_reader(env_file)
            + f"[ -r {shlex.quote(env_file)} ] || {{ echo '@error=no readable {env_file}'; exit 0; }}; "
            f"echo @ping=$({cli} PING 2>&1 | head -n1); {config}; true"
        )

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
