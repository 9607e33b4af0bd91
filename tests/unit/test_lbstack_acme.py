"""lbstack-acme rendered from its real template and run with bash against fake ``certbot``,
``nginx`` and ``systemctl`` (on PATH): what it asks certbot for, the reason it prints when certbot
fails (and what nginx keeps serving), and its deploy hook (nginx -t before any reload)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from deploy import nginx
from lbstack import layout
from lbstack.render import render
from lbstack.settings import load

SETTINGS = load({"tls": "acme", "server_names": ["example.com", "www.example.com"],
                 "tls_acme_directory": "https://ca.example/dir", "tls_acme_email": "ops@example.com"})

FAKES = {
    "certbot": r'''
echo "certbot $*" >> "$FAKE/calls"
echo "ca_bundle=${REQUESTS_CA_BUNDLE:-}" >> "$FAKE/calls"
if [ -e "$FAKE/certbot-fails" ]; then
    echo "Saving debug log to /var/log/letsencrypt/letsencrypt.log"
    echo "An unexpected error occurred:"
    echo "The ACME directory at https://ca.example/dir answered 404"
    echo "Ask for help or search for solutions at https://community.letsencrypt.org."
    exit 1
fi
''',
    "nginx": r'''
echo "nginx $*" >> "$FAKE/calls"
if [ -e "$FAKE/nginx-fails" ]; then echo "nginx: [emerg] cannot load certificate" >&2; exit 1; fi
''',
    "systemctl": 'echo "systemctl $*" >> "$FAKE/calls"\n',
    "openssl": 'echo "notAfter=Jan  1 00:00:00 2027 GMT"\n',
}


@pytest.fixture
def acme(tmp_path: Path):
    fake = tmp_path / "fake"
    fake.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in FAKES.items():
        (bin_dir / name).write_text("#!/bin/bash\n" + body)
        (bin_dir / name).chmod(0o755)
    live = tmp_path / "live"
    data = nginx.acme_helper_data(SETTINGS)
    data.update(live=str(live), webroot=str(tmp_path / "webroot"))
    script = tmp_path / "lbstack-acme"
    script.write_text(render(layout.ACME_HELPER, **data))

    def run(*args: str, settings_bundle: str | None = None):
        if settings_bundle is not None:
            script.write_text(render(layout.ACME_HELPER, **{**data, "ca_bundle": settings_bundle}))
        proc = subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=30,
                              env={"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE": str(fake)})
        calls = (fake / "calls").read_text().splitlines() if (fake / "calls").exists() else []
        (fake / "calls").unlink(missing_ok=True)
        return proc, calls

    return run, fake, live, tmp_path


def test_issue_asks_certbot_for_every_name_by_webroot_with_the_deploy_hook(acme):
    run, _, _, tmp = acme
    proc, calls = run("issue")
    assert proc.returncode == 0, proc.stderr
    (certbot, bundle) = calls
    for part in ("certonly --non-interactive --agree-tos --email ops@example.com", "--server https://ca.example/dir",
                 f"--webroot -w {tmp}/webroot", "--cert-name lbstack", "-d example.com -d www.example.com",
                 f"--deploy-hook {tmp}/lbstack-acme deployed"):
        assert part in certbot, (part, certbot)
    assert bundle == "ca_bundle="
    assert (tmp / "webroot").is_dir()


def test_a_failed_issuance_exits_1_with_certbots_reason_and_what_nginx_keeps_serving(acme):
    run, fake, live, _ = acme
    (fake / "certbot-fails").touch()
    proc, _ = run("issue")
    assert proc.returncode == 1
    assert proc.stderr.startswith("lbstack-acme: issuing the certificate for example.com www.example.com from "
                                  "https://ca.example/dir failed: An unexpected error occurred: The ACME directory")
    assert "Saving debug log" not in proc.stderr and "nginx keeps serving HTTP only." in proc.stderr
    live.mkdir()
    (live / "fullchain.pem").write_text("x")
    (live / "cert.pem").write_text("x")
    proc, _ = run("renew")
    assert proc.returncode == 1 and "nginx keeps serving the previous certificate (expires Jan  1" in proc.stderr


def test_the_deploy_hook_reloads_only_a_config_that_validates(acme):
    run, fake, _, _ = acme
    proc, calls = run("deployed")
    assert proc.returncode == 0 and calls == ["nginx -t -q", "systemctl reload nginx.service"]
    (fake / "nginx-fails").touch()
    proc, calls = run("deployed")
    assert proc.returncode == 1 and calls == ["nginx -t -q"]
    assert "nginx -t failed: nginx: [emerg] cannot load certificate" in proc.stderr


def test_renew_force_a_ca_bundle_and_bad_usage(acme):
    run, _, live, tmp = acme
    proc, _ = run("renew")
    assert proc.returncode == 1 and "no certificate to renew yet" in proc.stderr
    live.mkdir()
    (live / "cert.pem").write_text("x")
    bundle = tmp / "ca.pem"
    bundle.write_text("x")
    proc, calls = run("renew", "--force", settings_bundle=str(bundle))
    assert proc.returncode == 0, proc.stderr
    assert "--force-renewal" in calls[0] and "--cert-name lbstack" in calls[0] and calls[1] == f"ca_bundle={bundle}"
    proc, _ = run("renew", settings_bundle=str(tmp / "absent.pem"))
    assert proc.returncode == 1 and "is not readable" in proc.stderr
    proc, _ = run("bogus")
    assert proc.returncode == 2
    proc, _ = run("help")
    assert proc.returncode == 0 and "lbstack-acme issue" in proc.stdout
