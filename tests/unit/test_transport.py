"""``lbstack.transport.no_delay``: Nagle off on a connected paramiko session's TCP socket, and
nothing else touched."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest

from lbstack.transport import UPLOAD_TEMP_DIR, no_delay, run_command


def host_with(sock):
    transport = SimpleNamespace(sock=sock)
    client = SimpleNamespace(get_transport=lambda: transport)
    return SimpleNamespace(connector=SimpleNamespace(client=client))


@pytest.fixture
def tcp_socket():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname())
    yield client
    client.close()
    server.close()


def test_turns_nagle_off_on_a_tcp_connection(tcp_socket):
    assert tcp_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
    assert no_delay(host_with(tcp_socket)) is True
    assert tcp_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_leaves_other_connections_alone():
    a, b = socket.socketpair()
    try:
        assert no_delay(host_with(a)) is False  # not TCP (a ProxyCommand's pipe, say)
    finally:
        a.close()
        b.close()
    assert no_delay(host_with(object())) is False  # a paramiko Channel (jump host)
    assert no_delay(SimpleNamespace(connector=SimpleNamespace())) is False  # @local: no ssh client
    assert no_delay(SimpleNamespace(connector=SimpleNamespace(client=None))) is False  # not connected
    assert no_delay(SimpleNamespace(connector=SimpleNamespace(client=SimpleNamespace(get_transport=lambda: None)))) is False


def _host(data: dict):
    from pyinfra.api import Config, Inventory, State

    inventory = Inventory((["box"], data))
    State(inventory, Config())
    host = inventory.get_host("box")
    seen: dict = {}

    def run_shell_command(command, **kwargs):
        seen.update(kwargs, command=command)
        return True, "output"

    host.run_shell_command = run_shell_command
    return host, seen


def test_a_direct_command_runs_with_the_inventorys_sudo():
    """inventories/vagrant.py logs in as `vagrant` and says _sudo: a lock or a rolling step run
    directly must get sudo as pyinfra's facts and operations do (it once ran as `vagrant`)."""
    host, seen = _host({"_sudo": True, "_sudo_user": "root", "_env": {"LC_ALL": "C"}})
    assert run_command(host, "cat /var/lib/lbstack/deploy.lock", 30) == (True, "output")
    assert seen["_sudo"] is True and seen["_sudo_user"] == "root" and seen["_env"] == {"LC_ALL": "C"}
    assert seen["_timeout"] == 30 and seen["command"] == "cat /var/lib/lbstack/deploy.lock"
    assert not {"_serial", "_parallel", "_run_once", "name"} & set(seen)  # operation-only arguments


def test_a_direct_command_without_sudo_in_the_inventory_runs_as_the_login_user():
    host, seen = _host({"ssh_user": "root"})
    run_command(host, "true", 12.7)
    assert not seen["_sudo"] and seen["_timeout"] == 12


def test_uploads_are_staged_in_tmp_not_in_the_sudo_users_private_tmpdir(tmp_path):
    """With libpam-tmpdir, TmpDir through sudo is /tmp/user/0, unwritable for the ssh user's SFTP:
    the pyinfra command, run from the repository, loads ./config.py, which pins TEMP_DIR before any
    operation exists (a deploy that only prints what it sees, on @local)."""
    import subprocess
    import sys

    from lbstack import REPO_ROOT

    deploy = tmp_path / "show.py"
    deploy.write_text("from pyinfra import config\nprint('TEMP_DIR=' + str(config.TEMP_DIR))\n")
    run = subprocess.run([sys.executable, "-m", "pyinfra", "-y", "@local", str(deploy)], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert f"TEMP_DIR={UPLOAD_TEMP_DIR}" in run.stdout + run.stderr, run.stdout + run.stderr
    assert UPLOAD_TEMP_DIR == "/tmp"
