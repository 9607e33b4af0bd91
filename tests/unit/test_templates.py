"""Templates render from the real settings and plan, with the data the deploy modules pass."""

import dataclasses
import re
import configparser

import pytest
from pyinfra.api.util import get_template

from deploy import app, base, firewall, keepalived, limits, mariadb, monitoring, nginx, php_fpm, queue, redis, secrets
from lbstack import checks, hardening, hostscripts, layout, render as rendering, sandbox, services
from lbstack.plan import make_plan
from lbstack.render import jinja, template
from lbstack.settings import load

PLAN = make_plan(8, 16384, load({}))
SETTINGS = load({})
LOCAL_MEMBERS = [{"name": f"app{i}", "address": f"unix:{layout.fpm_socket(i)}", "drained": False} for i in range(1, 6)]


def render(target: str, **data) -> str:
    """As pyinfra's files.template renders it on the host."""
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


# -- the stack's components ----------------------------------------------------------------------


def _upstream(text: str) -> str:
    return text[text.index("upstream lbstack_app {"):text.index("}", text.index("upstream lbstack_app {"))]


@pytest.mark.parametrize("method, line", [("least_conn", "least_conn;"), ("ip_hash", "ip_hash;"), ("round_robin", None)])
def test_site_upstream_has_every_instance_and_the_method(method, line):
    settings = load({"lb_method": method})
    text = render(nginx.SITE_CONF, **nginx.site_template_data(settings, PLAN, LOCAL_MEMBERS, ipv6=False))
    upstream = _upstream(text)
    for i in range(1, 6):
        assert f"server unix:/run/lbstack/app{i}/fpm.sock max_fails=3 fail_timeout=5s;" in upstream
    assert "zone lbstack_app 64k;" in upstream  # passive health state shared by the workers
    methods = [m for m in ("least_conn;", "ip_hash;") if m in upstream]
    assert methods == ([line] if line else [])
    # no FastCGI keepalive (pins static workers: performance-facts)
    assert "keepalive" not in upstream and "fastcgi_keep_conn" not in text
    assert "listen [::]" not in text and "listen 443" not in text


def test_site_drained_member_is_down():
    members = [dict(m, drained=(m["name"] == "app2")) for m in LOCAL_MEMBERS]
    upstream = _upstream(render(nginx.SITE_CONF, **nginx.site_template_data(SETTINGS, PLAN, members, ipv6=False)))
    assert "server unix:/run/lbstack/app2/fpm.sock max_fails=3 fail_timeout=5s down;" in upstream
    assert upstream.count(" down;") == 1


def test_site_health_paths_front_controller_and_maintenance():
    text = render(nginx.SITE_CONF, **nginx.site_template_data(SETTINGS, PLAN, LOCAL_MEMBERS, ipv6=True))
    for path in ["/health", "/app-health", "/nginx-status"] + [f"/instances/app{i}/health" for i in range(1, 6)]:
        assert f"location = {path} {{" in text
    assert "stub_status;" in text
    # every PHP request names the one front controller; it runs the instance's own release
    assert f"fastcgi_param SCRIPT_FILENAME {layout.FRONT_CONTROLLER};" in text
    assert "fastcgi_param SCRIPT_FILENAME /fpm-ping;" in text
    assert f"fastcgi_param REQUEST_URI {SETTINGS.health_path};" in text
    assert "fastcgi_next_upstream error timeout invalid_header;" in text
    # a request may try every instance once (4 of 5 dead: still answered)
    assert f"fastcgi_next_upstream_tries {len(LOCAL_MEMBERS)};" in text
    assert PLAN.nginx.next_upstream_tries == len(LOCAL_MEMBERS)
    # maintenance: 503 with Retry-After while the flag exists
    assert text.count(f"if (-f {layout.MAINTENANCE_FLAG}) {{") == 2
    assert f"add_header Retry-After {layout.MAINTENANCE_RETRY_AFTER_S} always;" in text
    assert f"backlog={PLAN.nginx.listen_backlog}" in text and "listen [::]:80" in text


def test_site_tls_files_and_self_signed():
    settings = load({"tls": "files", "tls_certificate_path": "/etc/ssl/a.crt", "tls_key_path": "/etc/ssl/a.key"})
    text = render(nginx.SITE_CONF, **nginx.site_template_data(settings, PLAN, LOCAL_MEMBERS, ipv6=False))
    assert "listen 443 ssl http2" in text and "ssl_certificate /etc/ssl/a.crt;" in text
    text = render(nginx.SITE_CONF, **nginx.site_template_data(load({"tls": "self_signed"}), PLAN, LOCAL_MEMBERS, False))
    assert f"ssl_certificate {nginx.SELF_SIGNED['certificate']};" in text


