"""End to end: the whole stack on a converged nspawn rehearsal host, checked from outside it
(this machine, over the host's veth, through its firewall) and from inside it.

The host is the session's ``converged`` nspawn host (converged once from bare); tests that change
it (LB method, broken templates, a stopped instance) put it back before they end.
"""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest
from e2e_helpers import (
    REHEARSAL_SETTINGS,
    changed_ops,
    http,
    lbstack,
    pyinfra,
    rehearsal_plan,
    remote,
    served_by,
)

from lbstack import REPO_ROOT
from lbstack.layout import SECRETS

INSTANCES = [f"app{i}" for i in range(1, 6)]
# the app's Redis cache (REDIS_CACHE_DB 1): Laravel prefixes every key with the connection's and
# the store's prefix (sample-app/config/database.php, cache.php)
CACHE_KEY_PREFIX = "lbstack_database_lbstack_cache:"


@pytest.fixture(scope="module")
def stack(converged_nspawn):
    """The converged nspawn host (the VM's converge and verification are in test_converge)."""
    _, info, first = converged_nspawn
    assert first["rc"] == 0, first["stderr"][-4000:]
    return info, first, f"http://{info.address}"


def test_instances_run_in_the_app_slice_with_their_planned_limits(stack):
    info, _, _ = stack
    plan = rehearsal_plan()
    limits = plan.php_fpm.instance_limits
    for index in range(1, 6):
        unit = f"lbstack-fpm@{index}.service"
        rc, out, err = remote(info, f"systemctl is-active {unit}; systemctl show -P ControlGroup {unit}")
        state, cgroup = out.split()
        assert state == "active", (unit, out, err)
        assert cgroup == f"/lbstack.slice/lbstack-app.slice/{unit}"
        rc, out, _ = remote(info, f"cat /sys/fs/cgroup/memory{cgroup}/memory.limit_in_bytes "
                                  f"/sys/fs/cgroup/pids{cgroup}/pids.max /sys/fs/cgroup/cpu{cgroup}/cpu.cfs_quota_us")
        memory, pids, quota = out.split()
        assert int(memory) == limits.memory_max_mib * 1024 * 1024
        assert int(pids) == limits.tasks_max
        assert int(quota) == limits.cpu_quota_us
        # a static pool of the planned size, answering on its own socket
        rc, out, _ = remote(info, "SCRIPT_NAME=/fpm-status SCRIPT_FILENAME=/fpm-status QUERY_STRING=json "
                                  f"REQUEST_METHOD=GET cgi-fcgi -bind -connect /run/lbstack/app{index}/fpm.sock")
        assert f'"pool":"app{index}"' in out and '"process manager":"static"' in out
        assert f'"total processes":{plan.php_fpm.max_children}' in out


def test_upstream_is_the_five_instances(stack):
    info, _, _ = stack
    rc, out, _ = remote(info, "nginx -T 2>/dev/null | sed -n '/upstream lbstack_app/,/}/p'")
    servers = [line.split()[1] for line in out.splitlines() if line.strip().startswith("server ")]
    assert servers == [f"unix:/run/lbstack/app{i}/fpm.sock" for i in range(1, 6)]
    assert "least_conn;" in out


def test_health_endpoints_answer_200_from_outside(stack):
    _, _, base = stack
    paths = ["/health", "/app-health", "/api/ujian/health"] + [f"/instances/{i}/health" for i in INSTANCES]
    for path in paths:
        status, headers, body = http(base + path)
        assert status == 200, (path, status, body[:200])
    for name in INSTANCES:
        _, headers, _ = http(f"{base}/instances/{name}/health")
        assert headers["x-lbstack-instance"] == name
    # static files come from nginx, not PHP (no instance header)
    status, headers, _ = http(base + "/assets/app.css")
    assert status == 200 and "x-lbstack-instance" not in headers
    # stub_status is for the host itself only
    assert http(base + "/nginx-status")[0] == 403
    rc, out, _ = remote(stack[0], "curl -s http://127.0.0.1/nginx-status")
    assert "Active connections" in out


