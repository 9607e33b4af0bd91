"""Ownership of rehearsal hosts, stale-host reaping and the signal helper, without booting anything.

Real processes and real signals (this process, short-lived children); host records are
written into a temporary state dir, so nothing here touches the machine's rehearsal hosts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from lbstack import rehearsal
from lbstack.rehearsal import HostInfo, Interrupted, holding_signals, owned_hosts, teardown_on_signal
from lbstack.rehearsal.cli import rehearsal as rehearsal_cli
from lbstack.rehearsal.owner import (
    NoSuchProcess, is_mine, owner_gone, owner_record, parse_stat, process_start,
)
from lbstack.rehearsal.signals import stopping

STAT_TAIL = " ".join(str(n) for n in range(4, 53))  # fields 4..52; field 22 is the number 22


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# -- the ownership decision --------------------------------------------------------------------

def test_parse_stat_counts_fields_after_the_command_name() -> None:
    assert parse_stat(f"1234 (a b) c)) S {STAT_TAIL}\n") == ("S", 22)
    with open("/proc/self/stat") as handle:
        state, start = parse_stat(handle.read())
    assert state in ("R", "S") and start > 0


def test_no_owner_is_never_stale() -> None:
    assert owner_gone(None, None) is False
    assert owner_gone(None, 12345) is False


def test_live_owner_is_not_stale() -> None:
    me = os.getpid()
    assert owner_gone(me, process_start(me)) is False
    assert owner_gone(me, None) is False  # no start time recorded: the pid alone decides


def test_owner_whose_pid_is_gone_is_stale() -> None:
    pid = dead_pid()
    assert owner_gone(pid, 1) is True
    assert owner_gone(pid, None) is True


def test_reused_pid_with_another_start_time_is_stale() -> None:
    me = os.getpid()
    assert owner_gone(me, process_start(me) - 1) is True


def test_zombie_owner_is_stale() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        start = process_start(child.pid)
    except NoSuchProcess:  # already a zombie
        start = None
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    try:
        assert owner_gone(child.pid, start) is True
    finally:
        child.wait()


def test_owner_record() -> None:
    me = os.getpid()
    assert owner_record(None) == (None, None)
    assert owner_record("self") == (me, process_start(me))
    assert owner_record(os.getppid()) == (os.getppid(), process_start(os.getppid()))
    with pytest.raises(NoSuchProcess):
        owner_record(dead_pid())
    with pytest.raises(ValueError):
        owner_record(True)
    assert is_mine(me, process_start(me)) and not is_mine(me, process_start(me) + 1)
    assert not is_mine(None, None) and not is_mine(os.getppid(), None)


def test_old_records_have_no_owner_and_new_keys_are_ignored(tmp_path: Path) -> None:
    data = {k: v for k, v in record_data("old", tmp_path).items() if not k.startswith("owner_")}
    path = tmp_path / "host.json"
    path.write_text(json.dumps({**data, "from_the_future": 1}))
    info = rehearsal.common.load_host(path)
    assert info.owner_pid is None and info.owner_gone() is False


# -- reap_stale on recorded hosts whose processes are all gone ---------------------------------

def record_data(name: str, hosts: Path, owner: tuple[int | None, int | None] = (None, None), index: int = 250):
    """The host.json data of a container host that is not running (nothing but files left)."""
    return {
        "name": name, "kind": "nspawn", "address": f"10.213.{index}.2", "ssh_port": 22, "ssh_user": "root",
        "ssh_key": "/nonexistent", "pid": 0, "host_dir": str(hosts / name), "started_at": time.time(),
        "index": index, "veth": f"vlbs{index}", "cgroups": [], "proxy_pid": None,
        "proxy_address": f"10.213.{index}.1:3142", "rootfs": str(hosts / name / "rootfs"),
        "owner_pid": owner[0], "owner_start": owner[1],
    }


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty rehearsal state dir of its own; returns its hosts dir."""
    monkeypatch.setenv("LBSTACK_REHEARSAL_DIR", str(tmp_path / "state"))
    hosts = tmp_path / "state" / "hosts"
    hosts.mkdir(parents=True)
    return hosts


def leftover_host(hosts: Path, name: str, owner: tuple[int | None, int | None], index: int) -> Path:
    """A host dir as a hard kill leaves it: record, rootfs, logs, no process."""
    path = hosts / name
    (path / "rootfs" / "etc").mkdir(parents=True)
    (path / "rootfs" / "etc" / "hostname").write_text(name)
    (path / "nspawn.log").write_text("")
    HostInfo(**record_data(name, hosts, owner, index)).save()
    return path


def test_reap_stale_removes_only_hosts_whose_owner_is_gone(state: Path) -> None:
    me = os.getpid()
    gone = leftover_host(state, "gone", (dead_pid(), 1), 251)
    reused = leftover_host(state, "reused", (me, process_start(me) + 7), 252)
    live = leftover_host(state, "live", (me, process_start(me)), 253)
    nobody = leftover_host(state, "nobody", (None, None), 254)
    kept = state / "kept" / "rootfs"  # `down --keep-rootfs` of a person's host: no record
    kept.mkdir(parents=True)

    reaped = rehearsal.reap_stale()

    assert sorted(r.name for r in reaped) == ["gone", "reused"]
    assert all("rootfs" in r.removed for r in reaped)
    assert "gone: owner process" in str(reaped[0]) and "rootfs" in str(reaped[0])
    assert not gone.exists() and not reused.exists()
    assert live.exists() and nobody.exists() and kept.exists()
    assert [h.name for h in rehearsal.list_hosts()] == ["live", "nobody"]
    assert rehearsal.reap_stale() == []