MONITORED = load({"monitoring": True})
MONITORED_PLAN = make_plan(8, 16384, MONITORED)
MONITORING_JOBS = [
    {"name": "lbstack-node", "params": {}, "targets": [{"address": "127.0.0.1:9100", "labels": {"host": "vps"}}]},
    {"name": "lbstack-fpm", "params": {"openmetrics": [""]}, "targets": [
        {"address": "127.0.0.1:80", "labels": {"instance": f"app{i}", "__metrics_path__": f"/instances/app{i}/status"}}
        for i in range(1, 6)]},
]
ACME = load({"tls": "acme", "server_names": ["example.com", "www.example.com"], "tls_acme_email": "ops@example.com"})


def _servers(text: str) -> list[str]:
    """The top-level server blocks of a rendered site file."""
    blocks, depth, current = [], 0, None
    for line in text.splitlines():
        if depth == 0 and line.startswith("server {"):
            current = []
        if current is not None:
            current.append(line)
        depth += line.count("{") - line.count("}")
        if current is not None and depth == 0:
            blocks.append("\n".join(current))
            current = None
    return blocks


def test_site_acme_with_its_certificate_redirects_http_sends_hsts_and_keeps_the_site_on_loopback():
    text = render(nginx.SITE_CONF, **nginx.site_template_data(ACME, PLAN, LOCAL_MEMBERS, ipv6=False))
    loopback, public, tls = _servers(text)
    # loopback: the whole site over HTTP (keepalived's track script, verification, the gates)
    assert "listen 127.0.0.1:80;" in loopback and "location = /index.php" in loopback
    assert "/instances/app1/status" in loopback and "return 301" not in loopback
    # public port 80: ACME tokens from the webroot, the balancer's /health, a redirect for the rest
    assert "listen 80 default_server" in public
    assert f"root {layout.ACME_WEBROOT};" in public and "location ^~ /.well-known/acme-challenge/" in public
    assert "return 301 https://$host$request_uri;" in public and "fastcgi_pass" not in public
    # 443: certbot's live files, Mozilla intermediate, HSTS, no stapling for a certificate without OCSP
    assert f"ssl_certificate {layout.ACME_LIVE}/fullchain.pem;" in tls
    assert f"ssl_certificate_key {layout.ACME_LIVE}/privkey.pem;" in tls
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in tls and "ssl_session_tickets off;" in tls
    assert 'add_header Strict-Transport-Security "max-age=31536000" always;' in tls
    assert "ssl_stapling" not in tls and "server_name example.com www.example.com;" in tls
    stapled = render(nginx.SITE_CONF, **nginx.site_template_data(ACME, PLAN, LOCAL_MEMBERS, ipv6=False, stapling=True))
    assert "ssl_stapling on;" in stapled and "ssl_stapling_verify on;" in stapled
    no_hsts = load({"tls": "acme", "server_names": ["example.com"], "tls_hsts_max_age_s": 0})
    assert "Strict-Transport-Security" not in render(nginx.SITE_CONF, **nginx.site_template_data(
        no_hsts, PLAN, LOCAL_MEMBERS, ipv6=False))


def test_site_acme_before_its_certificate_is_http_only_with_the_challenge_location():
    text = render(nginx.SITE_CONF, **nginx.site_template_data(ACME, PLAN, LOCAL_MEMBERS, ipv6=False,
                                                              certificate=False))
    (only,) = _servers(text)
    assert "listen 443" not in text and "ssl_certificate" not in text and "return 301" not in text
    assert "location ^~ /.well-known/acme-challenge/" in only and "location = /index.php" in only
    assert f"# HTTP only: {nginx.ACME_HTTP_ONLY}" in text


def test_self_signed_keeps_http_without_redirect_or_hsts():
    text = render(nginx.SITE_CONF, **nginx.site_template_data(load({"tls": "self_signed"}), PLAN, LOCAL_MEMBERS, False))
    (only,) = _servers(text)
    assert "listen 443 ssl" in only and "return 301" not in only and "Strict-Transport-Security" not in only
    assert "acme-challenge" not in text


