"""tls: acme on real hosts: the stack (a copy of the session's converged host) and an ACME server,
pebble (Debian's, Let's Encrypt's test server), on one rehearsal network; pebble validates HTTP-01
by fetching the token from the stack's running nginx, and is the client that sends the load.

Proves: a first issuance that fails (a broken directory URL) fails the run with the reason and
leaves the site serving over HTTP; the next converge issues the certificate and HTTPS answers with
the issued chain, verified against pebble's root; HTTP redirects, HSTS is sent; verification reads
the served certificate back; a second run changes nothing; a forced renewal under load replaces the
served certificate with no failed request; a broken directory URL once a certificate exists fails
the run and the previous certificate keeps serving.
"""

from __future__ import annotations

import base64
import json
import shlex
import time

import pytest

import lbstack.rehearsal as rehearsal
from bench import clientload
from bench.clientload import ClientLoad
from lbstack import layout
from lbstack.rehearsal import nspawn

from conftest import RUN_ID, run, unique_name
from e2e_helpers import REHEARSAL_SETTINGS, TIMINGS, changed_ops, lbstack, pyinfra

NET = f"a{RUN_ID}"[:15]
NAME = "www.lbstack.test"
HEALTH = "/api/ujian/health"
PEBBLE_CA = "/etc/lbstack-test/pebble-ca.pem"  # signs pebble's own HTTPS certificate (tls_acme_ca_bundle)
PEBBLE_ROOT = "/root/pebble-root.pem"  # the root of the chains pebble issues (on the pebble host)
CONNECTIONS = 100


def _ok(info, command: str, timeout: float = 120) -> str:
    rc, out, err = run(info, command, timeout=timeout)
    assert rc == 0, f"{command}: {err[-2000:]}{out[-1000:]}"
    return out


def _start_pebble(pebble, site) -> None:
    """pebble from Debian on the pebble host: its HTTPS certificate made here, HTTP-01 on port 80, the
    site's name resolved to the stack host (/etc/hosts; pebble uses the system resolver)."""
    config = {"pebble": {"listenAddress": "0.0.0.0:14000", "managementListenAddress": "127.0.0.1:15000",
                         "certificate": "/etc/pebble/cert.pem", "privateKey": "/etc/pebble/key.pem",
                         "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "",
                         "externalAccountBindingRequired": False}}
    _ok(pebble, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q pebble curl >/dev/null 2>&1 || "
                "{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q pebble curl; }",
        timeout=600)
    _ok(pebble, "mkdir -p /etc/pebble && openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=pebble "
                f"-addext subjectAltName=IP:{pebble.private_address} -keyout /etc/pebble/key.pem "
                "-out /etc/pebble/cert.pem 2>/dev/null && "
                f"echo {shlex.quote(json.dumps(config))} > /etc/pebble/config.json && "
                f"echo '{site.private_address} {NAME}' >> /etc/hosts && "
                "systemd-run --unit=pebble -E PEBBLE_VA_NOSLEEP=1 -E PEBBLE_WFE_NONCEREJECT=0 "
                "/usr/bin/pebble -config /etc/pebble/config.json")
    _ok(pebble, "for i in $(seq 50); do curl -skf https://127.0.0.1:14000/dir >/dev/null && break; sleep 0.2; done; "
                f"curl -skf https://127.0.0.1:15000/roots/0 > {PEBBLE_ROOT} && grep -q 'BEGIN CERT' {PEBBLE_ROOT}")
    ca = base64.b64encode(_ok(pebble, "cat /etc/pebble/cert.pem").encode()).decode()
    _ok(site, f"mkdir -p {PEBBLE_CA.rsplit('/', 1)[0]} && echo {ca} | base64 -d > {PEBBLE_CA}")


def _settings(pebble, directory: str | None = None) -> dict:
    return {**REHEARSAL_SETTINGS, "tls": "acme", "server_names": [NAME], "tls_acme_email": "ops@lbstack.test",
            "tls_acme_directory": directory or f"https://{pebble.private_address}:14000/dir",
            "tls_acme_ca_bundle": PEBBLE_CA}


def _served(pebble, site) -> dict:
    """What the client sees on the site's 443: the chain verified against pebble's root, and the leaf."""
    out = _ok(pebble, f"echo | openssl s_client -connect {site.private_address}:443 -servername {NAME} "
                      f"-CAfile {PEBBLE_ROOT} -verify_return_error 2>&1")
    leaf = _ok(pebble, f"echo | openssl s_client -connect {site.private_address}:443 -servername {NAME} "
                       "2>/dev/null | openssl x509 -noout -serial -ext subjectAltName")
    return {"verify": "Verify return code: 0 (ok)" in out, "serial": leaf.split("serial=")[1].split()[0],
            "names": leaf}


def _curl(pebble, site, url: str, *extra: str) -> tuple[str, str]:
    """(status, headers) of a GET from the client: https verified against pebble's root."""
    out = _ok(pebble, f"curl -s -o /dev/null -D - --max-time 10 --cacert {PEBBLE_ROOT} "
                      f"--resolve {NAME}:443:{site.private_address} --resolve {NAME}:80:{site.private_address} "
                      f"{' '.join(extra)} {shlex.quote(url)}")
    return out.split()[1] if out else "", out


