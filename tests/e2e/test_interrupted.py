"""Interrupted runs clean up: a process killed part-way leaves no rehearsal host behind.

Each test boots real container hosts from child processes and kills the child: with SIGTERM,
SIGINT or SIGHUP (the signal helper turns them into teardown), or with SIGKILL (no teardown
possible: ``reap_stale`` removes what is left once the owner is gone). "Gone" means: no host
record or dir, no cgroup dir, no veth, no process of the host (nspawn, the container's own,
the apt proxy) and nothing listening on the proxy address.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lbstack import REPO_ROOT, rehearsal
from lbstack.rehearsal import HostInfo, cgroups
from lbstack.rehearsal.owner import read_stat

READY_TIMEOUT_S = 180.0

# The child: boots host argv[1], writes its record to argv[2] once ssh answers, then waits.
# Modes: "finally" (teardown_on_signal + its own finally: down, as `lbstack bench` does),
# "owned" (owned_hosts() tears it down) and "plain" (no helper: a signal kills it outright).
CHILD = textwrap.dedent('''
    import dataclasses, json, sys, time
    from pathlib import Path
    from lbstack import rehearsal

    name, ready, mode = sys.argv[1:4]

    def boot_and_wait():
        info = rehearsal.up(name)
        Path(ready + ".tmp").write_text(json.dumps(dataclasses.asdict(info)))
        Path(ready + ".tmp").rename(ready)
        while True:
            time.sleep(1)

    try:
        if mode == "finally":
            with rehearsal.teardown_on_signal():
                try:
                    boot_and_wait()
                finally:
                    rehearsal.down(name)
        elif mode == "owned":
            with rehearsal.owned_hosts():
                boot_and_wait()
        else:
            boot_and_wait()
    except rehearsal.Interrupted as exc:
        sys.exit(exc.exit_code)
''')

# A test the child pytest session runs: hold the session's nspawn host (conftest's fixture).
CHILD_SESSION_TEST = textwrap.dedent('''
    import dataclasses, json, os, time
    from pathlib import Path

    def test_hold(nspawn_host):
        ready = os.environ["LBSTACK_TEST_READY"]
        Path(ready + ".tmp").write_text(json.dumps(dataclasses.asdict(nspawn_host)))
        Path(ready + ".tmp").rename(ready)
        time.sleep(600)
''')


@pytest.fixture(scope="module", autouse=True)
def golden_rootfs() -> None:
    """Build (or reuse) the golden rootfs first, so children only boot."""
    rehearsal.build_rootfs()


def wait_ready(child: subprocess.Popen, ready: Path, log: Path) -> HostInfo:
    """The record the child wrote once its host answered; fails if the child exits first."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"child exited ({child.poll()}) before its host was up:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return HostInfo(**json.loads(ready.read_text()))


