"""The rolling update's order of work, rollback and deploy lock, with recorded runners (the real
thing runs on rehearsal hosts: tests/e2e/test_rolling.py; the host-side program itself:
test_lbstack_instance.py), and the argument lists the Python side builds for it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from types import SimpleNamespace

import pytest

from lbstack import REPO_ROOT, deploylock, hostscripts, layout, operations, rollout
from lbstack.settings import OVERRIDES_ENV, SettingsError, load, validated

GATES = rollout.Gates("/api/ujian/health", "/api/questions/random", passes=3, timeout_s=5, drain_timeout_s=5)
HELPER = layout.INSTANCE_HELPER
Result = rollout.Result


def inst(i: int, member: str | None = "") -> rollout.Instance:
    return rollout.Instance(i, layout.instance_name(i) if member == "" else member, layout.fpm_socket(i))


def options(args: list[str]) -> dict[str, str]:
    """``--key value`` pairs of an argument list (flags without a value: '')."""
    found, i = {}, 0
    while i < len(args):
        if args[i].startswith("--") and args[i] != "--":
            takes = 3 if args[i] == "--config" else (0 if args[i] == "--restart" else 1)
            found[args[i][2:]] = " ".join(args[i + 1:i + 1 + takes])
            i += 1 + takes
        else:
            i += 1
    return found


class Host:
    """A fake host running lbstack-instance: answers each subcommand as the program would (its
    stdout contract and exit codes), and records the order of events. ``failing`` instances fail
    their health gate while they run ``bad_release``; ``refuse`` makes a subcommand fail; a gate
    asserts its instance is drained on every host in ``balancers`` (default: this one)."""

    def __init__(self, failing=(), bad_release="R2", refuse=(), balancers=None):
        self.balancers = [self] if balancers is None else balancers
        self.log: list[str] = []
        self.argvs: list[list[str]] = []
        self.pointers = {f"app{i}": "R1" for i in range(1, 8)}
        self.down: set[str] = set()
        self.failing, self.bad_release, self.refuse = set(failing), bad_release, dict(refuse)

    def __call__(self, argv: list[str], timeout: float) -> Result:
        assert argv[0] == HELPER and timeout > 0
        assert all(isinstance(a, str) for a in argv), argv
        self.argvs.append(argv)
        command, args = argv[1], argv[2:]
        if command in self.refuse:
            return self.refuse[command]
        opts = options(args)
        if command in ("drain", "undrain"):
            assert args[0] == "--"
            for name in args[1:]:
                (self.down.add if command == "drain" else self.down.discard)(name)
                self.log.append(f"{command} {name}")
            return Result(0, "balancer=reloaded\n")
        if command == "wait-idle":
            assert args[0].endswith("/fpm.sock") and args[1] == str(GATES.drain_timeout_s)
            return Result(0, "idle=yes\n")
        name = f"app{args[0]}"
        if command == "switch":
            previous = self.pointers[name]
            if "release" in opts:
                self.pointers[name] = opts["release"]
            self.log.append(f"switch {name} {self.pointers[name]}")
            lines = ["before=1000/42"] + (["config_prev=1"] if "config" in opts else [])
            lines += [f"previous={previous}"] if "release" in opts else []
            return Result(0, "\n".join(lines + ["action=reload"]) + "\n")
        if command == "revert":
            if "release" in opts:
                self.pointers[name] = opts["release"]
            self.log.append(f"revert {name} {self.pointers[name]}")
            return Result(0, "before=1001/43\naction=restart\n")
        if command == "gate":
            assert all(name in lb.down for lb in self.balancers), "gated while in rotation"
            assert opts["before"] in ("1000/42", "1001/43") and opts["health"] == GATES.health_path
            if name in self.failing and self.pointers[name] == self.bad_release:
                self.log.append(f"gate-fail {name}")
                return Result(hostscripts.EXIT_GATE, "gate=fail\nfailed=health\n"
                              "detail=0 of 3 consecutive good answers in 5 s; last: answered 503\n")
            self.log.append(f"gate {name}")
            return Result(0, "gate=pass\nsmoke=200\n")
        if command == "mark-bad":
            self.log.append(f"mark-bad {args[0]} {opts['gate']} {opts['instance']}")
            return Result(0, f"recorded={layout.BAD_RELEASES_DIR}/{args[0].rsplit('-', 1)[-1]}\n")
        if command == "retire":
            self.log.append(f"retire {name}")
            return Result(0, f"retired={name}\n")
        if command == "forget-prev":
            self.log.append("forget-prev " + " ".join(args))
            return Result(0, f"forgotten={len(args)}\n")
        raise AssertionError(f"unexpected {argv}")


def steps(release="R2", count=5):
    return [rollout.Step(inst(i), release=release, reasons=["release"]) for i in range(1, count + 1)]


def roll(host: Host, lbs=None) -> rollout.Rollout:
    return rollout.Rollout(host, [host] if lbs is None else lbs, GATES, log=lambda m: None)


def test_one_instance_out_at_a_time_drain_switch_gate_back():
    host = Host()
    roll(host).run(steps(), batch=1, release="R2")
    for i in range(1, 6):
        at = host.log.index(f"drain app{i}")
        assert host.log[at:at + 4] == [f"drain app{i}", f"switch app{i} R2", f"gate app{i}", f"undrain app{i}"]
    assert host.pointers == {**{f"app{i}": "R2" for i in range(1, 6)}, "app6": "R1", "app7": "R1"} and not host.down
    assert not any(e.startswith("forget-prev") for e in host.log)  # no config promoted: nothing kept


def test_the_gate_is_asked_with_the_switch_stamp_and_the_settings():
    host = Host()
    roll(host).run(steps(count=1), batch=1, release="R2")
    (gate,) = [a for a in host.argvs if a[1] == "gate"]
    assert gate == [HELPER, "gate", "1", layout.fpm_socket(1), "--health", "/api/ujian/health",
                    "--smoke", "/api/questions/random", "--passes", "3", "--timeout", "5", "--before", "1000/42",
                    "--release", "R2"]


def test_batches_of_two_never_take_more_out():
    host = Host()
    out_at_once = []

    def watch(argv, timeout):
        result = host(argv, timeout)
        out_at_once.append(len(host.down))
        return result

    rollout.Rollout(watch, [watch], GATES, log=lambda m: None).run(steps(), batch=2, release="R2")
    assert max(out_at_once) == 2 and not host.down
    assert [a[2:] for a in host.argvs if a[1] == "drain"] == [["--", "app1", "app2"], ["--", "app3", "app4"], ["--", "app5"]]


def test_every_balancer_is_edited():
    lb1, lb2 = Host(), Host()
    app = Host(balancers=[lb1, lb2])
    rollout.Rollout(app, [lb1, lb2], GATES, log=lambda m: None).run(steps(count=2), batch=1, release="R2")
    for lb in (lb1, lb2):
        assert lb.log == ["drain app1", "undrain app1", "drain app2", "undrain app2"]
    assert not any(a[1] in ("drain", "undrain") for a in app.argvs)


def test_a_release_failing_its_first_gate_is_marked_bad_and_nothing_else_switches():
    host = Host(failing={f"app{i}" for i in range(1, 6)}, bad_release="20261124T101500-3f2a9c1d4e5b")
    with pytest.raises(rollout.RolloutFailed) as failed:
        roll(host).run(steps("20261124T101500-3f2a9c1d4e5b"), batch=1, release="20261124T101500-3f2a9c1d4e5b")
    assert "gate 'health' failed on app1: 0 of 3 consecutive good answers in 5 s; last: answered 503" in str(failed.value)
    assert "mark-bad 20261124T101500-3f2a9c1d4e5b health app1" in host.log
    (mark,) = [a for a in host.argvs if a[1] == "mark-bad"]
    assert options(mark[3:])["detail"] == "0 of 3 consecutive good answers in 5 s; last: answered 503"
    assert host.pointers["app1"] == "R1" and not host.down
    assert not any(e.startswith("switch app2") for e in host.log)


def test_a_new_release_of_the_build_in_service_failing_is_rolled_back_but_not_marked_bad():
    # the copy in service failed its manifest: the deploy built the same build again
    old, new = "20261124T101500-3f2a9c1d4e5b", "20261202T050000-3f2a9c1d4e5b"
    host = Host(failing={f"app{i}" for i in range(1, 6)}, bad_release=new)
    host.pointers = {f"app{i}": old for i in range(1, 8)}
    with pytest.raises(rollout.RolloutFailed):
        roll(host).run(steps(new), batch=1, release=new)
    assert not any(e.startswith("mark-bad") for e in host.log), host.log
    assert host.pointers["app1"] == old and not host.down


def test_a_later_instance_failing_rolls_back_in_reverse_order_without_blaming_the_release():
    host = Host(failing={"app3"})
    with pytest.raises(rollout.RolloutFailed) as failed:
        roll(host).run(steps(), batch=1, release="R2")
    assert failed.value.gate == "health"
    assert "gate 'health' failed on app3" in str(failed.value) and "every instance is back in rotation" in str(failed.value)
    assert all(host.pointers[f"app{i}"] == "R1" for i in range(1, 6))  # all on the previous release
    assert not host.down  # every healthy instance back in rotation
    # app1 and app2 passed their gates on R2: the failure is app3's, the build is not marked bad
    assert not any(e.startswith("mark-bad") for e in host.log)
    after = host.log[host.log.index("gate-fail app3"):]
    assert [e.split()[1] for e in after if e.startswith("revert ")] == ["app3", "app2", "app1"]  # reverse order
    assert [e.split()[1] for e in after if e.startswith("gate ")] == ["app3", "app2", "app1"]
    assert "switch app4 R2" not in host.log and "switch app5 R2" not in host.log
    # the instances that were live go back through a drain first
    assert after.index("drain app2") < after.index("revert app2 R1") < after.index("undrain app2")


def test_a_config_only_update_failing_does_not_mark_the_release_bad():
    host = Host(failing={"app1"}, bad_release="R1")
    config_steps = [rollout.Step(inst(1), config=("/s", "/l", "644"), reasons=["config"])]
    with pytest.raises(rollout.RolloutFailed):
        roll(host).run(config_steps, batch=1, release="R1")
    assert not any(e.startswith("mark-bad") for e in host.log)
    (revert,) = [a for a in host.argvs if a[1] == "revert"]
    assert revert == [HELPER, "revert", "1", layout.fpm_socket(1), "--config", "/l"]


def test_previous_configs_are_forgotten_once_every_instance_passed():
    host = Host()
    config_steps = [rollout.Step(inst(i), config=(f"/s{i}", f"/l{i}", "644"), reasons=["config"]) for i in (1, 2)]
    roll(host).run(config_steps, batch=1, release=None)
    (switch, _) = [a for a in host.argvs if a[1] == "switch"]
    assert switch == [HELPER, "switch", "1", layout.fpm_socket(1), "--config", "/s1", "/l1", "644"]
    assert host.log[-1] == "forget-prev /l1 /l2"


def test_an_invalid_upstream_edit_stops_before_any_switch():
    host = Host(refuse={"drain": Result(hostscripts.EXIT_INVALID, "balancer=invalid\ndetail=the edited upstream "
                                        "does not validate: nginx: [emerg] bad\n", "lbstack-instance: ...")})
    with pytest.raises(rollout.RolloutFailed) as failed:
        roll(host).run(steps(), batch=1, release="R2")
    assert failed.value.gate == "nginx" and "nginx: [emerg] bad" in str(failed.value)
    assert not any(a[1] in ("switch", "mark-bad") for a in host.argvs)


def test_a_failed_switch_and_a_failed_revert_are_named():
    host = Host(refuse={"switch": Result(1, "before=1000/42\nprevious=R1\ndetail=systemctl reload lbstack-fpm@1.service failed\n"),
                        "revert": Result(1, "detail=no previous config /l.lbstack-prev to put back\n")})
    with pytest.raises(rollout.RolloutFailed) as failed:
        roll(host).run(steps(), batch=1, release="R2")
    message = str(failed.value)
    assert failed.value.gate == "switch" and "systemctl reload lbstack-fpm@1.service failed" in message
    assert "NOT restored: app1 (gate 'revert' failed on app1: no previous config /l.lbstack-prev" in message


def test_instances_not_behind_a_balancer_here_are_not_drained():
    lb = Host()
    host = Host(balancers=[])
    rollout.Rollout(host, [lb], GATES, log=lambda m: None).run(
        [rollout.Step(inst(1, member=None), release="R2", reasons=["release"])], batch=1, release="R2")
    assert lb.argvs == [] and host.pointers["app1"] == "R2"


def test_a_busy_instance_is_switched_anyway_and_said_so():
    host = Host(refuse={"wait-idle": Result(0, "idle=no\nactive=4\nqueue=2\n")})
    said = []
    rollout.Rollout(host, [host], GATES, log=said.append).run(steps(count=1), batch=1, release="R2")
    assert any("app1: still busy after 5 s (active=4 queue=2); switching anyway" in m for m in said)
    assert host.pointers["app1"] == "R2"


def test_surplus_instances_are_drained_then_retired():
    host = Host()
    roll(host).retire([inst(6), inst(7)])
    assert host.log == ["drain app6", "drain app7", "retire app6", "retire app7"]
    failing = Host(refuse={"retire": Result(1, "detail=rm: cannot remove\n")})
    with pytest.raises(rollout.RolloutFailed, match="could not retire app6: rm: cannot remove"):
        roll(failing).retire([inst(6)])


# --- the argument lists and results ---------------------------------------------------------------


def test_argument_lists():
    assert hostscripts.drain(["app1", "-x"]) == [HELPER, "drain", "--", "app1", "-x"]
    assert hostscripts.undrain(["web1-app2"]) == [HELPER, "undrain", "--", "web1-app2"]
    assert hostscripts.wait_idle("10.0.0.5:9001", 30) == [HELPER, "wait-idle", "10.0.0.5:9001", "30"]
    assert hostscripts.switch(2, "/run/x.sock") == [HELPER, "switch", "2", "/run/x.sock"]
    assert hostscripts.switch(2, "/run/x.sock", "R2", ("/s", "/l", "640"), restart=True) == [
        HELPER, "switch", "2", "/run/x.sock", "--release", "R2", "--config", "/s", "/l", "640", "--restart"]
    assert hostscripts.revert(2, "/run/x.sock", "R1", "/l") == [HELPER, "revert", "2", "/run/x.sock", "--release", "R1",
                                                                 "--config", "/l"]
    assert hostscripts.retire(6) == [HELPER, "retire", "6"]
    assert hostscripts.forget_prev(["/a", "/b"]) == [HELPER, "forget-prev", "/a", "/b"]
    assert hostscripts.gate(1, "/s", "/h", "/m", 3, 30, "") == [
        HELPER, "gate", "1", "/s", "--health", "/h", "--smoke", "/m", "--passes", "3", "--timeout", "30", "--before", ""]


def test_preload_check_and_mariadb_restart_argument_lists():
    release = "/srv/lbstack/app/releases/R1 x"
    assert hostscripts.preload_check(load({"app_user": "web", "php_preload": ["app", "vendor/laravel"]}), release) == [
        HELPER, "preload-check", release, "--php-version", "8.2", "--user", "web", "--dirs", "app, vendor/laravel"]
    assert hostscripts.preload_check(load({"php_preload": []}), release) == ["true"]
    assert hostscripts.restart_mariadb(load({"db_name": "shop"})) == [
        layout.MAINTENANCE_HELPER, "restart-mariadb", "--database", "shop", "--wait", "30"]
    assert hostscripts.maintenance(True) == [layout.MAINTENANCE_HELPER, "on"]
    assert hostscripts.shell([HELPER, "preload-check", release]) == f"{HELPER} preload-check '{release}'"


def test_result_fields_and_detail():
    result = Result(3, "gate=fail\nfailed=smoke\ndetail=/x answered 500: a=b\nnot a field\n", "lbstack-instance: ...")
    assert result.fields == {"gate": "fail", "failed": "smoke", "detail": "/x answered 500: a=b"}
    assert not result.ok and result.detail() == "/x answered 500: a=b"
    assert Result(1, "", "boom\n").detail() == "boom" and Result(1, "").detail("nothing") == "nothing"


def _bash(command: str) -> Result:
    proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
    return rollout.result_of(proc.returncode == 0, proc.stdout.splitlines(), proc.stderr.splitlines())


def test_a_command_line_quotes_every_argument_and_reports_its_exit_code():
    tricky = ["a b", "$HOME", "it's", "; rm -rf /", "*", ""]
    result = _bash(rollout.command_line(["printf", "%s\\n", *tricky]))
    assert result == Result(0, "\n".join(tricky), "")
    failed = _bash(rollout.command_line(["sh", "-c", "echo out; echo err >&2; exit 4"]))
    assert failed == Result(4, "out", "err")
    # no exit marker (the connection dropped): pyinfra's ok decides
    assert rollout.result_of(False, ["x"], []) == Result(1, "x", "")


def test_host_runner_runs_an_argument_list_on_the_pyinfra_host():
    from pyinfra.api import Config, Inventory, State

    inventory = Inventory((["box"], {"_sudo": True}))
    State(inventory, Config())
    target = inventory.get_host("box")
    seen = []

    def run_shell_command(command, **kwargs):
        """The pyinfra Host's command runner, running the command with bash here."""
        seen.append(kwargs)
        proc = subprocess.run(["bash", "-c", str(command)], capture_output=True, text=True, timeout=kwargs["_timeout"])
        out, err = proc.stdout.splitlines(), proc.stderr.splitlines()
        output = SimpleNamespace(stdout_lines=out, stderr_lines=err, output="\n".join(out + err))
        return proc.returncode == 0, output

    target.run_shell_command = run_shell_command
    run = operations.host_runner(target, argv=True)
    assert run(["sh", "-c", 'echo "balancer=$1"; exit 4', "sh", "reloaded it's"], 10) == Result(4, "balancer=reloaded it's", "")
    shell = operations.host_runner(target)  # the deploy lock's shell commands
    assert shell("echo one; echo two", 10) == (True, "one\ntwo")
    # both as the inventory says: its _sudo (inventories/vagrant.py logs in as `vagrant`)
    assert [kwargs["_sudo"] for kwargs in seen] == [True, True]


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




def test_a_member_with_its_address_is_drained_as_name_equals_address():
    """The address finds the member in a site file written before the members were tagged."""
    inst = rollout.Instance(2, "app2", layout.fpm_socket(2), member_address=f"unix:{layout.fpm_socket(2)}")
    assert inst.drain_ref == f"app2=unix:{layout.fpm_socket(2)}"
    assert rollout.Instance(2, "app2", layout.fpm_socket(2)).drain_ref == "app2"
    assert rollout.Instance(2, None, "0.0.0.0:9002", member_address="10.0.0.2:9002").drain_ref is None
