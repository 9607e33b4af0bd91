"""Facts about the nginx load balancer, read from the configuration nginx itself loads."""

from __future__ import annotations

import re
import shlex

from pyinfra.api import FactBase

_UPSTREAM = re.compile(r"\bupstream\s+(\S+)\s*\{([^}]*)\}", re.S)
_COMMENT = re.compile(r"#[^\n]*")
_METHODS = ("least_conn", "ip_hash", "hash", "random", "least_time")


class Upstreams(FactBase):
    """
    Upstream blocks of the live configuration, from ``nginx -T`` (the files nginx loads, includes
    resolved).

    Returns ``{}`` when nginx is absent or its configuration does not parse, else::

        {"lbstack_app": {"method": "least_conn",          # or ip_hash, round_robin, ...
                         "servers": [{"address": "unix:/run/lbstack/app1/fpm.sock",
                                      "down": False, "backup": False,
                                      "max_fails": 3, "fail_timeout": "10s", "weight": 1}, ...]}}
    """

    @staticmethod
    def default():
        return {}

    def requires_command(self) -> str:
        return "nginx"

    def command(self) -> str:
        return "nginx -T 2>/dev/null || true"

    def process(self, output) -> dict[str, dict]:
        text = _COMMENT.sub("", "\n".join(output))
        upstreams: dict[str, dict] = {}
        for name, body in _UPSTREAM.findall(text):
            method = "round_robin"
            servers = []
            for statement in body.split(";"):
                words = statement.split()
                if not words:
                    continue
                if words[0] in _METHODS:
                    method = words[0]
                elif words[0] == "server" and len(words) > 1:
                    servers.append(_server(words[1], words[2:]))
            upstreams[name] = {"method": method, "servers": servers}
        return upstreams


def _server(address: str, params: list[str]) -> dict:
    server = {"address": address, "down": False, "backup": False, "max_fails": 1, "fail_timeout": "10s", "weight": 1}
    for param in params:
        key, _, value = param.partition("=")
        if key in ("down", "backup") and not value:
            server[key] = True
        elif key in ("max_fails", "weight"):
            server[key] = int(value)
        elif key == "fail_timeout":
            server[key] = value
    return server


class StubStatus(FactBase):
    """
    nginx's ``stub_status`` page (``/nginx-status``, local only), asked on the host.

    Returns ``{"active": 3, "accepts": 1200, "handled": 1200, "requests": 5400, "reading": 0,
    "writing": 1, "waiting": 2}``, or ``{"error": "..."}`` when it does not answer.
    """

    @staticmethod
    def default():
        return {"error": "no answer"}

    def requires_command(self, url="http://127.0.0.1/nginx-status") -> str:
        return "curl"

    def command(self, url="http://127.0.0.1/nginx-status") -> str:
        return f"curl -sS --max-time 5 {shlex.quote(url)} 2>&1 || true"

    def process(self, output) -> dict:
        text = " ".join(output)
        active = re.search(r"Active connections:\s*(\d+)", text)
        totals = re.search(r"server accepts handled requests\s+(\d+)\s+(\d+)\s+(\d+)", text)
        rw = re.search(r"Reading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)", text)
        if not (active and totals and rw):
            return {"error": text.strip()[:200] or "no answer"}
        return {"active": int(active.group(1)), "accepts": int(totals.group(1)),
                "handled": int(totals.group(2)), "requests": int(totals.group(3)),
                "reading": int(rw.group(1)), "writing": int(rw.group(2)), "waiting": int(rw.group(3))}


