"""Packaged services under lbstack: each joins its component's slice through a drop-in, and a
config change restarts it only when a setting only a restart applies changed."""

from __future__ import annotations

from pyinfra import host as current_host
from pyinfra.facts.files import FileContents

from lbstack.operations import daemon_reload, template_file, unit_active, unit_in_slice
from lbstack.render import jinja, render, template

# nginx, Redis and the FPM instances hand every request to each other: as SCHED_BATCH tasks a
# woken one does not preempt the one running on its CPU, it runs at the next tick or when that one
# sleeps (README, "Tuning": fewer context switches, ~10 % less CPU per light request in
# `lbstack bench`). MariaDB keeps the default policy.
SCHED_POLICY = "batch"


def dropin_path(service: str) -> str:
    return f"/etc/systemd/system/{service}.d/lbstack.conf"


def dropin_data(service: str, slice_: str, restart: str = "on-failure", sandbox=(), **extra) -> dict:
    """Template arguments of ``/etc/systemd/system/<service>.d/lbstack.conf``: the service joins
    its component's slice, restarts by itself after a crash, and gets ``sandbox`` (directives of
    :mod:`lbstack.sandbox`)."""
    return {"service": service, "slice": slice_, "restart": restart, "extra": extra, "sandbox": list(sandbox)}


def dropin(service: str, slice_: str, restart: str = "on-failure", sandbox=(), **extra):
    """Render a packaged service's lbstack drop-in; returns the operation (for ``_if``)."""
    path = dropin_path(service)
    return template_file(
        name=f"Render {path}",
        src=template("/etc/systemd/system/component.service.d/lbstack.conf"),
        dest=path,
        mode="644",
        jinja_env_kwargs=jinja(),
        **dropin_data(service, slice_, restart, sandbox, **extra),
    )


def in_slice(service: str, slice_: str, dropin_op) -> None:
    """The service loaded with its drop-in, started, enabled, and running inside its slice."""
    daemon_reload(name=f"systemctl daemon-reload (if {service} changed on disk)", units=[service], changed=[dropin_op])
    unit_active(name=f"Start and enable {service}", unit=service)
    unit_in_slice(name=f"{service} in {slice_} (restart if outside)", unit=service, slice_unit=slice_)


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
    live = current_host.get_fact(FileContents, path=live_path)
    return static_lines(live, dynamic) != static_lines(render(target, **data), dynamic)


def timer(service_unit: str, timer_unit: str, what: str, /, **data) -> None:
    """A oneshot ``service_unit`` and the ``timer_unit`` that starts it, rendered from their templates
    in ``/etc/systemd/system`` with ``data``, loaded, and the timer started and enabled (``what``:
    what it runs, for the operation's name)."""
    units = [template_file(
        name=f"Render /etc/systemd/system/{unit}",
        src=template(f"/etc/systemd/system/{unit}"),
        dest=f"/etc/systemd/system/{unit}",
        mode="644",
        jinja_env_kwargs=jinja(),
        **data,
    ) for unit in (service_unit, timer_unit)]
    daemon_reload(name=f"systemctl daemon-reload (if {timer_unit} changed on disk)", units=[service_unit, timer_unit],
                  changed=units)
    unit_active(name=f"Start and enable {timer_unit} ({what})", unit=timer_unit)
