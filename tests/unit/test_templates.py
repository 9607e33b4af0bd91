"""Templates render from the real settings and plan, with the data the deploy modules pass."""

import configparser

import pytest
from pyinfra.api.util import get_template

from deploy import base, jinja, limits, template
from lbstack.plan import make_plan
from lbstack.settings import load

PLAN = make_plan(8, 16384, load({}))


def render(target: str, **data) -> str:
    return get_template(template(target), jinja()).render(**data)


@pytest.mark.parametrize("component", ["lb", "app", "db", "cache"])
def test_component_slice_carries_the_planned_limits(component):
    text = render("/etc/systemd/system/lbstack-component.slice", **limits.slice_template_data(PLAN, component))
    unit = configparser.ConfigParser(strict=True, interpolation=None)
    unit.optionxform = str
    unit.read_string(text)
    lim = PLAN.limits[component]
    assert unit["Slice"]["CPUQuota"] == f"{lim.cpu_quota_pct}%"
    assert unit["Slice"]["MemoryHigh"] == f"{lim.memory_high_mib}M"
    assert unit["Slice"]["MemoryMax"] == f"{lim.memory_max_mib}M"
    assert unit["Slice"]["TasksMax"] == str(lim.tasks_max)
    assert unit["Install"]["WantedBy"] == "slices.target"
    assert f"/etc/systemd/system/lbstack-{component}.slice" in text


def test_parent_slice_renders():
    text = render("/etc/systemd/system/lbstack.slice")
    assert "[Slice]" in text and "MemoryAccounting=yes" in text


def test_sysctl_file_has_every_planned_key_once():
    text = render(base.SYSCTL_FILE, **base.sysctl_template_data(load({}), PLAN))
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines == [f"{k} = {v}" for k, v in PLAN.sysctl.items()]


def test_timesyncd_dropin_lists_servers():
    text = render(base.TIMESYNCD_DROPIN, ntp_servers=["ntp1.example.net", "10.0.0.1"])
    assert "NTP=ntp1.example.net 10.0.0.1" in text