@pytest.fixture(scope="module")
def acme(host, tmp_path_factory):
    """(pebble, site, first failed run, issuing run): pebble and a copy of the session's converged
    host on one network; a converge against a broken directory, then against pebble."""
    copy = tmp_path_factory.mktemp("acme") / "rootfs"
    with rehearsal.owned_hosts():
        nspawn.snapshot(host.name, copy)
        site = rehearsal.up(unique_name("acme-site"), rootfs=copy, net=NET)
        pebble = rehearsal.up(unique_name("pebble"), net=NET)
        _start_pebble(pebble, site)
        broken = pyinfra(site.name, settings=_settings(pebble, f"https://{pebble.private_address}:14000/no-such-dir"))
        # what the site is after the failed first issuance
        broken["site_conf"] = _ok(site, f"cat {layout.SITE_CONF}")
        broken["http"] = _curl(pebble, site, f"http://{NAME}{HEALTH}")[0]
        issued = pyinfra(site.name, settings=_settings(pebble))
        TIMINGS["tls: acme converge (copy of the converged host, certificate issued)"] = issued["seconds"]
        yield pebble, site, broken, issued


def test_a_failed_first_issuance_fails_the_run_with_the_reason_and_the_site_serves_http(acme):
    pebble, site, broken, _ = acme
    assert broken["rc"] != 0
    assert f"lbstack-acme: issuing the certificate for {NAME} from https://" in broken["stderr"], broken["stderr"][-3000:]
    assert "nginx keeps serving HTTP only" in broken["stderr"]
    # the HTTP-only site was in place before certbot ran, the failed step changed nothing after
    # it, and the site answers over HTTP
    assert "# HTTP only: tls is acme and no certificate is issued yet" in broken["site_conf"]
    assert "listen 443" not in broken["site_conf"]
    assert broken["http"] == "200"


def test_the_issued_chain_is_served_over_https_http_redirects_and_hsts_is_sent(acme):
    pebble, site, _, issued = acme
    assert issued["rc"] == 0, issued["stderr"][-4000:]
    served = _served(pebble, site)
    assert served["verify"], served
    assert f"DNS:{NAME}" in served["names"]
    status, headers = _curl(pebble, site, f"https://{NAME}{HEALTH}")
    assert status == "200", headers
    assert "strict-transport-security: max-age=31536000" in headers.lower()
    status, headers = _curl(pebble, site, f"http://{NAME}{HEALTH}")
    assert status == "301" and f"location: https://{NAME}{HEALTH}" in headers.lower(), headers
    # verification read the served certificate back (names, expiry, certbot's current one) and
    # certbot's renewal settings: all passed
    assert f"Verification of {site.name}: all checks passed" in issued["stderr"], issued["stderr"][-3000:]
    rc, out, _ = run(site, f"systemctl is-enabled {layout.ACME_RENEW_TIMER} certbot.timer; "
                           f"systemctl is-active {layout.ACME_RENEW_TIMER}")
    assert out.split() == ["enabled", "disabled", "active"], out


def test_a_second_run_changes_nothing_and_drift_covers_certbots_renewal_settings(acme):
    pebble, site, _, _ = acme
    again = pyinfra(site.name, settings=_settings(pebble))
    TIMINGS["tls: acme no-op converge"] = again["seconds"]
    assert again["rc"] == 0, again["stderr"][-3000:]
    assert changed_ops(again) == []
    clean = lbstack(site.name, "drift", "inventories/rehearsal.py", "--json", settings=_settings(pebble))
    assert clean["rc"] == 0, clean["stdout"][-3000:] + clean["stderr"][-2000:]
    # certbot would renew without lbstack's deploy hook (nginx never reloaded): drift names it
    conf = layout.ACME_RENEWAL_CONF
    _ok(site, f"cp {conf} /root/renewal.conf && sed -i 's|^renew_hook = .*|renew_hook = /bin/true|' {conf}")
    try:
        found = lbstack(site.name, "drift", "inventories/rehearsal.py", "--json", settings=_settings(pebble))
    finally:
        _ok(site, f"cp /root/renewal.conf {conf}")
    assert found["rc"] == 2, found["stdout"][-3000:] + found["stderr"][-2000:]
    failed = [row["check"] for row in found["json"]["hosts"][site.name]["checks_failed"]]
    assert failed == ["ACME renewal: deploy hook (nginx -t, reload)"], failed


def test_a_forced_renewal_under_load_replaces_the_certificate_without_a_failed_request(acme):
    pebble, site, _, _ = acme
    before = _served(pebble, site)["serial"]
    clientload.install(pebble)
    load = ClientLoad(pebble, f"https://{site.private_address}", CONNECTIONS, (HEALTH, "/api/questions/random"),
                      host_header=NAME, cafile=PEBBLE_ROOT)
    time.sleep(3)
    started = time.monotonic()
    rc, out, err = run(site, f"{layout.ACME_HELPER} renew --force", timeout=180)
    TIMINGS["tls: acme forced renewal (certbot + reload)"] = time.monotonic() - started
    time.sleep(3)
    summary = load.stop()["summary"]
    assert rc == 0, err
    assert "Congratulations, all renewals succeeded" in err, err
    after = _served(pebble, site)  # a new serial served: the deploy hook reloaded nginx
    assert after["verify"] and after["serial"] != before, (before, after)
    assert summary["requests"] > 500 and summary["failed"] == 0, summary


def test_a_broken_directory_url_fails_the_run_and_the_previous_certificate_keeps_serving(acme):
    pebble, site, _, _ = acme
    before = _served(pebble, site)["serial"]
    broken = pyinfra(site.name, settings=_settings(pebble, f"https://{pebble.private_address}:14000/no-such-dir"))
    assert broken["rc"] != 0
    assert "nginx keeps serving the previous certificate (expires" in broken["stderr"], broken["stderr"][-3000:]
    after = _served(pebble, site)
    assert after["verify"] and after["serial"] == before
    status, _ = _curl(pebble, site, f"https://{NAME}{HEALTH}")
    assert status == "200"
