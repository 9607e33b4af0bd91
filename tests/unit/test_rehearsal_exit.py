"""When a rehearsal host's process has really exited: every thread gone, its files closed.

qemu's main thread can be a zombie while its vCPU threads still hold the overlay's write lock
(the second boot of CI's VM failed on that lock). A real process shows it here: its main thread
exits with pthread_exit while another thread holds a lock on a file.
"""

import fcntl
import subprocess
import sys
import time

from lbstack.rehearsal import common

CHILD = r"""
import ctypes, fcntl, sys, threading, time
handle = open(sys.argv[1], "a")
fcntl.lockf(handle, fcntl.LOCK_EX)
threading.Thread(target=lambda: (time.sleep(float(sys.argv[2])), None)).start()
print("locked", flush=True)
ctypes.CDLL(None).pthread_exit(None)  # the main thread ends; the other keeps the process and its files
"""


def _locked_by_someone(path) -> bool:
    with open(path, "a") as handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.lockf(handle, fcntl.LOCK_UN)
        return False


def test_a_zombie_main_thread_with_a_live_thread_has_not_exited(tmp_path):
    lock = tmp_path / "overlay.lock"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(lock), "2.0"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        assert common.wait_until(lambda: not common.pid_matches(child.pid, "pthread_exit"), 5.0)
        assert _locked_by_someone(lock)  # the file is still held by the remaining thread
        assert not common.exited(child.pid)
        assert common.wait_until(lambda: common.exited(child.pid), 10.0)
        assert not _locked_by_someone(lock)  # exited means the lock is free
        status = common.reap(child.pid)
        assert common.exit_description(status) == "exit code 0"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_the_exit_status_of_a_killed_child_is_named():
    child = subprocess.Popen(["sleep", "30"])
    common.wait_exec(child.pid, "sleep")  # else its command line may still read empty (see below)
    status = common.stop_process(child.pid, "sleep 30", 5.0)
    assert common.exit_description(status) == "killed by SIGTERM"
    assert common.exit_description(None).startswith("exit status unknown")


def test_a_process_that_is_gone_has_exited():
    child = subprocess.Popen(["true"])
    child.wait()
    time.sleep(0.05)
    assert common.exited(child.pid)


def test_a_process_just_started_is_waited_for_until_its_program_runs():
    # right after Popen the command line can still read empty (the child is inside execve)
    for _ in range(20):
        child = subprocess.Popen(["sleep", "5"])
        common.wait_exec(child.pid, "sleep")
        assert common.pid_matches(child.pid, "sleep 5")
        child.kill()
        child.wait()


def test_a_process_that_exits_before_its_program_runs_is_not_waited_for():
    child = subprocess.Popen(["sh", "-c", "exit 3"])
    common.wait_exec(child.pid, "never-runs", timeout_s=10.0)
    assert common.exit_description(common.stop_process(child.pid, "never-runs", 1.0)) == "exit code 3"
