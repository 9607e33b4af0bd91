"""Facts about the PHP-FPM app instances, read from each master's own status page."""

from __future__ import annotations

import json
import shlex

from pyinfra.api import FactBase

# The host-side program that asks an instance for its status (templates/usr/local/sbin/
# lbstack-instance.j2, `status ADDRESS`): the one FPM status request, shared with the rolling update.
INSTANCE_HELPER = "/usr/local/sbin/lbstack-instance"

# keys of FPM's JSON status page, renamed
STATUS_KEYS = {
    "pool": "pool", "process manager": "process_manager", "start since": "start_since_s",
    "accepted conn": "accepted_conn", "listen queue": "listen_queue", "max listen queue": "max_listen_queue",
    "idle processes": "idle", "active processes": "active", "total processes": "total",
    "max children reached": "max_children_reached", "slow requests": "slow_requests",
}


class PoolStatus(FactBase):
    """
    Each instance's pool status, asked directly on its socket or port by ``lbstack-instance
    status`` (cgi-fcgi on the host), not through nginx.

    ``instances`` maps instance name to FPM address (``/run/lbstack/app1/fpm.sock`` or
    ``10.0.0.2:9001``). Returns per instance either the status::

        {"app1": {"pool": "app1", "process_manager": "static", "start_since_s": 120,
                  "accepted_conn": 42, "listen_queue": 0, "max_listen_queue": 0, "idle": 20,
                  "active": 1, "total": 21, "max_children_reached": 0, "slow_requests": 0}}

    or ``{"error": "..."}`` when the instance does not answer.
    """

    @staticmethod
    def default():
        return {}

    def requires_command(self, instances) -> str:
        return INSTANCE_HELPER

    def command(self, instances) -> str:
        parts = []
        for name, address in instances.items():
            parts.append(
                f"echo @instance={shlex.quote(name)}; "
                f"{INSTANCE_HELPER} status {shlex.quote(address)} 2>/dev/null || echo \"@error=exit $?\"; echo"
            )
        return "; ".join(parts) + "; true"

    def process(self, output) -> dict[str, dict]:
        result: dict[str, dict] = {}
        name = None
        body: list[str] = []

        def close() -> None:
            if name is None:
                return
            result[name] = _parse_status(body)

        for line in output:
            if line.startswith("@instance="):
                close()
                name, body = line.split("=", 1)[1].strip(), []
            else:
                body.append(line)
        close()
        return result


def _parse_status(lines: list[str]) -> dict:
    """One instance's lines: ``status=JSON``, or ``detail=WHY`` and ``@error=exit N``."""
    errors = [line.split("=", 1)[1] for line in lines if line.startswith("@error=")]
    for line in lines:
        line = line.strip()
        if line.startswith("status="):
            try:
                raw = json.loads(line.removeprefix("status="))
            except ValueError:
                break
            return {new: raw[old] for old, new in STATUS_KEYS.items() if old in raw}
    detail = " ".join(l.strip().removeprefix("detail=") for l in lines
                      if l.strip() and not l.startswith("@error="))[:200]
    return {"error": "; ".join(filter(None, [detail] + errors)) or "no answer"}


class EffectiveSettings(FactBase):
    """
    The PHP settings each instance's master runs with, asked on its socket or port by
    ``lbstack-instance settings`` (the probe script run by one of its workers): what is in force,
    whichever file it came from and whenever that file was read.

    ``instances`` maps instance name to FPM address; ``keys`` are the settings wanted. Returns per
    instance ``{"memory_limit": "256M", "opcache.enable": "1", ...}`` (PHP's own strings; a setting
    PHP does not know is ``None``), or ``{"error": "..."}`` when the instance does not answer.
    """

    @staticmethod
    def default():
        return {}

    def requires_command(self, instances, keys) -> str:
        return INSTANCE_HELPER

    def command(self, instances, keys) -> str:
        self.wanted = list(keys)  # pyinfra calls process() on the same object, without the arguments
        parts = [f"echo @instance={shlex.quote(name)}; "
                 f"{INSTANCE_HELPER} settings {shlex.quote(address)} 2>/dev/null || echo \"@error=exit $?\""
                 for name, address in instances.items()]
        return "; ".join(parts + ["true"])

    def process(self, output) -> dict[str, dict]:
        keys = getattr(self, "wanted", None)
        result: dict[str, dict] = {}
        name = None
        for line in output:
            line = line.strip()
            if line.startswith("@instance="):
                name = line.split("=", 1)[1]
                result[name] = {"error": "no answer"}
            elif name is None:
                continue
            elif line.startswith("settings="):
                try:
                    values = json.loads(line.removeprefix("settings="))
                except ValueError:
                    result[name] = {"error": "unreadable settings"}
                    continue
                if not isinstance(values, dict):
                    result[name] = {"error": "unreadable settings"}
                    continue
                result[name] = {k: (None if values.get(k) is None else str(values[k]))
                                for k in (keys if keys is not None else values)}
            elif line.startswith("detail="):
                result[name] = {"error": line.removeprefix("detail=")[:200]}
            elif line.startswith("@error=") and result[name] == {"error": "no answer"}:
                result[name] = {"error": line.removeprefix("@error=")}
        return result