def test_hundred_requests_reach_all_five_instances(stack):
    _, _, base = stack
    seen = served_by(base, "/api/ujian/health", 100)
    assert sorted(set(seen)) == INSTANCES, seen
    assert min(seen.count(i) for i in INSTANCES) >= 10


def test_session_made_on_one_instance_is_read_on_another(stack):
    _, _, base = stack
    status, headers, body = http(base + "/api/session")
    assert status == 200
    cookie = headers["set-cookie"].split(";")[0]
    first = headers["x-lbstack-instance"]
    counts, instances = [1], {first}
    for _ in range(8):
        status, headers, body = http(base + "/api/session", {"Cookie": cookie})
        counts.append(int(body.decode().split('"count":')[1].split(",")[0].rstrip("}")))
        instances.add(headers["x-lbstack-instance"])
    assert counts == list(range(1, 10)), counts  # one session, whichever instance answered
    assert len(instances) >= 2, instances


def test_random_question_is_served_from_the_cache_after_its_first_hit(stack):
    info, _, base = stack
    question = 500 + uuid.uuid4().int % 400
    remote(info, "sed -n 's/^REDIS_PASSWORD=//p' /srv/lbstack/app/shared/.env > /root/.rp; "
                 f"REDISCLI_AUTH=$(cat /root/.rp) redis-cli --no-auth-warning -n 1 DEL {CACHE_KEY_PREFIX}question:{question}; "
                 "rm -f /root/.rp")
    sources = []
    for _ in range(3):
        status, _, body = http(f"{base}/api/questions/random?id={question}")
        assert status == 200
        sources.append('"source":"cache"' in body.decode())
    assert sources == [False, True, True]


def test_secrets_appear_nowhere_but_the_store_and_env(stack):
    info, first, _ = stack
    rc, out, err = remote(info, "for f in /etc/lbstack/secrets/*; do printf '%s\\n' \"$(cat \"$f\")\"; done")
    values = [v for v in out.splitlines() if v]
    assert len(values) == len(SECRETS) and all(len(v) >= 32 for v in values), "secret store incomplete"
    # the converge's whole output and its --json, plus a no-op run's, as pyinfra printed them
    again = pyinfra(info.name)
    for run in (first, again):
        for value in values:
            assert value not in run["stderr"] and value not in run["stdout"], "a secret is in pyinfra's output"
    # every file on the host, binary or not (journal, databases, logs, caches, /tmp, /run)
    patterns = "".join(f" -e {v!r}" for v in values)
    rc, out, err = remote(info, f"grep -rlF -D skip {patterns} / --exclude-dir=proc --exclude-dir=sys "
                                "--exclude-dir=dev 2>/dev/null; true", timeout=600)
    found = sorted(set(out.split()))
    allowed = {f"/etc/lbstack/secrets/{name}" for name in SECRETS} | {"/srv/lbstack/app/shared/.env"}
    # Laravel's config:cache writes the values into each release's bootstrap/cache/config.php
    config_caches = {f for f in found if re.fullmatch(r"/srv/lbstack/app/releases/[^/]+/bootstrap/cache/config\.php", f)}
    assert set(found) - config_caches <= allowed, found
    assert "/srv/lbstack/app/shared/.env" in found and config_caches  # the grep can find them
    rc, out, _ = remote(info, "stat -c '%U %G %a' " + " ".join(sorted(config_caches)))
    assert set(out.split("\n")) - {""} == {"lbstack lbstack 600"}, out  # the app user's alone
    rc, out, _ = remote(info, "stat -c '%U %G %a' /etc/lbstack/secrets /etc/lbstack/secrets/* /srv/lbstack/app/shared/.env")
    modes = out.splitlines()
    assert modes[0] == "root root 700" and all(m == "root root 600" for m in modes[1:-1]), modes
    assert modes[-1] == "lbstack lbstack 640"


