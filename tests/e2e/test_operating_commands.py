"""The operating commands against a converged rehearsal host: status, test, metrics, monitor and
drift, checked on their --json output for the real values; drift for eleven kinds of hand change,
each repaired by re-running deploy/full.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from e2e_helpers import failed_checks, lbstack, pyinfra, rehearsal_plan, remote, rendered_diffs

from lbstack import REPO_ROOT
from lbstack.layout import SECRETS

INV = "inventories/rehearsal.py"
INSTANCES = [f"app{i}" for i in range(1, 6)]


def test_status_reports_units_pools_upstream_and_release(host):
    run = lbstack(host.name, "status", INV, "--json")
    assert run["rc"] == 0, run["stderr"]
    (h,) = run["json"]["hosts"]
    assert h["healthy"] and h["problems"] == []
    units = {u["unit"]: u for u in h["units"]}
    assert set(units) >= {f"lbstack-fpm@{i}.service" for i in range(1, 6)} | {
        "nginx.service", "mariadb.service", "redis-server.service", "lbstack-app.slice",
        "lbstack-queue.slice", "lbstack-queue@1.service", "lbstack-queue@2.service", "lbstack-schedule.timer"}
    for unit in units.values():
        assert unit["active_state"] == "active" and unit["enabled"] == "enabled", unit
        if not unit["unit"].endswith(".timer"):  # a timer has no processes, so no memory
            assert unit["uptime_s"] > 0 and unit["memory_current"] > 0, unit
    queue = h["queue"]
    assert [w["release"] for w in queue["workers"]] == [h["release"]["current"]] * 2
    assert queue["scheduler"]["timer"] == "active"
    fpm = units["lbstack-fpm@1.service"]
    assert fpm["memory_max"] == rehearsal_plan().php_fpm.instance_limits.memory_max_mib * 1024 * 1024
    assert fpm["memory_current"] < fpm["memory_max"]
    assert fpm["restarts"] == 0 and fpm["tasks"] > 1
    assert sorted(h["pools"]) == INSTANCES
    assert all(p["process_manager"] == "static" and p["total"] == p["active"] + p["idle"] for p in h["pools"].values())
    assert [(m["name"], m["state"]) for m in h["upstream"]["members"]] == [(i, "up") for i in INSTANCES]
    assert h["upstream"]["method"] == "least_conn"
    _, current, _ = remote(host, "readlink /srv/lbstack/app/current")
    assert h["release"]["current"] == current.strip().rsplit("/", 1)[-1]
    assert h["release"]["activated_at"] > 1_700_000_000


def test_test_spreads_over_every_instance(host):
    run = lbstack(host.name, "test", INV, "--requests", "200", "--concurrency", "8", "--json")
    assert run["rc"] == 0, run["stdout"] + run["stderr"]
    (r,) = run["json"]["results"]
    assert r["requests"] == 200 and r["status"] == {"200": 200} and r["errors"] == 0
    assert set(r["instances"]) == set(INSTANCES) and all(n > 0 for n in r["instances"].values()), r["instances"]
    assert sum(r["instances"].values()) == 200
    assert 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p95"] <= r["latency_ms"]["p99"] <= r["latency_ms"]["max"]


def test_test_sticky_fails_when_the_method_is_not_ip_hash(host):
    run = lbstack(host.name, "test", INV, "--requests", "20", "--sticky", "--json")
    assert run["rc"] == 3
    assert "lb_method is least_conn" in run["json"]["results"][0]["problems"][0]


def test_metrics_reads_traffic_and_backends(host, tmp_path):
    for i in range(60):  # questions go through the Redis cache: misses then hits
        lbstack_get(host, f"/api/questions/random?id={i % 3 + 1}")
    prom = tmp_path / "lbstack.prom"
    run = lbstack(host.name, "metrics", INV, "--window", "300", "--prometheus", str(prom), "--json")
    assert run["rc"] == 0, run["stderr"]
    (m,) = run["json"]["hosts"]
    log = m["access_log"]
    assert log["requests"] >= 60 and log["status"].get("200", 0) >= 60 and log["req_per_s"] > 0
    assert {u.rsplit("/", 2)[-2] for u in log["upstreams"]} == set(INSTANCES)
    assert log["upstream_time_s"]["p50"] is not None
    assert m["nginx"]["requests"] >= 60 and m["nginx"]["active"] >= 1
    assert sorted(m["fpm"]) == INSTANCES and all(p["accepted_conn"] > 0 for p in m["fpm"].values())
    assert m["mariadb"]["answering"] and m["mariadb"]["status"]["Threads_connected"] >= 1
    assert m["mariadb"]["max_connections"] > 0
    assert m["redis"]["ok"] and m["redis"]["info"]["keyspace_hits"] >= 50
    assert m["redis"]["info"]["maxmemory_policy"] == "noeviction"
    text = prom.read_text()
    assert text.count('lbstack_fpm_up{host="%s",' % host.name) == 5
    assert "# TYPE lbstack_unit_memory_bytes gauge" in text and "lbstack_redis_keyspace_hits" in text
    families = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(families) == len(set(families))  # each family once, samples together


def lbstack_get(host, path: str) -> int:

    with urllib.request.urlopen(f"http://{host.address}{path}", timeout=10) as response:
        response.read()
        return response.status


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_stopped_instance_shows_in_status_and_monitor(host, tmp_path):
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log = tmp_path / "monitor.jsonl"
    exe = os.path.join(os.path.dirname(sys.executable), "lbstack")
    monitor = subprocess.Popen(
        [exe, "monitor", INV, "--interval", "0.5", "--duration", "60", "--log-output", str(log),
         "--webhook", f"http://127.0.0.1:{server.server_port}/hook", "--json"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "LBSTACK_REHEARSAL_HOSTS": host.name})
    try:
        _wait_for(log, lambda e: e.get("event") == "probe" and e["target"] == "app3")
        remote(host, "systemctl stop lbstack-fpm@3.service")
        _wait_for(log, lambda e: e.get("event") == "transition" and e["target"] == "app3" and e["after"] == "down")
        status = lbstack(host.name, "status", INV, "--json")
        assert status["rc"] == 3
        (h,) = status["json"]["hosts"]
        units = {u["unit"]: u for u in h["units"]}
        assert units["lbstack-fpm@3.service"]["active_state"] in ("inactive", "failed")
        members = {m["name"]: m["state"] for m in h["upstream"]["members"]}
        assert members == {**{i: "up" for i in INSTANCES}, "app3": "down"}
        assert "error" in h["pools"]["app3"] and "lbstack-fpm@3.service inactive" in " ".join(h["problems"])
        time.sleep(2)
        remote(host, "systemctl start lbstack-fpm@3.service")
        _wait_for(log, lambda e: e.get("event") == "transition" and e["target"] == "app3" and e["after"] == "up"
                  and e["before"] == "down")
        monitor.terminate()  # it would stop by itself at --duration; the result is in the log
        monitor.wait(timeout=30)
    finally:
        if monitor.poll() is None:
            monitor.kill()
        server.shutdown()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    app3 = [(e["before"], e["after"]) for e in events if e["event"] == "transition" and e["target"] == "app3"]
    assert app3 == [(None, "up"), ("up", "down"), ("down", "up")]
    back = [e for e in events if e["event"] == "transition" and e["target"] == "app3" and e["after"] == "up"][-1]
    assert back["down_for_s"] >= 2
    others = [e for e in events if e["event"] == "transition" and e["before"] is not None and e["target"] != "app3"]
    assert others == []  # the balancer's own health stayed up while app3 was away
    hooks = [(e["target"], e["before"], e["after"]) for e in _Hook.received if e["target"] == "app3"]
    assert ("app3", "up", "down") in hooks and ("app3", "down", "up") in hooks


def test_monitor_exits_nonzero_when_something_stays_down(host):
    remote(host, "systemctl stop lbstack-fpm@2.service")
    try:
        run = lbstack(host.name, "monitor", INV, "--count", "2", "--interval", "0.5", "--json")
    finally:
        remote(host, "systemctl start lbstack-fpm@2.service")
    assert run["rc"] == 3
    assert run["json"]["down_at_end"] == ["app2"] and run["json"]["final"]["app1"] == "up"


def _wait_for(log, predicate, timeout: float = 40) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists():
            for line in log.read_text().splitlines():
                event = json.loads(line)
                if predicate(event):
                    return event
        time.sleep(0.2)
    raise AssertionError(f"no such event in {log} within {timeout} s: {log.read_text()[-2000:] if log.exists() else ''}")


# ---------------------------------------------------------------------------------------------
# drift


def test_drift_is_clean_three_times_on_a_converged_host(host, tmp_path):
    for attempt in range(3):
        report = tmp_path / f"drift{attempt}.html"
        run = lbstack(host.name, "drift", INV, "--json", "--html", str(report))
        assert run["rc"] == 0, json.dumps(run["json"], indent=1)[:4000] if run["json"] else run["stderr"]
        h = run["json"]["hosts"][host.name]
        assert h["operations"] == [] and h["checks_failed"] == [] and h["checks_total"] > 100
        assert "no drift" in report.read_text()


ADD = "rgb(27, 122, 27)"  # the report's colours (lbstack/html/drift.html.j2)
DEL = "rgb(176, 0, 32)"


def test_drift_html_report_shows_each_diff_line_on_its_own_coloured_row_in_a_browser(host, tmp_path):
    """The nightly report a person reads: opened in headless Chromium, every line of a file's
    diff is on its own row (they once ran together on one line), added lines green, removed red."""
    change = ("sed -i 's/worker_connections [0-9][0-9]*/worker_connections 512/' /etc/nginx/nginx.conf && "
              "printf '# a hand edit\\n# and another\\n' >> /etc/nginx/nginx.conf && nginx -s reload")
    rc, out, err = remote(host, change)
    assert rc == 0, out + err
    try:
        report = tmp_path / "drift.html"
        run = lbstack(host.name, "drift", INV, "--json", "--html", str(report))
        assert run["rc"] == 2, run["stderr"][-2000:]
        (diff,) = [d for d in run["json"]["hosts"][host.name]["diffs"] if d["path"] == "/etc/nginx/nginx.conf"]
        lines = diff["diff"].splitlines()
        assert len(lines) >= 8 and {"+# and another", "-# and another"} & set(lines)
        (block,) = [b for b in rendered_diffs(report, tmp_path) if b["title"].startswith("/etc/nginx/nginx.conf")]
        # as rendered: the same lines, each its own row
        assert [line.rstrip() for line in block["text"].splitlines()] == [line.rstrip() for line in lines]
        rows = [part for part in block["parts"] if part["text"] in lines]
        assert len({part["top"] for part in rows}) == len(lines), rows
        for part in rows:
            if part["text"].startswith("+") and not part["text"].startswith("+++"):
                assert part["color"] == ADD, part
            elif part["text"].startswith("-") and not part["text"].startswith("---"):
                assert part["color"] == DEL, part
            else:
                assert part["color"] not in (ADD, DEL), part
    finally:
        repair = pyinfra(host.name)
    assert repair["rc"] == 0, repair["stderr"][-4000:]


# (kind, hand change on the host, what drift must name: substrings of its JSON)
HAND_CHANGES = [
    ("nginx config edited",
     "sed -i 's/worker_connections [0-9][0-9]*/worker_connections 512/' /etc/nginx/nginx.conf && nginx -s reload",
     ["promote /etc/nginx/nginx.conf", "-    worker_connections 512;"]),
    ("FPM config edited",
     "sed -i 's/^pm.max_children = .*/pm.max_children = 3/' /etc/lbstack/fpm/app2.conf",
     ["/etc/lbstack/fpm/app2.conf", "-pm.max_children = 3"]),
    ("upstream member removed",
     "sed -i '/app5\\/fpm.sock max_fails/d' /etc/nginx/conf.d/lbstack.conf && nginx -s reload",
     ["upstream members", "+    server unix:/run/lbstack/app5/fpm.sock"]),
    ("unit stopped", "systemctl stop redis-server.service",
     ["Start and enable redis-server.service", "redis-server.service state", "inactive, enabled"]),
    # a stopped MariaDB once made drift exit 1 ("does not prepare"): it is drift like any stopped unit
    ("MariaDB stopped", "systemctl stop mariadb.service",
     ["Start and enable mariadb.service", "mariadb.service state", "inactive, enabled",
      "MariaDB is not answering: checked and secured once this run has started it"]),
    ("unit disabled", "systemctl disable lbstack-fpm@4.service",
     ["Enable lbstack-fpm@4.service", "lbstack-fpm@4.service state", "active, disabled"]),
    ("MemoryMax drop-in changed",
     "printf 'MemoryMax=64M\\n' >> /etc/systemd/system/nginx.service.d/lbstack.conf && systemctl daemon-reload",
     ["Render /etc/systemd/system/nginx.service.d/lbstack.conf", "-MemoryMax=64M"]),
    ("limit overridden with systemctl set-property",
     "systemctl set-property lbstack-fpm@2.service MemoryMax=512M",
     ["No hand-made limits", "50-MemoryMax.conf", "lbstack-fpm@2.service limits (systemd)", "max 512 MiB"]),
    ("Redis maxmemory changed at runtime",
     'REDISCLI_AUTH="$(cat /etc/lbstack/secrets/redis_admin_password)" redis-cli --no-auth-warning --user lbstack-admin '
     'CONFIG SET maxmemory 100mb',
     ["Redis's running maxmemory", "Redis maxmemory", "100 MiB"]),
    ("Redis maxmemory changed in the file",
     "sed -i 's/^maxmemory [0-9]*mb/maxmemory 64mb/' /etc/redis/redis.conf",
     ["Write /etc/redis/redis.conf", "redis.conf maxmemory", "64mb"]),
    # a user only the running server has (Redis has no user that may ACL SETUSER: it was added by
    # a restart with a line since removed from the file)
    ("Redis user added at runtime",
     "printf 'user evil on >evil-password-1234 ~* &* +@all\\n' >> /etc/redis/redis.conf && "
     "systemctl restart redis-server && sed -i '/^user evil /d' /etc/redis/redis.conf",
     ["Redis has no user but the app's and lbstack's", "Redis users", "default, evil, lbstack-admin"]),
    ("Redis app user given FLUSHALL",
     "sed -i 's/ -@dangerous +flushdb$/ -@dangerous +flushdb +flushall/' /etc/redis/redis.conf && "
     "systemctl restart redis-server && sed -i 's/ +flushdb +flushall$/ +flushdb/' /etc/redis/redis.conf",
     ["Redis commands of the app's user", "differs: flushall"]),
    ("sshd drop-in edited",
     "sed -i 's/^PasswordAuthentication no/PasswordAuthentication yes/' /etc/ssh/sshd_config.d/10-lbstack.conf && "
     # sshd re-executes itself on a reload: wait until it listens again (the batch's next change logs in)
     "systemctl reload ssh && sleep 1 && for i in $(seq 20); do ss -Hltn | grep -q ':22 ' && break; sleep 0.5; done",
     ["promote /etc/ssh/sshd_config.d/10-lbstack.conf", "sshd passwordauthentication"]),
    ("fail2ban stopped", "systemctl stop fail2ban.service",
     ["Start and enable fail2ban.service", '"actual": "not running"']),
    # reported before, but no converge repaired it: every run failed verification until fixed by hand
    ("nftables rule added at runtime", "nft add rule inet lbstack input tcp dport 8080 accept",
     ["Load /etc/nftables.conf", "firewall table as lbstack loaded it", "+tcp dport 8080 accept"]),
    # files lbstack did not put in directories it owns: moved into the quarantine, services re-read
    ("nginx server block added", "printf 'server { listen 8080; return 200 x; }\\n' > /etc/nginx/conf.d/extra.conf "
     "&& nginx -s reload",
     ["Nothing unmanaged in", "unmanaged files in /etc/nginx/conf.d", "extra.conf"]),
    ("drop-in added to an FPM instance",
     "mkdir -p /etc/systemd/system/lbstack-fpm@3.service.d && "
     "printf '[Service]\\nEnvironment=X=1\\n' > /etc/systemd/system/lbstack-fpm@3.service.d/override.conf && "
     "systemctl daemon-reload",
     ["unmanaged files in /etc/systemd/system/lbstack-fpm@3.service.d", "override.conf"]),
    ("MariaDB account added",
     "mariadb -e \"CREATE USER 'evil'@'%' IDENTIFIED BY 'evil-password-1'; GRANT ALL ON *.* TO 'evil'@'%'\"",
     ["no account but MariaDB's own", "accounts beyond MariaDB's own and the app's", "evil@%"]),
    ("php.ini edited", "sed -i 's/^memory_limit = .*/memory_limit = 2048M/' /etc/php/8.2/fpm/php.ini",
     ["PHP's php.ini (FPM and CLI) as Debian ships it", "php.ini as Debian ships it", "/etc/php/8.2/fpm/php.ini"]),
    # a file of the release in service changed and one added (release integrity: its manifest)
    ("live release file changed",
     "echo '// appended' >> /srv/lbstack/app/current/public/index.php && "
     "printf '<?php echo 1;\\n' > /srv/lbstack/app/current/public/x.php",
     ["release", "integrity (manifest)", "changed public/index.php; added public/x.php",
      "Move the tampered release(s)"]),
    # a master running with a setting from a file changed back since (what it runs with counts)
    ("PHP setting in force differs",
     "f=/etc/php/8.2/fpm/conf.d/90-lbstack.ini && cp -p $f /root/90-lbstack.ini.bak && "
     "sed -i 's/^realpath_cache_ttl = .*/realpath_cache_ttl = 60/' $f && systemctl reload lbstack-fpm@1 && "
     # until the re-executed master has read it, then the file is put back
     "for i in $(seq 50); do lbstack-instance settings /run/lbstack/app1/fpm.sock | "
     "grep -q '\"realpath_cache_ttl\":\"60\"' && break; sleep 0.2; done && "
     "cp -p /root/90-lbstack.ini.bak $f && rm /root/90-lbstack.ini.bak",
     ["app1 PHP settings in force", "realpath_cache_ttl=60 (lbstack: 600)"]),
    ("package removed", "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q logrotate",
     ["Install base packages", "missing logrotate"]),
    (".env mode changed", "chmod 644 /srv/lbstack/app/shared/.env",
     ["Write /srv/lbstack/app/shared/.env", ".env owner and mode", "lbstack:lbstack 644"]),
]


# Hand changes made together, then one drift, one repair, one drift (a converge per change cost
# 30 s each in CI): every change of a batch must be named, and the one repair must fix them all.
# Changes that would undo or hide each other (two Redis restarts, a stopped server and a change
# inside it) are in different batches; one service stopped and another changed may share one.
BATCHES = {
    "files, units and the firewall": [
        "nginx config edited", "upstream member removed", "nginx server block added", "MemoryMax drop-in changed",
        "sshd drop-in edited", "fail2ban stopped", "nftables rule added at runtime", "package removed",
        ".env mode changed"],
    "the app's instances": [
        "FPM config edited", "unit disabled", "limit overridden with systemctl set-property",
        "drop-in added to an FPM instance", "php.ini edited"],
    "MariaDB accounts, the release in service, Redis stopped": [
        "MariaDB account added", "live release file changed", "unit stopped"],
    # nothing else here reloads the instances: the reload of app1 is the new reason's alone
    "Redis rights and runtime maxmemory, a PHP setting in force": [
        "Redis app user given FLUSHALL", "Redis maxmemory changed at runtime", "PHP setting in force differs"],
    "Redis user and redis.conf, MariaDB stopped": [
        "Redis user added at runtime", "Redis maxmemory changed in the file", "MariaDB stopped"],
}


def test_every_hand_change_is_in_one_batch():
    kinds = [k for k, _, _ in HAND_CHANGES]
    batched = [k for batch in BATCHES.values() for k in batch]
    assert sorted(batched) == sorted(kinds) and len(set(batched)) == len(batched)


@pytest.mark.parametrize("batch", list(BATCHES))
def test_drift_names_a_hand_change_and_full_repairs_it(host, batch):
    changes = {k: (c, n) for k, c, n in HAND_CHANGES}
    kind = batch
    for name in BATCHES[batch]:
        rc, out, err = remote(host, changes[name][0], timeout=300)
        assert rc == 0, (name, out, err)
    try:
        run = lbstack(host.name, "drift", INV, "--json")
        assert run["rc"] == 2, (kind, run["stderr"][-2000:], json.dumps(run["json"])[:3000])
        text = json.dumps(run["json"]).replace("\\n", "\n").replace('\\"', '"')
        for name in BATCHES[batch]:
            for needle in changes[name][1]:
                assert needle in text, (name, needle, json.dumps(run["json"]["hosts"][host.name], indent=1)[:6000])
        _, values, _ = remote(host, "for f in /etc/lbstack/secrets/*; do cat $f; echo; done")
        secrets = [v.strip() for v in values.splitlines() if v.strip()]
        assert len(secrets) == len(SECRETS)
        for value in secrets:
            assert value not in run["stdout"] + run["stderr"], f"a secret is in drift's output ({kind})"
    finally:
        repair = pyinfra(host.name)
    assert repair["rc"] == 0, (kind, failed_checks(repair["stderr"])[-6000:], repair["stderr"][-2000:])
    again = lbstack(host.name, "drift", INV, "--json")
    assert again["rc"] == 0, (kind, json.dumps(again["json"], indent=1)[:4000] if again["json"] else again["stderr"])
    if "live release file changed" in BATCHES[batch]:
        # the tampered release is kept for a person to read, without the secrets its config cache held
        rc, out, _ = remote(host, "ls -d /var/lib/lbstack/quarantine/*/srv/lbstack/app/releases/*/public/x.php; "
                                  "ls /var/lib/lbstack/quarantine/*/srv/lbstack/app/releases/*/bootstrap/cache/")
        assert "/public/x.php" in out and "config.php" not in out, out
