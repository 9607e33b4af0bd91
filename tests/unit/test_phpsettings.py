"""What each master must run with is read from the rendered PHP templates (lbstack.phpsettings),
and compared with PHP's own strings."""

from lbstack import layout, phpsettings
from lbstack.plan import make_plan
from lbstack.settings import load

SETTINGS = load({})
PLAN = make_plan(8, 16384, SETTINGS)


def test_expected_holds_the_ini_and_the_pool_values_pool_last():
    values = phpsettings.expected(SETTINGS, PLAN, 2, layout.fpm_socket(2))
    assert values["opcache.enable"] == "1"
    assert values["opcache.memory_consumption"] == str(PLAN.php_fpm.opcache_mib)
    assert values["expose_php"] == "Off"
    assert values["memory_limit"] == f"{PLAN.php_fpm.memory_limit_mib}M"  # the pool's php_admin_value
    assert values["syslog.ident"] == "lbstack-app2"
    assert values["log_errors"] == "on"
    assert not any(key.startswith(("pm.", "listen", "slowlog")) for key in values)  # FPM's own, not PHP's


def test_php_strings_are_compared_as_php_reads_an_ini_file():
    assert phpsettings.same("Off", "")
    assert phpsettings.same("off", "0")
    assert phpsettings.same("On", "1")
    assert not phpsettings.same("Off", "1")
    assert not phpsettings.same("1", "")
    assert phpsettings.same("256M", "256M")
    assert not phpsettings.same("256M", "1G")
    assert not phpsettings.same("256M", None)  # PHP does not know it (an extension not loaded)


def test_differences_name_the_setting_its_value_and_lbstacks():
    assert phpsettings.differences({"memory_limit": "256M", "expose_php": "Off"},
                                   {"memory_limit": "1G", "expose_php": ""}) == ["memory_limit=1G (lbstack: 256M)"]


def test_effective_settings_rows_name_the_instance_and_what_differs():
    from lbstack import checks
    want = {"app1": {"memory_limit": "256M"}, "app2": {"memory_limit": "256M"}, "app3": {"memory_limit": "256M"}}
    rows = checks.check_effective_php(want, {"app1": {"memory_limit": "256M"}, "app2": {"memory_limit": "1G"},
                                             "app3": {"error": "no PHP settings from ..."}})
    assert [(r.check, r.ok) for r in rows] == [("app1 PHP settings in force", True),
                                               ("app2 PHP settings in force", False),
                                               ("app3 PHP settings in force", False)]
    assert "memory_limit=1G (lbstack: 256M)" in rows[1].actual
