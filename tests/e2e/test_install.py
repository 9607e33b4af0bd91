"""lbstack as a user installs it: ``pip install .`` into a fresh virtualenv outside the checkout,
then ``lbstack plan`` and a render of every template from that install (the templates ship as
package data; nothing is read from the checkout)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from lbstack import REPO_ROOT


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("install")
    env_dir = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=300)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    # a copy of the checkout without its virtualenv and build leftovers, as `git clone` gives it
    source = root / "src"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info",
                                                                   "__pycache__", "bench-report"))
    proc = subprocess.run([*pip, str(source), "pytest>=8,<9"], capture_output=True, text=True, timeout=900,
                          cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shutil.rmtree(source)  # the install must stand alone
    return root, env_dir


def _clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def test_installed_lbstack_plans_an_8_vcpu_16_gb_host(venv):
    root, env_dir = venv
    lbstack = str(env_dir / "bin" / "lbstack")
    proc = subprocess.run([lbstack, "plan", "--cpus", "8", "--memory", "16G"], capture_output=True, text=True,
                          cwd=root, env=_clean_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    for section in ("plan.nginx", "plan.php_fpm", "plan.mariadb", "plan.redis", "plan.sysctl"):
        assert section in proc.stdout
    proc = subprocess.run([lbstack, "plan", "--cpus", "8", "--memory", "16G", "--json"], capture_output=True,
                          text=True, cwd=root, env=_clean_env(), timeout=120)
    plan = json.loads(proc.stdout)
    assert plan["php_fpm"]["max_children"] >= 4 and plan["mariadb"]["max_connections"] > 0
    assert plan["limits"]["app"]["memory_max_mib"] <= plan["usable_memory_mib"]


def test_installed_lbstack_renders_every_template_from_its_package_data(venv):
    root, env_dir = venv
    python = str(env_dir / "bin" / "python")
    where = subprocess.run([python, "-c", "import lbstack, deploy; print(lbstack.TEMPLATES); print(deploy.__file__)"],
                           capture_output=True, text=True, cwd=root, env=_clean_env(), timeout=60)
    templates, deploy_file = where.stdout.split()
    assert templates.startswith(str(env_dir)) and deploy_file.startswith(str(env_dir)), where.stdout
    # the template tests (every template, from the data its deploy module passes) against the install
    tests = root / "tests"
    tests.mkdir(exist_ok=True)
    shutil.copy(REPO_ROOT / "tests" / "unit" / "test_templates.py", tests)
    proc = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tests),
                           str(tests / "test_templates.py")], capture_output=True, text=True, cwd=root,
                          env=_clean_env(), timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "test_every_template_renders_with_no_undefined_name" not in proc.stdout  # no failure named
    assert " passed" in proc.stdout