def start(tmp_path: Path, name: str, mode: str) -> tuple[subprocess.Popen, HostInfo, Path]:
    """Start a :data:`CHILD` booting ``name`` in ``mode``; returns it, its host and its log."""
    ready, log = tmp_path / f"{name}.json", tmp_path / f"{name}.log"
    with open(log, "w") as out:
        child = subprocess.Popen([sys.executable, "-c", CHILD, name, str(ready), mode], cwd=REPO_ROOT,
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    return child, wait_ready(child, ready, log), log


def host_processes(info: HostInfo) -> set[int]:
    """nspawn, the apt proxy and every process in the host's cgroups (the container's own)."""
    pids = {pid for path in info.cgroups for pid in cgroups.procs(Path(path))}
    return pids | {pid for pid in (info.pid, info.proxy_pid) if pid}


def running(pid: int) -> bool:
    stat = read_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def assert_gone(info: HostInfo, pids: set[int]) -> None:
    """Nothing of host ``info`` is left: record, dir, cgroups, veth, processes, listener."""
    assert info.name not in {h.name for h in rehearsal.list_hosts()}
    assert not Path(info.host_dir).exists()
    assert info.cgroups and [path for path in info.cgroups if Path(path).exists()] == []
    link = subprocess.run(["ip", "link", "show", info.veth], capture_output=True, text=True, check=False)
    assert link.returncode != 0, link.stdout
    assert [pid for pid in pids if running(pid)] == []
    listeners = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout
    assert f" {info.proxy_address} " not in listeners


def stop(child: subprocess.Popen) -> None:
    """SIGKILL ``child`` if it still runs (a failed test), and collect it."""
    if child.poll() is None:
        child.kill()
    child.wait()


@pytest.mark.parametrize("mode, signum", [
    pytest.param("finally", signal.SIGTERM, id="finally-SIGTERM"),
    pytest.param("finally", signal.SIGINT, id="finally-SIGINT"),
    pytest.param("owned", signal.SIGTERM, id="owned-SIGTERM"),
    pytest.param("owned", signal.SIGHUP, id="owned-SIGHUP"),
])
def test_signal_tears_the_host_down(tmp_path: Path, host_name, mode: str, signum: int) -> None:
    name = host_name(f"s{mode[0]}{int(signum)}")
    child, info, log = start(tmp_path, name, mode)
    try:
        assert (info.owner_pid, rehearsal.alive(info)) == (child.pid, True)
        pids = host_processes(info)
        assert len(pids) > 3, pids  # nspawn, proxy, the container's systemd and services
        child.send_signal(signum)
        assert child.wait(timeout=60) == 128 + signum, log.read_text()[-3000:]
        assert_gone(info, pids)
    finally:
        stop(child)
        rehearsal.down(name)


def test_signal_while_booting_leaves_nothing(tmp_path: Path, host_name) -> None:
    """SIGTERM once nspawn runs but before ssh answers: ``up`` itself tears down what it started."""
    name = host_name("sb")
    record = rehearsal.common.host_dir(name) / "host.json"
    ready, log = tmp_path / "ready.json", tmp_path / "child.log"
    with open(log, "w") as out:
        child = subprocess.Popen([sys.executable, "-c", CHILD, name, str(ready), "finally"], cwd=REPO_ROOT,
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        def booting() -> HostInfo | None:
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, TypeError):
                info = HostInfo(**json.loads(record.read_text()))
                if info.pid and rehearsal.alive(info):
                    return info
            return None

        assert rehearsal.common.wait_until(lambda: booting() or child.poll() is not None, READY_TIMEOUT_S, 0.02)
        info = booting()
        assert info is not None and not ready.exists(), log.read_text()[-3000:]
        pids = host_processes(info)
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == 128 + signal.SIGTERM, log.read_text()[-3000:]
        assert not ready.exists()
        assert_gone(info, pids)
        assert rehearsal.common.pids_matching(f" -M {name} ") == []
    finally:
        stop(child)
        rehearsal.down(name)


def test_reap_after_sigkill_leaves_hosts_of_nobody_and_of_live_owners(tmp_path: Path, host_name) -> None:
    running_name, dead_name = host_name("kr"), host_name("kd")
    nobody_name, live_name = host_name("kn"), host_name("kl")
    names = [running_name, dead_name, nobody_name, live_name]
    children = []
    try:
        # owner SIGKILLed, its host still running
        child, running_host, _ = start(tmp_path, running_name, "plain")
        children.append(child)
        # owner SIGKILLed and the host's nspawn too: only leftovers (cgroups, proxy, rootfs, ...)
        child, dead_host, _ = start(tmp_path, dead_name, "plain")
        children.append(child)
        nobody = rehearsal.up(nobody_name, owner=None)  # as `lbstack rehearsal up NAME`
        live = rehearsal.up(live_name)  # owned by this (live) test process
        assert nobody.owner_pid is None and live.owner_pid == os.getpid()
        pids = {running_name: host_processes(running_host), dead_name: host_processes(dead_host)}

        for child in children:
            child.kill()
            child.wait()
        os.kill(dead_host.pid, signal.SIGKILL)
        assert rehearsal.common.wait_until(lambda: not rehearsal.alive(dead_host), 10)
        assert rehearsal.alive(running_host)  # a SIGKILLed owner cannot tear anything down
        assert rehearsal.get_host(running_name).owner_gone() and rehearsal.get_host(dead_name).owner_gone()
        assert [path for path in dead_host.cgroups if Path(path).exists()] != []
        assert Path(dead_host.rootfs).is_dir() and running(dead_host.proxy_pid)

        reaped = {each.name: each for each in rehearsal.reap_stale()}

        assert {running_name, dead_name} <= set(reaped)
        assert nobody_name not in reaped and live_name not in reaped
        assert f"systemd-nspawn pid {running_host.pid}" in reaped[running_name].removed
        assert f"veth {running_host.veth}" in reaped[running_name].removed
        assert f"systemd-nspawn pid {dead_host.pid}" not in reaped[dead_name].removed
        assert f"apt proxy pid {dead_host.proxy_pid}" in reaped[dead_name].removed
        assert "rootfs" in reaped[dead_name].removed
        assert_gone(running_host, pids[running_name])
        assert_gone(dead_host, pids[dead_name])
        assert rehearsal.alive(rehearsal.get_host(nobody_name)) and rehearsal.alive(rehearsal.get_host(live_name))
        assert not {nobody_name, live_name} & {each.name for each in rehearsal.reap_stale()}
    finally:
        for child in children:
            stop(child)
        for name in names:
            rehearsal.down(name)


def fake_stale_host(name: str) -> Path:
    """The record and rootfs dir a SIGKILLed run can leave, of an owner that is gone."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    path = rehearsal.common.host_dir(name)
    (path / "rootfs").mkdir(parents=True)
    HostInfo(
        name=name, kind="nspawn", address="10.213.249.2", ssh_port=22, ssh_user="root", ssh_key="/nonexistent",
        pid=0, host_dir=str(path), started_at=time.time(), index=249, veth="vlbs249", rootfs=str(path / "rootfs"),
        proxy_address="10.213.249.1:3142", owner_pid=gone.pid, owner_start=1,
    ).save()
    return path


def test_sigterm_of_a_pytest_session_tears_its_hosts_down(tmp_path: Path, host_name) -> None:
    """The conftest's own machinery, in a pytest child: reap at start, SIGTERM tears down."""
    stale = fake_stale_host(host_name("kf"))
    test_file = tmp_path / "test_child_session.py"
    test_file.write_text(CHILD_SESSION_TEST)
    ready, log = tmp_path / "session.json", tmp_path / "session.log"
    env = {**os.environ, "LBSTACK_TEST_READY": str(ready), "PYTHONPATH": str(Path(__file__).parent)}
    command = [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-q",
               "--rootdir", str(tmp_path), str(test_file)]
    with open(log, "w") as out:
        child = subprocess.Popen(command, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT)
    info = None
    try:
        info = wait_ready(child, ready, log)
        assert info.name == f"t{child.pid}-n" and info.owner_pid == child.pid
        assert not stale.exists()  # reaped when the session started
        pids = host_processes(info)
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == pytest.ExitCode.INTERRUPTED, log.read_text()[-3000:]
        assert_gone(info, pids)
        output = log.read_text()
        assert "Interrupted: interrupted by SIGTERM" in output
        assert f"session start: {stale.name}: owner process" in output
    finally:
        stop(child)
        rehearsal.down(stale.name)
        if info is not None:
            rehearsal.down(info.name)
