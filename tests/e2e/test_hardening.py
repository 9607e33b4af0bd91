"""Host hardening on the session's converged nspawn host: sshd keys only without locking the
converge out, a host reached only by password left as it is, and fail2ban banning a real address
that keeps failing to log in (and only that address, only on ssh).

Each test puts the host back as the session found it (keys only, nothing banned).
"""

from __future__ import annotations

import json
import secrets
import shlex
import socket
import subprocess
import sys
import time

import paramiko
import pytest
from e2e_helpers import REHEARSAL_SETTINGS, http, pyinfra, remote

from lbstack import REPO_ROOT
from lbstack.hardening import SSHD_DROPIN


def _transport(address: str, source: str | None = None, port: int = 22, wait_s: float = 10) -> paramiko.Transport:
    """An ssh transport to ``address`` (from ``source``), retried while sshd re-executes itself
    after a reload (its port is closed for a moment)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            sock = socket.create_connection((address, port), timeout=10,
                                            source_address=(source, 0) if source else None)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    transport = paramiko.Transport(sock)
    transport.start_client(timeout=10)
    return transport


def _password_login(info, password: str) -> str:
    """Try a root password login: "ok", or what sshd allows instead."""
    transport = _transport(info.address, port=info.ssh_port)
    try:
        transport.auth_password("root", password)
        return "ok"
    except paramiko.BadAuthenticationType as refused:
        return "only " + ",".join(refused.allowed_types)
    except paramiko.AuthenticationException:
        return "wrong password"
    finally:
        transport.close()


def test_keys_only_after_the_converge_and_a_new_key_login_still_works(host):
    rc, out, err = remote(host, f"cat {SSHD_DROPIN}; sshd -T | grep -E '^(passwordauthentication|permitrootlogin) '")
    assert rc == 0 and "PasswordAuthentication no" in out, out + err
    assert "passwordauthentication no" in out and "permitrootlogin without-password" in out
    assert _password_login(host, "anything") == "only publickey"
    transport = _transport(host.address, port=host.ssh_port)  # a fresh login with the key pyinfra uses
    try:
        transport.auth_publickey("root", paramiko.PKey.from_path(host.ssh_key))
        assert transport.is_authenticated()
    finally:
        transport.close()


INVENTORY = """
import json, os
from lbstack.rehearsal import get_host, pyinfra_host
from lbstack.settings import inventory_data
name, data = pyinfra_host(get_host(os.environ["LBSTACK_TEST_HOST"]))
data = {k: v for k, v in data.items() if k != "ssh_key"}
data["ssh_password"] = os.environ["LBSTACK_TEST_PASSWORD"]  # a password, no key
all = ([(name, data)], inventory_data(json.loads(os.environ["LBSTACK_TEST_SETTINGS"])))
lb = app = db = cache = [name]
"""


def test_a_host_reached_only_by_password_is_left_as_it_is_with_the_reason(host, tmp_path):
    password = secrets.token_urlsafe(18)
    rc, shadow, err = remote(host, "getent shadow root | cut -d: -f2")
    assert rc == 0, err
    allow = (f"cp /etc/ssh/sshd_config /root/sshd_config.lbstack-test && rm -f {SSHD_DROPIN} && "
             "printf 'PermitRootLogin yes\\nPasswordAuthentication yes\\n' >> /etc/ssh/sshd_config && "
             f"echo root:{shlex.quote(password)} | chpasswd && systemctl reload ssh")
    rc, out, err = remote(host, allow)
    assert rc == 0, out + err
    try:
        assert _password_login(host, password) == "ok"  # a VPS as some providers hand it over
        inventory = tmp_path / "password.py"
        inventory.write_text(INVENTORY)
        env = {"LBSTACK_TEST_HOST": host.name, "LBSTACK_TEST_PASSWORD": password,
               "LBSTACK_TEST_SETTINGS": json.dumps(REHEARSAL_SETTINGS)}
        run = subprocess.run([sys.executable, "-m", "pyinfra", "-y", str(inventory), "deploy/full.py"],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
                             env={**__import__("os").environ, **env})
        output = run.stdout + run.stderr
        assert run.returncode == 0, output[-4000:]
        assert (f"lbstack: {host.name}: sshd left as it is: pyinfra logged in as root with password, not a key"
                in output), output[-4000:]
        assert f"Verification of {host.name}: all checks passed" in output
        assert "left as it is" in output and password not in output
        rc, out, _ = remote(host, f"test -e {SSHD_DROPIN} && echo present || echo absent")
        assert out.strip() == "absent"
        assert _password_login(host, password) == "ok"  # still the way in it was
    finally:
        restore = (f"mv /root/sshd_config.lbstack-test /etc/ssh/sshd_config && "
                   f"usermod -p {shlex.quote(shadow.strip())} root && systemctl reload ssh")
        rc, out, err = remote(host, restore)
        assert rc == 0, out + err
        again = pyinfra(host.name)
    assert again["rc"] == 0, again["stderr"][-4000:]
    assert _password_login(host, password) == "only publickey"


def test_fail2ban_bans_an_address_that_keeps_failing_and_only_on_ssh(host):
    assert host.veth, "an nspawn host (a veth of this machine)"
    attacker = host.address.rsplit(".", 1)[0] + ".77"
    subprocess.run(["ip", "addr", "add", f"{attacker}/32", "dev", host.veth], check=True)
    try:
        for attempt in range(6):  # fail2ban_maxretry (5) failed logins, as a user that does not exist
            try:
                transport = _transport(host.address, source=attacker, port=host.ssh_port, wait_s=0)
            except OSError:
                break  # banned already
            try:
                transport.auth_none(f"nobody-{attempt}")
            except paramiko.SSHException:
                pass
            finally:
                transport.close()
        banned = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and attacker not in banned:
            rc, out, _ = remote(host, "fail2ban-client status sshd")
            banned = out.split("Banned IP list:")[-1].split()
            time.sleep(1)
        assert attacker in banned, out
        with pytest.raises(OSError):  # ssh from the banned address: dropped
            _transport(host.address, source=attacker, port=host.ssh_port, wait_s=0).close()
        web = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                              "--interface", attacker, f"http://{host.address}/api/ujian/health"],
                             capture_output=True, text=True, timeout=30)
        assert web.stdout == "200", web  # the web ports are not banned
        assert remote(host, "true")[0] == 0  # this machine's own address still gets in
        assert http(f"http://{host.address}/api/ujian/health")[0] == 200
    finally:
        remote(host, f"fail2ban-client set sshd unbanip {attacker}")
        subprocess.run(["ip", "addr", "del", f"{attacker}/32", "dev", host.veth], check=False)
    rc, out, _ = remote(host, "fail2ban-client status sshd")
    assert attacker not in out


def test_an_existing_account_of_the_host_is_refused_as_app_user_before_anything_changes(host):
    rc, out, err = remote(host, "useradd --system --home-dir /var/lib/deployer --shell /bin/sh deployer")
    assert rc == 0, out + err
    try:
        run = pyinfra(host.name, settings={**REHEARSAL_SETTINGS, "app_user": "deployer"}, timeout=300)
        assert run["rc"] == 1, run["stderr"][-3000:]
        assert (f"lbstack: {host.name}: app_user: 'deployer' is a system account this host already has"
                in run["stderr"]), run["stderr"][-3000:]
        assert "Starting operation" not in run["stderr"]  # refused while preparing: nothing ran
        rc, out, _ = remote(host, "getent passwd deployer")
        assert out.strip().endswith(":/var/lib/deployer:/bin/sh")  # untouched
    finally:
        remote(host, "userdel deployer")