# Reads the newest lines of lbstack's JSON access log (log_format lbstack) and sums up those of the
# last ``window_s`` seconds on the host: counts by status and upstream, and time percentiles.
_LOG_FILTER = r"""
function field(key) {
    if (match($0, "\"" key "\":\"[^\"]*\"")) return substr($0, RSTART + length(key) + 4, RLENGTH - length(key) - 5);
    if (match($0, "\"" key "\":[^,}]*")) return substr($0, RSTART + length(key) + 3, RLENGTH - length(key) - 3);
    return "";
}
{ t = field("time"); if (t < since) next; n++;
  st = field("status"); print "S", st; rt = field("request_time"); if (rt != "") print "R", rt;
  ut = field("upstream_time"); up = field("upstream");
  if (ut != "" && ut != "-") { k = split(ut, parts, /, */); s = 0; for (i = 1; i <= k; i++) s += parts[i]; print "U", s }
  if (up != "") { k = split(up, parts, /, */); print "A", parts[k] }
  if (st >= 500) print "E", st }
END { print "N", n + 0 }
"""
_LOG_SUMMARY = r"""
$1 == "N" { n = $2 } $1 == "S" { status[$2]++ } $1 == "A" { up[$2]++ } $1 == "E" { errors++ }
$1 == "R" { r[++nr] = $2 } $1 == "U" { u[++nu] = $2 }
function pct(arr, cnt, p,   i) { if (!cnt) return ""; i = int(cnt * p / 100 + 0.999999); if (i < 1) i = 1; return arr[i] }
END {
    print "@requests=" n + 0; for (s in status) print "@status." s "=" status[s];
    for (a in up) print "@upstream." a "=" up[a];
    print "@request_time=" pct(r, nr, 50) " " pct(r, nr, 95) " " pct(r, nr, 99) " " nr;
    print "@upstream_time=" pct(u, nu, 50) " " pct(u, nu, 95) " " pct(u, nu, 99) " " nu;
}
"""


class AccessLog(FactBase):
    """
    The last ``window_s`` seconds of lbstack's JSON access log, summed up on the host (only the
    newest ``max_lines`` lines are read, so a busy log stays cheap).

    Returns::

        {"window_s": 60, "requests": 1200, "req_per_s": 20.0,
         "status": {"200": 1195, "502": 5}, "errors_5xx": 5,
         "upstreams": {"unix:/run/lbstack/app1/fpm.sock": 240, ...},
         "request_time_s": {"p50": 0.004, "p95": 0.012, "p99": 0.03, "count": 1200},
         "upstream_time_s": {"p50": 0.003, "p95": 0.011, "p99": 0.029, "count": 1195}}
    """

    @staticmethod
    def default():
        return {"error": "no access log"}

    def command(self, window_s, path="/var/log/nginx/access.log", max_lines=200000) -> str:
        log = shlex.quote(path)
        return (
            f"[ -r {log} ] || {{ echo '@error=no readable {path}'; exit 0; }}; echo @window_s={int(window_s)}; "
            f'since=$(date -d "@$(( $(date +%s) - {int(window_s)} ))" +%Y-%m-%dT%H:%M:%S%:z); '
            f"tail -n {int(max_lines)} {log} | awk -v since=\"$since\" {shlex.quote(_LOG_FILTER)} "
            f"| LC_ALL=C sort -k1,1 -k2,2g | awk {shlex.quote(_LOG_SUMMARY)}"
        )

    def process(self, output) -> dict:
        result: dict = {"window_s": None, "requests": 0, "status": {}, "upstreams": {}}
        for line in output:
            key, _, value = line.strip().partition("=")
            if key == "@error":
                return {"error": value}
            if key == "@window_s":
                result["window_s"] = int(value)
            elif key == "@requests":
                result["requests"] = int(value)
            elif key.startswith("@status."):
                result["status"][key[8:]] = int(value)
            elif key.startswith("@upstream."):
                result["upstreams"][key[10:]] = int(value)
            elif key in ("@request_time", "@upstream_time"):
                p50, p95, p99, count = (value.split(" ") + ["", "", "", "0"])[:4]
                result[key[1:] + "_s"] = {"p50": _num(p50), "p95": _num(p95), "p99": _num(p99),
                                          "count": int(count or 0)}
        result["req_per_s"] = round(result["requests"] / result["window_s"], 2) if result["window_s"] else None
        result["errors_5xx"] = sum(n for s, n in result["status"].items() if s.startswith("5"))
        return result


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
