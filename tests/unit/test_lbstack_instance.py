"""lbstack-instance, the rolling update's host side, rendered from its real template with every
path moved into a scratch directory and run with bash against fake ``nginx``, ``systemctl``,
``cgi-fcgi`` and ``php8.2`` (shell stubs that record their calls and answer as each test sets
them): every subcommand's success and failure paths and the output/exit-code contract; then the
real :class:`lbstack.rollout.Rollout` driving it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from deploy import nginx
from facts.php_fpm import PoolStatus
from lbstack import hostscripts, layout, rollout
from lbstack.plan import make_plan
from lbstack.render import render
from lbstack.settings import load

HEALTH, SMOKE = "/api/ujian/health", "/api/questions/random?n=1"


def relocated(paths: dict[str, str], root: Path) -> dict[str, str]:
    """Every absolute path (and path prefix) moved under ``root``; names and suffixes kept."""
    return {key: f"{root}{value}" if value.startswith("/") else value for key, value in paths.items()}


def site_conf(members: list[dict]) -> str:
    """The balancer's real site file for ``members`` (the deploy's template data)."""
    settings = load({})
    return render(nginx.SITE_CONF, **nginx.site_template_data(settings, make_plan(8, 16384, settings), members,
                                                              ipv6=False))


def members(*names: str, drained: tuple[str, ...] = ()) -> list[dict]:
    return [{"name": n, "address": f"unix:/run/lbstack/{n}/fpm.sock", "drained": n in drained} for n in names]


FAKES = {
    # systemctl: units are active when $FAKE/active/UNIT exists; a reload moves the FPM start time,
    # a restart also the MainPID; fail-reload/UNIT, fail-restart/UNIT make them fail
    "systemctl": r'''
echo "systemctl $*" >> "$FAKE/calls"
case "$1" in
is-active) [ -e "$FAKE/active/$3" ] ;;
reload|restart)
    if [ -e "$FAKE/fail-$1/$2" ]; then echo "Job for $2 failed." >&2; exit 1; fi
    touch "$FAKE/active/$2"
    echo $(( $(cat "$FAKE/start") + 1 )) > "$FAKE/start"
    if [ "$1" = restart ]; then echo $(( $(cat "$FAKE/pid") + 1 )) > "$FAKE/pid"; fi ;;
show) cat "$FAKE/pid" ;;
disable|stop) rm -f "$FAKE/active/$3" "$FAKE/active/$2" ;;
esac
''',
    # nginx -t -q -c FILE: keeps a copy of what it validated; invalid when $FAKE/nginx-invalid exists
    "nginx": r'''
echo "nginx $*" >> "$FAKE/calls"
cp "${4%/*}/conf.d/lbstack.conf" "$FAKE/validated.conf"
if [ -e "$FAKE/nginx-invalid" ]; then
    echo 'nginx: [emerg] invalid parameter "dwn" in /etc/nginx/conf.d/lbstack.conf:37' >&2
    exit 1
fi
''',
    # cgi-fcgi -bind -connect ADDRESS: the FPM status page (start time, active, queue from $FAKE),
    # or the app's answer: answer.<uri>.<n> (the n-th request of that uri), answer.<release>.<uri>
    # (the release the instance's pointer names), answer.<uri>; with its .rc as exit code
    "cgi-fcgi": r'''
echo "cgi-fcgi $* uri=${REQUEST_URI:-} query=${QUERY_STRING:-} script=${SCRIPT_FILENAME:-}" >> "$FAKE/calls"
env | sort > "$FAKE/last-env"
if [ -e "$FAKE/fpm-down" ]; then echo "Could not connect to $3" >&2; exit 1; fi
if [ "${SCRIPT_NAME:-}" = /fpm-status ]; then
    printf 'Content-type: application/json\r\n\r\n{"pool":"app","start time":%s,"active processes":%s,"listen queue":%s}\n' \
        "$(cat "$FAKE/start")" "$(cat "$FAKE/active-processes")" "$(cat "$FAKE/listen-queue")"
    exit 0
fi
key=$(printf '%s' "$REQUEST_URI" | tr -c 'A-Za-z0-9' '_')
n=$(( $(cat "$FAKE/count.$key" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$FAKE/count.$key"
instance=$(printf '%s' "$3" | grep -o 'app[0-9]*' | head -n 1)
release=$(readlink "$POINTERS/$instance" 2>/dev/null || true)
for f in "$FAKE/answer.$key.$n" "$FAKE/answer.${release##*/}.$key" "$FAKE/answer.$key"; do
    if [ -e "$f" ]; then
        sed 's/$/\r/' "$f"
        exit "$(cat "$f.rc" 2>/dev/null || echo 0)"
    fi
done
exit 9
''',
    # php8.2: each argument on a line in $FAKE/php.args; fails when $FAKE/php-fail exists
    "php8.2": r'''
printf '%s\n' "$@" > "$FAKE/php.args"
echo "${LBSTACK_PRELOAD_ROOT:-}" > "$FAKE/php.root"
if [ -e "$FAKE/php-fail" ]; then
    echo "PHP Fatal error:  Cannot redeclare Foo::a() in $LBSTACK_PRELOAD_ROOT/app/Foo.php on line 3"
    exit 255
fi
echo "PHP Warning:  something harmless"
echo 19
''',
}


@pytest.fixture
def host(tmp_path):
    """A fake host: lbstack-instance rendered with every path under tmp_path/root, fakes first in
    PATH, two releases (R1, R2), app1..app3 pointing at R1 with a config, nginx and the FPM units
    active, the site file rendered for app1, app2, app3 and app10."""
    root, fake, bin_dir = tmp_path / "root", tmp_path / "fake", tmp_path / "bin"
    paths = relocated(hostscripts.instance_paths(), root)
    for directory in (fake / "active", fake / "fail-reload", fake / "fail-restart", bin_dir,
                      Path(paths["state_dir"]), Path(paths["fpm_config_dir"]), Path(paths["site_conf"]).parent,
                      Path(paths["pointer_prefix"]).parent):
        directory.mkdir(parents=True, exist_ok=True)
    for release in ("R1", "R2"):
        (Path(paths["releases_dir"]) / release).mkdir(parents=True)
    pointers = Path(paths["pointer_prefix"]).parent
    for i in (1, 2, 3):
        (pointers / f"app{i}").symlink_to("../releases/R1")
        Path(f"{paths['fpm_config_prefix']}{i}{paths['fpm_config_suffix']}").write_text(f"[app{i}]\nold\n")
        (fake / "active" / layout.fpm_unit(i)).touch()
    (fake / "active" / "nginx.service").touch()
    Path(paths["nginx_dir"], "nginx.conf").write_text("events {}\nhttp { include conf.d/*.conf; }\n")
    Path(paths["nginx_dir"], "conf.d", "other.conf").write_text("# another site\n")
    Path(paths["site_conf"]).write_text(site_conf(members("app1", "app2", "app3", "app10")))
    for name, value in (("start", "1000"), ("pid", "42"), ("active-processes", "1"), ("listen-queue", "0")):
        (fake / name).write_text(value + "\n")
    for name, body in FAKES.items():
        (bin_dir / name).write_text(f"#!/bin/sh\nFAKE={fake}\nPOINTERS={pointers}\nPATH=/usr/bin:/bin\n{body}")
        (bin_dir / name).chmod(0o755)
    if shutil.which("mawk"):  # the awk a Debian 12 host has (gawk is not installed by default)
        (bin_dir / "awk").symlink_to(shutil.which("mawk"))
    script = tmp_path / "lbstack-instance"
    script.write_text(render(layout.INSTANCE_HELPER, **hostscripts.instance_template_data(**paths)))
    script.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LEAKED_SECRET": "from-the-deploy-shell", "LANG": "C.UTF-8"}

    def run(*args: str, timeout: float = 60) -> SimpleNamespace:
        started = time.monotonic()
        proc = subprocess.run([str(script), *args], capture_output=True, text=True, env=env, timeout=timeout)
        result = rollout.Result(proc.returncode, proc.stdout, proc.stderr)
        return SimpleNamespace(code=proc.returncode, out=proc.stdout, err=proc.stderr, fields=result.fields,
                               result=result, seconds=time.monotonic() - started)

    def calls(tool: str = "") -> list[str]:
        path = fake / "calls"
        lines = path.read_text().splitlines() if path.exists() else []
        return [line for line in lines if line.startswith(tool)]

    def answer(uri: str, text: str, rc: int = 0, nth: int | None = None, release: str | None = None) -> None:
        key = re.sub(r"[^A-Za-z0-9]", "_", uri)
        name = f"answer.{release}.{key}" if release else f"answer.{key}" + (f".{nth}" if nth else "")
        (fake / name).write_text(text)
        (fake / f"{name}.rc").write_text(f"{rc}\n")

    def config(i: int) -> Path:
        return Path(f"{paths['fpm_config_prefix']}{i}{paths['fpm_config_suffix']}")

    return SimpleNamespace(run=run, calls=calls, answer=answer, config=config, fake=fake, paths=paths, root=root,
                           site=Path(paths["site_conf"]), pointers=pointers, script=script, env=env)


def ok(text: str = "{}", release: str = "R2", status: str = "") -> str:
    """An app answer as php-fpm gives it (headers, blank line, body)."""
    return (f"Status: {status}\n" if status else "") + f"X-Lbstack-Release: {release}\nContent-Type: application/json\n\n{text}\n"


def assert_contract(run) -> None:
    """stdout holds only KEY=VALUE lines, each key once; a failure ends with detail=."""
    keys = [line.partition("=")[0] for line in run.out.splitlines()]
    assert all(re.fullmatch(r"[a-z_]+", k) for k in keys), run.out
    assert len(keys) == len(set(keys)), run.out
    if run.code:
        assert keys and keys[-1] == "detail", run.out


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if ".lbstack-new" in p.name or (p.name.startswith("upstream.") and p.name != "upstream.lock"))


# -- the rendered program ----------------------------------------------------------------------------


def test_renders_from_the_layout_as_valid_bash(tmp_path):
    text = render(layout.INSTANCE_HELPER, **hostscripts.instance_template_data())
    assert text.startswith("#!/bin/bash\n") and "set -euo pipefail" in text
    assert "{{" not in text and "{%" not in text
    for line in (f"SITE_CONF={layout.SITE_CONF}", f"FRONT_CONTROLLER={layout.FRONT_CONTROLLER}",
                 f"BAD_RELEASES_DIR={layout.BAD_RELEASES_DIR}", "RELEASES_LINK=../releases",
                 "FPM_UNIT_PREFIX=lbstack-fpm@", "FPM_UNIT_SUFFIX=.service", f"PRELOAD_SCRIPT={layout.PRELOAD_SCRIPT}"):
        assert f"\n{line}\n" in text
    # the exit codes of the contract are the ones the Python side reads
    for name in ("FAILED", "USAGE", "GATE", "INVALID", "PRELOAD"):
        assert f"\nEXIT_{name}={getattr(hostscripts, 'EXIT_' + name)}\n" in text
    # one FPM status request, in one function
    assert text.count("SCRIPT_NAME=/fpm-status SCRIPT_FILENAME=/fpm-status QUERY_STRING=json REQUEST_METHOD=GET") == 1
    assert text.count("cgi-fcgi -bind -connect") == 1
    script = tmp_path / "lbstack-instance"
    script.write_text(text)
    check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_every_per_instance_path_comes_from_the_layout():
    paths = hostscripts.instance_paths()
    for i in (1, 7, 12):
        assert paths["fpm_unit_prefix"] + str(i) + paths["fpm_unit_suffix"] == layout.fpm_unit(i)
        assert paths["fpm_config_prefix"] + str(i) + paths["fpm_config_suffix"] == layout.fpm_config(i)
        assert paths["pointer_prefix"] + str(i) + paths["pointer_suffix"] == layout.instance_pointer(i)
        assert paths["cpu_dropin_prefix"] + str(i) + paths["cpu_dropin_suffix"] == layout.fpm_cpu_dropin(i)
        assert paths["instance_name_prefix"] + str(i) + paths["instance_name_suffix"] == layout.instance_name(i)
    assert os.path.normpath(os.path.join(layout.INSTANCES_DIR, paths["releases_link"])) == layout.RELEASES_DIR
    with pytest.raises(TypeError, match="unknown template values: sit_conf"):
        hostscripts.instance_template_data(sit_conf="/x")
    # values are shell-quoted for the variable assignments
    assert hostscripts.instance_template_data(state_dir="/a b")["state_dir"] == "'/a b'"


def test_help_usage_errors_and_unknown_subcommands(host):
    helped = host.run("help")
    assert helped.code == 0 and "usage: lbstack-instance drain NAME" in helped.out and helped.err == ""
    bare = host.run()
    assert bare.code == hostscripts.EXIT_USAGE and "usage:" in bare.err and bare.out == ""
    for args in (["frobnicate"], ["switch", "x", "/run/a.sock"], ["switch", "1"], ["wait-idle", "/run/a.sock", "soon"],
                 ["gate", "1", "/run/a.sock", "--health", "/h", "--smoke", "/s", "--passes", "3", "--timeout", "5"],
                 ["drain"], ["drain", "--", "-rf"], ["drain", "app 1"], ["switch", "1", "/run/a.sock", "--release", "../etc"],
                 ["switch", "1", "/run/a.sock", "--bogus"], ["mark-bad"], ["retire", "0"]):
        run = host.run(*args)
        assert run.code == hostscripts.EXIT_USAGE, (args, run.out, run.err)
        assert_contract(run)
        assert "lbstack-instance help" in run.fields["detail"]
    assert host.calls("systemctl reload") == [] and host.calls("systemctl restart") == []


def test_the_site_template_tags_every_member_line():
    text = site_conf(members("app1", "web2-app3", drained=("web2-app3",)))
    assert "    server unix:/run/lbstack/app1/fpm.sock max_fails=3 fail_timeout=5s; # lbstack-member app1\n" in text
    assert "    server unix:/run/lbstack/web2-app3/fpm.sock max_fails=3 fail_timeout=5s down; # lbstack-member web2-app3\n" in text


# -- drain / undrain ----------------------------------------------------------------------------------


def test_a_site_file_from_before_the_tags_is_drained_by_address_and_tagged(host):
    """An upgraded host's first rolling update: its live site file has no member tags yet."""
    tagged = host.site.read_text()
    legacy = re.sub(r"; # lbstack-member \S+\n", ";\n", tagged)
    assert legacy != tagged and "lbstack-member" not in legacy
    host.site.write_text(legacy)
    by_name = host.run("drain", "app1")
    assert by_name.fields.get("absent") == "app1"  # the name alone cannot find an untagged line
    drained = host.run("drain", "app1=unix:/run/lbstack/app1/fpm.sock")
    assert drained.code == 0 and drained.fields == {"balancer": "reloaded"}, drained.err
    text = host.site.read_text()
    assert "server unix:/run/lbstack/app1/fpm.sock max_fails=3 fail_timeout=5s down; # lbstack-member app1\n" in text
    assert text.count(" down;") == 1
    undrained = host.run("undrain", "app1=unix:/run/lbstack/app1/fpm.sock")
    assert undrained.code == 0
    # app1's line is now exactly what the template renders; the others stay as they were
    assert "    server unix:/run/lbstack/app1/fpm.sock max_fails=3 fail_timeout=5s; # lbstack-member app1\n" in host.site.read_text()
    assert host.site.read_text().count("lbstack-member") == 1


