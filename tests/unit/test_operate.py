"""The pure parts of the operating commands: request summaries, the monitor's transitions, the
Prometheus text and the drift report."""

from __future__ import annotations

import json
import re

import pytest
from rich.console import Console

from lbstack import operate, probe, report
from lbstack.probe import Answer, Target

NAMES = ["app1", "app2", "app3"]


def answers(spec: dict[str | None, int], status: int = 200) -> list[Answer]:
    return [Answer(status, name, 0.01 * (i + 1)) for name, n in spec.items() for i in range(n)]


def test_summary_passes_when_every_instance_answers():
    s = probe.summarize(answers({"app1": 4, "app2": 3, "app3": 3}), NAMES, max_error_rate=0.0, sticky=False, seconds=1)
    assert s["ok"] and s["instances"] == {"app1": 4, "app2": 3, "app3": 3} and s["status"] == {"200": 10}
    assert s["latency_ms"]["p50"] <= s["latency_ms"]["p95"] <= s["latency_ms"]["max"] == 40.0
    assert s["req_per_s"] == 10.0


def test_summary_fails_naming_a_silent_instance_and_errors():
    got = answers({"app1": 5, "app2": 4}) + [Answer(None, None, 1.0, "connection reset"), Answer(502, None, 0.1)]
    s = probe.summarize(got, NAMES, max_error_rate=0.1, sticky=False, seconds=1)
    assert not s["ok"]
    assert "no answer from app3" in s["problems"]
    assert s["errors"] == 2 and s["status"] == {"200": 9, "502": 1, "connection reset": 1}
    assert any("error rate 18.18% above 10.00%" in p for p in s["problems"])


def test_summary_sticky_wants_a_single_instance():
    assert probe.summarize(answers({"app2": 10}), NAMES, max_error_rate=0, sticky=True, seconds=1)["ok"]
    s = probe.summarize(answers({"app2": 9, "app3": 1}), NAMES, max_error_rate=0, sticky=True, seconds=1)
    assert not s["ok"] and "affinity broken" in s["problems"][0]


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert probe.percentile(values, 50) == 50 and probe.percentile(values, 95) == 95
    assert probe.percentile(values, 100) == 100 and probe.percentile([], 50) is None


def test_monitor_reports_down_and_up_transitions_with_times():
    clock = {"t": 0.0}
    script = {"app2": ["up", "down", "down", "up"]}  # per round

    def prober(url: str, timeout: float) -> Answer:
        name = url.rsplit("/", 2)[-2]
        state = script.get(name, ["up"] * 4)[int(clock["t"])]
        return Answer(200, name, 0.002) if state == "up" else Answer(502, None, 0.002)

    events = []
    summary = probe.monitor([Target(n, f"http://lb/instances/{n}/health") for n in NAMES], interval=1, rounds=4,
                            duration=None, timeout=1, on_event=events.append, clock=lambda: clock["t"],
                            sleep=lambda s: clock.__setitem__("t", clock["t"] + s), prober=prober)
    moves = [(e["target"], e["before"], e["after"]) for e in events if e["event"] == "transition"]
    assert moves == [("app1", None, "up"), ("app2", None, "up"), ("app3", None, "up"),
                     ("app2", "up", "down"), ("app2", "down", "up")]
    back = [e for e in events if e["event"] == "transition" and e["after"] == "up" and e["before"] == "down"][0]
    assert back["down_for_s"] == 2.0 and back["detail"].startswith("200")
    assert summary["ok"] and summary["rounds"] == 4 and len([e for e in events if e["event"] == "probe"]) == 12


def test_monitor_fails_when_a_target_is_down_at_the_end():
    summary = probe.monitor([Target("app1", "u1"), Target("app2", "u2")], interval=0, rounds=2, duration=None,
                            timeout=1, on_event=lambda e: None,
                            prober=lambda url, t: Answer(200 if url == "u1" else None, None, 0.1, None if url == "u1" else "timeout"))
    assert not summary["ok"] and summary["down_at_end"] == ["app2"]


def test_monitor_needs_a_bound():

    with pytest.raises(ValueError):
        probe.monitor([], interval=1, rounds=None, duration=None, timeout=1, on_event=print)


