"""The operating commands' errors, run as a user runs them (a subprocess, no host needed):
missing inventory, unknown option, unreachable host. Each gives one clear line, the documented
exit code, and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from lbstack import REPO_ROOT

COMMANDS = ["status", "test", "metrics", "monitor", "drift", "plan"]


def lbstack(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    exe = os.path.join(os.path.dirname(sys.executable), "lbstack")
    return subprocess.run([exe, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)


def _usage_code(command: str) -> int:
    return 1 if command == "drift" else 2  # drift keeps 2 for "drift found"


@pytest.mark.parametrize("command", COMMANDS)
def test_missing_inventory_file(command):
    run = lbstack(command, "inventories/nope.py")
    assert run.returncode == _usage_code(command), run.stderr
    assert "inventory file 'inventories/nope.py' not found" in run.stderr
    assert "Traceback" not in run.stderr + run.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_unknown_option(command):
    run = lbstack(command, "inventories/prod.py", "--no-such-option")
    assert run.returncode == _usage_code(command), run.stderr
    assert "No such option '--no-such-option'" in run.stderr
    assert "Traceback" not in run.stderr


def test_inventory_that_does_not_load(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("hosts = [\n")
    run = lbstack("status", str(bad))
    assert run.returncode == 2 and "does not load" in run.stderr and "Traceback" not in run.stderr


def test_inventory_with_invalid_settings(tmp_path):
    bad = tmp_path / "bad_settings.py"
    bad.write_text(textwrap.dedent("""
        from lbstack.settings import inventory_data
        all = (["127.0.0.1"], inventory_data({"instances": "five"}))
        lb = app = db = cache = ["127.0.0.1"]
    """))
    run = lbstack("drift", str(bad))
    assert run.returncode == 1, run.stderr
    assert "instances" in run.stderr and "Traceback" not in run.stderr


@pytest.fixture
def unreachable(tmp_path):
    """An inventory whose one host refuses ssh: 127.0.0.1 port 1 (nothing listens; loopback only)."""
    path = tmp_path / "unreachable.py"
    path.write_text(textwrap.dedent("""
        from lbstack.settings import inventory_data
        all = ([("web1", {"ssh_hostname": "127.0.0.1", "ssh_port": 1, "ssh_connect_retries": 0})],
               inventory_data({}))
        lb = app = db = cache = ["web1"]
    """))
    return str(path)


@pytest.mark.parametrize("command", COMMANDS)
def test_unreachable_host(command, unreachable):
    run = lbstack(command, unreachable)
    assert run.returncode == 1, (run.returncode, run.stderr)
    assert "cannot reach web1 (127.0.0.1:1)" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr + run.stdout


def test_limit_to_an_unknown_host(unreachable):
    run = lbstack("status", unreachable, "--limit", "web9")
    assert run.returncode == 2 and "no host web9" in run.stderr


def test_monitor_count_and_duration_are_exclusive(unreachable):
    run = lbstack("monitor", unreachable, "--count", "2", "--duration", "5")
    assert run.returncode == 2 and "--count or --duration" in run.stderr


def test_plan_needs_inventory_or_size():
    run = lbstack("plan")
    assert run.returncode == 2 and "give INVENTORY, or both --cpus and --memory" in run.stderr
    both = lbstack("plan", "inventories/prod.py", "--cpus", "8")
    assert both.returncode == 2 and "drop --cpus" in both.stderr