def test_drain_then_undrain_restores_the_file_byte_for_byte(host):
    original = host.site.read_bytes()
    drained = host.run("drain", "app1", "app3")
    assert drained.code == 0, drained.err
    assert drained.fields == {"balancer": "reloaded"}
    assert_contract(drained)
    text = host.site.read_text()
    assert "server unix:/run/lbstack/app1/fpm.sock max_fails=3 fail_timeout=5s down; # lbstack-member app1\n" in text
    assert "server unix:/run/lbstack/app3/fpm.sock max_fails=3 fail_timeout=5s down; # lbstack-member app3\n" in text
    assert "app10/fpm.sock max_fails=3 fail_timeout=5s; # lbstack-member app10\n" in text  # not a prefix match
    assert text.count(" down;") == 2
    # only those lines changed
    changed = [(a, b) for a, b in zip(original.decode().splitlines(), text.splitlines()) if a != b]
    assert len(changed) == 2 and len(original.decode().splitlines()) == len(text.splitlines())
    # validated on a copy of the whole set, outside /etc/nginx, before the live file changed
    (check,) = host.calls("nginx")
    assert check.startswith("nginx -t -q -c ") and check.endswith("/nginx.conf")
    copy = check.split()[-1]
    assert copy.startswith(host.paths["state_dir"] + "/upstream.") and not Path(copy).exists()
    assert (host.fake / "validated.conf").read_text() == text
    assert host.calls("systemctl reload") == ["systemctl reload nginx.service"]
    undrained = host.run("undrain", "--", "app3", "app1")
    assert undrained.code == 0 and undrained.fields == {"balancer": "reloaded"}
    assert host.site.read_bytes() == original
    assert leftovers(host.root) == []  # no scratch copy, no .lbstack-new


