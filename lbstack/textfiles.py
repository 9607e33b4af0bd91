"""The textfiles lbstack leaves for node_exporter's textfile collector (``monitoring: true``): the
deploy's (the plan, the verification result, when it ran) and ``lbstack drift``'s (its last
result). Pure: text from values; :func:`record_argv` is the host program's argument list that puts
one in place atomically (``lbstack-metrics record``: the collector never reads half a file)."""

from __future__ import annotations

from lbstack.checks import Check
from lbstack.plan import Plan

TEXTFILE_DIR = "/var/lib/lbstack/metrics"
METRICS_HELPER = "/usr/local/sbin/lbstack-metrics"


def _family(name: str, kind: str, help_text: str, samples: list[tuple[dict, float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        text = ",".join(f'{k}="{v}"' for k, v in labels.items())
        shown = str(int(value)) if float(value).is_integer() else repr(float(value))
        lines.append(f"{name}{{{text}}} {shown}" if text else f"{name} {shown}")
    return lines


def deploy_textfile(plan: Plan, rows: list[Check], now: float) -> str:
    failed = sum(1 for r in rows if r.ok is False)
    lines = _family("lbstack_last_deploy_timestamp_seconds", "gauge", "When the last deploy's verification ran.",
                    [({}, round(now))])
    lines += _family("lbstack_verification_checks", "gauge", "Checks of the last deploy's verification.",
                     [({}, len(rows))])
    lines += _family("lbstack_verification_failed_checks", "gauge", "Failed checks of the last deploy's verification.",
                     [({}, failed)])
    lines += _family("lbstack_plan_instances", "gauge", "App instances the plan has on this host.",
                     [({}, plan.instances)])
    lines += _family("lbstack_plan_slice_memory_max_bytes", "gauge", "MemoryMax the plan gives each slice.",
                     [({"slice": plan.slices[c]}, lim.memory_max_mib * 1024 * 1024) for c, lim in plan.limits.items()])
    lines += _family("lbstack_plan_slice_cpu_quota_ratio", "gauge", "CPUQuota the plan gives each slice (1 = a CPU).",
                     [({"slice": plan.slices[c]}, lim.cpu_quota_pct / 100) for c, lim in plan.limits.items()])
    return "\n".join(lines) + "\n"


def drift_textfile(host_result: dict, now: float) -> str:
    """From one host's entry of ``lbstack drift``'s result (operate.drift)."""
    lines = _family("lbstack_drift_timestamp_seconds", "gauge", "When lbstack drift last checked this host.",
                    [({}, round(now))])
    lines += _family("lbstack_drift_found", "gauge", "1 when the last lbstack drift found differences.",
                     [({}, 1 if host_result["drift"] else 0)])
    lines += _family("lbstack_drift_operations", "gauge", "Operations the last lbstack drift would run.",
                     [({}, len(host_result["operations"]))])
    lines += _family("lbstack_drift_failed_checks", "gauge", "Verification checks the last lbstack drift found failing.",
                     [({}, len(host_result["checks_failed"]))])
    return "\n".join(lines) + "\n"


def record_argv(name: str, text: str) -> list[str]:
    """``lbstack-metrics record NAME TEXT``: TEXT becomes ``lbstack-NAME.prom`` (deploy, drift)."""
    return [METRICS_HELPER, "record", name, text]
