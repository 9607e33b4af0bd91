"""lbstack's deploy modules: one per component (base, limits, ...), each with one public
``@deploy`` function, plus ``full.py``, the entry file pyinfra runs.

Entry files are executed by pyinfra, not imported: the logic lives in these modules.
"""

from __future__ import annotations

import sys

from pyinfra import host as current_host, inventory
from pyinfra.api.host import Host
from pyinfra.facts.hardware import Cpus, Memory

from lbstack import TEMPLATES, settings as settings_mod, transport
from lbstack.operations import daemon_reload, template_file, unit_active, unit_in_slice
from lbstack.plan import COMPONENTS, Plan, PlanError, make_plan
from lbstack.settings import Settings, SettingsError

# Jinja2 options shared by every template (the rendering tests use the same).
JINJA_OPTIONS = {"trim_blocks": True, "lstrip_blocks": True}


def template(target: str) -> str:
    """Template file for a target path: '/etc/x.conf' -> templates/etc/x.conf.j2."""
    return str(TEMPLATES / (target.lstrip("/") + ".j2"))


def jinja() -> dict:
    """A fresh copy of the Jinja2 options (pyinfra mutates the dict it is given)."""
    return dict(JINJA_OPTIONS)


def host_components(host: Host) -> tuple[str, ...]:
    """The components placed on this host: its inventory groups among lb, app, db, cache."""
    return tuple(c for c in COMPONENTS if c in host.groups)


def host_context(host: Host) -> tuple[Settings, Plan]:
    """Validated settings and the capacity plan for one host; exits with the reason if impossible.

    Runs while pyinfra prepares operations, so a refusal stops the run before any change. Every
    entry file starts here: the host's ssh connection is also set up for many small commands
    (:func:`lbstack.transport.no_delay`).
    """
    transport.no_delay(host)
    try:
        settings = settings_mod.load(host.data.get("lbstack"))
        components = host_components(host)
        online = host.get_fact(Cpus)
        cpus = settings.capacity_cpus or online
        memory = settings.capacity_memory_mib or host.get_fact(Memory)
        return settings, make_plan(cpus, int(memory), settings, components, online_cpus=online)
    except (SettingsError, PlanError) as exc:
        print(f"lbstack: {host.name}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def group_hosts(group: str) -> list[Host]:
    """The inventory's hosts in ``group`` (lb, app, db, cache)."""
    return list(inventory.get_group(group, []))


def same_host(other: Host) -> bool:
    """Whether ``other`` is the host being deployed now."""
    return other.name == current_host.name


def private_address(other: Host) -> str:
    """How the stack's hosts reach ``other``: its ``private_address`` host data, else its name."""
    return other.data.get("private_address") or other.name


# nginx, Redis and the FPM instances hand every request to each other: as SCHED_BATCH tasks a
# woken one does not preempt the one running on its CPU, it runs at the next tick or when that one
# sleeps (README, "Tuning": fewer context switches, ~10 % less CPU per light request in
# `lbstack bench`). MariaDB keeps the default policy.
SCHED_POLICY = "batch"


def service_dropin_data(service: str, slice_: str, restart: str = "on-failure", **extra) -> dict:
    """Template arguments of ``/etc/systemd/system/<service>.d/lbstack.conf``: the service joins
    its component's slice and restarts by itself after a crash."""
    return {"service": service, "slice": slice_, "restart": restart, "extra": extra}


def service_dropin(service: str, slice_: str, restart: str = "on-failure", **extra):
    """Render a packaged service's lbstack drop-in; returns the operation (for ``_if``)."""
    path = f"/etc/systemd/system/{service}.d/lbstack.conf"
    return template_file(
        name=f"Render {path}",
        src=template("/etc/systemd/system/component.service.d/lbstack.conf"),
        dest=path,
        mode="644",
        jinja_env_kwargs=jinja(),
        **service_dropin_data(service, slice_, restart, **extra),
    )


def service_in_slice(service: str, slice_: str, dropin) -> None:
    """The service loaded with its drop-in, started, enabled, and running inside its slice."""
    daemon_reload(name=f"systemctl daemon-reload (if {service} changed on disk)", units=[service], changed=[dropin])
    unit_active(name=f"Start and enable {service}", unit=service)
    unit_in_slice(name=f"{service} in {slice_} (restart if outside)", unit=service, slice_unit=slice_)


def render(target: str, **data) -> str:
    """Render ``target``'s template here, as ``files.template`` renders it on the host."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, **JINJA_OPTIONS)
    return env.get_template(target.lstrip("/") + ".j2").render(**data)


def static_lines(text: str | list[str] | None, dynamic: set[str]) -> list[str] | None:
    """The settings lines of a config file that only a restart applies: comments, blank lines and
    the ``dynamic`` keys (applied to the running server instead) left out."""
    if text is None:
        return None
    lines = text.splitlines() if isinstance(text, str) else text
    kept = []
    for line in lines:
        stripped = line.strip()
        key = stripped.replace("=", " ").split()[0].lower() if stripped else ""
        if stripped and not stripped.startswith(("#", ";")) and key not in dynamic:
            kept.append(" ".join(stripped.split()))
    return kept


def restart_needed(live_path: str, target: str, data: dict, dynamic: set[str]) -> bool:
    """Whether the new rendering of ``target`` changes a setting only a restart applies, compared
    with the file at ``live_path`` on the host now (absent: yes)."""
    from pyinfra.facts.files import FileContents

    live = current_host.get_fact(FileContents, path=live_path)
    return static_lines(live, dynamic) != static_lines(render(target, **data), dynamic)