def test_a_second_identical_edit_changes_and_reloads_nothing(host):
    assert host.run("drain", "app2").code == 0
    before = host.site.read_bytes()
    again = host.run("drain", "app2")
    assert again.code == 0 and again.fields == {"balancer": "unchanged"}
    assert host.site.read_bytes() == before
    assert len(host.calls("systemctl reload")) == 1 and len(host.calls("nginx")) == 1
    assert host.run("undrain", "app1").fields == {"balancer": "unchanged"}  # app1 was in rotation


def test_undrain_of_a_member_rendered_down(host):
    host.site.write_text(site_conf(members("app1", "app2", drained=("app2",))))
    run = host.run("undrain", "app2")
    assert run.fields == {"balancer": "reloaded"}
    assert host.site.read_text() == site_conf(members("app1", "app2"))


def test_an_invalid_edit_leaves_the_live_file_and_nginx_alone(host):
    original = host.site.read_bytes()
    (host.fake / "nginx-invalid").touch()
    run = host.run("drain", "app2")
    assert run.code == hostscripts.EXIT_INVALID
    assert_contract(run)
    assert run.fields["balancer"] == "invalid"
    assert 'invalid parameter "dwn"' in run.fields["detail"] and 'invalid parameter "dwn"' in run.err
    assert host.site.read_bytes() == original
    assert host.calls("systemctl reload") == []
    assert leftovers(host.root) == []


