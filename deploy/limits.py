"""cgroup limits: one systemd slice per component, holding the limits of the capacity plan.

``lbstack.slice`` parents ``lbstack-{lb,app,db,cache}.slice``; each component's services join
their slice (``Slice=``), so the slice's CPUQuota/MemoryHigh/MemoryMax/TasksMax bound the whole
component. Only the components placed on this host (its inventory groups) get a slice.
"""

from __future__ import annotations

from pyinfra.api import deploy

from lbstack import layout
from lbstack.operations import daemon_reload, no_limit_overrides, template_file, unit_active
from lbstack.plan import SLICE_PARENT, Plan
from lbstack.render import jinja, template
from lbstack.settings import Settings

UNIT_DIR = "/etc/systemd/system"
DESCRIPTIONS = {
    "lb": "nginx load balancer",
    "app": "PHP-FPM app instances",
    "db": "MariaDB",
    "cache": "Redis",
    "queue": "queue workers and the scheduler",
    "monitoring": "Prometheus exporters and Prometheus",
}


def slice_template_data(plan: Plan, component: str) -> dict:
    return {
        "unit": plan.slices[component],
        "component": component,
        "description": DESCRIPTIONS[component],
        "limits": plan.limits[component],
    }


@deploy("lbstack limits")
def limits(settings: Settings, plan: Plan) -> None:
    rendered = [
        template_file(
            name=f"Render {UNIT_DIR}/{SLICE_PARENT}",
            src=template(f"{UNIT_DIR}/{SLICE_PARENT}"),
            dest=f"{UNIT_DIR}/{SLICE_PARENT}",
            mode="644",
            jinja_env_kwargs=jinja(),
        )
    ]
    for component, unit in plan.slices.items():
        rendered.append(template_file(
            name=f"Render {UNIT_DIR}/{unit}",
            src=template(f"{UNIT_DIR}/lbstack-component.slice"),
            dest=f"{UNIT_DIR}/{unit}",
            mode="644",
            jinja_env_kwargs=jinja(),
            **slice_template_data(plan, component),
        ))
    daemon_reload(name="systemctl daemon-reload (if a slice changed on disk)",
                  units=[SLICE_PARENT] + list(plan.slices.values()), changed=rendered)
    for unit in plan.slices.values():
        unit_active(name=f"Start and enable {unit}", unit=unit)
    no_limit_overrides(name="No hand-made limits (systemctl set-property drop-ins) on lbstack's units",
                       units=[SLICE_PARENT] + [unit for _, unit in layout.planned_units(plan)])

