"""Facts from HTTP requests sent on the host itself (loopback), through the load balancer."""

from __future__ import annotations

import shlex
from collections import Counter

from pyinfra.api import FactBase

INSTANCE_HEADER = "x-lbstack-instance"


class HttpStatus(FactBase):
    """
    HTTP status of each URL (curl on the host, 5 s each, TLS not verified for self-signed).

    Returns ``{"http://127.0.0.1/health": 200, ...}``; 0 when no answer came.
    """

    @staticmethod
    def default():
        return {}

    def requires_command(self, urls) -> str:
        return "curl"

    def command(self, urls) -> str:
        return "; ".join(
            f"echo \"$(curl -sk -o /dev/null --max-time 5 -w '%{{http_code}}' {shlex.quote(u)} || true) {shlex.quote(u)}\""
            for u in urls
        )

    def process(self, output) -> dict[str, int]:
        result = {}
        for line in output:
            code, _, url = line.strip().partition(" ")
            if url:
                result[url] = int(code) if code.isdigit() else 0
        return result


class Distribution(FactBase):
    """
    ``requests`` sequential GETs of ``url`` through the load balancer, in one curl process: which
    instance answered each (its ``X-Lbstack-Instance`` header) and with what status.

    Returns ``{"requests": 100, "instances": {"app1": 20, ...}, "statuses": {"200": 100}}``;
    a request with no header counts under ``"-"``; a failed one has status ``"000"``. curl stops
    at the first answer that is not 2xx/3xx (``--fail-early``): ``requests`` is then fewer than
    asked. An app whose backend is down can take seconds per answer (the bundled app waits 3 s
    for Redis before its 503): 100 of them took 5 min where one says as much.
    """

    @staticmethod
    def default():
        return {"requests": 0, "instances": {}, "statuses": {}}

    def requires_command(self, url, requests) -> str:
        return "curl"

    def command(self, url, requests) -> str:
        sep = "&" if "?" in url else "?"
        glob = shlex.quote(f"{url}{sep}lbstack_probe=[1-{int(requests)}]")
        fmt = shlex.quote("%{stderr}%{http_code} %header{" + INSTANCE_HEADER + "}\\n")
        return f"curl -sk --fail --fail-early --max-time 60 -w {fmt} {glob} 2>&1 >/dev/null || true"

    def process(self, output) -> dict:
        instances: Counter = Counter()
        statuses: Counter = Counter()
        total = 0
        for line in output:
            parts = line.strip().split(None, 1)
            if not parts or not parts[0].isdigit() or len(parts[0]) != 3:
                continue
            total += 1
            statuses[parts[0]] += 1
            instances[parts[1].strip() if len(parts) > 1 and parts[1].strip() else "-"] += 1
        return {"requests": total, "instances": dict(sorted(instances.items())), "statuses": dict(sorted(statuses.items()))}