def test_absent_members_are_reported_and_the_others_edited(host):
    run = host.run("drain", "app9", "app1", "web3-app1")
    assert run.code == 0
    assert run.fields == {"absent": "app9 web3-app1", "balancer": "reloaded"}
    assert "not in" in run.err and "app9 web3-app1" in run.err
    assert host.site.read_text().count(" down;") == 1
    nothing = host.run("drain", "app9")
    assert nothing.fields == {"absent": "app9", "balancer": "unchanged"}


def test_no_balancer_when_the_site_file_is_absent_or_nginx_inactive(host):
    (host.fake / "active" / "nginx.service").unlink()
    run = host.run("drain", "app1")
    assert run.code == 0 and run.fields == {"balancer": "none"}
    assert "app1/fpm.sock max_fails=3 fail_timeout=5s; #" in host.site.read_text()
    (host.fake / "active" / "nginx.service").touch()
    host.site.unlink()
    run = host.run("undrain", "app1")
    assert run.code == 0 and run.fields == {"balancer": "none"}
    assert not host.site.exists() and host.calls("nginx") == []


# -- wait-idle ----------------------------------------------------------------------------------------


def test_status_prints_the_pools_json_status_as_the_fact_reads_it(host):
    run = host.run("status", "/run/lbstack/app1/fpm.sock")
    assert run.code == 0 and set(run.fields) == {"status"}
    assert json.loads(run.fields["status"])["active processes"] >= 0
    (call,) = host.calls("cgi-fcgi")
    assert "-bind -connect /run/lbstack/app1/fpm.sock" in call
    parsed = PoolStatus().process(["@instance=app1", *run.out.splitlines()])
    assert parsed["app1"]["active"] == json.loads(run.fields["status"])["active processes"]


