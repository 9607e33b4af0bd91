"""lbstack-metrics rendered from its real template (paths in a scratch directory) and run with bash
and a fake ``systemctl``: the instances' state, the release, and the balancer's request counters
and request-time histogram, read on from the access log where the last run stopped (a line still
being written waits for the next run; a rotated log is read from its start). The deploy's and
drift's textfiles (lbstack.textfiles) parse as Prometheus' text format would."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

from deploy import monitoring
from lbstack import layout, textfiles
from lbstack.checks import Check
from lbstack.plan import make_plan
from lbstack.render import render
from lbstack.settings import load

SETTINGS = load({"monitoring": True, "instances": 3})
PLAN = make_plan(8, 16384, SETTINGS)


def _line(status: int, seconds: float) -> str:
    return json.dumps({"time": "t", "status": status, "request_time": seconds, "upstream": "u"},
                      separators=(",", ":")) + "\n"


def _samples(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def _script(tmp: Path) -> tuple[Path, dict]:
    data = monitoring.metrics_helper_data(SETTINGS, PLAN)
    paths = {"textfile_dir": tmp / "metrics", "state_dir": tmp / "state", "current": tmp / "current",
             "access_log": tmp / "access.log"}
    data.update({k: shlex.quote(str(v)) for k, v in paths.items()}, tls_name="''", redis_socket="''")
    script = tmp / "lbstack-metrics"
    script.write_text(render(monitoring.METRICS_HELPER, **data))
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(  # app2 is down; two slices, one without a memory limit
        '#!/bin/bash\ncase "$1" in\n'
        'list-units) printf "lbstack-app.slice loaded active active x\\nlbstack-db.slice loaded active active y\\n" ;;\n'
        'show) printf "Id=lbstack-app.slice\\nMemoryCurrent=1048576\\nMemoryMax=2147483648\\nCPUUsageNSec=2500000000\\n'
        'Id=lbstack-db.slice\\nMemoryCurrent=[not set]\\nMemoryMax=infinity\\nCPUUsageNSec=1000\\n" ;;\n'
        '*) [ "$3" != "lbstack-fpm@2.service" ] ;;\nesac\n')
    (bin_dir / "systemctl").chmod(0o755)
    (tmp / "releases" / "20261203T120000-abc").mkdir(parents=True)
    (tmp / "current").symlink_to(tmp / "releases" / "20261203T120000-abc")
    return script, {"PATH": f"{bin_dir}:/usr/bin:/bin"}


def _run(script: Path, env: dict, tmp: Path) -> dict[str, float]:
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=30, env=env)
    assert proc.returncode == 0, proc.stderr
    return _samples((tmp / "metrics" / "lbstack.prom").read_text())


def test_instances_release_and_the_access_log_read_on_from_where_it_stopped(tmp_path: Path):
    script, env = _script(tmp_path)
    log = tmp_path / "access.log"
    partial = _line(200, 0.7)
    log.write_text(_line(200, 0.02) + _line(503, 2.0) + _line(200, 0.3) + partial[:20])
    first = _run(script, env, tmp_path)
    assert [first[f'lbstack_instance_active{{instance="app{i}"}}'] for i in (1, 2, 3)] == [1, 0, 1]
    assert first['lbstack_release_info{release="20261203T120000-abc"}'] == 1
    assert first['lbstack_slice_memory_bytes{slice="lbstack-app.slice"}'] == 1048576
    assert 'lbstack_slice_memory_bytes{slice="lbstack-db.slice"}' not in first  # not accounted: no sample
    assert first['lbstack_slice_memory_max_bytes{slice="lbstack-app.slice"}'] == 2147483648
    assert first['lbstack_slice_memory_max_bytes{slice="lbstack-db.slice"}'] == float("inf")
    assert first['lbstack_slice_cpu_seconds_total{slice="lbstack-app.slice"}'] == 2.5
    assert first['lbstack_http_requests_total{code="2xx"}'] == 2 and first['lbstack_http_requests_total{code="5xx"}'] == 1
    assert first['lbstack_http_request_duration_seconds_bucket{le="0.05"}'] == 1
    assert first['lbstack_http_request_duration_seconds_bucket{le="0.5"}'] == 2
    assert first['lbstack_http_request_duration_seconds_bucket{le="1.5"}'] == 2
    assert first['lbstack_http_request_duration_seconds_bucket{le="+Inf"}'] == 3
    assert first["lbstack_http_request_duration_seconds_count"] == 3
    assert abs(first["lbstack_http_request_duration_seconds_sum"] - 2.32) < 1e-6
    # the line being written is counted once complete, and nothing twice
    with log.open("a") as handle:
        handle.write(partial[20:] + _line(404, 0.1))
    second = _run(script, env, tmp_path)
    assert second['lbstack_http_requests_total{code="2xx"}'] == 3 and second['lbstack_http_requests_total{code="4xx"}'] == 1
    assert second['lbstack_http_request_duration_seconds_bucket{le="1"}'] == 4
    assert second["lbstack_http_request_duration_seconds_count"] == 5
    # rotated: a new file (new inode) is read from its start; the counters keep counting up
    log.rename(tmp_path / "access.log.1")
    log.write_text(_line(500, 0.01))
    third = _run(script, env, tmp_path)
    assert third['lbstack_http_requests_total{code="5xx"}'] == 2 and third["lbstack_http_request_duration_seconds_count"] == 6
    assert not list((tmp_path / "metrics").glob("*.tmp"))


def test_the_deploy_and_drift_textfiles_are_prometheus_text_format(tmp_path: Path):
    rows = [Check("lb", "a", "1", "1", True), Check("lb", "b", "1", "2", False)]
    text = textfiles.deploy_textfile(PLAN, rows, 1_800_000_000.5)
    samples = _samples(text)
    assert samples["lbstack_verification_checks"] == 2 and samples["lbstack_verification_failed_checks"] == 1
    assert samples["lbstack_plan_instances"] == 3
    assert samples['lbstack_plan_slice_memory_max_bytes{slice="lbstack-monitoring.slice"}'] == \
        PLAN.limits["monitoring"].memory_max_mib * 1024 * 1024
    for name in re.findall(r"^# TYPE (\S+) ", text, re.M):  # each family declared once, before its samples
        assert text.count(f"# TYPE {name} ") == 1
    drift = _samples(textfiles.drift_textfile({"drift": True, "operations": [{}], "checks_failed": []}, 1.0))
    assert drift["lbstack_drift_found"] == 1 and drift["lbstack_drift_operations"] == 1
    # lbstack-metrics record leaves the file whole, in place, readable by the exporter
    script, env = _script(tmp_path)
    argv = textfiles.record_argv("deploy", text)
    assert argv[:3] == [monitoring.METRICS_HELPER, "record", "deploy"]
    subprocess.run(["bash", str(script), *argv[1:]], check=True, env=env)
    target = tmp_path / "metrics" / "lbstack-deploy.prom"
    assert target.read_text() == text and oct(os.stat(target).st_mode)[-3:] == "644"
    assert not list((tmp_path / "metrics").glob("*.tmp"))
    assert subprocess.run(["bash", str(script), "record", "bogus", "x"], env=env).returncode == 2
    assert layout.STATE_DIR in textfiles.TEXTFILE_DIR
