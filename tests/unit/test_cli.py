"""The lbstack command: plan with no host, its errors and exit codes."""

import json

from click.testing import CliRunner

from lbstack.cli import main
from lbstack.settings import markdown_table


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_plan_prints_the_table_and_what_was_scaled():
    result = run("plan", "--cpus", "8", "--memory", "16G")
    assert result.exit_code == 0, result.output
    assert "Capacity plan: 8 vCPU, 16384 MiB" in result.output
    assert "Scaled to fit this host" in result.output and "27136 MiB" in result.output
    assert "lbstack-app.slice" in result.output and "pm.max_children" in result.output


def test_plan_json_is_the_plan():
    result = run("plan", "--cpus", "8", "--memory", "16384", "--json")
    data = json.loads(result.output)
    assert data["host_memory_mib"] == 16384 and data["instances"] == 5
    total = sum(limits["memory_max_mib"] for limits in data["limits"].values())
    assert total <= data["usable_memory_mib"]


def test_plan_refusal_exits_1_with_numbers():
    result = run("plan", "--cpus", "1", "--memory", "1G")
    assert result.exit_code == 1
    assert "plan refused" in result.output and "768 MiB usable" in result.output


def test_plan_bad_arguments_exit_2():
    assert run("plan", "--cpus", "8", "--memory", "lots").exit_code == 2
    assert run("plan", "--cpus", "0", "--memory", "16G").exit_code == 2
    bad = run("plan", "--cpus", "8", "--memory", "16G", "--set", "lb_method=random")
    assert bad.exit_code == 2 and "lb_method" in bad.output
    assert run("plan", "--cpus", "8", "--memory", "16G", "--components", "web").exit_code == 2


def test_plan_with_overrides_and_components():
    result = run("plan", "--cpus", "4", "--memory", "8G", "--set", "instances=3", "--components", "app,db", "--json")
    data = json.loads(result.output)
    assert data["components"] == ["app", "db"] and data["instances"] == 3
    assert data["nginx"] is None and data["php_fpm"]["max_children"] >= 2  # no lb on this host


def test_settings_doc_is_the_generated_table():
    result = run("settings-doc")
    assert result.exit_code == 0 and result.output.strip() == markdown_table().strip()