def test_status_of_an_instance_that_does_not_answer_fails_with_the_reason(host):
    (host.fake / "fpm-down").touch()
    run = host.run("status", "/run/lbstack/app1/fpm.sock")
    assert run.code == 1 and "does not answer" in run.fields["detail"]
    assert_contract(run)
    parsed = PoolStatus().process(["@instance=app1", *run.out.splitlines(), "@error=exit 1"])
    assert "does not answer" in parsed["app1"]["error"]


def test_wait_idle_returns_once_only_the_status_request_runs(host):
    run = host.run("wait-idle", "/run/lbstack/app1/fpm.sock", "5")
    assert run.code == 0 and run.fields == {"idle": "yes"} and run.seconds < 3
    status = host.calls("cgi-fcgi")
    assert len(status) == 2 and all("-bind -connect /run/lbstack/app1/fpm.sock" in c for c in status)


def test_wait_idle_gives_up_at_its_deadline_and_says_how_busy(host):
    (host.fake / "active-processes").write_text("4\n")
    (host.fake / "listen-queue").write_text("2\n")
    run = host.run("wait-idle", "/run/lbstack/app1/fpm.sock", "1")
    assert run.code == 0  # not an error: the instance is switched anyway
    assert run.fields == {"idle": "no", "active": "4", "queue": "2"}
    assert 0.9 < run.seconds < 2.6  # bounded by TIMEOUT_S
    assert_contract(run)


def test_an_instance_that_does_not_answer_counts_as_idle(host):
    (host.fake / "fpm-down").touch()
    run = host.run("wait-idle", "/run/lbstack/app1/fpm.sock", "5")
    assert run.fields == {"idle": "yes"}


# -- switch / revert ----------------------------------------------------------------------------------


def staged(host, i: int, text: str) -> tuple[str, str, str]:
    live = str(host.config(i))
    path = Path(host.paths["stage_dir"] + live)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path), live, "640"


def test_switch_promotes_the_config_points_at_the_release_and_reloads(host):
    config = staged(host, 2, "[app2]\nnew\n")
    run = host.run("switch", "2", "/run/lbstack/app2/fpm.sock", "--release", "R2", "--config", *config)
    assert run.code == 0, run.err
    assert run.fields == {"before": "1000/42", "config_prev": "1", "previous": "R1", "action": "reload"}
    assert_contract(run)
    assert os.readlink(host.pointers / "app2") == "../releases/R2"
    assert host.config(2).read_text() == "[app2]\nnew\n" and oct(host.config(2).stat().st_mode & 0o777) == "0o640"
    assert Path(f"{host.config(2)}.lbstack-prev").read_text() == "[app2]\nold\n"
    assert host.calls("systemctl reload") == [f"systemctl reload {layout.fpm_unit(2)}"]
    assert leftovers(host.root) == []


def test_switch_restarts_when_asked_or_not_running(host):
    run = host.run("switch", "1", "/run/lbstack/app1/fpm.sock", "--restart")
    assert run.fields == {"before": "1000/42", "action": "restart"}
    (host.fake / "active" / layout.fpm_unit(3)).unlink()
    run = host.run("switch", "3", "/run/lbstack/app3/fpm.sock", "--release", "R2")
    assert run.fields == {"before": "1001/43", "previous": "R1", "action": "restart"}
    assert host.calls("systemctl restart") == [f"systemctl restart {layout.fpm_unit(1)}", f"systemctl restart {layout.fpm_unit(3)}"]
    assert f"systemctl reset-failed {layout.fpm_unit(3)}" in host.calls("systemctl")


def test_switch_of_a_new_instance_keeps_no_previous(host):
    config = staged(host, 4, "[app4]\n")
    run = host.run("switch", "4", "/run/lbstack/app4/fpm.sock", "--release", "R2", "--config", *config)
    assert run.code == 0, run.err
    assert run.fields["config_prev"] == "0" and run.fields["previous"] == ""
    assert not Path(f"{host.config(4)}.lbstack-prev").exists()


