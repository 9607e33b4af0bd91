"""Dedicated cgroups for a container, in every cgroup hierarchy of this machine.

systemd-nspawn (with ``--keep-unit``) and the container's systemd create their cgroups
below the cgroup nspawn starts in. Starting it inside ``nspawn-<name>`` (a child of our own
cgroup in each hierarchy) keeps everything they create in one subtree that teardown removes.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from .common import RehearsalError, wait_until


def hierarchies() -> list[Path]:
    """This process's cgroup directory in each mounted hierarchy (v1 controllers and v2).

    Pairs ``/proc/self/cgroup`` entries with the cgroup mounts of ``/proc/self/mountinfo``.
    """
    mounts = _cgroup_mounts()
    dirs = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        wanted = set(controllers.split(",")) if controllers else set()
        for fstype, options, mount_point in mounts:
            if (fstype == "cgroup2") == (not wanted) and wanted <= options:
                dirs.append(mount_point / path.lstrip("/"))
                break
    return dirs


def _cgroup_mounts() -> list[tuple[str, set[str], Path]]:
    """(fstype, super options, mount point) of every whole-hierarchy cgroup mount."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, tail = line.partition(" - ")
        fstype, _, options = tail.split(" ")[:3]
        root, mount_point = fields.split(" ")[3:5]
        if root == "/" and fstype in ("cgroup", "cgroup2"):
            mounts.append((fstype, set(options.split(",")), Path(mount_point)))
    return mounts


def create(leaf: str) -> list[Path]:
    """Create ``leaf`` below our cgroup in every hierarchy; returns the new directories.

    For the v1 cpuset controller the parent's ``cpuset.cpus``/``cpuset.mems`` are copied,
    since a new cpuset cgroup starts empty and refuses processes.
    """
    created = []
    for parent in hierarchies():
        path = parent / leaf
        path.mkdir(exist_ok=True)
        created.append(path)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if (path / name).exists():
                (path / name).write_text((parent / name).read_text())
    return created


def procs(path: Path) -> list[int]:
    """Process ids in ``path`` and all its descendant cgroups."""
    pids: list[int] = []
    for directory, _, files in os.walk(path):
        if "cgroup.procs" in files:
            with contextlib.suppress(OSError):
                pids += [int(p) for p in (Path(directory) / "cgroup.procs").read_text().split()]
    return pids


def remove(paths: list[str | Path], timeout_s: float = 10.0) -> None:
    """Kill any process left in the ``paths`` subtrees, then remove them depth-first.

    Missing directories are fine (teardown may run twice or after a crash). Frozen cgroups
    (a crash during a snapshot) are thawed first, or SIGKILL would wait for the thaw.
    """
    freeze(paths, False)
    for path in map(Path, paths):
        _kill(path)
    for path in map(Path, paths):
        # killed again on each try: a process that was joining the cgroup meanwhile
        if not wait_until(lambda: _kill(path) or _rmtree(path), timeout_s, interval_s=0.2):
            raise RehearsalError(f"cannot remove cgroup {path}: processes {procs(path)} remain")


def _kill(path: Path) -> None:
    """SIGKILL every process in the ``path`` subtree (if it exists)."""
    for pid in procs(path) if path.is_dir() else ():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _rmtree(path: Path) -> bool:
    """rmdir every cgroup directory below and including ``path``; True once it is gone."""
    if not path.exists():
        return True
    for directory, _, _ in os.walk(path, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(directory)
    return not path.exists()


def freeze(paths: list[str | Path], frozen: bool) -> None:
    """Freeze (or thaw) the given cgroups that can be: v1 ``freezer.state``, v2 ``cgroup.freeze``."""
    for path in map(Path, paths):
        if (path / "freezer.state").exists():
            state = "FROZEN" if frozen else "THAWED"
            (path / "freezer.state").write_text(state)
            wait_until(lambda: (path / "freezer.state").read_text().strip() == state, 10.0)
        elif (path / "cgroup.freeze").exists():
            (path / "cgroup.freeze").write_text("1" if frozen else "0")