def test_acme_helper_carries_its_settings_quoted():
    text = render(layout.ACME_HELPER, **nginx.acme_helper_data(load({
        "tls": "acme", "server_names": ["example.com"], "tls_acme_ca_bundle": "/etc/ssl/private ca.pem"})))
    assert "CA_BUNDLE='/etc/ssl/private ca.pem'" in text
    assert "NAMES=(example.com)" in text and "DIRECTORY=https://acme-v02.api.letsencrypt.org/directory" in text
    assert "--deploy-hook \"$0 deployed\"" in text


def test_prometheus_config_and_rules_parse_and_carry_the_settings():
    import yaml
    config = yaml.safe_load(render(monitoring.PROMETHEUS_CONFIG, interval_s=5, rules_file="lbstack-rules.yml",
                                   jobs=MONITORING_JOBS))
    assert config["global"]["scrape_interval"] == "5s" and config["rule_files"] == ["lbstack-rules.yml"]
    fpm = next(j for j in config["scrape_configs"] if j["job_name"] == "lbstack-fpm")
    assert fpm["params"] == {"openmetrics": [""]}
    assert [t["labels"]["__metrics_path__"] for t in fpm["static_configs"]] == [f"/instances/app{i}/status" for i in range(1, 6)]
    settings = load({"monitoring": True, "alert_p95_s": 2.5, "alert_error_rate_pct": 5, "alert_for_s": 30})
    rules = yaml.safe_load(render(monitoring.PROMETHEUS_RULES, **monitoring.rules_data(settings, 5)))
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert {"LbstackInstanceDown", "LbstackFewInstances", "LbstackSlowRequests", "LbstackErrorRate",
            "LbstackMariadbConnections", "LbstackRedisMemory", "LbstackCertificateExpiry", "LbstackDriftFound",
            "LbstackVerificationFailed", "LbstackTargetDown"} == set(alerts)
    assert alerts["LbstackInstanceDown"]["for"] == "30s"
    assert alerts["LbstackSlowRequests"]["expr"].endswith("> 2.5")
    assert alerts["LbstackErrorRate"]["expr"].endswith("> 0.05")
    assert alerts["LbstackFewInstances"]["expr"].endswith("< 4")  # all but one of 5
    assert "{{ $labels.instance }}" in alerts["LbstackInstanceDown"]["annotations"]["summary"]


def test_nginx_conf_is_sized_by_the_plan_and_includes_relative_paths():
    text = render(nginx.NGINX_CONF, **nginx.main_template_data(SETTINGS, PLAN))
    assert f"worker_connections {PLAN.nginx.worker_connections};" in text
    assert PLAN.nginx.worker_connections * PLAN.nginx.worker_processes > 2 * SETTINGS.lb_max_clients
    assert f"worker_rlimit_nofile {PLAN.nginx.worker_rlimit_nofile};" in text
    assert "include conf.d/*.conf;" in text  # the staged copy validates as a whole
    assert "sites-enabled" not in text and '"upstream":"$upstream_addr"' in text


def test_fpm_instance_pool_from_the_plan():
    data = php_fpm.instance_template_data(SETTINGS, PLAN, 3, layout.fpm_socket(3))
    text = render(f"{layout.FPM_CONFIG_DIR}/app.conf", **data)
    assert "[app3]" in text and "listen = /run/lbstack/app3/fpm.sock" in text
    assert "pm = static" in text and f"pm.max_children = {PLAN.php_fpm.max_children}" in text
    assert "pm.status_path = /fpm-status" in text and "ping.path = /fpm-ping" in text
    assert "env[LBSTACK_INSTANCE] = app3" in text and "slowlog = /var/log/lbstack/app3/slow.log" in text
    # the master is the app user (the unit's User=): no pool user, the socket's group is nginx's
    assert "\nuser =" not in text and "\ngroup =" not in text and "listen.owner" not in text
    assert "\nlisten.group = www-data\nlisten.mode = 0660\n" in text
    assert "\nlisten.backlog" not in text  # 511 failed 99.6 % of requests (performance-facts)
    tcp = render(f"{layout.FPM_CONFIG_DIR}/app.conf", **php_fpm.instance_template_data(SETTINGS, PLAN, 2, "0.0.0.0:9002"))
    assert "listen = 0.0.0.0:9002" in tcp and "listen.owner" not in tcp