def _probe(netns: str, address: str, port: int) -> str:
    """From ``netns``: 'open' (connected), 'refused' (reached the host, nothing listening) or
    'filtered' (no answer: dropped)."""
    code = (
        "import socket,sys\n"
        "s=socket.socket(); s.settimeout(2)\n"
        f"try:\n s.connect(({address!r},{port})); print('open')\n"
        "except ConnectionRefusedError: print('refused')\n"
        "except OSError: print('filtered')\n"
    )
    out = subprocess.run(["ip", "netns", "exec", netns, "python3", "-c", code], capture_output=True, text=True,
                         timeout=30, check=True)
    return out.stdout.strip()


def _container_leader(info) -> int:
    children = Path(f"/proc/{info.pid}/task/{info.pid}/children").read_text().split()
    return int(children[0])


def test_only_ssh_and_web_ports_answer_from_a_second_network_namespace(stack):
    """A second test host: a network namespace of its own, wired to the stack host by a veth pair
    (a second interface inside the host). Listeners on every interface for the ports that must be
    closed prove it is the firewall, not the bind address, that keeps them out."""
    info, _, _ = stack
    tag = f"{os.getpid() % 100000}"
    netns, outside, inside = f"lbsfw{tag}", f"lbsfo{tag}", f"lbsfi{tag}"
    leader = _container_leader(info)
    subnet = f"10.214.{os.getpid() % 250}"
    listeners = "; ".join(
        f"systemd-run --unit lbstack-test-listen-{port} php -S 0.0.0.0:{port} -t /tmp >/dev/null 2>&1"
        for port in (3307, 6380, 9001)
    )
    try:
        for cmd in (
            ["ip", "netns", "add", netns],
            ["ip", "link", "add", outside, "type", "veth", "peer", "name", inside],
            ["ip", "link", "set", outside, "netns", netns],
            ["ip", "link", "set", inside, "netns", str(leader)],
            ["ip", "-n", netns, "addr", "add", f"{subnet}.1/24", "dev", outside],
            ["ip", "-n", netns, "link", "set", outside, "up"],
            ["ip", "-n", netns, "link", "set", "lo", "up"],
            ["nsenter", "-t", str(leader), "-n", "ip", "addr", "add", f"{subnet}.2/24", "dev", inside],
            ["nsenter", "-t", str(leader), "-n", "ip", "link", "set", inside, "up"],
        ):
            subprocess.run(cmd, check=True, capture_output=True)
        remote(info, listeners)
        rc, out, _ = remote(info, "sleep 1; curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:3307/")
        assert out == "404", "the test listener is not up inside the host"
        address = f"{subnet}.2"
        seen = {port: _probe(netns, address, port) for port in (22, 80, 443, 3306, 6379, 3307, 6380, 9001)}
        assert seen[22] == "open" and seen[80] == "open", seen
        assert seen[443] in ("open", "refused"), seen  # TLS is off: allowed through, nothing listening
        assert all(seen[p] == "filtered" for p in (3306, 6379, 3307, 6380, 9001)), seen
    finally:
        remote(info, "; ".join(f"systemctl stop lbstack-test-listen-{p} 2>/dev/null" for p in (3307, 6380, 9001))
               + "; true")
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        subprocess.run(["nsenter", "-t", str(leader), "-n", "ip", "link", "del", inside], capture_output=True)


@pytest.mark.parametrize("method", ["ip_hash", "round_robin"])
def test_each_lb_method_converges_and_behaves(stack, method):
    info, _, base = stack
    try:
        run = pyinfra(info.name, settings={**REHEARSAL_SETTINGS, "lb_method": method})
        assert run["rc"] == 0, run["stderr"][-4000:]
        rc, out, _ = remote(info, "nginx -T 2>/dev/null | sed -n '/upstream lbstack_app/,/}/p'")
        assert ("ip_hash;" in out) == (method == "ip_hash") and "least_conn" not in out
        seen = served_by(base, "/api/ujian/health", 25)
        if method == "ip_hash":
            assert len(set(seen)) == 1, seen  # one client address, one instance
            sticky = lbstack(info.name, "test", "inventories/rehearsal.py", "--sticky", "-n", "40", "--json",
                             settings={**REHEARSAL_SETTINGS, "lb_method": method})
            assert sticky["rc"] == 0, sticky["stdout"] + sticky["stderr"]
            spread = sticky["json"]["results"][0]["instances"]
            assert sorted(spread.values()) == [0, 0, 0, 0, 40], spread
        else:
            assert sorted(set(seen)) == INSTANCES and all(seen.count(i) == 5 for i in INSTANCES), seen
    finally:
        back = pyinfra(info.name)
        assert back["rc"] == 0, back["stderr"][-4000:]
    seen = served_by(base, "/api/ujian/health", 25)
    assert sorted(set(seen)) == INSTANCES  # least_conn again: spread