def test_switch_to_a_missing_release_or_staged_config_changes_nothing(host):
    run = host.run("switch", "2", "/run/lbstack/app2/fpm.sock", "--release", "R9")
    assert run.code == hostscripts.EXIT_FAILED and "release R9 is not in" in run.fields["detail"]
    run = host.run("switch", "2", "/run/lbstack/app2/fpm.sock", "--config", "/nope", str(host.config(2)), "644")
    assert run.code == hostscripts.EXIT_FAILED and "staged config /nope is missing" in run.err
    outside = host.run("switch", "2", "/run/lbstack/app2/fpm.sock", "--config", "/nope", "/etc/passwd", "644")
    assert outside.code == hostscripts.EXIT_USAGE
    assert os.readlink(host.pointers / "app2") == "../releases/R1" and host.config(2).read_text() == "[app2]\nold\n"
    assert host.calls("systemctl reload") == [] and host.calls("systemctl restart") == []


def test_a_failed_reload_fails_the_switch_with_its_detail(host):
    (host.fake / "fail-reload" / layout.fpm_unit(2)).touch()
    run = host.run("switch", "2", "/run/lbstack/app2/fpm.sock", "--release", "R2")
    assert run.code == hostscripts.EXIT_FAILED
    assert run.fields["previous"] == "R1"  # printed before the failure: the rollback needs it
    assert f"systemctl reload {layout.fpm_unit(2)} failed" in run.fields["detail"]
    assert_contract(run)


def test_revert_puts_back_the_previous_config_and_release_and_restarts(host):
    config = staged(host, 2, "[app2]\nnew\n")
    assert host.run("switch", "2", "/run/lbstack/app2/fpm.sock", "--release", "R2", "--config", *config).code == 0
    run = host.run("revert", "2", "/run/lbstack/app2/fpm.sock", "--release", "R1", "--config", str(host.config(2)))
    assert run.code == 0, run.err
    assert run.fields == {"before": "1001/42", "action": "restart"}
    assert os.readlink(host.pointers / "app2") == "../releases/R1"
    assert host.config(2).read_text() == "[app2]\nold\n" and not Path(f"{host.config(2)}.lbstack-prev").exists()
    assert host.calls("systemctl restart") == [f"systemctl restart {layout.fpm_unit(2)}"]
    # nothing kept to go back to: refused before anything changes
    again = host.run("revert", "2", "/run/lbstack/app2/fpm.sock", "--release", "R2", "--config", str(host.config(2)))
    assert again.code == hostscripts.EXIT_FAILED and "no previous config" in again.fields["detail"]
    assert os.readlink(host.pointers / "app2") == "../releases/R1"


# -- gate -------------------------------------------------------------------------------------------


def gate(host, *extra: str, before: str = "999/42", passes: str = "3", timeout: str = "5"):
    return host.run("gate", "2", "/run/lbstack/app2/fpm.sock", "--health", HEALTH, "--smoke", SMOKE,
                    "--passes", passes, "--timeout", timeout, "--before", before, *extra)


def test_gate_passes_after_the_reload_with_consecutive_good_answers_and_a_smoke(host):
    host.answer(HEALTH, ok('{"status":"ok"}'))
    host.answer(SMOKE, ok('{"id":1}'))
    run = gate(host, "--release", "R2")
    assert run.code == 0, run.out + run.err
    assert run.fields == {"gate": "pass", "smoke": "200"}
    assert_contract(run)
    requests = [c for c in host.calls("cgi-fcgi") if "uri=/api" in c]
    assert [c.split(" uri=")[1].split()[0] for c in requests] == [HEALTH] * 3 + [SMOKE]
    assert requests[-1].endswith(f"query=n=1 script={host.paths['front_controller']}")
    # the app sees only what nginx would send, nothing of the deploy shell's environment
    seen = (host.fake / "last-env").read_text()
    assert "LEAKED_SECRET" not in seen and f"REQUEST_URI={SMOKE}\n" in seen and "HTTP_HOST=localhost\n" in seen


def test_gate_fails_when_the_reload_never_happened_within_its_timeout(host):
    host.answer(HEALTH, ok())
    host.answer(SMOKE, ok())
    run = gate(host, before="1000/42", timeout="1")
    assert run.code == hostscripts.EXIT_GATE
    assert run.fields["gate"] == "fail" and run.fields["failed"] == "reload"
    assert "did not come back (start time 1000/42, before 1000/42)" in run.fields["detail"]
    assert 0.9 < run.seconds < 2.6  # bounded by --timeout 1
    assert_contract(run)
    assert not [c for c in host.calls("cgi-fcgi") if "uri=/api" in c]  # no request before the reload


def test_gate_fails_on_a_non_200_health_answer_at_its_deadline(host):
    host.answer(HEALTH, ok('{"status":"db down"}', status="503 Service Unavailable"))
    host.answer(SMOKE, ok())
    run = gate(host, timeout="1")
    assert run.code == hostscripts.EXIT_GATE and run.fields["failed"] == "health"
    assert run.fields["detail"] == f'0 of 3 consecutive good answers in 1 s; last: {HEALTH} answered 503: {{"status":"db down"}}'
    assert "gate 'health' failed on app2" in run.err
    assert 0.9 < run.seconds < 2.6  # bounded by --timeout 1


