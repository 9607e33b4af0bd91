"""End-to-end fixtures: real rehearsal hosts, one container and one VM per test session.

Hosts are named ``t<pid>-<tag>`` so parallel runs do not collide, and are torn down at the
end of the session even when tests fail. Everything here needs root (cgroups, veths, qemu);
the tests fail, rather than skip, without it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from lbstack import rehearsal
from lbstack.rehearsal import HostInfo, ssh_run

from e2e_helpers import TIMINGS, pyinfra

RUN_ID = os.getpid()


def unique_name(tag: str) -> str:
    """A host name unique to this test run."""
    return f"t{RUN_ID}-{tag}"


def run(info: HostInfo, cmd: str, timeout: float = 60.0) -> tuple[int, str, str]:
    """Run shell command ``cmd`` on the host over ssh (paramiko): (exit status, stdout, stderr)."""
    return ssh_run(info, cmd, timeout_s=timeout)


@pytest.fixture(name="run", scope="session")
def run_fixture():
    """The :func:`run` helper, for test modules (they cannot import from conftest)."""
    return run


@pytest.fixture(scope="session")
def host_name():
    """:func:`unique_name`: ``host_name("x")`` is a host name unique to this run."""
    return unique_name


def _hold(name: str, vm_host: bool) -> Iterator[HostInfo]:
    """Boot host ``name`` for the duration of a fixture; always tear it down afterwards."""
    if os.geteuid() != 0:
        pytest.fail("end-to-end tests need root (rehearsal hosts use cgroups, veths and qemu)")
    try:
        yield rehearsal.up(name, vm_host=vm_host)
    finally:
        rehearsal.down(name)


@pytest.fixture(scope="session")
def nspawn_host() -> Iterator[HostInfo]:
    """A running systemd-nspawn rehearsal host (cgroup limits enforced), shared by the session."""
    yield from _hold(unique_name("n"), vm_host=False)


@pytest.fixture(scope="session")
def vm_host() -> Iterator[HostInfo]:
    """A running qemu rehearsal VM (real kernel, cgroup v2), shared by the session."""
    yield from _hold(unique_name("v"), vm_host=True)


_CONVERGED: dict[str, tuple] = {}


def _converge(request, kind: str) -> tuple:
    """Converge the session's bare ``kind`` host once with deploy/full.py: (kind, info, run)."""
    if kind not in _CONVERGED:
        info = request.getfixturevalue(f"{kind}_host")
        first = pyinfra(info.name)
        TIMINGS[f"{kind} converge from bare"] = first["seconds"]
        _CONVERGED[kind] = (kind, info, first)
    return _CONVERGED[kind]


@pytest.fixture(scope="session", params=["nspawn", pytest.param("vm", marks=pytest.mark.vm)])
def converged(request):
    """A bare rehearsal host of each kind, converged once with deploy/full.py."""
    return _converge(request, request.param)


@pytest.fixture(scope="session")
def converged_nspawn(request):
    """The session's nspawn host, converged once (the same host and run as ``converged``)."""
    return _converge(request, "nspawn")


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the timings the end-to-end tests saw (informational; bench/ measures them properly)."""
    if TIMINGS:
        terminalreporter.write_sep("-", "rehearsal host timings")
        for label, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{label}: {seconds:.1f} s")
