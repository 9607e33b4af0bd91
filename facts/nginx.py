"""Facts about the nginx load balancer, read from the configuration nginx itself loads."""

from __future__ import annotations

import re

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
