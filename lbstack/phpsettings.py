"""The PHP settings lbstack gives every app instance: the data its two PHP templates are rendered
with (``conf.d/90-lbstack.ini``, every master's; each instance's pool's ``php_admin_value``), and
what each master must then run with, read from the rendered text itself (:func:`expected`), so
that what verification expects is what the deploy wrote, never a second copy of it.

Verification and drift compare :func:`expected` with what each master reports it runs with
(``facts.php_fpm.EffectiveSettings``): a setting from a file edited by hand, from a file lbstack
does not manage, or from a file changed back after a reload, is found all the same.
"""

from __future__ import annotations

import re

from lbstack import layout
from lbstack.plan import Plan
from lbstack.render import render
from lbstack.settings import Settings

INI_TEMPLATE = "/etc/php/fpm/conf.d/90-lbstack.ini"
POOL_TEMPLATE = f"{layout.FPM_CONFIG_DIR}/app.conf"

_INI_LINE = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*=\s*(.*?)\s*$")
_POOL_LINE = re.compile(r"^\s*php(?:_admin)?_(value|flag)\[([A-Za-z0-9_.]+)\]\s*=\s*(.*?)\s*$")
_TRUE = {"1", "on", "yes", "true"}
_FALSE = {"0", "off", "no", "false", "none", ""}


def instance_template_data(settings: Settings, plan: Plan, index: int, listen: str, member: str | None = None) -> dict:
    """``member``: the instance's name as the balancers' upstream names it (``<host>-appN`` for
    balancers on other hosts, :func:`lbstack.topology.member`); default ``appN``."""
    return {
        "instance": layout.instance_name(index),
        "member": member or layout.instance_name(index),
        "index": index,
        "php_version": settings.php_version,
        "app_user": settings.app_user,
        "listen": listen,
        "max_children": plan.php_fpm.max_children,
        "worker_memory_mib": plan.php_fpm.memory_limit_mib,
    }


def ini_template_data(settings: Settings, plan: Plan) -> dict:
    return {"opcache_mib": plan.php_fpm.opcache_mib, "preload": bool(settings.php_preload),
            "preload_dirs": ", ".join(settings.php_preload), "preload_script": layout.PRELOAD_SCRIPT,
            "app_user": settings.app_user}


def _unquoted(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def expected(settings: Settings, plan: Plan, index: int, listen: str) -> dict[str, str]:
    """Every PHP setting lbstack sets for instance ``index`` (listening on ``listen``), as rendered:
    the ini file's ``key = value`` lines, then the pool's ``php_admin_value``/``php_admin_flag``
    (which win, as in FPM)."""
    values: dict[str, str] = {}
    for line in render(INI_TEMPLATE, **ini_template_data(settings, plan)).splitlines():
        if line.lstrip().startswith((";", "[")):
            continue
        match = _INI_LINE.match(line)
        if match:
            values[match[1]] = _unquoted(match[2])
    for line in render(POOL_TEMPLATE, **instance_template_data(settings, plan, index, listen)).splitlines():
        match = _POOL_LINE.match(line)
        if match:
            values[match[2]] = _unquoted(match[3])
    return values


def same(expected_value: str, actual: str | None) -> bool:
    """Does PHP's own string ``actual`` (``ini_get``) mean ``expected_value`` as written in an ini
    file? ``Off`` reads back as ``""``, ``On`` as ``"1"``; other values as written."""
    if actual is None:
        return False
    want, got = expected_value.strip().lower(), actual.strip().lower()
    if want in _TRUE or want in _FALSE:
        return (want in _TRUE) == (got in _TRUE) and (got in _TRUE or got in _FALSE)
    return want == got


def differences(expected_values: dict[str, str], actual: dict[str, str | None]) -> list[str]:
    """``key=actual (lbstack: expected)`` for every setting the master runs with otherwise."""
    return [f"{key}={actual.get(key)!s} (lbstack: {value})" for key, value in expected_values.items()
            if not same(value, actual.get(key))]
