"""Facts about the app's queue workers (``lbstack-queue@N``) and its scheduler
(``lbstack-schedule.timer``)."""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase

WORKER_GLOB = "lbstack-queue@*.service"


class QueueWorkers(FactBase):
    """
    Every ``lbstack-queue@N`` worker systemd knows of (loaded or enabled), and which release each
    one's process runs, against the release ``current`` points to.

    Returns::

        {
            "current": "20261201T101500-3f2a9c1d" | None,  # the release ``current`` points to
            "config_cached_at": 1795000000 | None,  # mtime of current's bootstrap/cache/config.php
            "workers": {
                "lbstack-queue@1.service": {
                    "index": 1, "active_state": "active", "enabled": "enabled", "pid": 4242,
                    "release": "20261201T101500-3f2a9c1d",  # its process' working directory
                    "started_at": 1795000100,  # epoch seconds (None when not running)
                },
            },
        }

    A worker is stale when it runs another release than ``current`` or started before the
    config was cached (``.env`` changed): the deploy restarts it, gracefully.
    """

    @staticmethod
    def default():
        return {"current": None, "config_cached_at": None, "workers": {}}

    def command(self, current) -> str:
        c = shlex.quote(current)
        return (
            f"t=$(readlink -f {c} 2>/dev/null) && [ -d \"$t\" ] && echo \"@current=${{t##*/}}\" "
            f"&& echo \"@cached=$(stat -c %Y \"$t/bootstrap/cache/config.php\" 2>/dev/null)\"; "
            f"now=$(date +%s); "
            f"{{ systemctl list-units --all --plain --no-legend --no-pager {shlex.quote(WORKER_GLOB)} "
            "| awk '{print $1}'; "
            f"systemctl list-unit-files --plain --no-legend --no-pager {shlex.quote(WORKER_GLOB)} "
            "| awk '$2 == \"enabled\" {print $1}'; "
            "ls /etc/systemd/system/multi-user.target.wants/ 2>/dev/null | grep '^lbstack-queue@[0-9]*\\.service$'; } "
            "| grep '^lbstack-queue@[0-9]*\\.service$' | sort -u | while read -r u; do "
            "s=$(systemctl show -p ActiveState --value \"$u\"); e=$(systemctl is-enabled \"$u\" 2>/dev/null); "
            "p=$(systemctl show -p MainPID --value \"$u\"); r=; a=; "
            "if [ \"${p:-0}\" != 0 ]; then r=$(readlink /proc/$p/cwd 2>/dev/null); "
            "a=$(ps -o etimes= -p $p 2>/dev/null | tr -d ' '); [ -n \"$a\" ] && a=$((now - a)); fi; "
            "echo \"@worker=$u|$s|$e|$p|${r##*/}|$a\"; done; true"
        )

    def process(self, output) -> dict:
        result = self.default()
        for line in output:
            key, _, value = line.strip().partition("=")
            if key == "@current":
                result["current"] = value or None
            elif key == "@cached":
                result["config_cached_at"] = int(value) if value.isdigit() else None
            elif key == "@worker":
                unit, state, enabled, pid, release, started = (value.split("|") + [""] * 6)[:6]
                index = unit[len("lbstack-queue@"):-len(".service")]
                result["workers"][unit] = {
                    "index": int(index) if index.isdigit() else None,
                    "active_state": state or "unknown",
                    "enabled": enabled or "unknown",
                    "pid": int(pid) if pid.isdigit() and pid != "0" else None,
                    "release": release or None,
                    "started_at": int(started) if started.isdigit() else None,
                }
        return result


def stale_workers(fact: dict) -> list[str]:
    """The running workers that must restart: on another release than ``current``, or started
    before its config was (re-)cached. In index order."""
    stale = []
    for unit, w in sorted(fact["workers"].items(), key=lambda item: item[1]["index"] or 0):
        if w["active_state"] != "active" or w["pid"] is None:
            continue
        cached = fact["config_cached_at"]
        if w["release"] != fact["current"] or (cached is not None and w["started_at"] is not None
                                               and w["started_at"] < cached):
            stale.append(unit)
    return stale


class Scheduler(FactBase):
    """
    The scheduler's timer and its last run.

    Returns ``{"timer": {"active_state": "active", "enabled": "enabled", "last_trigger_at": 1796142900
    | None, "next_run_at": ... | None}, "service": {"result": "success", "exit_status": 0,
    "last_exit_at": ... | None}}`` (times: epoch seconds; absent units: "absent", None).
    """

    @staticmethod
    def default():
        return {"timer": {"active_state": "absent", "enabled": "absent", "last_trigger_at": None,
                          "next_run_at": None},
                "service": {"result": None, "exit_status": None, "last_exit_at": None}}

    def command(self, timer, service) -> str:
        t, s = shlex.quote(timer), shlex.quote(service)
        # systemctl show prints timestamps as dates ("Tue 2026-12-01 16:35:00 UTC"): epoch on the host
        return (
            "e() { [ -n \"$1\" ] && date -d \"$1\" +%s 2>/dev/null; }; "
            f"echo \"@timer_state=$(systemctl show -p ActiveState --value {t})\"; "
            f"echo \"@timer_enabled=$(systemctl is-enabled {t} 2>/dev/null)\"; "
            f"echo \"@last_trigger=$(e \"$(systemctl show -p LastTriggerUSec --value {t})\")\"; "
            f"echo \"@next=$(e \"$(systemctl show -p NextElapseUSecRealtime --value {t})\")\"; "
            f"echo \"@result=$(systemctl show -p Result --value {s})\"; "
            f"echo \"@exit_status=$(systemctl show -p ExecMainStatus --value {s})\"; "
            f"echo \"@last_exit=$(e \"$(systemctl show -p ExecMainExitTimestamp --value {s})\")\"; true"
        )

    @staticmethod
    def _epoch(value: str) -> int | None:
        value = value.strip()
        return int(value) if value.isdigit() and int(value) > 0 else None

    def process(self, output) -> dict:
        result = self.default()
        timer, service = result["timer"], result["service"]
        for line in output:
            key, _, value = line.strip().partition("=")
            if key == "@timer_state":
                timer["active_state"] = value or "absent"
            elif key == "@timer_enabled":
                timer["enabled"] = value or "absent"
            elif key == "@last_trigger":
                timer["last_trigger_at"] = self._epoch(value)
            elif key == "@next":
                timer["next_run_at"] = self._epoch(value)
            elif key == "@result":
                service["result"] = value or None
            elif key == "@exit_status":
                service["exit_status"] = int(value) if value.isdigit() else None
            elif key == "@last_exit":
                service["last_exit_at"] = self._epoch(value)
        return result
