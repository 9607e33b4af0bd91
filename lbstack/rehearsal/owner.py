"""Which process owns a rehearsal host, and whether that process is gone.

A host records its owner as ``owner_pid`` plus ``owner_start``: the process start time from
field 22 of ``/proc/<pid>/stat`` (clock ticks since boot). A pid alone is not enough: after
the owner dies the kernel hands its pid to another process sooner or later, and that process
must not keep a stale host alive. A host with no owner (``owner_pid`` None: booted by a person
with ``lbstack rehearsal up NAME``) is never reaped automatically.
"""

from __future__ import annotations

import os
from pathlib import Path


class NoSuchProcess(LookupError):
    """The process to make the owner of a host does not exist."""


def parse_stat(text: str) -> tuple[str, int]:
    """(state, start time in clock ticks) from the text of a ``/proc/<pid>/stat`` file.

    The command name (field 2) is in parentheses and may itself contain spaces and ``)``,
    so fields are counted from the last ``)``: state is field 3, starttime field 22.
    """
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[19])


def read_stat(pid: int | None) -> tuple[str, int] | None:
    """(state, start time) of process ``pid``, or None if there is no such process."""
    if not pid or pid <= 0:
        return None
    try:
        return parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def process_start(pid: int) -> int:
    """The start time of live process ``pid`` (field 22 of its stat); NoSuchProcess if gone."""
    stat = read_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        raise NoSuchProcess(f"no process with pid {pid}")
    return stat[1]


def owner_record(owner: int | str | None) -> tuple[int | None, int | None]:
    """The ``(owner_pid, owner_start)`` to record for ``up(..., owner=owner)``.

    ``"self"``: this process; an int: that process (which must be running); None: nobody.
    """
    if owner is None:
        return None, None
    if owner == "self":
        pid = os.getpid()
    elif isinstance(owner, int) and not isinstance(owner, bool):
        pid = owner
    else:
        raise ValueError(f"owner must be 'self', a pid or None, not {owner!r}")
    return pid, process_start(pid)


def owner_gone(owner_pid: int | None, owner_start: int | None) -> bool:
    """True if the recorded owner process no longer runs, so its host may be reaped.

    - no owner (``owner_pid`` None): False, never reaped;
    - no process with that pid, or only a zombie of it: True;
    - a process with that pid but another start time (the pid was reused): True;
    - the owner itself (same pid and start time, or no start time recorded): False.
    """
    if owner_pid is None:
        return False
    stat = read_stat(owner_pid)
    if stat is None or stat[0] in ("Z", "X"):
        return True
    return owner_start is not None and stat[1] != owner_start


def is_mine(owner_pid: int | None, owner_start: int | None) -> bool:
    """True if the recorded owner is this very process."""
    if owner_pid != os.getpid():
        return False
    return owner_start is None or owner_start == process_start(owner_pid)