def test_fpm_unit_carries_the_instance_limits():
    text = render(php_fpm.UNIT_FILE, **php_fpm.unit_template_data(SETTINGS, PLAN))
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read_string(text)
    lim = PLAN.php_fpm.instance_limits
    service = unit["Service"]
    assert service["Slice"] == "lbstack-app.slice"
    assert (service["CPUQuota"], service["MemoryMax"], service["TasksMax"]) == (
        f"{lim.cpu_quota_pct}%", f"{lim.memory_max_mib}M", str(lim.tasks_max))
    assert service["Restart"] == "always" and "--fpm-config /etc/lbstack/fpm/app%i.conf" in service["ExecStart"]


def _unit(text: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read_string(text)
    return unit


def test_queue_worker_unit_runs_queue_work_in_the_release_in_service_and_stops_after_its_job():
    plan = make_plan(8, 16384, load({"queue_names": ["high", "default"], "queue_timeout_s": 120}))
    settings = load({"queue_names": ["high", "default"], "queue_timeout_s": 120})
    service = _unit(render(queue.WORKER_UNIT_FILE, **queue.worker_template_data(settings, plan)))["Service"]
    assert service["Slice"] == "lbstack-queue.slice" and service["User"] == service["Group"] == "lbstack"
    assert service["WorkingDirectory"] == layout.CURRENT
    argv = service["ExecStart"].split()
    assert argv[:4] == ["/usr/bin/php8.2", "artisan", "queue:work", "redis"]
    assert {"--queue=high,default", "--tries=3", "--timeout=120", "--max-time=3600",
            f"--memory={plan.queue.worker_memory_mib}"} <= set(argv)
    # SIGTERM lets the running job finish; systemd waits longer than the longest job
    assert service["KillSignal"] == "SIGTERM" and int(service["TimeoutStopSec"]) == 150 > 120
    assert service["Restart"] == "always"


def test_scheduler_runs_schedule_run_every_minute_as_the_app_user():
    data = queue.schedule_template_data(SETTINGS, PLAN)
    service = _unit(render(queue.SCHEDULE_SERVICE_FILE, **data))["Service"]
    assert service["Type"] == "oneshot" and service["User"] == "lbstack" and service["Slice"] == "lbstack-queue.slice"
    assert service["ExecStart"].split()[1:3] == ["artisan", "schedule:run"]
    timer = _unit(render(queue.SCHEDULE_TIMER_FILE, **data))["Timer"]
    assert timer["OnCalendar"] == "*-*-* *:*:00" and timer["Unit"] == layout.SCHEDULE_SERVICE


def test_env_names_the_queue_connection_and_a_retry_after_longer_than_any_job():
    text = render(layout.ENV_FILE, **app.env_template_data(load({"queue_timeout_s": 200}), "localhost", "127.0.0.1"))
    assert "\nQUEUE_CONNECTION=redis\n" in text and "\nQUEUE_RETRY_AFTER=230\n" in text


def test_mariadb_config_from_the_plan():
    text = render(mariadb.CONFIG, **mariadb.config_template_data(PLAN, ["localhost"]))
    assert "bind-address = 127.0.0.1" in text
    assert f"max_connections = {PLAN.mariadb.max_connections}" in text
    assert f"innodb_buffer_pool_size = {PLAN.mariadb.buffer_pool_mib}M" in text
    assert "slow_query_log = ON" in text
    remote = render(mariadb.CONFIG, **mariadb.config_template_data(PLAN, ["10.0.0.5"]))
    assert "bind-address = 0.0.0.0" in remote  # the inventory gives no private address
    private = render(mariadb.CONFIG, **mariadb.config_template_data(PLAN, ["10.0.0.5"], "10.0.0.3"))
    assert "bind-address = 127.0.0.1,10.0.0.3" in private


def test_redis_listens_on_the_private_address_for_remote_app_hosts():
    assert redis.config_template_data(PLAN, remote_clients=False, own="10.0.0.4")["bind"] == "127.0.0.1 -::1"
    text = render(redis.CONFIG, **redis.config_template_data(PLAN, remote_clients=True, own="10.0.0.4"))
    assert "\nbind 127.0.0.1 -::1 10.0.0.4\n" in text


def test_redis_config_holds_no_secret_and_never_evicts():
    monitored = render(redis.CONFIG, **redis.config_template_data(PLAN, remote_clients=False, monitoring=True))
    assert f"user {layout.REDIS_MONITOR_USER} on nopass resetchannels {layout.REDIS_MONITOR_ACL}" in monitored
    text = render(redis.CONFIG, **redis.config_template_data(PLAN, remote_clients=False))
    assert layout.REDIS_MONITOR_USER not in text
    assert f"maxmemory {PLAN.redis.maxmemory_mib}mb" in text and "maxmemory-policy noeviction" in text
    assert "user default on #@@sha256:redis_password@@ ~* &* +@all -@dangerous +flushdb\n" in text
    assert "user lbstack-admin on #@@sha256:redis_admin_password@@ resetchannels -@all +ping +info " in text
    assert [line.split()[1] for line in text.splitlines() if line.startswith("user ")] == ["default", "lbstack-admin"]
    assert "requirepass" not in text and "enable-protected-configs no" in text and "enable-debug-command no" in text
    assert "bind 127.0.0.1 -::1" in text and "appendonly yes" in text


def test_env_holds_placeholders_not_secrets():
    text = render(layout.ENV_FILE, **app.env_template_data(SETTINGS, "localhost", "127.0.0.1"))
    for name in layout.SECRETS:  # all but lbstack's own Redis admin password, which the app never gets
        assert (f"@@secret:{name}@@" in text) == (name != "redis_admin_password"), name
    assert "DB_HOST=localhost" in text and "SESSION_DRIVER=redis" in text


def test_firewall_opens_only_ssh_and_web_on_a_single_host():
    text = render(firewall.CONFIG, **firewall.template_data(SETTINGS, PLAN, [22, 2222], []))
    assert "policy drop;" in text and "tcp dport { 22, 2222 } accept" in text and "tcp dport { 80, 443 } accept" in text
    assert "saddr" not in text and "flush ruleset" not in text
    rules = [{"what": "MariaDB from the app hosts", "ports": [3306], "sources": ["10.0.0.2", "10.0.0.3"]},
             {"what": "PHP-FPM from the load balancers", "ports": [9001, 9002], "sources": ["10.0.0.9"]}]
    split = render(firewall.CONFIG, **firewall.template_data(SETTINGS, PLAN, [22], rules))
    assert 'ip saddr { 10.0.0.2, 10.0.0.3 } tcp dport { 3306 } accept comment "MariaDB from the app hosts"' in split
    assert 'ip saddr { 10.0.0.9 } tcp dport { 9001, 9002 } accept comment "PHP-FPM from the load balancers"' in split
    assert "6379" not in split
    data_host = render(firewall.CONFIG, **firewall.template_data(SETTINGS, dataclasses.replace(PLAN, components=("db",)),
                                                                 [22], rules[:1]))
    assert "80, 443" not in data_host and "tcp dport { 22 } accept" in data_host  # no web port off the balancers


def test_fpm_pool_sends_php_errors_to_the_journal_not_through_the_master():
    # catch_workers_output pipes the per-request flush marker to the master (a wake-up per request)
    text = render(f"{layout.FPM_CONFIG_DIR}/app.conf", **php_fpm.instance_template_data(SETTINGS, PLAN, 4, layout.fpm_socket(4)))
    assert "catch_workers_output = no" in text and "catch_workers_output = yes" not in text
    assert "php_admin_value[error_log] = syslog" in text and "php_admin_value[syslog.ident] = lbstack-app4" in text


def test_fpm_unit_names_the_instance_for_the_preload_script():
    text = render(php_fpm.UNIT_FILE, **php_fpm.unit_template_data(SETTINGS, PLAN))
    assert "Environment=LBSTACK_INSTANCE=app%i" in text
    assert "\nCPUSchedulingPolicy=batch\n" in text


def test_php_ini_preloads_as_the_app_user_unless_turned_off():
    text = render("/etc/php/fpm/conf.d/90-lbstack.ini", **php_fpm.ini_template_data(SETTINGS, PLAN))
    assert f"opcache.preload = {layout.PRELOAD_SCRIPT}" in text
    assert f"opcache.preload_user = {SETTINGS.app_user}" in text
    off = render("/etc/php/fpm/conf.d/90-lbstack.ini", **php_fpm.ini_template_data(load({"php_preload": []}), PLAN))
    assert "opcache.preload" not in off.replace("; OPcache preloading", "")
    assert "opcache.validate_timestamps = 0" in off


def test_preload_script_compiles_the_configured_dirs_of_the_instance_release():
    text = render(layout.PRELOAD_SCRIPT, **php_fpm.preload_template_data(
        load({"php_preload": ["app", "vendor/laravel/framework/src"]})))
    assert text.startswith("<?php")
    assert "foreach (['app', 'vendor/laravel/framework/src'] as $lbstackDir)" in text
    assert f"realpath('{layout.INSTANCES_DIR}/' . $lbstackInstance)" in text
    assert "getenv('LBSTACK_PRELOAD_ROOT')" in text and "getenv('LBSTACK_INSTANCE')" in text
    assert "opcache_compile_file($lbstackFile)" in text and "catch (Throwable $e)" in text


@pytest.mark.parametrize("cpus, line", [("3", "CPUAffinity=3"), ("0-1", "CPUAffinity=0-1"), ("", "CPUAffinity=")])
def test_fpm_cpu_dropin_pins_or_resets(cpus, line):
    text = render(f"/etc/systemd/system/{layout.FPM_UNIT}.d/lbstack-cpu.conf", unit=layout.fpm_unit(2), cpus=cpus,
                  why="app_cpu_pinning is off")
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read_string(text)
    assert f"CPUAffinity={unit['Service']['CPUAffinity']}" == line
    assert ("Not pinned: app_cpu_pinning is off." in text) == (cpus == "")


def test_nginx_and_redis_dropins_run_them_as_batch_tasks():
    assert services.SCHED_POLICY == "batch"
    for service in ("nginx.service", "redis-server.service"):
        text = render("/etc/systemd/system/component.service.d/lbstack.conf",
                      **services.dropin_data(service, "lbstack-lb.slice", CPUSchedulingPolicy=services.SCHED_POLICY))
        assert "\nCPUSchedulingPolicy=batch\n" in text


# -- every template, from the data its deploy module passes ----------------------------------------

# target -> the data the deploy renders it with (one-VPS shape, default settings, the 8 vCPU / 16 GB
# plan); tests/e2e/test_install.py runs this against an installed lbstack (templates as package data)
EXAMPLES = {
    "/etc/systemd/system/lbstack.slice": lambda: {},
    "/etc/systemd/system/lbstack-component.slice": lambda: limits.slice_template_data(PLAN, "app"),
    base.SYSCTL_FILE: lambda: base.sysctl_template_data(SETTINGS, PLAN),
    base.TIMESYNCD_DROPIN: lambda: {"ntp_servers": ["ntp.example.net"]},
    "/etc/systemd/system/component.service.d/lbstack.conf": lambda: services.dropin_data(
        "nginx.service", "lbstack-lb.slice", LimitNOFILE=PLAN.nginx.worker_rlimit_nofile),
    layout.NGINX_CONF: lambda: nginx.main_template_data(SETTINGS, PLAN),
    layout.SITE_CONF: lambda: nginx.site_template_data(SETTINGS, PLAN, LOCAL_MEMBERS, ipv6=True),
    f"{layout.FPM_CONFIG_DIR}/app.conf": lambda: php_fpm.instance_template_data(SETTINGS, PLAN, 1, layout.fpm_socket(1)),
    php_fpm.UNIT_FILE: lambda: php_fpm.unit_template_data(SETTINGS, PLAN),
    f"/etc/systemd/system/{layout.FPM_UNIT}.d/lbstack-cpu.conf": lambda: {
        "unit": layout.fpm_unit(1), "cpus": PLAN.php_fpm.instance_cpus[0], "why": PLAN.php_fpm.pinning_note},
    "/etc/php/fpm/conf.d/90-lbstack.ini": lambda: php_fpm.ini_template_data(SETTINGS, PLAN),
    layout.PRELOAD_SCRIPT: lambda: php_fpm.preload_template_data(SETTINGS),
    layout.PHP_SETTINGS_PROBE: lambda: {},
    layout.FRONT_CONTROLLER: lambda: {"instances_dir": layout.INSTANCES_DIR,
                                      "retry_after_s": layout.MAINTENANCE_RETRY_AFTER_S},
    layout.ENV_FILE: lambda: app.env_template_data(SETTINGS, "localhost", layout.REDIS_SOCKET),
    layout.MARIADB_CONFIG: lambda: mariadb.config_template_data(PLAN, ["localhost"]),
    layout.REDIS_CONFIG: lambda: redis.config_template_data(PLAN, remote_clients=False),
    layout.FIREWALL_CONFIG: lambda: firewall.template_data(SETTINGS, PLAN, [22], []),
    layout.KEEPALIVED_CONFIG: lambda: keepalived.template_data(
        load({"lb_floating_address": "10.0.0.10"}), "lb1", "eth1", 24, "10.0.0.11", ["10.0.0.12"], 150),
    layout.BACKUP_HELPER: lambda: mariadb.backup_helper_data(SETTINGS),
    secrets.HELPER: lambda: {"store": layout.SECRETS_DIR},
    layout.INSTANCE_HELPER: lambda: hostscripts.instance_template_data(),
    layout.MAINTENANCE_HELPER: lambda: hostscripts.maintenance_template_data(),
    layout.ACME_HELPER: lambda: nginx.acme_helper_data(ACME),
    **{f"/etc/default/{package}": (lambda name=name: monitoring.defaults_data(name, MONITORED)) for name, package in (
        ("node", "prometheus-node-exporter"), ("nginx", "prometheus-nginx-exporter"),
        ("mysqld", "prometheus-mysqld-exporter"), ("redis", "prometheus-redis-exporter"), ("prometheus", "prometheus"))},
    monitoring.PROMETHEUS_CONFIG: lambda: {"interval_s": 15, "rules_file": "lbstack-rules.yml", "jobs": MONITORING_JOBS},
    monitoring.PROMETHEUS_RULES: lambda: monitoring.rules_data(MONITORED, 5),
    monitoring.METRICS_HELPER: lambda: monitoring.metrics_helper_data(MONITORED, MONITORED_PLAN),
    f"{monitoring.UNIT_DIR}/{monitoring.METRICS_SERVICE}": lambda: monitoring.timer_data(MONITORED, MONITORED_PLAN),
    f"{monitoring.UNIT_DIR}/{monitoring.METRICS_TIMER}": lambda: monitoring.timer_data(MONITORED, MONITORED_PLAN),
    f"{nginx.UNIT_DIR}/{layout.ACME_RENEW_SERVICE}": lambda: {
        "helper": layout.ACME_HELPER, "service": layout.ACME_RENEW_SERVICE, "slice": PLAN.slices["lb"]},
    f"{nginx.UNIT_DIR}/{layout.ACME_RENEW_TIMER}": lambda: {
        "helper": layout.ACME_HELPER, "service": layout.ACME_RENEW_SERVICE, "slice": PLAN.slices["lb"]},
    queue.WORKER_UNIT_FILE: lambda: queue.worker_template_data(SETTINGS, PLAN),
    queue.SCHEDULE_SERVICE_FILE: lambda: queue.schedule_template_data(SETTINGS, PLAN),
    queue.SCHEDULE_TIMER_FILE: lambda: queue.schedule_template_data(SETTINGS, PLAN),
    hardening.SSHD_DROPIN: hardening.sshd_template_data,
    hardening.FAIL2BAN_JAIL: lambda: hardening.fail2ban_template_data(SETTINGS, [22]),
    hardening.APT_CONF: lambda: hardening.apt_template_data(SETTINGS),
    hardening.MODPROBE_CONF: lambda: {"modules": list(hardening.BLOCKED_MODULES)},
    hardening.CORE_LIMITS: lambda: {},
    "/etc/issue": lambda: {},
    "/etc/issue.net": lambda: {},
}


def test_every_template_has_an_example():
    """A new template gets its deploy data here (so the install test renders it too)."""
    assert sorted(EXAMPLES) == rendering.targets()


@pytest.mark.parametrize("target", sorted(EXAMPLES))
def test_no_template_data_key_is_taken_by_files_template(target):
    """files.template takes these itself (the owner, the mode ...): a template variable of that name
    never reaches the template on the host."""
    assert not set(EXAMPLES[target]()) & {"src", "dest", "user", "group", "mode", "create_remote_dir"}


@pytest.mark.parametrize("target", sorted(EXAMPLES))
def test_every_template_renders_with_no_undefined_name(target):
    text = rendering.render(target, **EXAMPLES[target]())
    assert text.strip()
    # Prometheus' own alert templates ({{ $value }}, {{ $labels.x }}) are meant to stay
    text = re.sub(r"\{\{ \$[^}]*\}\}", "", text) if target == monitoring.PROMETHEUS_RULES else text
    assert "{{" not in text and "{%" not in text


def _directives(text: str) -> list[tuple[str, str]]:
    """[Service] key=value lines in order, repeated keys kept (configparser would merge them)."""
    lines = text.split("[Service]", 1)[1].split("\n[", 1)[0].splitlines()
    return [tuple(line.split("=", 1)) for line in lines if "=" in line and not line.startswith("#")]


def test_every_app_unit_runs_as_the_app_user_without_capabilities_in_a_read_only_system():
    units = {
        "fpm": render(php_fpm.UNIT_FILE, **php_fpm.unit_template_data(SETTINGS, PLAN)),
        "queue": render(queue.WORKER_UNIT_FILE, **queue.worker_template_data(SETTINGS, PLAN)),
        "schedule": render(queue.SCHEDULE_SERVICE_FILE, **queue.schedule_template_data(SETTINGS, PLAN)),
    }
    for name, text in units.items():
        rows = _directives(text)
        got = dict(rows)
        assert (got["User"], got["Group"]) == (SETTINGS.app_user, SETTINGS.app_user), name
        assert got["CapabilityBoundingSet"] == "" and got["AmbientCapabilities"] == "", name
        assert got["NoNewPrivileges"] == "yes" and got["ProtectSystem"] == "strict" and got["ProtectHome"] == "yes"
        assert got["ReadWritePaths"].split()[0] == f"{layout.SHARED_DIR}/storage", name
        assert got["RestrictAddressFamilies"] == "AF_UNIX AF_INET AF_INET6" and got["UMask"] == "0027"
        filters = [v for k, v in rows if k == "SystemCallFilter"]
        assert filters[:2] == ["@system-service", "~@privileged @resources"], name
        assert ("@chown" in filters) == (name == "fpm"), name  # the socket given to www-data
    fpm = dict(_directives(units["fpm"]))
    assert fpm["SupplementaryGroups"] == "www-data" and fpm["LogsDirectory"] == "lbstack/app%i"


def test_nginx_and_mariadb_dropins_keep_only_the_capabilities_they_need():
    def dropin(service, rows):
        return dict(_directives(render("/etc/systemd/system/component.service.d/lbstack.conf",
                                       **services.dropin_data(service, "s.slice", sandbox=rows))))
    nginx_ = dropin("nginx.service", sandbox.nginx())
    assert set(nginx_["CapabilityBoundingSet"].split()) == {
        "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_DAC_OVERRIDE"}
    assert nginx_["ProtectSystem"] == "strict" and "/var/log/nginx" in nginx_["ReadWritePaths"]
    db = dropin("mariadb.service", sandbox.mariadb())
    assert db["CapabilityBoundingSet"] == "CAP_IPC_LOCK" and db["ReadWritePaths"].startswith("/var/lib/mysql ")
    assert "sandbox" not in render("/etc/systemd/system/component.service.d/lbstack.conf",
                                   **services.dropin_data("redis-server.service", "s.slice"))  # Debian's own


def test_the_units_checked_for_exposure_follow_the_plan():
    limits = sandbox.sandboxed_units(PLAN)
    assert limits["nginx.service"] == 3.0 and limits["mariadb.service"] == 4.0
    assert [u for u in limits if u.startswith("lbstack-fpm@")] == [f"lbstack-fpm@{i}.service" for i in
                                                                    range(1, PLAN.instances + 1)]
    assert "redis-server.service" not in limits
    rows = checks.check_exposure({"nginx.service": 3.0, "mariadb.service": 4.0},
                                 {"nginx.service": 9.6, "mariadb.service": 1.6})
    assert [(r.component, r.ok) for r in rows] == [("lb", False), ("db", True)]
    assert not checks.check_exposure({"lbstack-fpm@1.service": 3.0}, {})[0].ok


def test_keepalived_shares_the_floating_address_by_unicast_vrrp_tracking_nginx():
    text = render(layout.KEEPALIVED_CONFIG, **keepalived.template_data(
        load({"lb_floating_address": "10.0.0.10", "lb_vrrp_router_id": 60}), "lb1", "eth1", 24, "10.0.0.11",
        ["10.0.0.12", "10.0.0.13"], 140))
    assert "unicast_src_ip 10.0.0.11" in text and "        10.0.0.12\n        10.0.0.13\n" in text
    assert "10.0.0.10/24 dev eth1" in text and "virtual_router_id 60" in text and "priority 140" in text
    assert "nopreempt" in text and "state BACKUP" in text  # no second move when a balancer returns
    assert 'script "/usr/bin/curl -fsS -o /dev/null --max-time 1 http://127.0.0.1/health"' in text
    vrrp = render(firewall.CONFIG, **firewall.template_data(SETTINGS, PLAN, [22], [], ["10.0.0.12"]))
    assert 'ip saddr { 10.0.0.12 } ip protocol 112 accept' in vrrp  # VRRP (minbase has no /etc/protocols)