def _broken_copy(tmp_path: Path, template: str, breakage: str) -> Path:
    """A copy of the repo's code whose ``template`` has ``breakage`` appended (test-only)."""
    copy = tmp_path / "repo"
    shutil.copytree(REPO_ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info"))
    target = copy / "templates" / template
    target.write_text(target.read_text() + breakage)
    return copy


def _sha(info, path: str) -> str:
    rc, out, _ = remote(info, f"sha256sum {path}")
    return out.split()[0]


@pytest.mark.parametrize("template, live, message", [
    ("etc/nginx/conf.d/lbstack.conf.j2", "/etc/nginx/conf.d/lbstack.conf", "unknown directive"),
    ("etc/lbstack/fpm/app.conf.j2", "/etc/lbstack/fpm/app1.conf", "ERROR"),
])
def test_broken_template_fails_the_run_and_the_site_keeps_serving(stack, tmp_path, template, live, message):
    info, _, base = stack
    before = _sha(info, live)
    copy = _broken_copy(tmp_path, template, "\nthis_is_not_a_directive on;\n")
    run = pyinfra(info.name, env={"PYTHONPATH": str(copy)}, cwd=copy)
    assert run["rc"] != 0
    assert message in run["stderr"], run["stderr"][-3000:]
    validate = run["stderr"].split("Starting operation: ")
    failed_step = [step for step in validate if "Validate" in step and "Error" in step]
    assert failed_step and message in failed_step[0], run["stderr"][-3000:]
    assert _sha(info, live) == before  # the live file was never replaced
    for path in ("/health", "/api/ujian/health"):
        assert http(base + path)[0] == 200
    assert sorted(set(served_by(base, "/api/ujian/health", 30))) == INSTANCES
    fixed = pyinfra(info.name)
    assert fixed["rc"] == 0, fixed["stderr"][-3000:]


def test_stopped_instance_fails_verification_naming_it(stack):
    info, _, base = stack
    remote(info, "systemctl stop lbstack-fpm@3.service")
    try:
        run = pyinfra(info.name, "deploy/verify.py")
        assert run["rc"] != 0
        assert "lbstack-fpm@3.service state" in run["stderr"], run["stderr"][-3000:]
        assert "app3 pool status" in run["stderr"]
        failing = [line for line in run["stderr"].splitlines() if "FAIL" in line]
        assert any("reached every instance" in line and "4 (" in line for line in failing), failing
        failing = [line for line in failing if "reached every instance" not in line]  # it lists the others
        others = [n for n in ("app1", "app2", "app4", "app5", "fpm@1", "fpm@2", "fpm@4", "fpm@5")
                  if any(n in line for line in failing)]
        assert failing and not others, failing  # only the stopped instance is blamed
        # meanwhile the balancer routes around it
        assert sorted(set(served_by(base, "/api/ujian/health", 20))) == [i for i in INSTANCES if i != "app3"]
    finally:
        fixed = pyinfra(info.name)
    assert fixed["rc"] == 0, fixed["stderr"][-3000:]
    assert http(base + "/instances/app3/health")[0] == 200


def test_self_signed_tls_serves_https(stack):
    info, _, base = stack

    try:
        run = pyinfra(info.name, settings={**REHEARSAL_SETTINGS, "tls": "self_signed"})
        assert run["rc"] == 0, run["stderr"][-4000:]
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with urllib.request.urlopen(f"https://{info.address}/api/ujian/health", context=context, timeout=10) as r:
            assert r.status == 200 and r.headers["X-Lbstack-Instance"] in INSTANCES
        rc, out, _ = remote(info, "stat -c '%U %a' /etc/lbstack/tls/self-signed.key")
        assert out.strip() == "root 600"
    finally:
        back = pyinfra(info.name)
        assert back["rc"] == 0, back["stderr"][-4000:]
    rc, out, _ = remote(info, "nginx -T 2>/dev/null | grep -c 'listen 443' || true")
    assert out.strip() == "0"


def test_the_release_is_a_laravel_app_built_by_composer_from_debians_framework(stack):
    """The bundled app ships composer.json + composer.lock and no vendor/: the deploy ran
    `composer install --optimize-autoloader` in the release (no registry), so one classmap maps
    Debian's framework files, and every artisan cache of the release exists."""
    info, first, _ = stack
    assert any(name.startswith("lbstack app | composer install") or "composer install (release" in name
               for name in changed_ops(first)), changed_ops(first)
    release = "/srv/lbstack/app/current"
    rc, out, err = remote(info, f"cd {release} && test -f composer.lock && test -f vendor/autoload.php && "
                                "grep -c \"/usr/share/php/Illuminate/Foundation/Application.php\" "
                                "vendor/composer/autoload_classmap.php && "
                                "ls bootstrap/cache && readlink public/storage && runuser -u lbstack -- php artisan --version")
    assert rc == 0, (out, err)
    lines = out.split()
    assert lines[0] == "1"  # the framework's Application class, from Debian's package, in the classmap
    for cache in ("config.php", "routes-v7.php", "events.php", "packages.php", "services.php"):
        assert cache in lines, out
    assert "Laravel Framework 8.83" in out
    assert f"{release}/storage/app/public" in out or "/storage/app/public" in out  # storage:link


def test_the_apps_redis_user_clears_the_cache_but_is_refused_every_admin_command(stack):
    info, _, base = stack
    question = 500 + uuid.uuid4().int % 400
    assert http(f"{base}/api/questions/random?id={question}")[0] == 200  # cached now
    rc, out, err = remote(info, "cd /srv/lbstack/app/current && runuser -u lbstack -- php artisan cache:clear")
    assert rc == 0 and "cache cleared" in out.lower(), out + err  # FLUSHDB, with the app's own user
    status, _, body = http(f"{base}/api/questions/random?id={question}")
    assert status == 200 and '"source":"cache"' not in body.decode()  # the cache was really emptied
    app = ("p=$(sed -n 's/^REDIS_PASSWORD=//p' /srv/lbstack/app/shared/.env); "
           'REDISCLI_AUTH="$p" redis-cli --no-auth-warning -s /run/redis/redis-server.sock')
    admin = ('REDISCLI_AUTH="$(cat /etc/lbstack/secrets/redis_admin_password)" '
             "redis-cli --no-auth-warning --user lbstack-admin -s /run/redis/redis-server.sock")
    for command in ("CONFIG SET dir /tmp", "CONFIG SET dbfilename x.so", "FLUSHALL", "DEBUG SLEEP 0", "SHUTDOWN",
                    "ACL SETUSER evil on '>evil-password-1234' +@all", "KEYS '*'", "MONITOR", "SAVE", "INFO"):
        rc, out, err = remote(info, f"{app} {command}")
        # DEBUG is refused before the user's rights are even asked (enable-debug-command no)
        assert out.startswith("ERR DEBUG command not allowed" if command.startswith("DEBUG") else "NOPERM"), \
            (command, out, err)
    for command in ("GET k", "FLUSHALL", "SHUTDOWN", "ACL SETUSER evil on +@all"):  # the admin touches no key
        rc, out, err = remote(info, f"{admin} {command}")
        assert out.startswith("NOPERM"), (command, out, err)
    rc, out, err = remote(info, f"{admin} CONFIG SET dir /tmp")  # protected for everyone
    assert "protected config" in out, out + err
    rc, out, err = remote(info, f"{app} PING; {admin} ACL LIST | cut -d' ' -f2; {admin} CONFIG GET dir")
    assert out.split() == ["PONG", "default", "lbstack-admin", "dir", "/var/lib/redis"], out + err