METRICS = {
    "host": "web1", "window_s": 60,
    "units": {"lbstack-fpm@1.service": {"memory_current": 100, "memory_max": 200, "cpu_usage_s": 1.5,
                                        "cpu_throttled_periods": 2, "cpu_throttled_s": 0.1, "restarts": 0, "tasks": 3}},
    "access_log": {"window_s": 60, "requests": 120, "req_per_s": 2.0, "status": {"200": 119, "502": 1},
                   "upstreams": {}, "errors_5xx": 1,
                   "request_time_s": {"p50": 0.01, "p95": 0.02, "p99": 0.03, "count": 120},
                   "upstream_time_s": {"p50": 0.01, "p95": 0.02, "p99": None, "count": 119}},
    "nginx": {"active": 2, "accepts": 10, "handled": 10, "requests": 130, "reading": 0, "writing": 1, "waiting": 1},
    "fpm": {"app1": {"active": 1, "idle": 20, "listen_queue": 0, "max_children_reached": 0, "slow_requests": 0,
                     "accepted_conn": 55}, "app2": {"error": "exit 1"}},
    "mariadb": {"answering": True, "max_connections": 125, "status": {"Threads_connected": 6, "Slow_queries": 0}},
    "redis": {"ok": True, "info": {"used_memory": 1000, "maxmemory_policy": "noeviction", "keyspace_hits": 9}, "keys": 3},
}

SAMPLE = re.compile(r'^[a-z_][a-z0-9_]*\{([a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*)?\} -?[0-9.e+-]+$')


def test_prometheus_text_is_valid_and_grouped():
    text = operate.prometheus([METRICS, {**METRICS, "host": "web2"}])
    names_in_order = []
    for line in text.splitlines():
        if line.startswith("# TYPE"):
            names_in_order.append(line.split()[2])
        elif not line.startswith("# HELP"):
            assert SAMPLE.match(line), line
            assert line.split("{")[0] == names_in_order[-1], line  # samples follow their family
    assert len(names_in_order) == len(set(names_in_order))
    assert 'lbstack_fpm_up{host="web1",instance="app2"} 0' in text
    assert 'lbstack_fpm_up{host="web2",instance="app1"} 1' in text
    assert 'lbstack_http_requests_window{host="web1",status="502"} 1' in text
    assert 'lbstack_upstream_response_seconds{host="web1",quantile="99"}' not in text  # unknown: left out
    assert "maxmemory_policy" not in text  # strings are not samples


DRIFT = {
    "inventory": "inventories/prod.py", "time": 1795494977, "seconds": 9.5, "drift": True,
    "hosts": {"web1": {
        "drift": True, "checks_total": 120, "conditional": ["lbstack nginx | Reload nginx"],
        "operations": [{"name": "lbstack nginx | Validate (nginx -t) and promote /etc/nginx/nginx.conf",
                        "commands": ["nginx -t -q -c /var/lib/lbstack/staged/etc/nginx/nginx.conf"]}],
        "checks_failed": [{"component": "cache", "check": "Redis maxmemory", "expected": "1275 MiB",
                           "actual": "100 MiB", "ok": False, "note": ""}],
        "diffs": [{"path": "/etc/nginx/nginx.conf", "source": "live file vs its validated staged copy",
                   "diff": "--- a\n+++ b\n-    worker_connections 512;\n+    worker_connections 4096;\n<script>x</script>\n"}],
    }},
}


def test_drift_html_is_self_contained_and_escaped():
    html = report.drift_html(DRIFT)
    assert html.startswith("<!DOCTYPE html>") and "drift found" in html
    assert "worker_connections 4096" in html and "Redis maxmemory" in html and "100 MiB" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html)  # nothing loaded from elsewhere
    assert "<style>" in html and "Exit code 2" in html
    # each diff line its own block, whatever whitespace the template keeps (tests/e2e checks the
    # rendering in Chromium)
    assert '<span class="line del">-    worker_connections 512;</span>' in html
    assert '<span class="line add">+    worker_connections 4096;</span>' in html
    assert '<span class="line">&lt;script&gt;x&lt;/script&gt;</span>' in html
    clean = report.drift_html({**DRIFT, "drift": False, "hosts": {}})
    assert "no drift" in clean and "Exit code 0" in clean


def test_drift_tables_name_every_kind():

    console = Console(record=True, width=200)
    for table in report.drift_tables(DRIFT):
        console.print(table)
    text = console.export_text()
    for needle in ("operation", "Validate (nginx -t)", "check", "Redis maxmemory", "file", "/etc/nginx/nginx.conf",
                   "1 operation(s) run only if another changes", "+    worker_connections 4096;"):
        assert needle in text, needle
    json.dumps(DRIFT)  # what --json prints is plain data


def test_the_floating_address_must_be_held_by_exactly_one_balancer():
    def balancer(name, held):
        return {"host": name, "floating": {"address": "10.0.0.10", "held": held, "keepalived": "active"}}

    assert operate.floating_holders([balancer("lb1", True), balancer("lb2", False), {"host": "app1"}]) == []
    assert operate.floating_holders([balancer("lb1", False), balancer("lb2", False)]) == [
        "floating address 10.0.0.10 held by no balancer"]
    assert operate.floating_holders([balancer("lb1", True), balancer("lb2", True)]) == [
        "floating address 10.0.0.10 held by lb1, lb2"]
    assert operate.floating_holders([{"host": "vps"}]) == []  # one VPS: no floating address