def test_gate_fails_on_an_answer_from_the_wrong_release(host):
    host.answer(HEALTH, ok(release="R1"))
    host.answer(SMOKE, ok())
    run = gate(host, "--release", "R2", timeout="1")
    assert run.code == hostscripts.EXIT_GATE and run.fields["failed"] == "health"
    assert "last: answered from release R1, not R2" in run.fields["detail"]
    # without --release (a config-only update) the same answers pass
    assert gate(host, timeout="1").fields == {"gate": "pass", "smoke": "200"}


def test_gate_counts_consecutive_answers_only(host):
    host.answer(HEALTH, ok())
    host.answer(HEALTH, ok(status="502 Bad Gateway"), nth=2)
    host.answer(SMOKE, ok())
    run = gate(host, passes="2")
    assert run.code == 0 and run.fields["gate"] == "pass"
    health = [c for c in host.calls("cgi-fcgi") if f"uri={HEALTH}" in c]
    assert len(health) == 4  # good, bad (back to 0), good, good


def test_gate_fails_when_nothing_answers(host):
    host.answer(HEALTH, "", rc=1)
    run = gate(host, timeout="1")
    assert run.fields["failed"] == "health"
    assert "last: no answer from /run/lbstack/app2/fpm.sock (cgi-fcgi exit 1)" in run.fields["detail"]


def test_gate_fails_on_a_failing_smoke_request(host):
    host.answer(HEALTH, ok())
    host.answer(SMOKE, ok("Whoops", status="500 Internal Server Error"))
    run = gate(host)
    assert run.code == hostscripts.EXIT_GATE and run.fields["failed"] == "smoke"
    assert f"{SMOKE} answered 500: Whoops" in run.fields["detail"]
    assert_contract(run)


# -- mark-bad, retire, forget-prev ----------------------------------------------------------------------


def test_mark_bad_records_one_json_line_under_the_digest(host):
    detail = 'health answered 503: {"error":"C:\\db"}\nsecond line'
    run = host.run("mark-bad", "20261124T101500-3f2a9c1d4e5b", "--gate", "health", "--instance", "app2",
                   "--detail", detail)
    assert run.code == 0, run.err
    path = Path(host.paths["bad_releases_dir"]) / "3f2a9c1d4e5b"
    assert run.fields == {"recorded": str(path)}
    (line,) = path.read_text().splitlines()
    record = json.loads(line)
    assert record == {"release": "20261124T101500-3f2a9c1d4e5b", "gate": "health", "instance": "app2",
                      "detail": 'health answered 503: {"error":"C:\\db"}second line', "at": record["at"]}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["at"])
    assert sorted(p.name for p in path.parent.iterdir()) == ["3f2a9c1d4e5b"]  # no temporary file left


def test_retire_stops_the_unit_and_removes_its_files(host):
    live = host.config(3)
    files = [live, Path(f"{live}.lbstack-prev"), Path(host.paths["stage_dir"] + str(live)),
             Path(f"{host.paths['cpu_dropin_prefix']}3{host.paths['cpu_dropin_suffix']}")]
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    run = host.run("retire", "3")
    assert run.code == 0 and run.fields == {"retired": "app3"}
    assert not any(p.exists() for p in files) and not (host.pointers / "app3").is_symlink()
    assert host.calls("systemctl disable") == [f"systemctl disable --now {layout.fpm_unit(3)}"]
    assert host.config(2).exists() and (host.pointers / "app2").is_symlink()


def test_forget_prev_removes_only_previous_configs_in_the_config_dir(host):
    for i in (1, 2):
        Path(f"{host.config(i)}.lbstack-prev").write_text("old")
    run = host.run("forget-prev", str(host.config(1)), str(host.config(2)))
    assert run.code == 0 and run.fields == {"forgotten": "2"}
    assert not list(host.config(1).parent.glob("*.lbstack-prev")) and host.config(1).exists()
    Path(f"{host.config(1)}.lbstack-prev").write_text("old")
    refused = host.run("forget-prev", str(host.config(1)), "/etc/passwd")
    assert refused.code == hostscripts.EXIT_USAGE and Path(f"{host.config(1)}.lbstack-prev").exists()


# -- preload-check ------------------------------------------------------------------------------------


def test_preload_check_runs_the_masters_script_on_the_release(host):
    release = Path(host.paths["releases_dir"]) / "R2"

    argv = hostscripts.preload_check(load({"app_user": "web"}), str(release))
    run = host.run(*argv[1:])
    assert run.code == 0, run.err
    assert run.fields == {"classes": "19"} and "19 classes linked" in run.err
    assert (host.fake / "php.root").read_text().strip() == str(release)
    assert (host.fake / "php.args").read_text().splitlines() == [
        "-d", "opcache.enable=1", "-d", "opcache.enable_cli=1", "-d", f"opcache.preload={host.paths['preload_script']}",
        "-d", "opcache.preload_user=web", "-r",
        "echo count(opcache_get_status(false)['preload_statistics']['classes'] ?? []);"]


