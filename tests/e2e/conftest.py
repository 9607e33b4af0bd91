"""End-to-end fixtures: real rehearsal hosts, one container and one VM per test session.

Hosts are named ``t<pid>-<tag>`` so parallel runs do not collide, and are torn down at the
end of the session even when tests fail. Everything here needs root (cgroups, veths, qemu);
the tests fail, rather than skip, without it.

Interrupted runs clean up: hosts are owned by the pytest process (``rehearsal.up``'s default),
SIGTERM and SIGHUP stop the run like Ctrl-C (KeyboardInterrupt, so the session's fixtures are
torn down), every host the session booted is torn down at its end even if a fixture's own
teardown was cut short, and each session first reaps the hosts of earlier runs whose process
is gone (killed with SIGKILL, or a machine that went down).
"""

from __future__ import annotations

import contextlib
import os
import signal
import warnings
from collections.abc import Iterator

import pytest

from lbstack import rehearsal
from lbstack.rehearsal import HostInfo, cgroups, holding_signals, ssh_run

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


_SIGNALS = contextlib.ExitStack()


def pytest_configure(config) -> None:
    """From here on SIGTERM and SIGHUP, like SIGINT, raise KeyboardInterrupt (see rehearsal.signals)."""
    _SIGNALS.enter_context(rehearsal.teardown_on_signal())


def pytest_unconfigure(config) -> None:
    _SIGNALS.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    """The session's fixtures are torn down here: a signal now must not cut that short."""
    with holding_signals(reraise=False):
        return (yield)


_REAPED: list[str] = []


def _reap(when: str) -> None:
    """Reap stale rehearsal hosts (listed in the summary); one that cannot be reaped is a warning."""
    try:
        _REAPED.extend(f"{when}: {each}" for each in rehearsal.reap_stale())
    except rehearsal.RehearsalError as error:
        warnings.warn(f"reaping stale rehearsal hosts {when}: {error}", stacklevel=1)


@pytest.fixture(scope="session", autouse=True)
def rehearsal_session() -> Iterator[list[str]]:
    """Reap stale hosts of earlier runs; tear down whatever this session booted, however it ends.

    At the end, also reaps hosts of processes this session started and that were killed (a
    bench run as a subprocess is killed when the session is interrupted).
    """
    if os.geteuid() != 0:
        yield []
        return
    _reap("session start")
    with rehearsal.owned_hosts() as names:
        yield names
    _reap("session end")


def _hold(name: str, vm_host: bool) -> Iterator[HostInfo]:
    """Boot host ``name`` for the duration of a fixture; always tear it down afterwards."""
    if os.geteuid() != 0:
        pytest.fail("end-to-end tests need root (rehearsal hosts use cgroups, veths and qemu)")
    try:
        yield rehearsal.up(name, vm_host=vm_host, owner="self")  # reaped if this run is killed
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


@pytest.fixture()
def session_vms_paused() -> Iterator[list[int]]:
    """SIGSTOP this session's own rehearsal VMs for the test and freeze its container hosts'
    cgroups; SIGCONT and thaw them after it.

    An idle VM under TCG still takes a good part of a core (its timers are emulated); a test
    that runs a VM of its own (Vagrant) ran 250 s slower next to it. A converged container host
    wakes up too (queue workers, the scheduler every minute, MariaDB's background threads).
    Yields the qemu pids paused.
    """
    mine = [info for info in rehearsal.list_hosts() if info.owner_pid == os.getpid() and rehearsal.alive(info)]
    paused = [info.pid for info in mine if info.kind == "vm"]
    frozen = [info.cgroups for info in mine if info.kind == "nspawn" and info.cgroups]
    for pid in paused:
        os.kill(pid, signal.SIGSTOP)
    for paths in frozen:
        cgroups.freeze(paths, True)
    try:
        yield paused
    finally:
        for paths in frozen:
            cgroups.freeze(paths, False)
        for pid in paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


_CONVERGED: dict[str, tuple] = {}


def _converge(request, kind: str) -> tuple:
    """Converge the session's bare ``kind`` host once with deploy/full.py: (kind, info, run)."""
    if kind not in _CONVERGED:
        info = request.getfixturevalue(f"{kind}_host")
        first = pyinfra(info.name)
        TIMINGS[f"{kind} converge from bare"] = first["seconds"]
        _CONVERGED[kind] = (kind, info, first)
    return _CONVERGED[kind]


@pytest.fixture(scope="session", params=["nspawn"])
def converged(request):
    """The session's bare container host, converged once with deploy/full.py. The converge on a
    real kernel (cgroup v2) is the Vagrant test's (tests/e2e/test_vagrant.py): two TCG converges
    of the same image were 11 min of CI for one proof."""
    return _converge(request, request.param)


@pytest.fixture(scope="session")
def converged_nspawn(request):
    """The session's nspawn host, converged once (the same host and run as ``converged``)."""
    return _converge(request, "nspawn")


@pytest.fixture(scope="session")
def host(converged_nspawn):
    """The session's converged nspawn host, for modules that work on it (a module with its own
    ``host`` fixture overrides this one)."""
    _, info, first = converged_nspawn
    assert first["rc"] == 0, first["stderr"][-4000:]
    return info


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the stale hosts reaped, and the timings the end-to-end tests saw (informational;
    bench/ measures them properly)."""
    if _REAPED:
        terminalreporter.write_sep("-", "stale rehearsal hosts reaped")
        for line in _REAPED:
            terminalreporter.write_line(line)
    if TIMINGS:
        terminalreporter.write_sep("-", "rehearsal host timings")
        for label, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{label}: {seconds:.1f} s")
