"""Facts about the site's certificates: the ACME certificate certbot keeps (and how it renews it),
and the certificate nginx actually serves."""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase

# openssl x509 fields, one KEY=VALUE line each; the names (subjectAltName) on one line
_X509 = (
    'echo "serial=$(openssl x509 -noout -serial <"$c" | cut -d= -f2)"; '
    'echo "not_after=$(date -u -d "$(openssl x509 -noout -enddate <"$c" | cut -d= -f2)" +%s)"; '
    'echo "ocsp=$(openssl x509 -noout -ocsp_uri <"$c")"; '
    'echo "issuer=$(openssl x509 -noout -issuer -nameopt RFC2253 <"$c" | cut -d= -f2-)"; '
    'echo "names=$(openssl x509 -noout -ext subjectAltName <"$c" | tail -n +2 | tr -d " ")"'
)


def _certificate(lines: list[str]) -> dict | None:
    """``{"serial", "not_after" (epoch s), "ocsp" ('' when none), "issuer", "names"}`` from the
    KEY=VALUE lines of :data:`_X509`, or None without a serial (no certificate)."""
    values = dict(line.split("=", 1) for line in lines if "=" in line)
    if not values.get("serial"):
        return None
    names = [n[4:] for n in values.get("names", "").split(",") if n.startswith("DNS:")]
    not_after = values.get("not_after", "")
    return {"serial": values["serial"], "not_after": int(not_after) if not_after.isdigit() else None,
            "ocsp": values.get("ocsp", ""), "issuer": values.get("issuer", ""), "names": names}


class AcmeCertificate(FactBase):
    """
    The certificate certbot keeps under ``live`` (``cert.pem``) and the renewal settings it
    renews it with (``renewal``: certbot's ``renewal/<name>.conf``).

    Returns ``{"certificate": {"serial", "not_after", "ocsp", "issuer", "names"} | None,
    "renewal": {"server": ..., "authenticator": ..., "webroot_path": ..., "renew_hook": ...}}``
    (``renewal`` empty when the file is absent).
    """

    @staticmethod
    def default():
        return {"certificate": None, "renewal": {}}

    def requires_command(self, live, renewal) -> str:
        return "openssl"

    def command(self, live, renewal) -> str:
        cert, conf = shlex.quote(f"{live}/cert.pem"), shlex.quote(renewal)
        return (f"c={cert}; if [ -r \"$c\" ]; then {_X509}; fi; echo '--- renewal'; "
                f"if [ -r {conf} ]; then sed -n '1,/^\\[\\[/p' {conf}; fi; true")

    def process(self, output) -> dict:
        lines = list(output)
        split = lines.index("--- renewal") if "--- renewal" in lines else len(lines)
        renewal = {}
        for line in lines[split + 1:]:
            key, sep, value = line.partition("=")
            if sep and not line.startswith(("#", "[")):
                renewal[key.strip()] = value.strip().rstrip(",")
        return {"certificate": _certificate(lines[:split]), "renewal": renewal}


class ServedCertificate(FactBase):
    """
    The certificate nginx serves on ``127.0.0.1:port`` for SNI ``server_name`` (openssl s_client).

    Returns ``{"serial", "not_after", "ocsp", "issuer", "names"}``, or None when no TLS answer came.
    """

    def requires_command(self, server_name, port=443) -> str:
        return "openssl"

    def command(self, server_name, port=443) -> str:
        return (f"c=$(mktemp); openssl s_client -connect 127.0.0.1:{int(port)} -servername {shlex.quote(server_name)} "
                f"</dev/null 2>/dev/null | openssl x509 >\"$c\" 2>/dev/null; if [ -s \"$c\" ]; then {_X509}; fi; "
                "rm -f \"$c\"; true")

    def process(self, output) -> dict | None:
        return _certificate(list(output))