def test_reap_stale_removes_a_vm_whose_owner_is_gone(state: Path) -> None:
    path = state / "vm1"
    path.mkdir()
    (path / "overlay.qcow2").write_bytes(b"")
    HostInfo(
        name="vm1", kind="vm", address="127.0.0.1", ssh_port=0, ssh_user="root", ssh_key="/nonexistent", pid=0,
        host_dir=str(path), started_at=time.time(), overlay=str(path / "overlay.qcow2"),
        owner_pid=dead_pid(), owner_start=None,
    ).save()
    reaped = rehearsal.reap_stale()
    assert [(r.name, r.kind, r.removed) for r in reaped] == [("vm1", "vm", ["overlay"])]
    assert not path.exists()


def test_signal_helper_needs_the_main_thread() -> None:
    errors = []

    def enter() -> None:
        try:
            with teardown_on_signal():
                pass
        except RuntimeError as error:
            errors.append(error)

    worker = threading.Thread(target=enter)
    worker.start()
    worker.join()
    assert len(errors) == 1 and "main thread" in str(errors[0])


def test_down_when_checks_the_record_under_the_lock(state: Path) -> None:
    me = os.getpid()
    live = leftover_host(state, "live", (me, process_start(me)), 251)
    assert rehearsal.down("live", when=HostInfo.owner_gone) is False
    assert live.exists()
    (state / "bare").mkdir()  # no record: `when` never tears down unrecorded dirs
    assert rehearsal.down("bare", when=lambda info: True) is False
    assert rehearsal.down("live") is True and not live.exists()


def test_up_refuses_an_owner_that_does_not_exist(state: Path) -> None:
    with pytest.raises(rehearsal.RehearsalError, match="owner of 'x'"):
        rehearsal.up("x", owner=dead_pid())


def test_cli_reap_and_down_stale(state: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(rehearsal_cli, ["reap"])
    assert result.exit_code == 0 and result.output == "no stale hosts\n"
    leftover_host(state, "gone", (dead_pid(), None), 251)
    leftover_host(state, "nobody", (None, None), 252)
    listing = runner.invoke(rehearsal_cli, ["list", "--json"])
    stale = {h["name"]: h["stale"] for h in json.loads(listing.output)}
    assert stale == {"gone": True, "nobody": False}
    result = runner.invoke(rehearsal_cli, ["down", "--stale"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("gone: owner process ") and "removed rootfs" in result.output
    assert [h.name for h in rehearsal.list_hosts()] == ["nobody"]
    assert runner.invoke(rehearsal_cli, ["down", "--stale", "nobody"]).exit_code == 2
    assert runner.invoke(rehearsal_cli, ["down", "--stale", "--all"]).exit_code == 2


# -- the signal helper --------------------------------------------------------------------------

def send(signum: int) -> None:
    """Deliver ``signum`` to this process and give the handler the chance to run."""
    os.kill(os.getpid(), signum)
    time.sleep(0.3)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_first_signal_raises_and_handlers_are_restored(signum: int) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    with teardown_on_signal():
        with pytest.raises(Interrupted) as caught:
            send(signum)
        assert caught.value.signum == signum and caught.value.exit_code == 128 + signum
        assert isinstance(caught.value, KeyboardInterrupt)  # not swallowed by `except Exception`
        assert stopping()
    assert {s: signal.getsignal(s) for s in before} == before


def test_later_signals_are_ignored_while_tearing_down(capfd: pytest.CaptureFixture) -> None:
    torn_down = []
    with pytest.raises(Interrupted):
        with teardown_on_signal():
            try:
                send(signal.SIGTERM)
            finally:
                send(signal.SIGTERM)  # a second SIGTERM (or Ctrl-C) does not cut this short
                send(signal.SIGINT)
                torn_down.append(True)
    assert torn_down == [True]
    assert "SIGTERM ignored: already stopping" in capfd.readouterr().err


def test_signal_during_a_held_teardown_is_raised_after_it() -> None:
    done = []
    with teardown_on_signal():
        with pytest.raises(Interrupted):
            with holding_signals():
                send(signal.SIGTERM)
                done.append("teardown finished")
        assert done == ["teardown finished"]
        with holding_signals():  # already raised once: not again
            pass


def test_held_signal_is_dropped_with_reraise_false_or_another_exception() -> None:
    with teardown_on_signal():
        with holding_signals(reraise=False):
            send(signal.SIGHUP)
        assert stopping()
    with teardown_on_signal():
        with pytest.raises(ValueError):
            with holding_signals():
                send(signal.SIGHUP)
                raise ValueError("the teardown failed")


def test_holding_signals_is_a_no_op_outside_a_block() -> None:
    with holding_signals():
        pass
    assert not stopping()


def test_nested_blocks_each_see_their_own_first_signal() -> None:
    with teardown_on_signal():
        with teardown_on_signal():
            with pytest.raises(Interrupted):
                send(signal.SIGTERM)
        assert not stopping()  # the outer block still turns a signal into an exception
        with pytest.raises(Interrupted):
            send(signal.SIGTERM)


def test_owned_hosts_is_a_signal_block_too() -> None:
    with owned_hosts() as names:
        assert names == []
        with pytest.raises(Interrupted):
            send(signal.SIGTERM)
