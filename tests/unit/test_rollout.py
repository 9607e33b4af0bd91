"""The rolling update's order of work, rollback and deploy lock, with recorded runners (the real
thing runs on rehearsal hosts: tests/e2e/test_rolling.py); and its shell snippets as shell."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest

from lbstack import REPO_ROOT, deploylock, layout, rollout
from lbstack.settings import OVERRIDES_ENV, SettingsError, load, validated

GATES = rollout.Gates("/api/ujian/health", "/api/questions/random", passes=3, timeout_s=5, drain_timeout_s=5)


def inst(i: int) -> rollout.Instance:
    return rollout.Instance(i, f"unix:{layout.fpm_socket(i)}", layout.fpm_socket(i))


class Host:
    """A fake host: answers each snippet by what it does, and records the order of events.
    ``failing`` instances fail their health gate while they run ``bad_release``."""

    def __init__(self, failing=(), bad_release="R2"):
        self.log: list[str] = []
        self.pointers = {f"app{i}": "R1" for i in range(1, 6)}
        self.down: set[str] = set()
        self.failing, self.bad_release = set(failing), bad_release

    def __call__(self, command: str, timeout: float) -> tuple[bool, str]:
        if "nginx -t" in command:
            for line in command.splitlines():
                if line.startswith("if grep -q") and "/fpm.sock" in line:
                    name = line.split("/run/lbstack/")[1].split("/")[0]
                    (self.down.add if "s/;$/ down;/" in line else self.down.discard)(name)
                    self.log.append(("drain " if name in self.down else "undrain ") + name)
            return True, "@reloaded"
        if "@idle" in command:
            return True, "@idle"
        if "ln -sfn ../releases/" in command:
            name = re.search(rf"{layout.INSTANCES_DIR}/(app\d+)", command).group(1)
            previous = self.pointers[name]
            self.pointers[name] = re.search(r"\.\./releases/([\w-]+)", command).group(1)
            self.log.append(f"switch {name} {self.pointers[name]}")
            return True, f"@before=1/1\n@previous={previous}"
        if "@pass" in command:
            name = command.split("lbstack-fpm@")[1].split(".")[0]
            name = f"app{name}"
            assert name in self.down or name not in {"app1", "app2", "app3", "app4", "app5"}, "gated while in rotation"
            if name in self.failing and self.pointers[name] == self.bad_release:
                self.log.append(f"gate-fail {name}")
                return True, "@fail=health: 0 of 3 consecutive good answers in 5 s; last: answered 503"
            self.log.append(f"gate {name}")
            return True, "@pass smoke=200"
        if "bad-releases" in command:
            self.log.append("mark-bad")
            return True, ""
        if "systemctl restart" in command or "systemctl disable" in command:
            self.log.append("restart" if "restart" in command else "retire")
            return True, "@before=1/1"
        return True, ""


def steps(release="R2", count=5):
    return [rollout.Step(inst(i), release=release, reasons=["release"]) for i in range(1, count + 1)]


def test_one_instance_out_at_a_time_drain_switch_gate_back():
    host = Host()
    rollout.Rollout(host, [host], GATES, log=lambda m: None).run(steps(), batch=1, release="R2")
    for i in range(1, 6):
        at = host.log.index(f"drain app{i}")
        assert host.log[at:at + 4] == [f"drain app{i}", f"switch app{i} R2", f"gate app{i}", f"undrain app{i}"]
    assert host.pointers == {f"app{i}": "R2" for i in range(1, 6)} and not host.down


def test_batches_of_two_never_take_more_out():
    host = Host()
    out_at_once = []

    def watch(command, timeout):
        result = host(command, timeout)
        out_at_once.append(len(host.down))
        return result

    rollout.Rollout(watch, [watch], GATES, log=lambda m: None).run(steps(), batch=2, release="R2")
    assert max(out_at_once) == 2 and not host.down


def test_a_release_failing_its_first_gate_is_marked_bad_and_nothing_else_switches():
    host = Host(failing={f"app{i}" for i in range(1, 6)})
    with pytest.raises(rollout.RolloutFailed) as failed:
        rollout.Rollout(host, [host], GATES, log=lambda m: None).run(steps(), batch=1, release="R2")
    assert "gate 'health' failed on app1" in str(failed.value)
    assert "mark-bad" in host.log and host.pointers == {f"app{i}": "R1" for i in range(1, 6)} and not host.down
    assert not any(e.startswith("switch app2") for e in host.log)


def test_a_later_instance_failing_rolls_back_in_reverse_order_without_blaming_the_release():
    host = Host(failing={"app3"})
    with pytest.raises(rollout.RolloutFailed) as failed:
        rollout.Rollout(host, [host], GATES, log=lambda m: None).run(steps(), batch=1, release="R2")
    assert failed.value.gate == "health"
    assert "gate 'health' failed on app3" in str(failed.value) and "every instance is back in rotation" in str(failed.value)
    assert host.pointers == {f"app{i}": "R1" for i in range(1, 6)}  # all on the previous release
    assert not host.down  # every healthy instance back in rotation
    # app1 and app2 passed their gates on R2: the failure is app3's, the build is not marked bad
    assert "mark-bad" not in host.log
    after = host.log[host.log.index("gate-fail app3"):]
    order = [e.split()[1] for e in after if e.startswith("gate ")]
    assert order == ["app3", "app2", "app1"]  # reverse order, the failed one first
    assert "switch app4 R2" not in host.log and "switch app5 R2" not in host.log


def test_a_config_only_update_failing_does_not_mark_the_release_bad():
    host = Host(failing={"app1"}, bad_release="R1")
    config_steps = [rollout.Step(inst(1), config=("/s", "/l", "644"), reasons=["config"])]
    with pytest.raises(rollout.RolloutFailed):
        rollout.Rollout(host, [host], GATES, log=lambda m: None).run(config_steps, batch=1, release="R1")
    assert "mark-bad" not in host.log


def test_surplus_instances_are_drained_then_retired():
    host = Host()
    host.pointers.update({"app6": "R1", "app7": "R1"})
    rollout.Rollout(host, [host], GATES, log=lambda m: None).retire([inst(6), inst(7)])
    assert host.log == ["drain app6", "drain app7", "retire", "retire"]


def _sh(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)


def test_every_snippet_is_valid_shell():
    step = rollout.Step(inst(3), release="R2", config=("/s", "/l", "644"), previous_release="R1", previous_config=True)
    for script in (rollout.upstream_edit_script(["unix:/run/lbstack/app3/fpm.sock"], ["unix:/run/lbstack/app1/fpm.sock"]),
                   rollout.wait_idle_script(inst(3).fpm, 30), rollout.apply_script(step),
                   rollout.revert_script(step), rollout.gate_script(inst(3), GATES, "R2", "1/2"),
                   rollout.retire_script(inst(6)), rollout.mark_bad_script("R2-abc", {"gate": "health"})):
        assert _sh(script).returncode == 0, script


def test_upstream_edit_marks_down_validates_a_copy_and_skips_absent_members(tmp_path):
    conf = tmp_path / "nginx" / "conf.d" / "lbstack.conf"
    conf.parent.mkdir(parents=True)
    (tmp_path / "nginx" / "nginx.conf").write_text("include conf.d/*.conf;\n")
    lines = [f"    server unix:/run/lbstack/app{i}/fpm.sock max_fails=3 fail_timeout=5s;" for i in (1, 2, 10)]
    conf.write_text("upstream lbstack_app {\n" + "\n".join(lines) + "\n}\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, body in (("nginx", 'echo "nginx -t $*" >> "$LOG"'), ("systemctl", 'echo "systemctl $*" >> "$LOG"')):
        (bin_dir / tool).write_text(f"#!/bin/sh\n{body}\nexit 0\n")
        (bin_dir / tool).chmod(0o755)
    script = rollout.upstream_edit_script(["unix:/run/lbstack/app1/fpm.sock", "unix:/run/lbstack/app9/fpm.sock"], [],
                                          site_conf=str(conf), nginx_dir=str(tmp_path / "nginx"))
    script = script.replace(layout.STATE_DIR, str(tmp_path / "state"))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(tmp_path / "log")}
    proc = subprocess.run(["bash", "-c", script], text=True, capture_output=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "@absent=unix:/run/lbstack/app9/fpm.sock" in proc.stdout and "@reloaded" in proc.stdout
    text = conf.read_text()
    assert "app1/fpm.sock max_fails=3 fail_timeout=5s down;" in text
    assert "app10/fpm.sock max_fails=3 fail_timeout=5s;" in text  # app1 is not a prefix match of app10
    assert text.count(" down;") == 1
    log = (tmp_path / "log").read_text()
    assert "nginx -t -t -q -c" in log and str(tmp_path / "state") in log and "systemctl reload nginx.service" in log
    # the same edit again changes nothing and reloads nothing
    proc = subprocess.run(["bash", "-c", script], text=True, capture_output=True, env=env)
    again = (tmp_path / "log").read_text()
    assert "@unchanged" in proc.stdout and again.count("reload") == 1 and again.count("nginx -t") == 1


# --- the deploy lock --------------------------------------------------------------------------


class LockHost:
    def __init__(self, content: str | None = None):
        self.content = content

    def __call__(self, command: str, timeout: float) -> tuple[bool, str]:
        if "set -C" in command:
            if self.content is None:
                self.content = command.split("printf '%s\\n' ")[1].split(" > ")[0].strip("'")
                return True, "@acquired"
            return True, "@held\n" + self.content
        if "rm -f" in command:
            wanted = command.split(" = ")[1].split(" ]")[0].strip("'")
            if wanted == self.content:
                self.content = None
            return True, ""
        return True, ""


def _holder(**extra) -> str:
    return json.dumps({"machine": "ci-runner", "pid": 4242, "user": "deployer", "since": "2026-11-24T06:00:00Z",
                       "since_epoch": int(__import__("time").time()) - 30, "command": "lbstack deploy --rolling",
                       **extra}, sort_keys=True)


def test_lock_is_taken_and_released():
    host = LockHost()
    deploylock.acquire(host, "web1", 3600, log=lambda m: None)
    assert json.loads(host.content)["pid"] == os.getpid()
    deploylock.release(host, "web1")
    assert host.content is None and "web1" not in deploylock.HELD


def test_a_live_lock_of_another_machine_refuses_naming_its_holder():
    host = LockHost(_holder())
    with pytest.raises(deploylock.LockHeld) as held:
        deploylock.acquire(host, "web1", 3600, log=lambda m: None)
    message = str(held.value)
    assert "deployer@ci-runner (pid 4242) since 2026-11-24T06:00:00Z" in message
    assert "lbstack deploy --rolling" in message and layout.DEPLOY_LOCK in message
    assert json.loads(host.content)["pid"] == 4242  # untouched


def test_a_lock_whose_process_is_gone_on_this_machine_is_taken_over():
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = LockHost(_holder(machine=socket.gethostname(), pid=dead.pid))
    said = []
    deploylock.acquire(host, "web2", 3600, log=said.append)
    assert json.loads(host.content)["pid"] == os.getpid()
    assert "is gone on this machine" in said[0]
    deploylock.release(host, "web2")


def test_an_old_lock_of_another_machine_is_stale():
    host = LockHost(_holder(since_epoch=1))
    said = []
    deploylock.acquire(host, "web3", 3600, log=said.append)
    assert "s old (deploy_lock_stale_s is 3600)" in said[0]
    deploylock.release(host, "web3")


# --- lbstack deploy and its settings ---------------------------------------------------------------


def _lbstack(*args, env=None):
    exe = os.path.join(os.path.dirname(sys.executable), "lbstack")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})


def test_deploy_refuses_a_missing_inventory_and_a_bad_set():
    proc = _lbstack("deploy", "--rolling", "no/such/inventory.py")
    assert proc.returncode == 2 and "inventory file 'no/such/inventory.py' not found" in proc.stderr
    proc = _lbstack("deploy", "inventories/prod.py", "--set", "instances")
    assert proc.returncode == 2 and "expected KEY=VALUE" in proc.stderr


def test_deploy_set_overrides_are_validated_before_any_connection():
    proc = _lbstack("deploy", "--rolling", str(REPO_ROOT / "inventories/prod.py"), "--set", "rolling_batch=5")
    assert proc.returncode != 0
    assert "rolling_batch: 5 would take all 5 instances out of rotation at once. Use at most 4." in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_rolling_settings_are_checked():
    with pytest.raises(SettingsError, match="smoke_path: 'api' must be a URL path"):
        load({"smoke_path": "api"})
    with pytest.raises(SettingsError, match="health_gate_passes"):
        load({"health_gate_passes": 0})
    assert load({"instances": 1, "rolling_batch": 1}).rolling_batch == 1


def test_overrides_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(OVERRIDES_ENV, '{"instances": 8}')
    assert validated({"instances": 5})["instances"] == 8
    monkeypatch.setenv(OVERRIDES_ENV, "not json")
    with pytest.raises(SystemExit, match="LBSTACK_OVERRIDES: not JSON"):
        validated({})


def test_retiring_an_instance_removes_its_cpu_placement():
    script = rollout.retire_script(rollout.Instance(7, "unix:/run/lbstack/app7/fpm.sock", "/run/lbstack/app7/fpm.sock"))
    assert "/etc/systemd/system/lbstack-fpm@7.service.d/lbstack-cpu.conf" in script