def test_preload_check_failure_names_the_release_and_both_fixes(host):
    (host.fake / "php-fail").touch()
    release = Path(host.paths["releases_dir"]) / "R2"
    run = host.run("preload-check", str(release), "--php-version", "8.2", "--user", "lbstack", "--dirs", "app")
    assert run.code == hostscripts.EXIT_PRELOAD
    assert_contract(run)
    assert "Cannot redeclare Foo::a()" in run.err
    assert run.fields["detail"] == (f"release {release} cannot be preloaded by OPcache (php_preload: app): fix the "
                                    "file named above, or set php_preload: [] to deploy it without preloading")
    missing = host.run("preload-check", "/no/such/release", "--php-version", "8.2", "--user", "lbstack")
    assert missing.code == hostscripts.EXIT_FAILED and "does not exist" in missing.fields["detail"]
    other = host.run("preload-check", str(release), "--php-version", "8.3", "--user", "lbstack")
    assert other.code == hostscripts.EXIT_FAILED and "php8.3 is not installed" in other.err


# -- the rolling update driving the real program --------------------------------------------------------


def runner(host):
    def run(argv: list[str], timeout_s: float) -> rollout.Result:
        assert argv[0] == layout.INSTANCE_HELPER
        return host.run(*argv[1:], timeout=timeout_s).result
    return run


def test_a_rolling_update_on_the_fake_host(host):
    host.answer(HEALTH, ok(release="R2"))
    host.answer(SMOKE, ok())
    gates = rollout.Gates(HEALTH, SMOKE, passes=2, timeout_s=3, drain_timeout_s=1)
    original = host.site.read_bytes()
    said = []
    roll = rollout.Rollout(runner(host), [runner(host)], gates, said.append)
    instances = [rollout.Instance(i, layout.instance_name(i), f"/run/lbstack/app{i}/fpm.sock") for i in (1, 2)]
    steps = [rollout.Step(inst, release="R2", config=staged(host, inst.index, f"[{inst.name}]\nnew\n"),
                          reasons=["release"]) for inst in instances]
    roll.run(steps, batch=1, release="R2")
    assert [e["event"] for e in roll.events] == ["drain", "idle", "switch", "gate", "undrain"] * 2 + ["done"]
    assert all(os.readlink(host.pointers / f"app{i}") == "../releases/R2" for i in (1, 2))
    assert os.readlink(host.pointers / "app3") == "../releases/R1"
    assert host.site.read_bytes() == original  # every member back in rotation
    assert not list(host.config(1).parent.glob("*.lbstack-prev"))  # forgotten once all passed
    assert "app1: gate passed (2 good answers on /api/ujian/health, smoke /api/questions/random?n=1 200)" in said


def test_a_failed_gate_on_the_fake_host_rolls_back_and_marks_the_release_bad(host):
    host.answer(HEALTH, ok(release="R1"), release="R1")
    host.answer(HEALTH, ok('{"error":"boom"}', status="500 Internal Server Error", release="R2"), release="R2")
    host.answer(SMOKE, ok())
    gates = rollout.Gates(HEALTH, SMOKE, passes=2, timeout_s=1, drain_timeout_s=1)
    original = host.site.read_bytes()
    roll = rollout.Rollout(runner(host), [runner(host)], gates, lambda m: None)
    step = rollout.Step(rollout.Instance(1, "app1", "/run/lbstack/app1/fpm.sock"), release="R2",
                        config=staged(host, 1, "[app1]\nnew\n"), reasons=["release"])
    with pytest.raises(rollout.RolloutFailed) as failed:
        roll.run([step], batch=1, release="R2")
    assert failed.value.gate == "health" and "every instance is back in rotation" in str(failed.value)
    assert f"{HEALTH} answered 500" in str(failed.value)
    assert os.readlink(host.pointers / "app1") == "../releases/R1"
    assert host.config(1).read_text() == "[app1]\nold\n"
    assert host.site.read_bytes() == original
    record = json.loads((Path(host.paths["bad_releases_dir"]) / "R2").read_text())
    assert record["gate"] == "health" and record["instance"] == "app1"


def test_shellcheck_is_clean_on_both_programs(tmp_path):
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed (./dev installs it: apt-get install shellcheck)"
    scripts = []
    for target, data in ((layout.INSTANCE_HELPER, hostscripts.instance_template_data()),
                         (layout.MAINTENANCE_HELPER, hostscripts.maintenance_template_data())):
        path = tmp_path / target.rsplit("/", 1)[-1]
        path.write_text(render(target, **data))
        scripts.append(str(path))
    check = subprocess.run([shellcheck, "--shell=bash", "--severity=style", *scripts], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
