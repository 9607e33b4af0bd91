"""The release preload check: the shell the deploy runs on a new release before any instance switches."""

import subprocess

from deploy import php_fpm
from lbstack import layout
from lbstack.settings import load


def test_preload_check_runs_the_masters_script_on_the_release_as_the_app_user():
    text = php_fpm.preload_check(load({"app_user": "web"}), "/srv/lbstack/app/releases/R1 x")
    assert "LBSTACK_PRELOAD_ROOT='/srv/lbstack/app/releases/R1 x' php8.2" in text
    assert f"-d opcache.preload={layout.PRELOAD_SCRIPT}" in text and "-d opcache.preload_user=web" in text
    assert "-d opcache.enable_cli=1" in text
    # it fails (exit 1) naming the release and both fixes
    assert "exit 1" in text and "cannot be preloaded" in text and "php_preload: []" in text
    assert subprocess.run(["bash", "-n", "-c", text]).returncode == 0


def test_preload_check_failure_and_success_paths_in_a_shell():
    """The shell's own logic, with php replaced: a failing preload prints its output and the fix."""
    text = php_fpm.preload_check(load({}), "/srv/r")
    fake = "php8.2() { if [ \"$FAIL\" = 1 ]; then echo 'PHP Fatal error:  Cannot redeclare Foo::a()'; return 255; fi; echo 19; }\n"
    ok = subprocess.run(["bash", "-c", fake + text], capture_output=True, text=True, env={"FAIL": "0", "PATH": "/usr/bin:/bin"})
    assert ok.returncode == 0 and ok.stdout.strip() == "OPcache preload check: 19 classes linked"
    bad = subprocess.run(["bash", "-c", fake + text], capture_output=True, text=True, env={"FAIL": "1", "PATH": "/usr/bin:/bin"})
    assert bad.returncode == 1
    assert "Cannot redeclare Foo::a()" in bad.stderr and "release /srv/r cannot be preloaded" in bad.stderr


def test_no_preload_no_check():
    assert php_fpm.preload_check(load({"php_preload": []}), "/srv/r") == "true"
